"""Twin soft Q-networks of :class:`~jacrl.agents.sac.JacobianSAC` (SB3's ``ContinuousCritic``).

Each Q_i(s, a) is a ReLU MLP on the normalised observation concatenated with the action, as in
SB3's SAC. SB3 feeds the critic actions rescaled to [-1, 1]; jacrl's buffer stores env actions
(see :mod:`jacrl.agents.sac.buffer`), so the critic does that rescaling itself on the bounded
dimensions (an action Box of [0, 100] would otherwise enter the first layer 100× larger than the
observations) and leaves unbounded dimensions as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import create_mlp
from torch import Tensor, nn


class ContinuousCritic(nn.Module):
    """``n_critics`` Q-networks Q_i(s, a), float32.

    :param obs_dim: flat observation size.
    :param action_space: the Box the actions come from (its bounds set the input rescaling).
    :param net_arch: hidden sizes of each Q-network (SB3's SAC default: [256, 256]).
    :param n_critics: how many Q-networks (2: clipped double Q, as SB3 and the SAC paper).
    """

    action_mid: Tensor
    action_half: Tensor

    def __init__(
        self, obs_dim: int, action_space: spaces.Box, net_arch: Sequence[int], n_critics: int = 2
    ) -> None:
        super().__init__()
        low, high = (np.asarray(b, dtype=np.float64) for b in (action_space.low, action_space.high))
        bounded = np.isfinite(low) & np.isfinite(high)
        # zero the unbounded bounds first, so no inf - inf is ever evaluated (and warned about)
        low, high = np.where(bounded, low, 0.0), np.where(bounded, high, 0.0)
        mid = np.where(bounded, (low + high) / 2, 0.0)
        half = np.where(bounded, (high - low) / 2, 1.0)
        # derived from the space, so not saved
        self.register_buffer("action_mid", torch.as_tensor(mid, dtype=torch.float32), False)
        self.register_buffer("action_half", torch.as_tensor(half, dtype=torch.float32), False)
        k = int(action_space.shape[0])
        # SB3's own builder, with SAC's defaults: ReLU hidden layers, a linear output
        self.q_networks = nn.ModuleList(
            [nn.Sequential(*create_mlp(obs_dim + k, 1, list(net_arch))) for _ in range(n_critics)]
        )

    def forward(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, ...]:
        """Each Q_i(s, a), shape ``(batch,)``; ``actions`` in env units (any float dtype; cast to
        float32, differentiably)."""
        scaled = (actions.to(torch.float32) - self.action_mid) / self.action_half
        inputs = torch.cat([obs, scaled], dim=-1)
        return tuple(q(inputs).squeeze(-1) for q in self.q_networks)

    def min_q(self, obs: Tensor, actions: Tensor) -> Tensor:
        """min_i Q_i(s, a), ``(batch,)``: the clipped double-Q estimate."""
        return torch.stack(self(obs, actions)).min(dim=0).values

    @torch.no_grad()
    def polyak_update(self, source: ContinuousCritic, tau: float) -> None:
        """θ ← (1 − τ) θ + τ θ_source for every parameter (SB3's ``polyak_update``: the same
        two operations per tensor, ``mul_`` then ``add`` with ``alpha=τ``, as two foreach calls
        over all tensors instead of a Python loop)."""
        targets: list[Tensor] = list(self.parameters())
        sources: list[Tensor] = list(source.parameters())
        if len(targets) != len(sources):
            raise ValueError(f"polyak_update: {len(targets)} target vs {len(sources)} parameters")
        torch._foreach_mul_(targets, 1.0 - tau)
        torch._foreach_add_(targets, sources, alpha=tau)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Inside, ``module``'s parameters do not require grad: a loss through it backpropagates to
    its inputs only (what an actor's loss through the critic needs), without forming the
    parameters' own gradients. Restores each parameter's flag on exit."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
