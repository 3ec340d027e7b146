"""Flow Q-learning (FQL; Park, Li and Levine, 2025), the method MeanFlow-QL is compared with.

Written from the FQL paper and its ``agents/fql.py`` (seohongpark/fql): a flow-matching behaviour-cloning
policy v(s, a_t, t) (an MLP, integrated with ``flow_steps`` Euler steps), a one-step policy mu(s, z)
trained by ``alpha`` x distillation towards the flow's actions plus a Q loss, and the same 2-head critic as
MeanFlow-QL. One Adam over all networks (lr 3e-4, no gradient clipping, no schedule); the target critic's
EMA moves towards the critic before this step's update; observations are not normalised.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from mfql.agents.base import CRITIC_RANGES, Agent, Batch, Params, sub_params
from mfql.agents.optim import Adam
from mfql.ranges import INT_1, OPEN_FRACTION, POSITIVE, Range


def xavier_dense(in_dim: int, out_dim: int) -> nn.Linear:
    """FQL's ``default_init``: variance_scaling(1, 'fan_avg', 'uniform') kernels, zero biases."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_dim: int, out_dim: int, hidden_dims: tuple[int, ...], layer_norm: bool = False) -> nn.Sequential:
    """FQL's ``MLP`` with a linear output layer: GELU(tanh) after every hidden layer (LayerNorm after it when
    ``layer_norm``), ``default_init`` kernels."""
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [xavier_dense(in_dim, width), nn.GELU(approximate="tanh")]
        layers += [nn.LayerNorm(width, eps=1e-6)] if layer_norm else []
        in_dim = width
    return nn.Sequential(*layers, xavier_dense(in_dim, out_dim))


class VectorField(nn.Module):
    """FQL's ``ActorVectorField``: an MLP on concat(obs, actions[, t]), GELU(tanh) after every hidden layer
    (LayerNorm after it when ``layer_norm``), a linear output."""

    def __init__(self, in_dim: int, action_dim: int, hidden_dims: tuple[int, ...], layer_norm: bool = False):
        super().__init__()
        self.net = mlp(in_dim, action_dim, hidden_dims, layer_norm)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        inputs = [obs, actions] if t is None else [obs, actions, t.reshape(-1, 1)]
        return self.net(torch.cat(inputs, dim=-1))


class FQL(Agent):
    LABEL = "FQL"
    PAPER_NAME = "FQL"
    SWEPT = "alpha"
    PROGRESS = ("critic/loss", "actor/distill_loss", "actor/q")
    RANGES = {**Agent.RANGES, **CRITIC_RANGES, "actor_hidden_dims": Range("widths"), "alpha": POSITIVE,
              "flow_steps": INT_1, "lr": OPEN_FRACTION}
    CHOICES = {"q_agg": ("mean", "min")}  # FQL's q_agg: min, else the mean

    def make_actor(self, obs_dim: int, action_dim: int) -> nn.Module:
        hidden, norm = tuple(self.cfg.actor_hidden_dims), self.cfg.actor_layer_norm
        return nn.ModuleDict({"bc_flow": VectorField(obs_dim + action_dim + 1, action_dim, hidden, norm),
                              "onestep": VectorField(obs_dim + action_dim, action_dim, hidden, norm)})

    def setup(self) -> None:
        # optax.adam over all parameters is per-parameter arithmetic with one shared count: two Adams with
        # the same learning rate, stepped together, are the same optimiser.
        self.actor_opt = Adam(list(self.actor.parameters()), lr=self.cfg.lr)
        self.critic_opt = Adam(list(self.critic.parameters()), lr=self.cfg.lr)
        # FQL feeds raw observations. New tensors, not in place: obs_mean may share memory with the caller's array.
        self.obs_mean, self.obs_std = torch.zeros_like(self.obs_mean), torch.ones_like(self.obs_std)

    # ----------------------------------------------------------------------------------------- sampling
    def draws(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """All random draws of one update: the next actions' noise (critic), then the BC flow's x0 and t and
        the distillation noise (actor)."""
        return {"next_noises": self.noise(batch_size, generator=generator),
                "flow_noises": self.noise(batch_size, generator=generator),
                "times": torch.rand(batch_size, 1, device=self.device, generator=generator),
                "distill_noises": self.noise(batch_size, generator=generator)}

    def one_step(self, obs: torch.Tensor, noise: torch.Tensor, actor_params=None) -> torch.Tensor:
        """mu(s, z), unclipped."""
        net, params = self.actor["onestep"], sub_params(actor_params, "onestep")
        return net(obs, noise) if params is None else functional_call(net, params, (obs, noise))

    def flow_actions(self, obs: torch.Tensor, noises: torch.Tensor, actor_params=None) -> torch.Tensor:
        """The BC flow's actions: ``flow_steps`` Euler steps of v from t = 0, clipped to [-1, 1]."""
        # pixels: the images encoded once for all steps, as FQL (is_encoded=True)
        net, params, obs = self.encode(self.actor["bc_flow"], sub_params(actor_params, "bc_flow"), obs)
        steps, actions = self.cfg.flow_steps, noises
        for i in range(steps):
            t = torch.full((obs.shape[0], 1), i / steps, device=obs.device)
            vels = net(obs, actions, t) if params is None else functional_call(net, params, (obs, actions, t))
            actions = actions + vels / steps
        return actions.clamp(-1.0, 1.0)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, noises: torch.Tensor | None = None,
            generator: torch.Generator | None = None, explore: bool = False) -> torch.Tensor:
        """The one-step policy's action for raw observations ``[B, obs_dim]``; ``noises`` ``[1, B, A]``
        (the evaluation's noise layout, K = 1). Online collection (``explore``) samples the same stochastic
        policy, as FQL does."""
        noise = noises[0] if noises is not None else self.noise(obs.shape[0], generator=generator)
        return self.one_step(obs, noise).clamp(-1.0, 1.0)

    # ------------------------------------------------------------------------------------------- losses
    def critic_loss(self, batch: Batch, params: Params, draws: dict, target: dict):
        with torch.no_grad():
            actor = {k: p.detach() for k, p in params["actor"].items()}
            next_actions = self.one_step(batch["next_observations"], draws["next_noises"], actor).clamp(-1.0, 1.0)
            next_qs = functional_call(self.target_critic, target, (batch["next_observations"], next_actions))
            next_q = next_qs.min(0).values if self.cfg.q_agg == "min" else next_qs.mean(0)
            target_q = batch["rewards"] + self.cfg.discount * batch["masks"] * next_q
        q = functional_call(self.critic, params["critic"], (batch["observations"], batch["actions"]))
        loss = (q - target_q).pow(2).mean()
        return loss, {"critic/loss": loss, "critic/q_mean": q.mean()}

    def bc_flow_loss(self, batch: Batch, params: Params, draws: dict):
        """Flow matching on the data: v(s, x_t, t) regressed on x1 - x0 along x_t = (1 - t) x0 + t x1."""
        x0, x1, t = draws["flow_noises"], batch["actions"], draws["times"]
        x_t = (1.0 - t) * x0 + t * x1
        net, part = self.actor["bc_flow"], sub_params(params["actor"], "bc_flow")
        pred = functional_call(net, part, (batch["observations"], x_t, t))
        loss = (pred - (x1 - x0)).pow(2).mean()
        return loss, {"actor/bc_loss": loss}

    def actor_loss(self, batch: Batch, params: Params, draws: dict):
        obs = batch["observations"]
        bc_flow, bc_info = self.bc_flow_loss(batch, params, draws)
        with torch.no_grad():  # the distillation target: the BC flow's actions for the same noise
            frozen = {k: p.detach() for k, p in params["actor"].items()}
            target_actions = self.flow_actions(obs, draws["distill_noises"], frozen)
        actions = self.one_step(obs, draws["distill_noises"], params["actor"])
        distill = (actions - target_actions).pow(2).mean()
        q_loss, q = self.q_term(obs, actions, params)
        loss = bc_flow + self.cfg.alpha * distill + q_loss
        return loss, {"actor/loss": loss, **bc_info, "actor/distill_loss": distill, "actor/q_loss": q_loss,
                      "actor/q": q.mean()}

    def total_loss(self, batch: Batch, params: Params, draws: dict, state: dict):
        critic, critic_info = self.critic_loss(batch, params, draws, state["target_critic"])
        actor, actor_info = self.actor_loss(batch, params, draws)
        total = critic + actor
        return total, ({**critic_info, **actor_info, "total_loss": total}, {})

    # ------------------------------------------------------------------------------------------- update
    @torch.no_grad()
    def update_on_device(self, batch: Batch, draws: dict, state: dict | None = None, foreach: bool = True) -> dict:
        """The update as one function of device tensors, in place on ``state`` (as MeanFlowQL's)."""
        state = state if state is not None else self.state()
        grads, metrics, _ = self.gradients(batch, draws, state)
        self.soft_update(state, foreach)  # FQL: the EMA moves towards the critic before this update
        self.adam_steps(state, {name: grads[name].values() for name in self.NETWORKS}, foreach)
        state["update_count"].add_(1)
        return {k: v.detach() for k, v in metrics.items()}
