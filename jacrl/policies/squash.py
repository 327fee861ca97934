"""BoxSquash: a bijection of R^k onto the inside of a Box, with its log-det (docs/method.md §3, §7).

The policy's pre-actions y live in R^k; a Box action space may bound each dimension on both sides,
one side, or not at all. Per dimension:

* bounded [low, high]:    a = mid + half·tanh(y),   log a′ = log half + log(1 − tanh² y)
* lower-bounded [low, ∞): a = low + softplus(y),    log a′ = log sigmoid(y) = −softplus(−y)
* upper-bounded (−∞, high]: a = high − softplus(−y), log a′ = log sigmoid(−y) = −softplus(y)
* unbounded:              a = y,                    log a′ = 0

so log π(a|s) = log p(y|s) − Σ log a′ (the change of variables the max-entropy learner needs, in
the nflows contract: ``forward(y) -> (a, logabsdet)``, ``inverse(a) -> (y, logabsdet)``, each
log-det ``(batch,)``).

Numerics. The forward log-dets are written without cancellation: log(1 − tanh² y) =
2(log 2 − |y| − softplus(−2|y|)) is finite for every finite y, where 1 − tanh² y itself rounds to 0
past |y| ≈ 19 in float64. The inverse avoids atanh((a − mid)/half), whose argument loses all its
digits next to a bound; it uses the distances to the bounds directly:
atanh = ½(log(a − low) − log(high − a)), and softplus⁻¹(z) = z + log(−expm1(−z)).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from jacrl.common.errors import ConfigError, OutsideBoxError, UnsupportedSpaceError
from jacrl.nn.validation import check_batch


def _softplus(x: Tensor) -> Tensor:
    # torch's default threshold (x > 20 returns x) is off by e^{-20} ≈ 2e-9, far above float64's
    # resolution; past 40 the error e^{-40} is below half an ulp of x.
    return nn.functional.softplus(x, threshold=40.0)


def _log_one_minus_exp_neg(z: Tensor) -> Tensor:
    """log(1 − e^{−z}) for z > 0, accurate for small and large z."""
    return torch.log(-torch.expm1(-z))


class BoxSquash(nn.Module):
    """The squash of a 1-D Box(low, high): see the module docstring.

    :param low: lower bounds, shape ``(k,)``; ``-inf`` for none.
    :param high: upper bounds, shape ``(k,)``; ``+inf`` for none.
    :param dtype: dtype of the computation (that of the policy's density; float64 recommended).

    :meth:`forward` returns actions in the *closed* box: in floating point tanh(y) rounds to ±1
    (past |y| ≈ 19 in float64, 9 in float32) and mid + half·1 may land an ulp past ``high``, so the
    action is clamped into [low, high] after the log-det is computed from y (the log-det stays
    the exact, finite one of the bijection; the clamp moves a value by at most an ulp or so, where
    the true derivative is below 1e-16 anyway). An action that rounded onto a bound has no finite
    log-density: :meth:`inverse` accepts only the open box and raises :class:`OutsideBoxError`.
    """

    low: Tensor
    high: Tensor
    has_low: Tensor
    has_high: Tensor
    bounded: Tensor
    lower_only: Tensor
    upper_only: Tensor
    midpoint: Tensor
    half_width: Tensor
    low_f: Tensor
    high_f: Tensor

    def __init__(
        self,
        low: np.ndarray | Tensor,
        high: np.ndarray | Tensor,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        low_t = torch.as_tensor(np.asarray(low, dtype=np.float64))
        high_t = torch.as_tensor(np.asarray(high, dtype=np.float64))
        if low_t.ndim != 1 or low_t.shape != high_t.shape:
            raise UnsupportedSpaceError(
                f"BoxSquash needs 1-D bounds of equal shape, got {tuple(low_t.shape)} and "
                f"{tuple(high_t.shape)}"
            )
        if bool(torch.isnan(low_t).any() | torch.isnan(high_t).any()):
            raise ConfigError("Box bounds contain NaN")
        if not bool((low_t < high_t).all()) or bool(torch.isposinf(low_t).any()):
            raise ConfigError(
                f"every Box dimension needs low < high (a point or empty interval has no density), "
                f"got low={low_t.tolist()}, high={high_t.tolist()}"
            )
        has_low, has_high = torch.isfinite(low_t), torch.isfinite(high_t)
        bounded = has_low & has_high
        # Finite stand-ins where a bound is absent, so no branch of a torch.where computes inf or
        # NaN (whose gradient would poison the selected branch too).
        low_f, high_f = torch.where(has_low, low_t, 0.0), torch.where(has_high, high_t, 0.0)
        buffers = {
            "low": low_t.to(dtype),
            "high": high_t.to(dtype),
            "has_low": has_low,
            "has_high": has_high,
            "bounded": bounded,
            "lower_only": has_low & ~has_high,
            "upper_only": has_high & ~has_low,
            "midpoint": torch.where(bounded, (low_f + high_f) / 2, 0.0).to(dtype),
            "half_width": torch.where(bounded, (high_f - low_f) / 2, 1.0).to(dtype),
            "low_f": low_f.to(dtype),
            "high_f": high_f.to(dtype),
        }
        for name, value in buffers.items():
            # derived from the action space, so not saved with the weights
            self.register_buffer(name, value, persistent=False)
        self.k = int(low_t.shape[0])
        #: every dimension bounded on both sides (the common Box): forward and inverse take the
        #: tanh branch alone, the same values as the general selection with fewer operations
        self.all_bounded = bool(bounded.all())

    @classmethod
    def from_space(cls, space: spaces.Box, dtype: torch.dtype = torch.float64) -> BoxSquash:
        """The squash of a 1-D Box action space."""
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise UnsupportedSpaceError(f"BoxSquash needs a 1-D Box action space, got {space}")
        return cls(space.low, space.high, dtype)

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, bounded={int(self.bounded.sum())}, lower_only="
            f"{int(self.lower_only.sum())}, upper_only={int(self.upper_only.sum())}"
        )

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(a, Σ log|∂a/∂y|) for pre-actions ``y`` ``(batch, k)``; a in the closed box."""
        y = check_batch(y, self.k, self.low.dtype, "y")
        abs_y = y.abs()
        tanh_logdet = torch.log(self.half_width) + 2.0 * (
            math.log(2.0) - abs_y - _softplus(-2.0 * abs_y)
        )
        if self.all_bounded:
            a = self.midpoint + self.half_width * torch.tanh(y)
            return torch.clamp(a, self.low, self.high), tanh_logdet.sum(-1)
        softplus_pos, softplus_neg = _softplus(y), _softplus(-y)
        a = torch.where(
            self.bounded,
            self.midpoint + self.half_width * torch.tanh(y),
            torch.where(
                self.lower_only,
                self.low_f + softplus_pos,
                torch.where(self.upper_only, self.high_f - softplus_neg, y),
            ),
        )
        logdet = torch.where(
            self.bounded,
            tanh_logdet,
            torch.where(
                self.lower_only,
                -softplus_neg,
                torch.where(self.upper_only, -softplus_pos, torch.zeros_like(y)),
            ),
        )
        return torch.clamp(a, self.low, self.high), logdet.sum(-1)

    def inverse(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """(y, Σ log|∂y/∂a|) for actions ``a`` ``(batch, k)`` strictly inside the box; raises
        :class:`OutsideBoxError` for others (including actions on a bound and non-finite ones)."""
        a = check_batch(a, self.k, self.low.dtype, "actions")
        to_low = torch.where(self.has_low, a - self.low_f, 1.0)
        to_high = torch.where(self.has_high, self.high_f - a, 1.0)
        inside = torch.isfinite(a) & (to_low > 0) & (to_high > 0)
        if not bool(inside.all()):
            row, dim = (int(i) for i in torch.nonzero(~inside)[0])
            raise OutsideBoxError(
                f"action {a[row].tolist()} (row {row}) is not strictly inside the action box "
                f"low={self.low.tolist()}, high={self.high.tolist()} (dimension {dim}); the "
                "squashed policy has density 0 on and outside the bounds, so log π is not finite "
                "there"
            )
        log_to_low, log_to_high = torch.log(to_low), torch.log(to_high)
        if self.all_bounded:
            y = 0.5 * (log_to_low - log_to_high)
            return y, (torch.log(self.half_width) - log_to_low - log_to_high).sum(-1)
        lower_log_sigmoid = _log_one_minus_exp_neg(to_low)
        upper_log_sigmoid = _log_one_minus_exp_neg(to_high)
        y = torch.where(
            self.bounded,
            0.5 * (log_to_low - log_to_high),
            torch.where(
                self.lower_only,
                to_low + lower_log_sigmoid,
                torch.where(self.upper_only, -(to_high + upper_log_sigmoid), a),
            ),
        )
        logdet = torch.where(
            self.bounded,
            torch.log(self.half_width) - log_to_low - log_to_high,
            torch.where(
                self.lower_only,
                -lower_log_sigmoid,
                torch.where(self.upper_only, -upper_log_sigmoid, torch.zeros_like(a)),
            ),
        )
        return y, logdet.sum(-1)
