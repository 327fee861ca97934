"""JacobianAgent: both rules on Discrete and Box tasks, the policy's density, learning, logs."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jacrl.agents import JacobianAgent
from jacrl.agents.onpolicy.buffer import RolloutBuffer
from jacrl.common.errors import ConfigError, NonFiniteError
from jacrl.nn import SingularWeightError
from jacrl.policies.invertible import InvertiblePolicy

TINY = dict(n_steps=32, batch_size=32, n_epochs=2, lift_hidden=(8,), value_hidden=(8,))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize(
    "config",
    [
        dict(rule="density"),
        dict(rule="volume"),
        dict(rule="volume", embed="pad", advantage="reward", update="reinforce"),  # the seed
        dict(rule="density", advantage="baseline", update="reinforce", parameterization="lu"),
        dict(rule="density", depth=0),
        # volume-rule variants (docs/volume_rule.md)
        dict(
            rule="volume",
            embed="pad",
            advantage="reward",
            update="reinforce",
            volume_objective="absdet",
        ),
        dict(rule="volume", embed="pad", advantage="reward", update="reinforce", volume_hold="x0"),
        dict(rule="volume", volume_hold="x0"),  # PPO ratio of the x-held score
        dict(
            rule="volume",
            embed="pad",
            advantage="baseline",
            update="reinforce",
            advantage_weighting="softmax",
            sigma_x=0.1,
        ),
    ],
)
def test_rules_run_on_discrete_and_box_tasks(env_id, config):
    agent = JacobianAgent(env_id, seed=0, **TINY, **config).learn(96)
    assert agent.num_timesteps == 96
    assert all(torch.isfinite(v).all() for v in agent.get_parameters().values())
    obs = np.stack([agent.observation_space.sample() for _ in range(16)])
    actions, _ = agent.predict(obs)
    assert all(agent.action_space.contains(a) for a in actions)


@pytest.mark.parametrize(
    "env_id",
    [
        "Acrobot-v1",
        "MountainCar-v0",
        "MountainCarContinuous-v0",
        "jacrl/DigitsBandit-v0",
        "jacrl/Reach-v0",
    ],
)
def test_classic_control_and_jacrl_envs_work_out_of_the_box(env_id):
    agent = JacobianAgent(env_id, seed=0, **TINY).learn(64)
    mean, _ = evaluate_policy(agent, agent.get_env(), n_eval_episodes=1, deterministic=True)
    assert np.isfinite(mean)


def test_density_rule_improves_cartpole_return():
    """Untrained vs trained mean return on the same eval seeds, a test-sized budget."""
    agent = JacobianAgent(
        "CartPole-v1",
        seed=0,
        n_envs=8,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        learning_rate=1e-3,
    )

    def mean_return() -> float:
        env = Monitor(gym.make("CartPole-v1"))
        env.reset(seed=123)
        return evaluate_policy(agent, env, n_eval_episodes=5, deterministic=True)[0]

    before = mean_return()
    agent.learn(6000)
    after = mean_return()
    assert after >= before + 100, (before, after)


def make_policy(
    rule: str,
    depth: int = 2,
    embed: str = "mlp",
    k: int = 2,
    dtype: str | torch.dtype = "float64",
    **volume: str,
) -> InvertiblePolicy:
    torch.manual_seed(0)
    return InvertiblePolicy(
        obs_dim=3,
        action_space=spaces.Discrete(k),
        n=4,
        depth=depth,
        rule=rule,
        embed=embed,
        parameterization="inverse",
        activation="asinh",
        sigma_x=0.7,
        learn_sigma=True,
        lift_hidden=(8,),
        value_hidden=(8,),
        max_cond=1e6,
        dtype=dtype,
        **volume,
    )


@pytest.mark.parametrize("rule", ["density", "volume"])
def test_log_prob_matches_autograd(rule):
    """evaluate_actions' log-prob equals an independent computation:
    log N(F⁻¹(y0); x0, σ²) + log|det ∂F⁻¹/∂y| with the Jacobian from jacrev."""
    policy = make_policy(rule)
    obs = torch.randn(5, 3)
    with torch.no_grad():
        y0 = policy.sample(obs)
    _, log_prob, entropy = policy.evaluate_actions(obs, y0)

    x0 = policy.embed(obs)
    sigma = policy.log_sigma.exp()
    for i in range(5):
        y = y0[i]
        jac = torch.func.jacrev(lambda v: policy.net.inverse(v[None])[0])(y)
        logdet = torch.linalg.slogdet(jac).logabsdet
        x = policy.net.inverse(y[None])[0]
        gaussian = torch.distributions.Normal(x0[i], sigma).log_prob(x).sum()
        expected = logdet if rule == "volume" else gaussian + logdet
        torch.testing.assert_close(log_prob[i], expected, rtol=1e-9, atol=1e-9)
    gaussian_entropy = torch.distributions.Normal(torch.zeros(4), sigma).entropy().sum()
    torch.testing.assert_close(entropy, gaussian_entropy.expand(5))


def test_volume_rule_gives_the_lift_and_sigma_no_gradient():
    policy = make_policy("volume")
    obs = torch.randn(5, 3)
    with torch.no_grad():
        y0 = policy.sample(obs)
    policy.evaluate_actions(obs, y0)[1].sum().backward()
    assert policy.log_sigma.grad is None or not policy.log_sigma.grad.any()
    assert all(p.grad is None for p in policy.lift.parameters())
    # every V_l moves ℓ; b_1 does not (x = V_1(σ⁻¹(z) − b_1) enters no σ⁻¹), other biases do
    grads = {name: p.grad for name, p in policy.net.named_parameters()}
    assert all(
        g is not None and g.abs().sum() > 0 for n, g in grads.items() if n != "linears.0.bias"
    )
    assert grads["linears.0.bias"] is None or not grads["linears.0.bias"].any()


def test_deterministic_action_is_argmax_of_f_of_x0_and_pad_embedding():
    policy = make_policy("density", embed="pad", k=3)
    obs = torch.randn(6, 3)
    with torch.no_grad():
        x0 = policy.embed(obs)
        assert torch.equal(x0[:, 3], torch.zeros(6, dtype=torch.float64))
        y0 = policy.sample(obs, deterministic=True)
        torch.testing.assert_close(y0, policy.net(x0))
    np.testing.assert_array_equal(policy.to_env_actions(y0), y0[:, :3].argmax(-1).numpy())


def test_box_actions_are_squashed_into_bounds():
    agent = JacobianAgent("Pendulum-v1", sigma_x=5.0, **TINY)
    actions, _ = agent.predict(np.full((200, 3), 3.0, dtype=np.float32))
    assert actions.shape == (200, 1) and actions.dtype == np.float32
    assert (np.abs(actions) <= 2.0).all() and np.abs(actions).max() > 1.0


def test_width_and_embedding_checks():
    with pytest.raises(ConfigError, match="embed='pad'"):
        JacobianAgent("CartPole-v1", embed="pad", width=3)
    with pytest.raises(ConfigError, match="rule="):
        JacobianAgent("CartPole-v1", rule="area")
    assert JacobianAgent("CartPole-v1").n == 4
    assert JacobianAgent("CartPole-v1", width=16).n == 16


def test_advantage_estimators_on_a_hand_computed_rollout():
    """Two steps, one env, episode ends after the first step; γ = 0.5, λ = 0.5."""
    buffer = RolloutBuffer(n_steps=2, n_envs=1, obs_dim=1, n=1)
    for reward, start in ((1.0, 1.0), (2.0, 1.0)):
        buffer.add(np.zeros((1, 1)), np.zeros((1, 1)), np.array([reward]), np.array([start]), {})
    buffer.values[:, 0] = [0.2, 0.4]
    last_values, last_dones = np.array([1.0]), np.array([False])

    buffer.compute_advantages("gae", last_values, last_dones, 0.5, 0.5, None)
    # t=1: delta = 2 + 0.5*1 - 0.4 = 2.1; t=0 ends its episode: delta = 1 - 0.2 = 0.8
    np.testing.assert_allclose(buffer.advantages[:, 0], [0.8, 2.1])
    np.testing.assert_allclose(buffer.returns[:, 0], [1.0, 2.5])

    buffer.compute_advantages("baseline", last_values, last_dones, 0.5, 0.5, 0.25)
    np.testing.assert_allclose(buffer.returns[:, 0], [1.0, 2.0])  # no bootstrap without critic
    np.testing.assert_allclose(buffer.advantages[:, 0], [0.75, 1.75])

    buffer.compute_advantages("reward", last_values, last_dones, 0.5, 0.5, None)
    np.testing.assert_allclose(buffer.advantages[:, 0], [1.0, 2.0])


class RolloutProbe(BaseCallback):
    """Looks at the rollout between collection and update."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        agent = self.model
        buffer = agent.rollout_buffer
        rollout = buffer.tensors(agent.device)
        with torch.no_grad():
            self.log_ratio = agent.policy.evaluate_actions(rollout.obs, rollout.y0)[1]
        self.log_ratio -= rollout.log_probs
        self.truncations = [(t, env) for t, env, _ in buffer.truncations]
        t, env, final_obs = buffer.truncations[0]
        with torch.no_grad():
            final_value = agent.policy.predict_values(torch.as_tensor(final_obs[None])).item()
        self.bootstrap = agent.gamma * final_value
        self.env_reward = buffer.rewards[t, env] - self.bootstrap


def test_first_ppo_ratio_is_one_and_truncated_episodes_are_bootstrapped():
    agent = JacobianAgent("Pendulum-v1", seed=0, **{**TINY, "n_steps": 250})
    probe = RolloutProbe()
    agent.learn(250, callback=probe)  # Pendulum truncates at 200 steps
    torch.testing.assert_close(probe.log_ratio, torch.zeros_like(probe.log_ratio))
    assert probe.truncations == [(199, 0)]
    assert probe.bootstrap != 0.0
    assert -16.3 <= probe.env_reward <= 0.0  # Pendulum's reward range


def test_tensorboard_keys_histogram_and_hparams(tmp_path):
    agent = JacobianAgent("CartPole-v1", tensorboard_log=str(tmp_path), seed=0, **TINY)
    agent.learn(64, tb_log_name="run")
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name == "run_1"
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = events.Tags()
    expected = {
        "rollout/ep_rew_mean",
        "rollout/ep_len_mean",
        "time/fps",
        "train/policy_gradient_loss",
        "train/explained_variance",
        "train/loss",
        "train/value_loss",
        "train/approx_kl",
        "train/clip_fraction",
        "train/learning_rate",
        "train/entropy_loss",
        "jacobian/logdet_mean",
        "jacobian/logdet_std",
        "jacobian/cond_max",
        "jacobian/grad_norm",
        "jacobian/sigma_x",
    }
    assert expected <= set(tags["scalars"]), expected - set(tags["scalars"])
    assert "jacobian/logdet_hist" in tags["histograms"]
    assert "_hparams_/experiment" in events.PluginTagToContent("hparams")
    assert math.isfinite(events.Scalars("jacobian/cond_max")[-1].value)


def net_grads(policy: InvertiblePolicy) -> dict[str, torch.Tensor]:
    return {
        name: torch.zeros_like(p) if p.grad is None else p.grad.clone()
        for name, p in policy.net.named_parameters()
    }


def test_absdet_gradient_is_abs_det_times_logdet_gradient():
    """volume_objective="absdet" follows seed eq. 11: ∇|J| = |J|·∇log|J|, with |J| and its
    gradient computed independently (jacrev of F⁻¹, then |det|, then autograd)."""
    policy = make_policy("volume", volume_objective="absdet")
    obs = torch.randn(3, 3)
    with torch.no_grad():
        y0 = policy.sample(obs)
    score, logabsdet = policy.log_prob(obs, y0)
    torch.testing.assert_close(score, logabsdet.exp())
    for i in range(3):
        policy.zero_grad()
        policy.log_prob(obs[i : i + 1], y0[i : i + 1])[0].sum().backward()
        got = net_grads(policy)
        policy.zero_grad()
        jac = torch.func.jacrev(lambda v: policy.net.inverse(v[None])[0])(y0[i])
        absdet = torch.linalg.det(jac).abs()
        absdet.backward()
        literal = net_grads(policy)
        policy.zero_grad()
        logdet = torch.linalg.slogdet(
            torch.func.jacrev(lambda v: policy.net.inverse(v[None])[0])(y0[i])
        ).logabsdet
        logdet.backward()
        log_grads = net_grads(policy)
        for name, g in got.items():
            torch.testing.assert_close(g, literal[name], rtol=1e-8, atol=1e-10)
            torch.testing.assert_close(g, absdet.detach() * log_grads[name])


def test_x0_hold_scores_minus_forward_logdet_at_the_stored_input():
    """volume_hold="x0": the score is −log|det J_F(x)| at the stored input x (autograd check); at
    the weights that acted it equals ℓ(y0); unlike y0-hold, b_1 gets a gradient (x is fixed, so
    the first pre-activation W_1 x + b_1 moves with b_1)."""
    policy = make_policy("volume", volume_hold="x0")
    assert policy.needs_input
    obs = torch.randn(4, 3)
    with torch.no_grad():
        y0 = policy.sample(obs)
    x = policy.net.inverse(y0).detach()
    score, _ = policy.log_prob(obs, y0, x)
    held_y0, _ = make_policy("volume").log_prob(obs, y0)
    torch.testing.assert_close(score, held_y0, rtol=1e-9, atol=1e-9)
    for i in range(4):
        jac = torch.func.jacrev(lambda v: policy.net(v[None])[0])(x[i])
        torch.testing.assert_close(score[i], -torch.linalg.slogdet(jac).logabsdet)
    score.sum().backward()
    assert policy.net.get_parameter("linears.0.bias").grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="needs the input"):
        policy.log_prob(obs, y0)
    # score_rollout hands the learner that input, with the score at the acting weights
    rollout_score, rollout_logdet, stored = policy.score_rollout(obs, y0)
    assert torch.equal(stored, x)
    torch.testing.assert_close(rollout_score, score.detach(), rtol=0, atol=0)
    torch.testing.assert_close(rollout_logdet, held_y0, rtol=1e-9, atol=1e-9)
    assert policy.score_rollout(obs, y0)[0].grad_fn is None
    assert make_policy("volume").score_rollout(obs, y0)[2] is None


def test_the_rollout_buffer_keeps_inputs_only_for_the_x0_hold():
    assert JacobianAgent("CartPole-v1", **TINY).rollout_buffer.x is None
    agent = JacobianAgent("CartPole-v1", rule="volume", volume_hold="x0", seed=0, **TINY)
    assert agent.rollout_buffer.x is not None

    class InputProbe(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:  # before the update: the weights that acted
            rollout = agent.rollout_buffer.tensors(agent.device)
            with torch.no_grad():
                self.round_trip = agent.policy.net(rollout.x) - rollout.y0

    probe = InputProbe()
    agent.learn(32, callback=probe)
    torch.testing.assert_close(probe.round_trip, torch.zeros_like(probe.round_trip))


def test_volume_option_checks():
    with pytest.raises(ConfigError, match="volume_objective"):
        make_policy("volume", volume_objective="det")
    with pytest.raises(ConfigError, match="volume_hold"):
        make_policy("volume", volume_hold="x")
    with pytest.raises(ConfigError, match="reinforce"):
        JacobianAgent("CartPole-v1", rule="volume", volume_objective="absdet", **TINY)
    with pytest.raises(ConfigError, match="advantage_weighting"):
        JacobianAgent("CartPole-v1", advantage_weighting="rwr", **TINY)


def test_enforce_conditioning_repairs_or_raises_naming_the_layer():
    """The policy's guard on its own: a layer past max_cond is refused under "raise" and projected
    back under "repair", which reports the layer and leaves every cond within the bound."""
    policy = make_policy("density")
    u, _, vh = torch.linalg.svd(policy.net.linears[1].V.detach())
    with torch.no_grad():
        policy.net.linears[1].V.copy_((u * torch.tensor([1.0, 1.0, 1.0, 1e-8])) @ vh)
    policy.bump_generation()
    with pytest.raises(SingularWeightError, match=r"layer 1 .* > max_cond=1e\+06"):
        policy.enforce_conditioning("raise")
    conds, repaired = policy.enforce_conditioning("repair")
    assert repaired == [1]
    torch.testing.assert_close(conds, policy.net.condition_numbers())
    assert float(conds.max()) <= 1e6
    assert policy.enforce_conditioning("repair")[1] == []
    with pytest.raises(ConfigError, match="ill_conditioned='clip'"):
        policy.enforce_conditioning("clip")  # type: ignore[arg-type]


def test_the_policy_validates_its_own_options():
    with pytest.raises(
        ConfigError, match=r"dtype='float16': expected one of \('float64', 'float32'\)"
    ):
        JacobianAgent("CartPole-v1", dtype="float16", **TINY)
    with pytest.raises(ConfigError, match=r"dtype=torch\.float16"):
        make_policy("density", dtype=torch.float16)
    with pytest.raises(ConfigError, match="embed='flat'"):
        JacobianAgent("CartPole-v1", embed="flat", **TINY)


def test_an_update_past_max_cond_is_repaired_or_refused():
    """A big step from orthogonal V (cond 1) crosses a tight bound: 'raise' stops with the layer
    named, 'repair' (the default) projects back under the bound, warns once and counts."""
    kwargs = dict(learning_rate=0.05, max_cond=1.05, seed=0, **TINY)
    with pytest.raises(SingularWeightError, match=r"condition number .* > max_cond=1.05"):
        JacobianAgent("CartPole-v1", ill_conditioned="raise", **kwargs).learn(64)
    agent = JacobianAgent("CartPole-v1", **kwargs)
    with pytest.warns(UserWarning, match="projected back to max_cond/2"):
        agent.learn(64)
    assert agent.reconditions >= 1
    assert float(agent.policy.net.condition_numbers().max()) <= 1.05


def test_activation_defaults_by_rule_and_an_explicit_choice_wins(tmp_path):
    """The volume rule's score ℓ(y0) is unbounded under asinh (log cosh u grows with |u|), so its
    default is the linear-tailed smooth_leaky_relu; the density rule keeps asinh. The resolved
    name is what the network uses and what a saved agent restores."""
    cases = [
        ("density", None, "asinh"),
        ("volume", None, "smooth_leaky_relu"),
        ("volume", "asinh", "asinh"),
    ]
    for rule, requested, expected in cases:
        agent = JacobianAgent("CartPole-v1", rule=rule, activation=requested, seed=0, **TINY)
        assert agent.activation == expected
        assert (
            type(agent.policy.net.activation).__name__
            == {
                "asinh": "Asinh",
                "smooth_leaky_relu": "SmoothLeakyReLU",
            }[expected]
        )
        agent.save(tmp_path / f"{rule}_{requested}.zip")
        loaded = JacobianAgent.load(tmp_path / f"{rule}_{requested}.zip")
        assert loaded.activation == expected


def test_rollout_with_overflowing_pre_actions_raises_before_training():
    agent = JacobianAgent("CartPole-v1", seed=0, dtype="float64", **TINY)
    with torch.no_grad():  # make the snapshot produce inf without touching the checks
        agent.policy.actor().forward.layers[0][1].fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="pre-action y0 overflowed"):
        agent.learn(32)


@pytest.mark.parametrize("update", ["ppo", "reinforce"])
def test_float32_network_trains(update: str) -> None:
    """A float32 invertible path scores its own float32 pre-actions (no dtype mismatch)."""
    agent = JacobianAgent("CartPole-v1", dtype="float32", update=update, n_steps=64, seed=0)
    before = {k: v.clone() for k, v in agent.get_parameters().items()}
    agent.learn(256)
    after = agent.get_parameters()
    assert agent.rollout_buffer.y0.dtype == np.float32
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)


BOXES = {
    "bounded": spaces.Box(-2.0, 3.0, (2,)),
    "lower-bounded": spaces.Box(np.float32([0.0, -1.0]), np.float32([np.inf, np.inf])),
    "upper-bounded": spaces.Box(-np.inf, 0.0, (2,)),
    "unbounded": spaces.Box(-np.inf, np.inf, (2,)),
    "mixed": spaces.Box(np.float32([-1, 0, -np.inf, -np.inf]), np.float32([1, np.inf, 5, np.inf])),
    "mixed-float64": spaces.Box(np.array([-1.0, -np.inf]), np.array([1e-3, 0.0]), dtype=np.float64),
}


@pytest.mark.parametrize("box", list(BOXES), ids=list(BOXES))
@pytest.mark.parametrize("agent_class", ["JacobianAgent", "JacobianSAC"])
def test_every_action_lies_in_the_action_space(agent_class, box):
    """Issue #12.4: bounded, half-bounded, unbounded and mixed Boxes, float32 and float64, for
    pre-actions up to |y0| ~ 1e3 (σ_x = 1e3 and a leaky-ReLU F, whose tails are linear), where
    tanh rounds to ±1 and softplus to 0 or to y itself: every action is in the space."""
    import jacrl.agents

    action_space = BOXES[box]
    observation_space = spaces.Box(-np.inf, np.inf, (3,))
    agent = getattr(jacrl.agents, agent_class)(
        None,
        sigma_x=1e3,
        activation="leaky_relu",
        seed=0,
        observation_space=observation_space,
        action_space=action_space,
    )
    obs = np.random.default_rng(0).normal(size=(256, 3)) * np.logspace(-2, 3, 256)[:, None]
    for deterministic in (False, True):
        actions, _ = agent.predict(obs.astype(np.float32), deterministic=deterministic)
        assert actions.dtype == action_space.dtype
        outside = [a for a in actions if not action_space.contains(a)]
        assert not outside, outside[:3]


def test_the_running_baseline_changes_the_update():
    """Issue #12.6: advantage="baseline" subtracts a running mean of returns; its advantages are
    scaled per minibatch but not centred, so the baseline reaches the update (centring would erase
    any constant shift). Same rollout, two baselines: different steps."""
    weights = []
    for shift in (0.0, 50.0):
        agent = JacobianAgent("CartPole-v1", seed=0, advantage="baseline", **TINY)
        agent.learn(32)  # one rollout and one update: a running baseline exists now
        agent.rollout_buffer.advantages -= shift
        agent.train()
        weights.append(torch.cat([p.detach().flatten() for p in agent.policy.parameters()]))
    assert not torch.allclose(weights[0], weights[1])


def test_a_non_finite_loss_or_gradient_is_refused_before_the_step(monkeypatch) -> None:
    """The update's one host sync per minibatch still refuses a non-finite loss (naming it) and
    a non-finite gradient norm, before the optimizer step: the weights stay as they were."""
    agent = JacobianAgent("CartPole-v1", seed=0, **TINY)
    agent.learn(32)
    with torch.no_grad():  # NaN values -> NaN advantages and value loss; acting is unaffected
        agent.policy.value_net[-1].bias.fill_(float("nan"))
    before = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    with pytest.raises(NonFiniteError, match=r"the loss is nan at env step"):
        agent.learn(32, reset_num_timesteps=False)
    after = agent.policy.state_dict()
    assert all(
        torch.equal(
            before[k],
            after[k],
        )
        for k in before
        if "value_net" not in k
    )

    agent = JacobianAgent("CartPole-v1", seed=0, **TINY)
    agent.learn(32)
    before = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_norm_", lambda *args, **kwargs: torch.tensor(float("inf"))
    )
    with pytest.raises(NonFiniteError, match=r"non-finite gradient norm at env step"):
        agent.learn(32, reset_num_timesteps=False)
    after = agent.policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
