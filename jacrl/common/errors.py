"""The exceptions jacrl raises, all in one module (``from jacrl import JacrlError, ...``).

Every error says what was wrong and what is accepted, so a user can fix the call without reading
the source. They subclass :class:`ValueError` so code that already catches bad arguments keeps
working, and :class:`JacrlError` so one ``except`` catches every jacrl refusal.
"""


class JacrlError(ValueError):
    """Base class of every error jacrl raises on bad input."""


class UnsupportedSpaceError(JacrlError):
    """An observation or action space the agent cannot handle."""


class NonFiniteError(JacrlError):
    """A NaN or inf where a finite number is required (observation, reward, weights)."""


class CheckpointError(JacrlError):
    """A saved agent or checkpoint that is truncated, corrupt, too new, or for other spaces."""


class ConfigError(JacrlError):
    """A malformed preset, env spec or hyperparameter override."""


class RunFolderError(ConfigError):
    """A run folder that cannot be written now: it holds a finished or interrupted run, a run of
    another configuration, or another process is writing it (``jacrl.common.run_lock``)."""


class ConvergenceError(JacrlError):
    """An iterative estimate (Lanczos) stopped, its product budget spent or its Krylov space
    exhausted, before its residual bound reached the asked tolerance: no uncertified value is
    returned."""


class DatasetError(JacrlError):
    """A data file that is missing, truncated or not what its name says, or arrays that do not
    make a labelled data set."""


class SingularWeightError(JacrlError):
    """A weight matrix is (numerically) singular: its condition number exceeds ``max_cond``,
    or an inverse pass produced NaN/inf because of it."""


class PrecisionLossError(JacrlError):
    """A pass of an invertible network whose result may be less accurate than its stated
    tolerance (its running error bound exceeds it; docs/method.md §6)."""


class InputShapeError(JacrlError):
    """A tensor passed to an invertible network has the wrong type, shape or dtype."""


class OutsideBoxError(JacrlError):
    """An action outside the open box, where the squashed density is 0 (log-density −∞)."""


def check_choice(name: str, value: object, accepted: tuple[object, ...]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``accepted``: the values of an option
    string's ``Literal`` alias, taken with ``typing.get_args`` so the two cannot drift."""
    if value not in accepted:
        raise ConfigError(f"{name}={value!r}: expected one of {accepted}")
