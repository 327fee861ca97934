"""jacrl's Gymnasium environments and the YAML-spec registration that names them ``jacrl/...``."""

from jacrl.envs.classification_bandit import ClassificationBandit
from jacrl.envs.datasets import DatasetError, load_digits_split, load_mnist, read_idx, write_idx
from jacrl.envs.reach import Reach
from jacrl.envs.registration import EnvSpecFile, list_registered, register_envs

__all__ = [
    "ClassificationBandit",
    "DatasetError",
    "EnvSpecFile",
    "Reach",
    "list_registered",
    "load_digits_split",
    "load_mnist",
    "read_idx",
    "register_envs",
    "write_idx",
]

# Like gymnasium.envs, importing the package registers its envs: `import jacrl` (which imports
# this package) and Gymnasium's "jacrl.envs:jacrl/DigitsBandit-v0" form both work. Idempotent.
register_envs()
