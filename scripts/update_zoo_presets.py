"""Vendor rl-baselines3-zoo's tuned hyperparameters into agents/zoo/ (run from the repo root).

    python scripts/update_zoo_presets.py 2.9.2

Downloads the ``rl_zoo3`` wheel of that version (``pip download --no-deps``: nothing is
installed, nothing of it is imported or run), copies ``hyperparams/{ppo,a2c,dqn,sac,td3}.yml`` and
the zoo's LICENSE byte for byte, and records the version and each file's SHA-256 in
``agents/zoo/SOURCE.yml`` (tests/test_zoo_presets.py checks the copies against it). Why the files
are vendored rather than rl_zoo3 installed: docs in jacrl/presets.py.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

ALGOS = ("ppo", "a2c", "dqn", "sac", "td3")
TARGET = Path("agents/zoo")


def main(version: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"rl_zoo3=={version}",
                "--no-deps",
                "-d",
                tmp,
            ],
            check=True,
        )
        (wheel,) = Path(tmp).glob("rl_zoo3-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            members = {f"rl_zoo3/hyperparams/{algo}.yml": f"{algo}.yml" for algo in ALGOS}
            members[f"rl_zoo3-{version}.dist-info/licenses/LICENSE"] = "LICENSE"
            TARGET.mkdir(parents=True, exist_ok=True)
            digests = {}
            for member, name in members.items():
                data = archive.read(member)
                (TARGET / name).write_bytes(data)
                digests[name] = hashlib.sha256(data).hexdigest()
    source = {"package": "rl_zoo3", "version": version, "wheel": wheel.name, "sha256": digests}
    header = "# Written by scripts/update_zoo_presets.py: where agents/zoo/ came from.\n"
    (TARGET / "SOURCE.yml").write_text(header + yaml.safe_dump(source, sort_keys=False))


if __name__ == "__main__":
    main(sys.argv[1])
