import math

import numpy as np
import pytest
import torch

from mfql.agents.optim import clip_by_global_norm
from mfql.agents.schedules import AlphaController, actor_lr
from tests.conftest import make_agent, perturb, random_batch


@pytest.mark.parametrize("model", ["small", "paper"])
def test_mfi_target_matches_finite_differences_along_v_and_t(model):
    torch.manual_seed(0)
    agent = make_agent(6, 3, model=model)
    perturb(agent.actor)
    agent.actor.double()
    b = random_batch(8)
    obs, actions = b["observations"].double(), b["actions"].double()
    times, noises = torch.rand(8, dtype=torch.float64) * 0.8 + 0.1, torch.randn(8, 3, dtype=torch.float64)
    g, target = agent.mfi_output_and_target(obs, actions, times, noises)
    t = times[:, None]
    a_t, v = (1 - t) * actions + t * noises, noises - actions
    h = 1e-6
    plus = agent.actor(obs, a_t + h * v, times + h)
    minus = agent.actor(obs, a_t - h * v, times - h)
    dg_dt = (plus - minus) / (2 * h)
    expected = (a_t + (t - 1) * v - t * dg_dt).clamp(-5, 5)
    torch.testing.assert_close(target, expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g, agent.actor(obs, a_t, times))
    assert not target.requires_grad and g.requires_grad


def test_jvp_primal_carries_the_same_gradient_as_a_plain_forward():
    torch.manual_seed(0)
    agent = make_agent(6, 3, model="paper")
    perturb(agent.actor)
    b = random_batch(8)
    times, noises = torch.rand(8), torch.randn(8, 3)
    g, _ = agent.mfi_output_and_target(b["observations"], b["actions"], times, noises)
    grads = torch.autograd.grad(g.pow(2).sum(), list(agent.actor.parameters()), allow_unused=True)
    t = times[:, None]
    plain = agent.actor(b["observations"], (1 - t) * b["actions"] + t * noises, times)
    ref = torch.autograd.grad(plain.pow(2).sum(), list(agent.actor.parameters()), allow_unused=True)
    for a, r in zip(grads, ref):
        if r is None:
            assert a is None or torch.count_nonzero(a) == 0
        else:
            torch.testing.assert_close(a, r)


def test_target_is_clipped_to_plus_minus_five():
    agent = make_agent(6, 3)
    b = random_batch(64)
    noises = torch.randn(64, 3) * 20  # zero actor: target = a_t + (t - 1) v, often beyond +-5
    _, target = agent.mfi_output_and_target(b["observations"], b["actions"], torch.rand(64), noises)
    assert target.abs().max() == 5.0


def test_time_sampling_discrete_grid_and_continuous():
    torch.manual_seed(0)
    grid = make_agent(time_steps=50).sample_times(20000)
    k = grid * 50
    torch.testing.assert_close(k, k.round())
    assert set(k.round().long().unique().tolist()) == set(range(1, 51))  # 1/T .. 1, never 0
    cont = make_agent(time_steps=10000).sample_times(20000)
    assert 0 < cont.min() and cont.max() < 1
    assert cont.unique().numel() > 19000  # continuous, not a 1000-point grid
    grid1000 = make_agent(time_steps=1000).sample_times(5000) * 1000
    torch.testing.assert_close(grid1000, grid1000.round())


def test_adaptive_weight_loss_value():
    agent = make_agent(6, 3)  # zero actor: g = 0 and dg/dt = 0, so the target is a_t + (t - 1) v
    b = random_batch(16)
    times, noises = torch.rand(16), torch.randn(16, 3)
    loss, _ = agent.flow_loss(b, agent.params(), {"times": times, "flow_noises": noises})
    t = times[:, None]
    a_t, v = (1 - t) * b["actions"] + t * noises, noises - b["actions"]
    err = (a_t + (t - 1) * v).clamp(-5, 5).pow(2).mean(-1)
    expected = (err / (err + 1e-4) ** 0.2).mean()
    torch.testing.assert_close(loss, expected)


def test_alpha_controller_scripted_sequence():
    # interval 2, warm-up 10 % of 100 = 10 steps, window 3, bounds [0.1, 10] x alpha0.
    ctl = AlphaController(1.0, 100, 0.1, interval=2, threshold=5, increase=2.0, decrease=0.5, window=3,
                          bounds=(0.1, 10.0))
    assert ctl.update(1, 1e9) == 1.0  # not an event step
    for step in (2, 4, 6, 8):  # events in the warm-up only record history
        assert ctl.update(step, 100.0 if step == 8 else 1.0) == 1.0
    assert ctl.valid == 3
    # history is now [1, 1, 100]; the official average reads the first `valid` slots: mean = 34
    assert ctl.update(10, 34 * 5 + 1) == 2.0  # spike: the new alpha is returned for this same step
    assert ctl.update(11, 1e9) == 2.0  # constant between events
    for step in range(12, 40, 2):
        ctl.update(step, 10.0 ** step)  # keeps spiking (x100 per event): capped at 10 x alpha0
    assert ctl.alpha == 10.0
    for step in range(22, 200, 2):
        ctl.update(step, 10.0**-step)  # keeps collapsing (x100 per event): floored at 0.1 x alpha0
    assert float(ctl.alpha) == pytest.approx(0.1)


def test_alpha_controller_needs_two_history_entries_and_can_be_disabled():
    ctl = AlphaController(1.0, 0, 0.1, interval=2, window=3)
    assert ctl.update(2, 1.0) == 1.0 and ctl.update(4, 1e6) == 1.0  # only one entry before step 4
    assert ctl.update(6, 1e6) == 1.2
    off = AlphaController(1.0, 0, 0.1, interval=2, window=3, enabled=False)
    assert all(off.update(s, 1e9 if s % 4 else 1e-9) == 1.0 for s in range(2, 40))


def test_best_of_k_picks_argmax_of_head_mean_target_q():
    torch.manual_seed(0)
    agent = make_agent(6, 3, num_candidates=7)
    perturb(agent.actor, 0.3)
    perturb(agent.target_critic, 0.3, seed=1)
    obs = torch.randn(5, 6)
    noises = torch.randn(7, 5, 3)
    chosen, q_chosen = agent.best_of_k(obs, noises)
    cands = torch.stack([agent.one_step(obs, noises[k]).clamp(-1, 1) for k in range(7)])
    q = torch.stack([agent.target_critic(obs, cands[k]) for k in range(7)], dim=1)  # [heads, K, B]
    best = q.mean(0).argmax(0)
    torch.testing.assert_close(chosen, cands[best, torch.arange(5)])
    torch.testing.assert_close(q_chosen, q[:, best, torch.arange(5)])
    assert len(set(best.tolist())) > 1
    # acting uses the target critic: changing the online critic changes nothing
    perturb(agent.critic, 5.0, seed=3)
    torch.testing.assert_close(agent.act(obs, noises), chosen)


def test_per_group_gradient_clipping():
    torch.manual_seed(0)
    agent = make_agent(6, 3, alpha=1e-3)
    perturb(agent.actor, 0.01)
    batch = random_batch(64)
    batch["rewards"] = batch["rewards"] * 1e4  # huge critic gradients
    draws = agent.draws(64)
    agent.step.fill_(1)
    grads, _, _ = agent.gradients(batch, draws)
    actor_grads, critic_grads = list(grads["actor"].values()), list(grads["critic"].values())
    info = agent.update(batch, 1, draws)
    pre_actor, pre_critic = float(info["actor/grad_norm"]), float(info["critic/grad_norm"])
    # per group: each norm is over its own group's gradients only
    assert pre_actor == pytest.approx(float(torch.stack([g.norm() for g in actor_grads]).norm()), rel=1e-5)
    assert pre_critic == pytest.approx(float(torch.stack([g.norm() for g in critic_grads]).norm()), rel=1e-5)
    assert pre_critic > 100 * pre_actor
    clipped, _ = clip_by_global_norm(critic_grads, 1.0)
    assert float(torch.stack([g.norm() for g in clipped]).norm()) == pytest.approx(1.0, rel=1e-5)
    clipped, _ = clip_by_global_norm(actor_grads, 1.0)  # scaled by its own norm only
    assert float(torch.stack([g.norm() for g in clipped]).norm()) == pytest.approx(min(pre_actor, 1.0), rel=1e-5)


def test_clip_by_global_norm_matches_optax_rule():
    (clipped,), norm = clip_by_global_norm([torch.tensor([3.0, 4.0, 0.0, 0.0])], 1.0)
    assert norm == 5.0
    torch.testing.assert_close(clipped, torch.tensor([0.6, 0.8, 0.0, 0.0]))
    (clipped,), _ = clip_by_global_norm([torch.tensor([0.3, 0.4, 0.0, 0.0])], 1.0)
    torch.testing.assert_close(clipped, torch.tensor([0.3, 0.4, 0.0, 0.0]))


def test_actor_learning_rate_schedule():
    def lr_at(count, *args):
        return float(actor_lr(count, *args))

    lr, n = 1e-4, 1000  # warm-up int(0.05 * 1000) = 50 updates
    assert lr_at(0, lr, 0.1, n, 0.05) == 0.0
    assert lr_at(25, lr, 0.1, n, 0.05) == pytest.approx(lr / 2)
    assert lr_at(50, lr, 0.1, n, 0.05) == pytest.approx(lr)
    assert lr_at(525, lr, 0.1, n, 0.05) == pytest.approx(lr * (0.1 + 0.9 * 0.5))  # mid-cosine
    assert lr_at(1000, lr, 0.1, n, 0.05) == pytest.approx(lr * 0.1)
    assert lr_at(1001, lr, 0.1, n, 0.05) == pytest.approx(lr * 0.1)  # online: constant
    assert lr_at(5000, lr, 0.1, n, 0.05) == pytest.approx(1e-5)


def test_update_applies_scheduled_lrs_and_changes_parameters():
    torch.manual_seed(0)
    agent = make_agent(6, 3, steps=100)
    before = [p.clone() for p in agent.critic.parameters()]
    info = agent.update(random_batch(), step=0)
    assert float(info["actor/lr"]) == 0.0 and float(agent.critic_opt.lr) == pytest.approx(3e-4)
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.critic.parameters()))
    info = agent.update(random_batch(seed=1), step=1)
    assert float(info["actor/lr"]) == pytest.approx(1e-4 / 5)  # warm-up of int(0.05 * 100) = 5 updates
    assert math.isfinite(float(info["total_loss"]))


def test_actor_loss_does_not_train_the_critic():
    torch.manual_seed(0)
    agent = make_agent(6, 3)
    perturb(agent.actor, 0.1)
    loss, _ = agent.actor_loss(random_batch(), agent.params(), {"actor_noises": agent.noise(32)})
    loss.backward()
    assert all(p.grad is None for p in agent.critic.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


def test_bound_loss_penalises_out_of_range_actions():
    agent = make_agent(6, 3)
    with torch.no_grad():
        agent.actor.out.bias.fill_(1.5)  # every one-step action is 1.5
    _, info = agent.actor_loss(random_batch(), agent.params(), {"actor_noises": agent.noise(32)})
    assert info["actor/bound_loss"].item() == pytest.approx(0.5)


# --- parity: official vs corrected --------------------------------------------------------------------


def test_parity_target_candidates_critic_lr_and_alpha_warmup():
    official = make_agent(6, 3, num_candidates=5)
    corrected = make_agent(6, 3, "parity=corrected", num_candidates=5)
    assert official.target_candidates == 5 and corrected.target_candidates == 2
    assert official.critic_lr == 3e-4 and corrected.critic_lr == 1e-4
    assert official.alpha_ctl.warmup == 100 and corrected.alpha_ctl.warmup == 200  # of 1000 steps


def test_parity_target_ema_after_or_before_the_step():
    for parity in ("official", "corrected"):
        torch.manual_seed(0)
        agent = make_agent(6, 3, f"parity={parity}")
        perturb(agent.target_critic, 0.1)
        old_online = [p.detach().clone() for p in agent.critic.parameters()]
        old_target = [p.detach().clone() for p in agent.target_critic.parameters()]
        agent.update(random_batch(), step=1)
        source = list(agent.critic.parameters()) if parity == "official" else old_online
        for t, o, s in zip(agent.target_critic.parameters(), old_target, source):
            torch.testing.assert_close(t, o + 0.005 * (s - o))


def test_parity_alpha_history_window():
    official = AlphaController(1.0, 0, 0.0, interval=1, window=4, official_window=True)
    corrected = AlphaController(1.0, 0, 0.0, interval=1, window=4, official_window=False)
    for ctl in (official, corrected):
        ctl.update(1, 100.0)
        ctl.update(2, 1.0)
    # history [0, 0, 100, 1], valid 2: official averages slots [0, 0] (the quirk), corrected [100, 1]
    assert official.update(3, 0.5) == 1.2  # 0.5 > 5 * 0
    assert corrected.update(3, 0.5) == 0.8  # 0.5 < 50.5 / 5
    np.testing.assert_allclose(corrected.history, [0, 100, 1, 0.5])


def test_official_alpha_average_ramps_alpha_when_the_budget_is_short():
    """parity=official at a 30k-step budget: the warm-up (3k steps) ends before the 20-event history is full,
    the average reads empty slots, and alpha grows x1.2 at each event until the history is about half full
    (ten events for a steady loss: x6.2); at the paper's 1M steps, and with the
    corrected average, a steady loss leaves alpha at its task value."""
    def alpha_at(steps, official, until):
        ctl = AlphaController(120.0, steps, 0.1, official_window=official)
        for step in range(0, until + 1, ctl.interval):  # its events: a step between them changes nothing
            alpha = ctl.update(step, 0.3)                 # (test_alpha_controller_scripted_sequence)
        return float(alpha), ctl.unfilled_after_warmup()

    ramped, flagged = alpha_at(30_000, True, 30_000)
    assert flagged and ramped == pytest.approx(120.0 * 1.2 ** 10)
    assert alpha_at(1_000_000, True, 200_000) == (120.0, False)
    assert alpha_at(30_000, False, 30_000) == (120.0, False)
