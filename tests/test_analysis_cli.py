"""`jacrl analyze iteration-jacobian`: data loading, the tracking loop and the command itself."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from jacrl.analysis import FullBatchLoss, ParamLayout, init_params, load_batch, track
from jacrl.analysis.cli import add_arguments, run
from jacrl.common.errors import JacrlError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_synthetic_batch_has_mnist_shape():
    batch = load_batch("synthetic", batch_size=500)
    assert batch.x.shape == (500, 784) and batch.t.shape == (500, 10)
    assert batch.x.min() >= 0.0 and batch.x.max() <= 1.0
    assert torch.equal(batch.t.sum(1), torch.ones(500, dtype=torch.float64))


def test_mnist_is_read_from_idx_files(tmp_path):
    """A tiny MNIST in the four standard IDX files, read through jacrl.envs.datasets."""
    from jacrl.envs.datasets import write_idx

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = (np.arange(30) % 10).astype(np.uint8)
    for prefix, count in (("train", 30), ("t10k", 5)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images[:count])
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels[:count])
    batch = load_batch("mnist", batch_size=20, mnist_dir=str(tmp_path))
    assert batch.x.shape == (20, 784)
    np.testing.assert_allclose(batch.x.numpy(), images[:20].reshape(20, -1) / 255.0, rtol=1e-6)
    assert batch.t.argmax(1).tolist() == labels[:20].tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "cifar"}, "accepted: digits, mnist, synthetic"),
        ({"name": "mnist"}, "--mnist-dir"),
        ({"name": "digits", "batch_size": 0}, "--batch-size"),
    ],
)
def test_bad_data_arguments_say_what_is_accepted(kwargs, message):
    with pytest.raises(JacrlError, match=message):
        load_batch(**kwargs)


def test_track_records_every_k_steps_and_lowers_the_loss(tmp_path):
    batch = load_batch("digits", batch_size=200)
    layout = ParamLayout(64, 8, 10)
    loss = FullBatchLoss(layout, batch)
    theta, history = track(loss, init_params(layout), lr=1.0, steps=10, every=4, logdir=None)
    assert history.steps == [0, 4, 8, 10]
    assert history.loss[-1] < history.loss[0]
    assert torch.isfinite(theta).all()
    for lam_min, lam_max, rho in zip(
        history.lam_min, history.lam_max, history.spectral_radius, strict=True
    ):
        assert rho == pytest.approx(max(abs(1 - lam_max), abs(1 - lam_min)))


def test_command_prints_verdict_and_writes_pictures(tmp_path, capsys):
    args = parse(
        "--dataset", "digits", "--hidden", "8", "--batch-size", "300", "--lr", "0.1",
        "--track", "--steps", "4", "--every", "2", "--dense", "--probes", "4",
        "--out", str(tmp_path / "out"), "--logdir", str(tmp_path / "runs"),
    )  # fmt: skip
    assert run(args) == 0
    printed = capsys.readouterr().out
    assert "verdict: SADDLE" in printed  # a default init has negative curvature
    assert "log|det Df|" in printed and "tr(Df)" in printed
    for name in ("block_norms.png", "spectrum.png", "sharpness.png"):
        assert (tmp_path / "out" / name).stat().st_size > 10_000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = EventAccumulator(str(tmp_path / "runs" / "analysis" / "digits_h8_lr0.1")).Reload()
    for key in (
        "train/loss",
        "train/accuracy",
        "analysis/sharpness",
        "analysis/two_over_lr",
        "analysis/spectral_radius",
    ):
        assert [event.step for event in logged.Scalars(key)] == [0, 2, 4]


def test_command_without_dense_uses_lanczos_and_probes(tmp_path, capsys):
    out = tmp_path / "out"
    args = parse("--dataset", "digits", "--hidden", "8", "--batch-size", "300", "--out", str(out))
    assert run(args) == 0
    printed = capsys.readouterr().out
    assert "(Lanczos" in printed and "verdict: SADDLE" in printed
    assert "log|det Df|" not in printed  # needs the dense spectrum
    assert (out / "block_norms.png").exists() and (out / "spectrum.png").exists()


def test_command_refuses_a_dense_df_that_does_not_fit(tmp_path):
    args = parse("--dataset", "synthetic", "--batch-size", "10", "--dense", "--out", str(tmp_path))
    with pytest.raises(JacrlError, match="--device cuda"):
        run(args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_command_says_when_cuda_is_missing(tmp_path):
    with pytest.raises(JacrlError, match="no CUDA device"):
        run(parse("--device", "cuda", "--out", str(tmp_path)))
