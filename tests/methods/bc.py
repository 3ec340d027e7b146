"""Deterministic behaviour cloning: a tanh-squashed MLP a(s) regressed on the dataset's actions, no critic, and
a target copy of the policy that moves only every ``target_every``-th update (as a delayed target, e.g. TD3's).

It exists to prove the seam between a method and the rest of mfql: this module and method/bc.yaml are all it
takes, and it passes the whole conformance suite. The target policy plays no part in the loss: it is there to
show a target other than the critic's, and a part of the update that runs every n-th step.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from mfql.agents import register
from mfql.agents.base import Agent, Batch, Params
from mfql.agents.optim import Adam
from mfql.ranges import INT_1, OPEN_FRACTION, Range


class BehaviourCloning(Agent):
    LABEL = "BC"
    ROLE = "test"  # neither the paper's method nor one of its baselines: no claims, no benchmark
    PROGRESS = ("actor/loss",)
    NETWORKS = ("actor",)
    TARGETS = ("actor",)
    RANGES = {**Agent.RANGES, "hidden_dims": Range("widths"), "lr": OPEN_FRACTION, "tau": OPEN_FRACTION,
              "target_every": INT_1}

    def make_actor(self, obs_dim: int, action_dim: int) -> nn.Module:
        layers: list[nn.Module] = []
        for width in self.cfg.hidden_dims:
            layers += [nn.Linear(obs_dim, width), nn.GELU()]
            obs_dim = width
        return nn.Sequential(*layers, nn.Linear(obs_dim, action_dim), nn.Tanh())

    def setup(self) -> None:
        self.actor_opt = Adam(list(self.actor.parameters()), lr=self.cfg.lr)

    def draws(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return {}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, noises: torch.Tensor | None = None, generator: torch.Generator | None = None,
            explore: bool = False) -> torch.Tensor:
        return self.actor(self.normalize(obs))

    def bc_loss(self, batch: Batch, params: Params, draws: dict):
        actions = functional_call(self.actor, params["actor"], (self.normalize(batch["observations"]),))
        loss = (actions - batch["actions"]).pow(2).mean()
        return loss, {"actor/loss": loss}

    def total_loss(self, batch: Batch, params: Params, draws: dict, state: dict):
        loss, info = self.bc_loss(batch, params, draws)
        return loss, ({**info, "total_loss": loss}, {})

    @torch.no_grad()
    def update_on_device(self, batch: Batch, draws: dict, state: dict | None = None, foreach: bool = True) -> dict:
        state = state if state is not None else self.state()
        grads, metrics, _ = self.gradients(batch, draws, state)
        self.adam_steps(state, {"actor": grads["actor"].values()}, foreach)
        state["update_count"].add_(1)
        due = state["update_count"] % self.cfg.target_every == 0
        self.soft_update(state, foreach, rate=torch.where(due, self.cfg.tau, 0.0))
        return {k: v.detach() for k, v in metrics.items()}


register("bc", BehaviourCloning, config_root=Path(__file__).parent)
