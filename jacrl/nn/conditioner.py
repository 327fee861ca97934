"""A state-conditioned F_s: per-state shifts and log-scales of F's blocks (docs/method.md §7).

F_s is F with every block l given a shift c_l(s) and a log-scale g_l(s) of its pre-activations:

    u = W_l x + b_l + c_l(s),   u′ = u ⊙ exp(g_l(s)),   y = σ(u′),

so log|det ∂y/∂x| = log|det W_l| + Σ_i g_{l,i}(s) + Σ_i log σ′(u′_i), and the inverse is
u′ = σ⁻¹(y), u = u′ ⊙ exp(−g_l(s)), x = V_l (u − b_l − c_l(s)). For every fixed s this is still
a bijection of x with a cheap log-det, so the exact density of the policy survives; what it buys
is a per-state shape of the action distribution (the shift moves, the scale stretches, before each
non-linearity), which a single F fed by a state-dependent mean x0(s) cannot give.

The pair ``(shift, log_scale)``, each ``(batch, depth, n)``, is the ``condition`` argument of
:meth:`jacrl.nn.InvertibleMLP.forward_and_logdet` / ``inverse_and_logdet``;
:class:`StateConditioner` produces it from the observation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from jacrl.common.errors import ConfigError
from jacrl.nn.validation import InputShapeError

#: (shift, log_scale), each ``(batch, depth, n)``: block l's c_l(s) and g_l(s).
Condition = tuple[Tensor, Tensor]


def check_condition(condition: object, batch: int, depth: int, n: int, dtype: torch.dtype) -> None:
    """Raise :class:`InputShapeError` unless ``condition`` is a (shift, log_scale) pair of
    ``(batch, depth, n)`` tensors of ``dtype`` (one row per input row: no broadcasting, so a
    condition meant for other states cannot be applied silently)."""
    if not (isinstance(condition, tuple) and len(condition) == 2):
        raise InputShapeError(
            f"condition must be a (shift, log_scale) tuple of tensors, got {type(condition)}"
        )
    for name, t in zip(("shift", "log_scale"), condition, strict=True):
        if not isinstance(t, Tensor):
            raise InputShapeError(f"condition {name} must be a torch.Tensor, got {type(t)}")
        if tuple(t.shape) != (batch, depth, n):
            raise InputShapeError(
                f"condition {name} must have shape (batch, depth, n) = {(batch, depth, n)}, "
                f"got {tuple(t.shape)}"
            )
        if t.dtype != dtype:
            raise InputShapeError(
                f"condition {name} has dtype {t.dtype}, the network has dtype {dtype}"
            )


class StateConditioner(nn.Module):
    """(c_l(s), g_l(s)) for all blocks of a depth-``depth``, width-``n`` F, from the observation.

    A tanh MLP ``obs_dim -> hidden -> 2·depth·n``. Its last layer starts at zero, so at
    initialisation every shift and log-scale is 0 and F_s is exactly F: conditioning is an option
    that starts from the unconditioned policy and learns away from it, rather than a different
    random policy.

    :param obs_dim: flat observation size.
    :param depth: number of blocks of F.
    :param n: width of F.
    :param hidden: hidden sizes of the MLP.
    :param max_log_scale: bound B on |g_l(s)|, applied as g = B·tanh(raw / B) (smooth, identity
        near 0), or ``None`` for no bound. Why bound it: exp(g) multiplies the pre-activations, so
        an unbounded g lets one state stretch a block by e^{|g|}. That (i) multiplies the
        conditioning of block l's Jacobian diag(e^g)·W_l by up to e^{2B} on top of cond(W_l) —
        the accuracy of the inverse pass degrades with it (docs/method.md §6); (ii) can push u′
        into the overflow range of ``asinh``'s inverse; and (iii) lets a max-entropy learner buy
        entropy (−Σg enters log π) by blowing the scale up where the action space is unbounded.
        With the bound, e^{±B} per block is the most a state can change the scale.
    :param dtype: dtype of the weights and outputs (that of F; float64 recommended).
    """

    def __init__(
        self,
        obs_dim: int,
        depth: int,
        n: int,
        hidden: Sequence[int] = (64,),
        max_log_scale: float | None = 2.0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if not isinstance(obs_dim, int) or obs_dim < 1:
            raise ConfigError(f"obs_dim must be a positive int, got {obs_dim!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ConfigError(
                f"depth must be an int >= 1 (a depth-0 F has no blocks to condition), got {depth!r}"
            )
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be a positive int, got {n!r}")
        if any(not isinstance(w, int) or w < 1 for w in hidden):
            raise ConfigError(f"hidden sizes must be positive ints, got {tuple(hidden)!r}")
        if max_log_scale is not None and not max_log_scale > 0:
            raise ConfigError(f"max_log_scale must be > 0 or None, got {max_log_scale!r}")
        self.obs_dim, self.depth, self.n = obs_dim, depth, n
        self.max_log_scale = max_log_scale
        layers: list[nn.Module] = []
        width = obs_dim
        for size in hidden:
            layers += [nn.Linear(width, size, dtype=dtype), nn.Tanh()]
            width = size
        last = nn.Linear(width, 2 * depth * n, dtype=dtype)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, n={self.n}, max_log_scale={self.max_log_scale}"

    def forward(self, obs: Tensor) -> Condition:
        """(shift, log_scale), each ``(batch, depth, n)``, for observations ``(batch, obs_dim)``
        (cast to the conditioner's dtype)."""
        if obs.ndim != 2 or obs.shape[-1] != self.obs_dim:
            raise InputShapeError(
                f"obs must have shape (batch, {self.obs_dim}), got {tuple(obs.shape)}"
            )
        dtype = next(self.net.parameters()).dtype  # follows .to(dtype)
        return self.to_condition(self.net(obs.to(dtype)))

    def to_condition(self, out: Tensor) -> Condition:
        """(shift, log_scale) from the MLP's raw output ``(batch, 2·depth·n)``: the reshape and
        the log-scale bound (separate so an acting snapshot of the MLP's weights can reuse it)."""
        out = out.reshape(out.shape[0], 2, self.depth, self.n)
        shift, log_scale = out[:, 0], out[:, 1]
        if self.max_log_scale is not None:
            log_scale = self.max_log_scale * torch.tanh(log_scale / self.max_log_scale)
        return shift, log_scale
