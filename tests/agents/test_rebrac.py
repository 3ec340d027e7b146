"""ReBRAC, the Gaussian-policy baseline: its losses by hand, its delayed actor and target updates, its acting
and its parameter counts (what every method must do, ReBRAC included: tests/agents/test_methods.py)."""

import torch
from torch.func import functional_call

from mfql.agents.networks import count_params
from tests.conftest import make_agent, random_batch


def rebrac(*overrides, **kw):
    torch.manual_seed(0)
    return make_agent(6, 3, "agent.alpha_actor=0.5", "agent.alpha_critic=0.25", *overrides, method="rebrac", **kw)


def params(agent):
    return {name: dict(getattr(agent, name).named_parameters()) for name in agent.NETWORKS}


def test_parameter_counts_equal_the_reference_for_the_same_shapes():
    agent = make_agent(28, 5, method="rebrac", model="paper")
    # FQL's Actor: MLP 28 -> 4 x 512 (GELU) and a 512 -> 5 mean layer; its Value: 2 heads of 4 x 512 + LayerNorm
    assert count_params(agent.actor) == (28 * 512 + 512) + 3 * (512 * 512 + 512) + (512 * 5 + 5) == 805_381
    assert count_params(agent.critic) == 1_619_970
    assert count_params(agent.target_actor) == count_params(agent.actor)


def test_critic_loss_smooths_and_clips_the_target_action_and_penalises_its_distance_to_the_data():
    agent = rebrac()
    batch = random_batch(16, seed=1)
    noise = torch.linspace(-10.0, 10.0, 16 * 3).reshape(16, 3)  # most of it beyond the clip
    with torch.no_grad():
        smoothed = (0.2 * noise).clamp(-0.5, 0.5)
        assert smoothed.abs().max() == 0.5 and (smoothed.abs() < 0.5).any()
        next_a = (agent.target_actor(batch["next_observations"]) + smoothed).clamp(-1, 1)
        next_q = agent.target_critic(batch["next_observations"], next_a).min(0).values
        penalty = 0.25 * (next_a - batch["next_actions"]).pow(2).sum(-1)
        target = batch["rewards"] + 0.99 * batch["masks"] * (next_q - penalty)
        expected = (agent.critic(batch["observations"], batch["actions"]) - target).pow(2).mean()
    loss, info = agent.critic_loss(batch, params(agent), {"target_noises": noise}, agent.state())
    torch.testing.assert_close(loss, expected)
    assert {"critic/q_mean", "critic/q_max", "critic/q_min"} <= set(info)


def test_actor_loss_is_normalised_min_q_plus_alpha_actor_bc_and_trains_only_the_actor():
    agent = rebrac()
    batch = random_batch(16, seed=2)
    p = params(agent)
    loss, info = agent.actor_loss(batch, p, {})
    with torch.no_grad():
        actions = torch.tanh(agent.actor.net(batch["observations"]))
        q = agent.critic(batch["observations"], actions).min(0).values
        expected = -(q / q.abs().mean()).mean() + 0.5 * (actions - batch["actions"]).pow(2).sum(-1).mean()
    torch.testing.assert_close(loss, expected)
    grads = torch.autograd.grad(loss, [*p["actor"].values(), *p["critic"].values()], allow_unused=True)
    assert all(g is None for g in grads[len(p["actor"]):]) and any(g is not None for g in grads[:len(p["actor"])])


def test_the_actor_and_the_targets_update_every_second_step_and_adam_keeps_moving_the_actor():
    agent = rebrac()
    snapshot = lambda module: [t.detach().clone() for t in module.parameters()]  # noqa: E731
    moved = lambda before, module: any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))  # noqa: E731
    history = []
    for step in (1, 2, 3, 4):
        before = {name: snapshot(getattr(agent, name)) for name in agent.modules()}
        agent.update(random_batch(32, seed=step), step)
        history.append({name: moved(before[name], getattr(agent, name)) for name in agent.modules()})
        if step in (2, 4):  # the targets' EMA towards the networks before this step (FQL's target_update)
            for name in agent.TARGETS:
                for t, t0, o in zip(getattr(agent, f"target_{name}").parameters(), before[f"target_{name}"],
                                    before[name]):
                    torch.testing.assert_close(t, t0 + 0.005 * (o - t0))
    # step 1: no actor gradient, Adam's moments still zero: the actor stays; step 3: it moves by momentum.
    # step 2: the target actor stays (the actor it moves towards had not moved yet); step 4: it moves.
    assert history[0] == {"actor": False, "critic": True, "target_critic": False, "target_actor": False}
    assert history[1] == {"actor": True, "critic": True, "target_critic": True, "target_actor": False}
    assert history[2] == {"actor": True, "critic": True, "target_critic": False, "target_actor": False}
    assert history[3] == {"actor": True, "critic": True, "target_critic": True, "target_actor": True}


def test_evaluation_acts_with_the_mode_and_exploration_adds_clipped_noise():
    agent = rebrac()
    obs = torch.randn(4, 6)
    mode = torch.tanh(functional_call(agent.actor.net, dict(agent.actor.net.named_parameters()), (obs,)))
    torch.testing.assert_close(agent.act(obs, torch.randn(1, 4, 3)), mode)
    noise = torch.full((1, 4, 3), 10.0)
    torch.testing.assert_close(agent.act(obs, noise, explore=True), (mode + 0.5).clamp(-1, 1))
