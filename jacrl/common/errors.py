"""The exceptions jacrl raises.

Every error says what was wrong and what is accepted, so a user can fix the call without reading
the source. They subclass :class:`ValueError` so code that already catches bad arguments keeps
working.
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
