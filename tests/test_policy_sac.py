"""InvertiblePolicy's reparameterised verbs (rsample, action_log_prob, mean_actions), the
state-conditioned F_s and state-dependent σ in every path, against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from jacrl.agents import JacobianAgent
from jacrl.common.errors import ConfigError, JacrlError
from jacrl.nn import InputShapeError
from jacrl.policies.invertible import LOG_SIGMA_RANGE, InvertiblePolicy
from jacrl.policies.squash import OutsideBoxError

F64 = torch.float64
OBS_DIM = 3
INF = np.inf


def box(low: list[float], high: list[float]) -> spaces.Box:
    return spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)


MIXED = box([-1.0, 0.0], [1.0, INF])  # one bounded, one lower-bounded dimension


def make_policy(
    space: spaces.Box | spaces.Discrete = MIXED,
    parameterization: str = "inverse",
    conditioning: str = "state",
    state_dependent_sigma: bool = False,
    activation: str = "smooth_leaky_relu",
    depth: int = 2,
    n: int | None = None,
    perturb: float = 0.3,
    seed: int = 0,
) -> InvertiblePolicy:
    """A small float64 policy with random non-zero weights everywhere (conditioner and log σ
    head included, so F_s and σ(s) really depend on the state)."""
    torch.manual_seed(seed)
    k = space.shape[0] if isinstance(space, spaces.Box) else int(space.n)
    policy = InvertiblePolicy(
        OBS_DIM,
        space,
        n=k if n is None else n,
        depth=depth,
        rule="density",
        embed="mlp",
        parameterization=parameterization,  # type: ignore[arg-type]
        activation=activation,  # type: ignore[arg-type]
        sigma_x=0.5,
        learn_sigma=True,
        lift_hidden=(8,),
        value_hidden=None,
        max_cond=1e6,
        dtype="float64",
        conditioning=conditioning,  # type: ignore[arg-type]
        state_dependent_sigma=state_dependent_sigma,
        conditioner_hidden=(8,),
    )
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(perturb * torch.randn_like(p))
    policy.bump_generation()
    return policy


def standard_normal_log_density(eps: torch.Tensor) -> torch.Tensor:
    return (-0.5 * eps**2 - 0.5 * math.log(2 * math.pi)).sum(-1)


CASES = [(p, c, s) for p in ("inverse", "lu") for c in ("none", "state") for s in (False, True)]


@pytest.mark.parametrize(("parameterization", "conditioning", "state_dependent_sigma"), CASES)
def test_rsample_log_prob_is_the_change_of_variables_of_the_sampling_map(
    parameterization, conditioning, state_dependent_sigma
):
    """log π(a|s) = log N(ε; 0, I) − log|det ∂a/∂ε| for the whole map ε ↦ a at fixed s, the
    Jacobian by autograd (n = k = 2)."""
    policy = make_policy(MIXED, parameterization, conditioning, state_dependent_sigma)
    obs = torch.randn(5, OBS_DIM)
    torch.manual_seed(7)
    actions, log_prob = policy.rsample(obs)
    torch.manual_seed(7)
    eps = torch.randn(5, 2, dtype=F64)  # the draw rsample made
    replay, replay_log_prob = policy.rsample(obs, noise=eps)
    assert torch.equal(replay, actions) and torch.equal(replay_log_prob, log_prob)
    for i in range(5):
        # one row at a time, so the reference sees the same x0(s) (the float32 lift rounds
        # differently at other batch sizes)
        row_obs, row_eps = obs[i : i + 1], eps[i : i + 1]

        def sampling_map(e: torch.Tensor, row_obs: torch.Tensor = row_obs) -> torch.Tensor:
            return policy.rsample(row_obs, noise=e[None])[0][0]

        log_volume = torch.linalg.slogdet(torch.func.jacrev(sampling_map)(row_eps[0])).logabsdet
        reference = standard_normal_log_density(row_eps[0]) - log_volume
        row_log_prob = policy.rsample(row_obs, noise=row_eps)[1][0]
        torch.testing.assert_close(row_log_prob, reference, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(log_prob[i], reference, rtol=1e-5, atol=1e-5)
    for row in actions.detach().numpy().astype(np.float32):
        assert MIXED.contains(row)


@pytest.mark.parametrize(("parameterization", "conditioning", "state_dependent_sigma"), CASES)
def test_action_log_prob_of_a_sample_equals_its_rsample_log_prob(
    parameterization, conditioning, state_dependent_sigma
):
    policy = make_policy(MIXED, parameterization, conditioning, state_dependent_sigma)
    obs = torch.randn(6, OBS_DIM)
    actions, log_prob = policy.rsample(obs)
    given = policy.action_log_prob(obs, actions.detach())
    torch.testing.assert_close(given, log_prob, rtol=1e-9, atol=1e-9)
    # differentiable in every weight that shapes π: lift, log σ, F and the conditioner
    given.sum().backward()
    for name, p in policy.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        if not name.endswith("net.linears.0.bias"):  # b_1 is not seen by F_s⁻¹'s log-det alone
            assert bool(p.grad.abs().sum() > 0), name


def trapezoid_mass(policy: InvertiblePolicy, obs_row: torch.Tensor, grids: list[np.ndarray]):
    """∫ π(a|s) da on a product grid (trapezoid rule), from action_log_prob."""
    mesh = torch.meshgrid(*(torch.as_tensor(g, dtype=F64) for g in grids), indexing="ij")
    actions = torch.stack([m.reshape(-1) for m in mesh], dim=-1)
    with torch.no_grad():
        density = policy.action_log_prob(obs_row.expand(actions.shape[0], -1), actions).exp()
    density = density.reshape(mesh[0].shape)
    for axis, g in reversed(list(enumerate(grids))):
        density = torch.trapezoid(density, torch.as_tensor(g, dtype=F64), dim=axis)
    return float(density)


@pytest.mark.parametrize("parameterization", ["inverse", "lu"])
@pytest.mark.parametrize(
    ("space", "grids"),
    [
        (box([-1.0], [1.0]), [np.linspace(-1.0, 1.0, 40001)[1:-1]]),
        (box([0.0], [INF]), [np.geomspace(1e-12, 80.0, 40001)]),
        (
            box([-1.0, -2.0], [1.0, 3.0]),
            [np.linspace(-1.0, 1.0, 701)[1:-1], np.linspace(-2.0, 3.0, 701)[1:-1]],
        ),
    ],
    ids=["1d_bounded", "1d_lower_bounded", "2d_bounded"],
)
def test_density_integrates_to_one(parameterization, space, grids):
    policy = make_policy(space, parameterization, "state", state_dependent_sigma=True)
    for obs_row in torch.randn(3, 1, OBS_DIM):
        assert trapezoid_mass(policy, obs_row, grids) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("conditioning", ["none", "state"])
def test_mean_actions_are_deterministic_in_bounds_and_the_deterministic_act(conditioning):
    space = box([-1.0, 0.0], [1.0, INF])
    policy = make_policy(space, conditioning=conditioning, state_dependent_sigma=True)
    obs = torch.randn(8, OBS_DIM)
    first, second = policy.mean_actions(obs), policy.mean_actions(obs)
    assert torch.equal(first, second)
    x0, _ = policy.gaussian_params(obs)
    expected, _ = policy.squash(policy.net(x0, policy.condition(obs)))  # type: ignore[misc]
    assert torch.equal(first, expected)
    for row in first.detach().numpy().astype(np.float32):
        assert space.contains(row)
    acted = policy.to_env_actions(policy.actor()(obs, deterministic=True))
    np.testing.assert_allclose(acted, first.detach().numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("deterministic", [False, True])
def test_the_acting_snapshot_is_the_conditioned_sample(deterministic):
    policy = make_policy(box([-1.0, -1.0], [1.0, 1.0]), state_dependent_sigma=True)
    obs = torch.randn(16, OBS_DIM)
    torch.manual_seed(3)
    acted = policy.actor()(obs, deterministic)
    torch.manual_seed(3)
    with torch.no_grad():
        expected = policy.sample(obs, deterministic)
    torch.testing.assert_close(acted, expected, rtol=1e-12, atol=1e-12)
    # the snapshot is one of these weights: a step of an attached optimizer renews it
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)
    policy.attach_optimizer(optimizer)
    policy.action_log_prob(obs, policy.mean_actions(obs).detach()).sum().backward()
    optimizer.step()
    torch.manual_seed(3)
    renewed = policy.actor()(obs, deterministic)
    assert not torch.allclose(renewed, acted)
    torch.manual_seed(3)
    with torch.no_grad():
        torch.testing.assert_close(renewed, policy.sample(obs, deterministic))


def test_on_policy_scores_use_the_conditioned_density():
    """score_rollout / evaluate_actions of y0 = log N(F_s⁻¹(y0); x0(s), σ(s)²) + ℓ_s(y0), and
    that is the log-density of y0: its change of variables through F_s by autograd."""
    policy = make_policy(box([-1.0, -1.0], [1.0, 1.0]), state_dependent_sigma=True)
    obs = torch.randn(4, OBS_DIM)
    with torch.no_grad():
        y0 = policy.sample(obs)
    log_prob, _, _ = policy.score_rollout(obs, y0)
    _, evaluated, entropy = policy.evaluate_actions(obs, y0)
    torch.testing.assert_close(evaluated, log_prob)
    x0, log_sigma = policy.gaussian_params(obs)
    condition = policy.condition(obs)
    assert condition is not None
    references = []
    for i in range(4):
        shift, log_scale = (t[i : i + 1].detach() for t in condition)
        x = policy.net.inverse(y0[i : i + 1], (shift, log_scale))[0]

        def forward(v: torch.Tensor, shift=shift, log_scale=log_scale) -> torch.Tensor:
            return policy.net(v[None], (shift, log_scale))[0]

        jacobian = torch.func.jacrev(forward)(x)
        z = (x - x0[i]) / log_sigma[i].exp()
        gaussian = (-0.5 * z**2 - log_sigma[i] - 0.5 * math.log(2 * math.pi)).sum()
        references.append(gaussian - torch.linalg.slogdet(jacobian).logabsdet)
    torch.testing.assert_close(log_prob, torch.stack(references).detach(), rtol=1e-10, atol=1e-10)
    gaussian_entropy = torch.distributions.Normal(x0, log_sigma.exp()).entropy().sum(-1)
    torch.testing.assert_close(entropy, gaussian_entropy)


def test_state_dependent_sigma_starts_at_sigma_x_and_is_clamped():
    policy = make_policy(MIXED, state_dependent_sigma=True, perturb=0.0)
    obs = torch.randn(5, OBS_DIM)
    _, log_sigma = policy.gaussian_params(obs)
    torch.testing.assert_close(log_sigma, torch.full((5, 2), math.log(0.5), dtype=F64))
    with torch.no_grad():
        policy.lift[-1].bias[2:] = torch.tensor([100.0, -100.0])  # type: ignore[index]
    _, log_sigma = policy.gaussian_params(obs)
    low, high = LOG_SIGMA_RANGE
    assert bool((log_sigma[:, 0] == high).all()) and bool((log_sigma[:, 1] == low).all())


def test_half_bounded_boxes_get_in_space_actions():
    space = box([-INF, -INF], [0.0, 0.0])  # Box(-inf, 0, (2,))
    policy = make_policy(space, n=3, conditioning="none")  # on-policy: n > k is fine
    y0 = torch.tensor([[-1e3, 1e3, 0.0], [50.0, -50.0, 1.0], [0.0, 1e-3, 2.0]], dtype=F64)
    for row in policy.to_env_actions(y0):
        assert space.contains(row)
    with pytest.raises(ConfigError, match=r"width n == the action size k.*n=3, k=2"):
        policy.rsample(torch.zeros(1, OBS_DIM))


def test_asinh_overflow_near_a_bound_is_a_clear_error():
    """a near a tanh bound has y = atanh(a) ≈ 14, and asinh's inverse sinh(sinh(14)) overflows:
    the error names the fix; smooth_leaky_relu's linear tails stay finite."""
    action = torch.tensor([[1.0 - 1e-12, 0.5]], dtype=F64)
    obs = torch.zeros(1, OBS_DIM)
    asinh = make_policy(MIXED, activation="asinh", perturb=0.0)
    # NonFiniteError (overflow) or PrecisionLossError (jacrl.nn.accuracy): both name the fix
    with pytest.raises(JacrlError, match="smooth_leaky_relu"):
        asinh.action_log_prob(obs, action)
    smooth = make_policy(MIXED, activation="smooth_leaky_relu", perturb=0.0)
    assert math.isfinite(float(smooth.action_log_prob(obs, action).detach()))


def test_bad_uses_name_what_is_accepted():
    policy = make_policy(MIXED)
    obs = torch.zeros(2, OBS_DIM)
    with pytest.raises(OutsideBoxError, match="not strictly inside"):
        policy.action_log_prob(obs, torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=F64))
    with pytest.raises(InputShapeError, match="noise has 1 rows for 2 observations"):
        policy.rsample(obs, noise=torch.zeros(1, 2, dtype=F64))
    with pytest.raises(InputShapeError, match=r"noise must have shape \(batch, 2\)"):
        policy.rsample(obs, noise=torch.zeros(2, 3, dtype=F64))
    discrete = make_policy(spaces.Discrete(2), conditioning="none")
    for verb in ("rsample", "mean_actions"):
        with pytest.raises(ConfigError, match=f"{verb} needs a Box action space.*Discrete"):
            getattr(discrete, verb)(obs)
    with pytest.raises(ConfigError, match="conditioning"):
        make_policy(MIXED, conditioning="states")
    with pytest.raises(ConfigError, match="conditioning='state' needs depth >= 1"):
        make_policy(MIXED, depth=0)
    with pytest.raises(ConfigError, match="state_dependent_sigma=True needs embed='mlp'"):
        InvertiblePolicy(
            2, MIXED, 2, 1, "density", "pad", "inverse", "smooth_leaky_relu", 0.5, True, (8,),
            None, 1e6, "float64", state_dependent_sigma=True,
        )  # fmt: skip


def test_agent_with_a_state_conditioned_f_trains_saves_and_loads(tmp_path):
    agent = JacobianAgent(
        "CartPole-v1",
        conditioning="state",
        conditioner_hidden=(16,),
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        lift_hidden=(8,),
        value_hidden=(8,),
        seed=0,
    )
    assert agent.policy.conditioner is not None
    last = agent.policy.conditioner.net[-1]
    assert bool((last.weight == 0).all())  # F_s == F at initialisation
    agent.learn(320)
    assert bool(last.weight.abs().sum() > 0)  # and the update trains the conditioner
    obs = np.stack([agent.observation_space.sample() for _ in range(32)])
    actions, _ = agent.predict(obs, deterministic=True)
    agent.save(tmp_path / "conditioned.zip")
    loaded = JacobianAgent.load(tmp_path / "conditioned.zip")
    assert loaded.conditioning == "state" and loaded.conditioner_hidden == (16,)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], actions)
    loaded_parameters = loaded.get_parameters()
    for key, value in agent.get_parameters().items():
        assert torch.equal(loaded_parameters[key], value), key
