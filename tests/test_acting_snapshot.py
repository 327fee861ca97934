"""The policy's one acting snapshot: kept for one weight generation, never stale after a write.

Every test of a write builds the snapshot first, then writes the weights one way, then checks that
the actions equal an uncached computation from the current weights (and differ from the old
ones), so it fails if that write path stopped bumping ``policy.generation``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

from jacrl.agents import JacobianAgent
from jacrl.common.errors import ConfigError, NonFiniteError
from jacrl.common.serialization import read_agent
from jacrl.nn import SingularWeightError
from jacrl.policies.invertible import InvertiblePolicy

TINY = dict(n_steps=32, batch_size=32, n_epochs=2, lift_hidden=(8,), value_hidden=(8,))
F64 = torch.float64


def make_policy(
    seed: int = 0, embed: str = "mlp", parameterization: str = "inverse", max_cond: float = 1e6
) -> InvertiblePolicy:
    torch.manual_seed(seed)
    return InvertiblePolicy(
        obs_dim=3,
        action_space=spaces.Discrete(2),
        n=4,
        depth=2,
        rule="density",
        embed=embed,
        parameterization=parameterization,
        activation="asinh",
        sigma_x=0.7,
        learn_sigma=True,
        lift_hidden=(8,),
        value_hidden=(8,),
        max_cond=max_cond,
        dtype="float64",
    )


def uncached_pre_actions(policy: InvertiblePolicy, obs: torch.Tensor) -> torch.Tensor:
    """F(x0(s)) from the current weights, built here from the public pieces (the lift, each
    layer's W = V⁻¹ and bias, the activation) with the snapshot's operations, so it must equal
    a fresh snapshot bit for bit."""
    with torch.no_grad():
        x = policy.embed(obs)
        for layer in policy.net.layers():
            x = policy.net.activation.value(x @ layer.weight().mT + layer.bias)
    return x


def loss(policy: InvertiblePolicy, obs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        y0 = policy.actor()(obs)
    return -policy.evaluate_actions(obs, y0)[1].mean()


@pytest.mark.parametrize("embed", ["mlp", "pad"])
@pytest.mark.parametrize("parameterization", ["inverse", "lu"])
@pytest.mark.parametrize("deterministic", [False, True])
def test_actor_is_the_uncached_policy(embed, parameterization, deterministic):
    """Bit for bit the uncached computation on the same random stream, and F(x0 + σ ε) of the
    differentiable :meth:`sample` (which solves with V instead of multiplying by W) to 1e-12."""
    policy = make_policy(embed=embed, parameterization=parameterization)
    obs = torch.randn(7, 3)
    torch.manual_seed(1)
    actual = policy.actor()(obs, deterministic)
    torch.manual_seed(1)
    x0 = policy.embed(obs).detach()
    x = x0 if deterministic else x0 + policy.log_sigma.detach().exp() * torch.randn_like(x0)
    with torch.no_grad():
        for layer in policy.net.layers():
            x = policy.net.activation.value(x @ layer.weight().mT + layer.bias)
    assert torch.equal(actual, x)
    torch.manual_seed(1)
    with torch.no_grad():
        expected = policy.sample(obs, deterministic)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def test_actor_is_kept_within_a_generation_and_rebuilt_after_a_bump():
    policy = make_policy()
    actor = policy.actor()
    generation = policy.generation
    obs = torch.randn(5, 3)
    actor(obs), policy.to_env_actions(actor(obs, True)), policy.evaluate_actions(obs, actor(obs))
    assert policy.actor() is actor and policy.generation == generation  # acting writes nothing
    # a write the policy cannot see (through .data) is announced with bump_generation
    with torch.no_grad():
        policy.net.linears[0].V.data.mul_(2.0)
    assert policy.actor() is actor
    policy.bump_generation()
    assert policy.generation == generation + 1
    fresh = policy.actor()
    assert fresh is not actor
    assert torch.equal(fresh(obs, True), uncached_pre_actions(policy, obs))
    assert not torch.equal(fresh(obs, True), actor(obs, True))


def test_actor_refuses_non_finite_or_ill_conditioned_weights():
    policy = make_policy()
    with torch.no_grad():
        policy.lift[0].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="lift"):
        policy.actor()
    policy = make_policy()
    with torch.no_grad():
        policy.net.linears[1].V[0] = 0.0
    with pytest.raises(SingularWeightError, match="layer 1"):
        policy.actor()


# Each way of writing the weights ----------------------------------------------------------------


def adam_step(fused: bool) -> Callable[[InvertiblePolicy], None]:
    def write(policy: InvertiblePolicy) -> None:
        # fused writes without touching version counters; foreach=False is the single-tensor loop
        kind = {"fused": True} if fused else {"foreach": False}
        optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2, **kind)
        policy.attach_optimizer(optimizer)
        loss(policy, torch.randn(16, 3)).backward()
        optimizer.step()

    return write


def load_state_dict(policy: InvertiblePolicy) -> None:
    policy.load_state_dict(make_policy(seed=1).state_dict())


def to_float32(policy: InvertiblePolicy) -> None:
    policy.to(torch.float32)


def tighten_and(repair: Callable[[InvertiblePolicy], object]) -> Callable[[InvertiblePolicy], None]:
    """Layer 1 at cond 1e3 (accepted under max_cond 1e6 when the snapshot was built), then a
    bound of 100 (an attribute, not a weight) and a repair, which writes the weights."""

    def write(policy: InvertiblePolicy) -> None:
        policy.net.max_cond = 100.0
        repair(policy)
        assert float(policy.net.condition_numbers().max()) <= 100.0

    return write


WRITES = {
    "fused_adam_step": adam_step(fused=True),
    "single_tensor_adam_step": adam_step(fused=False),
    "load_state_dict": load_state_dict,
    "to_float32": to_float32,
    "recondition": tighten_and(lambda policy: policy.recondition()),
    "enforce_conditioning": tighten_and(lambda p: p.enforce_conditioning("repair")),
}


def ill_conditioned_layer_1(policy: InvertiblePolicy, cond: float) -> None:
    state = policy.state_dict()
    u, _, vh = torch.linalg.svd(state["net.linears.1.V"])
    state["net.linears.1.V"] = (u * torch.logspace(0, np.log10(cond), 4, dtype=F64)) @ vh
    policy.load_state_dict(state)


@pytest.mark.parametrize("write", list(WRITES.values()), ids=list(WRITES))
def test_no_stale_snapshot_after_a_write(write):
    policy = make_policy()
    ill_conditioned_layer_1(policy, 1e3)
    obs = torch.randn(32, 3)
    before = policy.actor()(obs, True)
    generation = policy.generation
    write(policy)
    assert policy.generation > generation
    after = policy.actor()(obs, True)
    assert torch.equal(after, uncached_pre_actions(policy, obs))
    assert not torch.equal(after, before)


def test_an_unattached_optimizer_is_invisible_which_is_why_attach_exists():
    """The control of the test above: a step of an optimizer that was not attached leaves the
    snapshot as it was (stale), so that test sees the difference a missing bump makes."""
    policy = make_policy()
    obs = torch.randn(32, 3)
    before = policy.actor()(obs, True)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2, fused=True)
    loss(policy, obs).backward()
    optimizer.step()
    assert torch.equal(policy.actor()(obs, True), before)
    assert not torch.equal(uncached_pre_actions(policy, obs), before)


def test_attach_optimizer_refuses_an_optimizer_of_other_weights():
    policy = make_policy()
    with pytest.raises(ConfigError, match="none of the policy's weights"):
        policy.attach_optimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1))


def test_conditioning_check_is_remembered_for_one_generation_only(monkeypatch):
    """After a passed check, acting in the same generation runs no SVD; after new weights arrive
    (load_state_dict) it checks again and refuses them if ill-conditioned."""
    policy = make_policy()
    policy.enforce_conditioning("raise")
    calls: list[int] = []
    check = policy.net.check_conditioning
    monkeypatch.setattr(policy.net, "check_conditioning", lambda: calls.append(1) or check())
    policy.actor()
    assert calls == []
    ill_conditioned_layer_1(policy, 1e9)
    with pytest.raises(SingularWeightError, match="layer 1"):
        policy.actor()
    assert calls == [1]


# The agent's writes ---------------------------------------------------------------------------


def test_training_renews_the_snapshot():
    agent = JacobianAgent("CartPole-v1", seed=0, **TINY)
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32))
    actor = agent.policy.actor()
    before = actor(obs, True)
    agent.learn(64)
    assert agent.policy.actor() is not actor
    after = agent.policy.actor()(obs, True)
    assert not torch.equal(after, before)
    assert torch.equal(after, uncached_pre_actions(agent.policy, obs))


def test_set_parameters_renews_the_snapshot():
    agent = JacobianAgent("CartPole-v1", seed=0, **TINY)
    other = JacobianAgent("CartPole-v1", seed=1, **TINY)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    before = agent.predict(obs, deterministic=True)[0]  # builds the snapshot
    agent.set_parameters(other.get_parameters())
    after = agent.predict(obs, deterministic=True)[0]
    np.testing.assert_array_equal(after, other.predict(obs, deterministic=True)[0])
    assert not np.array_equal(after, before)
    normalised = torch.as_tensor(agent.normalize(obs))
    expected = agent.policy.to_env_actions(uncached_pre_actions(agent.policy, normalised))
    np.testing.assert_array_equal(after, expected)


class StopAt(BaseCallback):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        return self.model.num_timesteps < self.step


def test_an_agent_that_acted_then_resumes_a_checkpoint_acts_on_the_loaded_weights(tmp_path):
    """Loading into an agent that already holds a snapshot (its own initial weights, from a
    predict): the resumed run must act on the checkpoint's weights and end bit-identical to an
    uninterrupted run."""
    budget, every = 128, 64
    reference = JacobianAgent("CartPole-v1", seed=0, **TINY)
    reference.learn(budget, checkpoint_every=every, checkpoint_path=tmp_path / "reference.zip")
    checkpoint = tmp_path / "stopped.zip"
    JacobianAgent("CartPole-v1", seed=0, **TINY).learn(
        budget, callback=StopAt(80), checkpoint_every=every, checkpoint_path=checkpoint
    )
    assert read_agent(checkpoint, "JacobianAgent").num_timesteps == every  # stopped mid-run
    resumed = JacobianAgent("CartPole-v1", seed=0, **TINY)
    resumed.predict(np.zeros((1, 4), dtype=np.float32), deterministic=True)
    resumed.learn(budget, checkpoint_every=every, checkpoint_path=checkpoint)
    expected, actual = reference.get_parameters(), resumed.get_parameters()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
