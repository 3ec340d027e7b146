"""ReBRAC (Tarasov et al., 2023), the paper's strongest Gaussian-policy baseline: TD3+BC with layer-normalised
critics and separate actor and critic behaviour-cloning penalties.

Written from FQL's ``agents/rebrac.py`` (seohongpark/fql, the implementation behind the FQL and MeanFlow-QL
papers' ReBRAC rows; docs/method.md, "ReBRAC"): a deterministic tanh-squashed actor (an MLP, its last layer
initialised at scale 0.01) with a target actor; the same 2-head critic as the other methods with a target;
the Bellman target at the target actor's action plus clipped Gaussian noise (TD3's target policy smoothing),
the minimum over heads, minus ``alpha_critic`` times the squared distance to the dataset's next action; the
actor loss -Q / mean|Q| (minimum over heads) plus ``alpha_actor`` times the squared distance to the dataset's
action. The actor's loss and both targets' EMA apply every ``actor_freq``-th step only (FQL's
``full_update``); one Adam over all networks steps at every step, so on the other steps the actor still moves
by Adam's momentum, as there. Observations are not normalised; evaluation acts without noise (FQL's
``eval_temperature=0``), online collection with the clipped noise.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from mfql.agents.base import CRITIC_RANGES, Agent, Batch, Params
from mfql.agents.fql import mlp
from mfql.agents.optim import Adam
from mfql.ranges import INT_1, NONNEGATIVE, OPEN_FRACTION, POSITIVE, Range


class TanhActor(nn.Module):
    """FQL's ``Actor`` with ``tanh_squash`` and a constant std, as ReBRAC uses it: its mode, tanh(mean(s)).
    An MLP with GELU(tanh) after every hidden layer (LayerNorm after it when ``layer_norm``), then the mean
    layer, its kernel variance_scaling(``final_scale``, 'fan_avg', 'uniform')."""

    def __init__(self, in_dim: int, action_dim: int, hidden_dims: tuple[int, ...], layer_norm: bool,
                 final_scale: float):
        super().__init__()
        self.net = mlp(in_dim, action_dim, hidden_dims, layer_norm)
        nn.init.xavier_uniform_(self.net[-1].weight, gain=final_scale ** 0.5)  # variance scaling by final_scale

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


class ReBRAC(Agent):
    LABEL = "ReBRAC"
    PAPER_NAME = "ReBRAC"
    SWEPT = "alpha_actor"  # the actor's BC weight (alpha_critic stays at the task file's value)
    PROGRESS = ("critic/loss", "actor/bc_loss", "actor/q")
    BATCH_FIELDS = (*Agent.BATCH_FIELDS, "next_actions")
    TARGETS = ("critic", "actor")
    RANGES = {**Agent.RANGES, **CRITIC_RANGES, "actor_hidden_dims": Range("widths"), "actor_fc_scale": POSITIVE,
              "alpha_actor": NONNEGATIVE, "alpha_critic": NONNEGATIVE, "actor_freq": INT_1,
              "actor_noise": NONNEGATIVE, "actor_noise_clip": NONNEGATIVE, "lr": OPEN_FRACTION}

    def make_actor(self, obs_dim: int, action_dim: int) -> nn.Module:
        cfg = self.cfg
        return TanhActor(obs_dim, action_dim, tuple(cfg.actor_hidden_dims), cfg.actor_layer_norm, cfg.actor_fc_scale)

    def setup(self) -> None:
        # optax.adam over all parameters: two Adams with one learning rate, stepped together (as FQL's).
        self.actor_opt = Adam(list(self.actor.parameters()), lr=self.cfg.lr)
        self.critic_opt = Adam(list(self.critic.parameters()), lr=self.cfg.lr)
        # Raw observations, as FQL's agents. New tensors: obs_mean may share memory with the caller's array.
        self.obs_mean, self.obs_std = torch.zeros_like(self.obs_mean), torch.ones_like(self.obs_std)

    def draws(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The one random draw of an update: the target policy's smoothing noise, N(0, 1) before scaling."""
        return {"target_noises": torch.randn(batch_size, self.action_dim, device=self.device, generator=generator)}

    def smoothing(self, noise: torch.Tensor) -> torch.Tensor:
        """TD3's clipped noise: ``actor_noise`` x N(0, 1), clipped to +-``actor_noise_clip``."""
        return (noise * self.cfg.actor_noise).clamp(-self.cfg.actor_noise_clip, self.cfg.actor_noise_clip)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, noises: torch.Tensor | None = None, generator: torch.Generator | None = None,
            explore: bool = False) -> torch.Tensor:
        """The actor's mode; online collection (``explore``) adds the clipped noise (``noises[0]`` if given)."""
        actions = self.actor(obs)
        if not explore:
            return actions
        noise = noises[0] if noises is not None else torch.randn(actions.shape, device=self.device,
                                                                  generator=generator)
        return (actions + self.smoothing(noise)).clamp(-1.0, 1.0)

    # ------------------------------------------------------------------------------------------- losses
    def critic_loss(self, batch: Batch, params: Params, draws: dict, state: dict):
        with torch.no_grad():
            next_obs = batch["next_observations"]
            next_actions = functional_call(self.target_actor, state["target_actor"], (next_obs,))
            next_actions = (next_actions + self.smoothing(draws["target_noises"])).clamp(-1.0, 1.0)
            next_q = functional_call(self.target_critic, state["target_critic"], (next_obs, next_actions)).min(0).values
            mse = (next_actions - batch["next_actions"]).pow(2).sum(-1)
            target_q = batch["rewards"] + self.cfg.discount * batch["masks"] * (next_q - self.cfg.alpha_critic * mse)
        q = functional_call(self.critic, params["critic"], (batch["observations"], batch["actions"]))
        loss = (q - target_q).pow(2).mean()
        return loss, {"critic/loss": loss, "critic/q_mean": q.mean(), "critic/q_max": q.max(), "critic/q_min": q.min()}

    def actor_loss(self, batch: Batch, params: Params, draws: dict):
        obs = batch["observations"]
        actions = functional_call(self.actor, params["actor"], (obs,))
        # The critic's parameters enter detached: the Q term trains the actor through its actions only.
        critic_params = {name: p.detach() for name, p in params["critic"].items()}
        q = functional_call(self.critic, critic_params, (obs, actions)).min(0).values
        q_loss = -(q / q.abs().mean().detach()).mean()
        mse = (actions - batch["actions"]).pow(2).sum(-1)
        bc_loss = (self.cfg.alpha_actor * mse).mean()
        loss = q_loss + bc_loss
        return loss, {"actor/loss": loss, "actor/q_loss": q_loss, "actor/bc_loss": mse.mean(),
                      "actor/q": q.mean()}

    def full_update(self) -> torch.Tensor:
        """Whether this step updates the actor and the targets: every ``actor_freq``-th step of the loop."""
        return self.step % self.cfg.actor_freq == 0

    def total_loss(self, batch: Batch, params: Params, draws: dict, state: dict):
        """critic_loss, plus actor_loss on the steps that update the actor (a zero weight otherwise: its
        gradient is then exactly zero, as FQL's ``actor_loss = 0.0``)."""
        critic, critic_info = self.critic_loss(batch, params, draws, state)
        actor, actor_info = self.actor_loss(batch, params, draws)
        total = critic + self.full_update().to(actor.dtype) * actor
        return total, ({**critic_info, **actor_info, "total_loss": total}, {})

    # ------------------------------------------------------------------------------------------- update
    @torch.no_grad()
    def update_on_device(self, batch: Batch, draws: dict, state: dict | None = None, foreach: bool = True) -> dict:
        """The update as one function of device tensors, in place on ``state`` (as the other methods')."""
        state = state if state is not None else self.state()
        grads, metrics, _ = self.gradients(batch, draws, state)
        # FQL's target_update, on full updates only: towards the networks before this step (it reads the
        # agent's parameters from before apply_loss_fn), as in FQL
        self.soft_update(state, foreach, rate=torch.where(self.full_update(), self.cfg.tau, 0.0))
        self.adam_steps(state, {name: grads[name].values() for name in self.NETWORKS}, foreach)
        state["update_count"].add_(1)
        return {k: v.detach() for k, v in metrics.items()}
