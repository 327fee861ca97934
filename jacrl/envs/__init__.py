"""jacrl's Gymnasium environments and the YAML-spec registration that names them ``jacrl/...``."""

from jacrl.envs.classification_bandit import ClassificationBandit
from jacrl.envs.datasets import DatasetError, load_digits_split, load_mnist, read_idx, write_idx
from jacrl.envs.four_modes import FourModes, mode_masses, mode_masses_from_density
from jacrl.envs.multigoal import MultiGoal, distinct_goals, draw_trajectories
from jacrl.envs.reach import Reach
from jacrl.envs.registration import EnvSpecFile, list_registered, register_envs

__all__ = [
    "ClassificationBandit",
    "DatasetError",
    "EnvSpecFile",
    "FourModes",
    "MultiGoal",
    "Reach",
    "distinct_goals",
    "draw_trajectories",
    "list_registered",
    "load_digits_split",
    "load_mnist",
    "mode_masses",
    "mode_masses_from_density",
    "read_idx",
    "register_envs",
    "write_idx",
]

# Like gymnasium.envs, importing the package registers its envs: `import jacrl` (which imports
# this package) and Gymnasium's "jacrl.envs:jacrl/DigitsBandit-v0" form both work. Idempotent.
# A broken $JACRL_ENV_SPECS folder or file is a warning here, so it cannot break `import jacrl`.
register_envs(on_error="warn")
