"""FQL, the baseline: its losses by hand and its parameter counts (what every method must do, FQL included:
tests/agents/test_methods.py)."""

import torch
from torch import nn

from mfql.agents.fql import FQL
from mfql.agents.networks import count_params
from tests.conftest import make_agent, random_batch


class Field(nn.Module):
    """A vector field given by a formula, in place of the BC flow's MLP (``w`` makes it trainable)."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.w = fn, nn.Parameter(torch.tensor(0.5))

    def forward(self, obs, actions, t):
        return self.fn(self, obs, actions, t)


def fql_agent(**kw):
    torch.manual_seed(0)
    return make_agent(6, 3, method="fql", **kw)


def test_distillation_target_is_ten_euler_steps_of_the_bc_flow_clipped():
    agent = fql_agent()
    agent.actor["bc_flow"] = Field(lambda m, obs, a, t: -a + t * obs[:, :3])  # dv: linear in a, depends on t
    obs, noise = torch.randn(4, 6), torch.randn(4, 3) * 3
    by_hand = noise.clone()
    for i in range(10):  # Euler from t = 0 with step 1/10, as FQL's compute_flow_actions
        by_hand = by_hand + (-by_hand + (i / 10) * obs[:, :3]) / 10
    torch.testing.assert_close(agent.flow_actions(obs, noise), by_hand.clamp(-1, 1))
    assert (by_hand.abs() > 1).any()  # the clip mattered


def test_bc_flow_loss_regresses_the_straight_path_velocity():
    agent = fql_agent()
    agent.actor["bc_flow"] = Field(lambda m, obs, a, t: m.w * a + t)
    batch = random_batch(8)
    draws = agent.draws(8, torch.Generator().manual_seed(1))
    x0, x1, t = draws["flow_noises"], batch["actions"], draws["times"]
    x_t = (1 - t) * x0 + t * x1
    by_hand = ((0.5 * x_t + t - (x1 - x0)) ** 2).mean()
    loss, info = agent.bc_flow_loss(batch, agent.params(), draws)
    torch.testing.assert_close(loss, by_hand)
    assert info == {"actor/bc_loss": loss}
    loss.backward()  # and it trains the field: d loss / d w by hand
    torch.testing.assert_close(agent.actor["bc_flow"].w.grad, (2 * (0.5 * x_t + t - (x1 - x0)) * x_t).mean())


def test_actor_loss_is_bc_flow_plus_alpha_distillation_plus_q_loss():
    agent = fql_agent(alpha=7.0)
    batch, draws = random_batch(16), agent.draws(16, torch.Generator().manual_seed(2))
    loss, info = agent.actor_loss(batch, agent.params(), draws)
    actions = agent.one_step(batch["observations"], draws["distill_noises"])
    target = agent.flow_actions(batch["observations"], draws["distill_noises"])
    q = agent.critic(batch["observations"], actions.clamp(-1, 1)).mean(0)
    expected = agent.bc_flow_loss(batch, agent.params(), draws)[0] + 7.0 * ((actions - target) ** 2).mean() - q.mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(info["actor/q"], q.mean())


def test_parameter_counts_equal_fqls_for_the_same_shapes():
    """obs 28, actions 5 (cube), FQL's defaults: 4 x 512 MLPs; flax counts (kernel + bias per Dense, LayerNorm
    scale + bias) worked out by hand."""
    agent = FQL(make_agent(method="fql", model="paper").cfg, 28, 5, torch.zeros(28), torch.ones(28), 10)
    hidden = 3 * (512 * 512 + 512)
    assert count_params(agent.actor["bc_flow"]) == (28 + 5 + 1) * 512 + 512 + hidden + 512 * 5 + 5 == 808_453
    assert count_params(agent.actor["onestep"]) == (28 + 5) * 512 + 512 + hidden + 512 * 5 + 5 == 807_941
    member = (28 + 5) * 512 + 512 + hidden + 512 + 1 + 4 * 2 * 512  # 4 LayerNorms of the Value MLP
    assert count_params(agent.critic) == 2 * member == 1_619_970


def test_fql_update_takes_one_adam_step_of_the_total_loss_and_moves_the_target_towards_the_old_critic():
    agent = fql_agent()
    before = {k: v.clone() for k, v in agent.critic.named_parameters()}
    target_before = {k: v.clone() for k, v in agent.target_critic.named_parameters()}
    info = agent.update(random_batch(32), 1, generator=torch.Generator().manual_seed(0))
    for name, param in agent.target_critic.named_parameters():  # EMA towards the pre-update critic
        torch.testing.assert_close(param, target_before[name] + 0.005 * (before[name] - target_before[name]))
    # Adam's first step moves every parameter with a gradient by lr (3e-4) in the sign of its gradient
    moved = torch.cat([(p - before[k]).abs().flatten() for k, p in agent.critic.named_parameters()])
    assert torch.isclose(moved.max(), torch.tensor(3e-4), rtol=1e-3)
    assert {"critic/loss", "actor/distill_loss", "actor/bc_loss", "total_loss"} <= set(info)
