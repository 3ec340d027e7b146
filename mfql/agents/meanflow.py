"""MeanFlow-QL agent: residual one-step policy g(s, a_t, t) + 2-head critic, one combined update
(docs/method.md, "Policy and loss").

The losses take the parameters they differentiate (``params``, as FQL's ``grad_params``) and their random
draws (noises, times) as arguments, so the update is one pure function of device tensors: gradients by
``torch.func.grad``, per-group clipping, Adam, EMA and the alpha controller all in tensor ops. It never reads
a value back to the host and, with ``compile=True``, runs as one compiled graph.
"""

from __future__ import annotations

import math

import torch
from omegaconf import ListConfig
from torch.func import functional_call
from torch.nn import functional as F

from mfql.agents.base import CRITIC_RANGES, Agent, Batch, Params
from mfql.agents.networks import make_actor
from mfql.agents.optim import Adam, clip_by_global_norm
from mfql.agents.schedules import AlphaController, actor_lr
from mfql.errors import ConfigError
from mfql.ranges import FRACTION, INT_1, NONNEGATIVE, OPEN_FRACTION, POSITIVE, Range


class MeanFlowQL(Agent):
    LABEL = "MeanFlow-QL"
    PAPER_NAME = "MFQL"
    ROLE = "proposed"
    SWEPT = "alpha"
    PROGRESS = ("critic/loss", "actor/bc_loss", "actor/q")
    RANGES = {
        **Agent.RANGES, **CRITIC_RANGES,
        "actor_hidden_dim": INT_1, "actor_depth": INT_1, "actor_num_heads": INT_1, "actor_mlp_ratio": POSITIVE,
        "actor_residual_scale": FRACTION, "mlp_actor_hidden_dims": Range("widths"), "time_steps": INT_1,
        "target_clip": POSITIVE, "adaptive_gamma": FRACTION, "adaptive_c": POSITIVE, "alpha": POSITIVE,
        "alpha_update_interval": INT_1, "alpha_loss_threshold": Range("number", 1),
        "alpha_increase": Range("number", 1), "alpha_decrease": OPEN_FRACTION, "alpha_window": INT_1,
        "alpha_warmup_frac": FRACTION, "alpha_warmup_frac_corrected": FRACTION, "num_candidates": INT_1,
        "bound_loss_weight": NONNEGATIVE, "lr": OPEN_FRACTION, "lr_min_ratio": FRACTION,
        "lr_warmup_frac": FRACTION, "critic_lr": Range("number", 0, 1, low_open=True, nullable=True),
        "grad_clip": POSITIVE,
    }
    CHOICES = {"actor": ("dit", "mlp"), "q_agg": ("mean", "min", "max")}

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        bounds = cfg.alpha_bounds
        ok = (isinstance(bounds, ListConfig) and len(bounds) == 2
              and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
              and 0 < bounds[0] <= 1 <= bounds[1])
        if not ok:
            shown = list(bounds) if isinstance(bounds, ListConfig) else bounds
            raise ConfigError(f"agent.alpha_bounds={shown!r} is not valid (valid: [lo, hi] with 0 < lo <= 1 <= hi, "
                              "multiples of agent.alpha)")
        if cfg.actor_hidden_dim % cfg.actor_num_heads:
            raise ConfigError(f"agent.actor_num_heads={cfg.actor_num_heads!r} is not valid (valid: a divisor of "
                              f"agent.actor_hidden_dim={cfg.actor_hidden_dim})")

    @classmethod
    def first_step(cls, parity: str) -> int:
        """The official loop also updates (with actor LR 0) at step 0; with parity=corrected it starts at 1."""
        return 0 if parity == "official" else 1

    @classmethod
    def summary(cls, cfg) -> dict:
        return {"actor": cfg.actor, "alpha": float(cfg.alpha)}

    def start_warnings(self, offline_steps: int) -> list[str]:
        ctl = self.alpha_ctl
        if not ctl.unfilled_after_warmup():
            return []
        return [f"with parity=official and offline_steps={offline_steps} the alpha controller's warm-up "
                f"({ctl.warmup} steps) ends before its history is full ({ctl.interval * len(ctl.history)} steps), "
                f"and alpha then grows x{ctl.increase:g} at each event until it is about half full (the official "
                "code's averaging, docs/method.md); agent.dynamic_alpha=false keeps alpha at the task's value"]

    @property
    def candidates(self) -> int:
        return self.cfg.num_candidates

    def make_actor(self, obs_dim: int, action_dim: int) -> torch.nn.Module:
        return make_actor(self.cfg.actor, obs_dim, action_dim, self.cfg)

    def setup(self) -> None:
        cfg = self.cfg
        official = cfg.parity == "official"
        # The official code hard-codes the critic LR at 3e-4; the paper's Table 6 says 1e-4.
        self.critic_lr = cfg.critic_lr if cfg.critic_lr is not None else (3e-4 if official else 1e-4)
        self.actor_opt = Adam(list(self.actor.parameters()), lr=0.0)
        self.critic_opt = Adam(list(self.critic.parameters()), lr=self.critic_lr)
        self.alpha_ctl = AlphaController(
            cfg.alpha, self.pretrain_steps,
            cfg.alpha_warmup_frac if official else cfg.alpha_warmup_frac_corrected,
            cfg.alpha_update_interval, cfg.alpha_loss_threshold, cfg.alpha_increase, cfg.alpha_decrease,
            cfg.alpha_window, tuple(cfg.alpha_bounds), cfg.dynamic_alpha, official_window=official,
            device=self.device)
        # Target candidates: the official jit falls back to the full K; the code meant K // 2.
        self.target_candidates = cfg.num_candidates if official else max(1, cfg.num_candidates // 2)
        # The official EMA moves the target towards the updated critic; FQL's towards the pre-update one.
        self.ema_before_step = not official

    # ----------------------------------------------------------------------------------------- sampling
    def sample_times(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """t on the grid {1/T, ..., 1} when T <= 1000, else continuous U(0, 1) (docs/method.md: time sampling)."""
        steps = self.cfg.time_steps
        if steps <= 1000:
            return torch.randint(1, steps + 1, (batch_size,), device=self.device, generator=generator).float() / steps
        return torch.rand(batch_size, device=self.device, generator=generator)

    def draws(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """All random draws of one update, in the order the eager reference drew them."""
        return {"times": self.sample_times(batch_size, generator), "flow_noises": self.noise(batch_size,
                                                                                               generator=generator),
                "target_noises": self.noise(self.target_candidates, batch_size, generator=generator),
                "actor_noises": self.noise(batch_size, generator=generator)}

    def one_step(self, obs_n: torch.Tensor, noise: torch.Tensor, actor_params=None, actor=None) -> torch.Tensor:
        """The one-step action g(s, e, t=1); ``actor``: the network if not the whole actor (an encoded
        actor's inner network, on encoded observations). One t for the whole batch: the DiT computes its
        t-conditioning once instead of per row (a fifth of the paper model's update FLOPs)."""
        actor = self.actor if actor is None else actor
        one = torch.ones(1, device=noise.device)
        if actor_params is None:
            return actor(obs_n, noise, one)
        return functional_call(actor, actor_params, (obs_n, noise, one))

    def best_of_k(self, obs_n: torch.Tensor, noises: torch.Tensor, state: dict | None = None):
        """Value-guided best-of-K with the target critic (docs/method.md: critic loss, acting).

        ``noises`` has shape ``[K, B, action_dim]``. Returns the chosen actions ``[B, A]`` and the target
        critic's per-head values at them ``[heads, B]``. Scores always reduce over the head axis. ``state``
        (default: the agent's own) gives the actor and target critic parameters.
        """
        num, batch = noises.shape[:2]

        def repeat(x):  # [B, ...] -> [K * B, ...], candidate-major
            return x.unsqueeze(0).expand(num, *x.shape).reshape(num * batch, *x.shape[1:])

        # pixels: each network's encoder runs once on the B images, not on K copies
        actor, actor_params, actor_in = self.encode(self.actor, state["actor"] if state is not None else None, obs_n)
        target = state["target_critic"] if state is not None else dict(self.target_critic.named_parameters())
        critic, target, critic_in = self.encode(self.target_critic, target, obs_n)
        actions = self.one_step(repeat(actor_in), noises.reshape(num * batch, -1), actor_params, actor)
        actions = actions.clamp(-1.0, 1.0)
        q = functional_call(critic, target, (repeat(critic_in), actions)).reshape(-1, num, batch)
        best = q.mean(0).argmax(0)
        cols = torch.arange(batch, device=obs_n.device)
        return actions.reshape(num, batch, -1)[best, cols], q[:, best, cols]

    @torch.no_grad()
    def act(self, obs: torch.Tensor, noises: torch.Tensor | None = None,
            generator: torch.Generator | None = None, explore: bool = False) -> torch.Tensor:
        """Action for raw observations ``[B, obs_dim]``: value-guided best-of-K, for evaluation and online
        collection (``explore``) alike, as the official code."""
        if noises is None:
            noises = self.noise(self.cfg.num_candidates, obs.shape[0], generator=generator)
        return self.best_of_k(self.normalize(obs), noises)[0].clamp(-1.0, 1.0)

    # ------------------------------------------------------------------------------------------- losses
    def critic_loss(self, batch: Batch, params: Params, draws: dict, target: dict | None = None):
        with torch.no_grad():
            next_obs_n = self.normalize(batch["next_observations"])
            state = {"actor": {k: p.detach() for k, p in params["actor"].items()},
                     "target_critic": target if target is not None else dict(self.target_critic.named_parameters())}
            _, next_qs = self.best_of_k(next_obs_n, draws["target_noises"], state)
            next_q = {"mean": next_qs.mean(0), "min": next_qs.min(0).values,
                      "max": next_qs.max(0).values}[self.cfg.q_agg]
            target = batch["rewards"] + self.cfg.discount * batch["masks"] * next_q
        q = functional_call(self.critic, params["critic"], (self.normalize(batch["observations"]), batch["actions"]))
        loss = (q - target).pow(2).mean()
        return loss, {"critic/loss": loss, "critic/q_mean": q.mean()}

    def flow_loss(self, batch: Batch, params: Params, draws: dict):
        """MeanFlow-identity loss with b = 0 and the adaptive L2 weight (docs/method.md: MFI target, adaptive
        L2 weight)."""
        obs_n = self.normalize(batch["observations"])
        g, target = self.mfi_output_and_target(obs_n, batch["actions"], draws["times"], draws["flow_noises"],
                                               params["actor"])
        err = (g - target).pow(2).mean(-1).clamp_min(1e-12)
        weight = (err + self.cfg.adaptive_c).pow(1.0 - self.cfg.adaptive_gamma).clamp_min(1e-12).reciprocal()
        loss = (weight.clamp(1e-6, 1e6).detach() * err).mean()
        return loss, {"actor/bc_loss": loss, "actor/bc_mse": err.mean()}

    def mfi_output_and_target(self, obs_n, actions, times, noises, actor_params=None):
        """g(s, a_t, t) (differentiable) and its target a_t + (t - 1) v - t dg/dt (detached, clipped).

        One forward-mode JVP along the tangent (v, 1) of (a_t, t) gives g and dg/dt together.
        """
        actor_params = dict(self.actor.named_parameters()) if actor_params is None else actor_params
        t = times.reshape(-1, 1)
        a_t = (1.0 - t) * actions + t * noises
        v = noises - actions
        g, dg_dt = torch.func.jvp(lambda z, tt: functional_call(self.actor, actor_params, (obs_n, z, tt)),
                                  (a_t, times), (v, torch.ones_like(times)))
        target = (a_t + (t - 1.0) * v - t * dg_dt).detach().clamp(-self.cfg.target_clip, self.cfg.target_clip)
        return g, target

    def actor_loss(self, batch: Batch, params: Params, draws: dict):
        obs_n = self.normalize(batch["observations"])
        actions = self.one_step(obs_n, draws["actor_noises"], params["actor"])
        bound = F.relu(actions - 1.0).mean() + F.relu(-1.0 - actions).mean()
        q_loss, q = self.q_term(obs_n, actions, params)
        loss = q_loss + self.cfg.bound_loss_weight * bound
        return loss, {"actor/q_loss": q_loss, "actor/q": q.mean(), "actor/bound_loss": bound}

    def total_loss(self, batch: Batch, params: Params, draws: dict, state: dict):
        """critic_loss + actor_loss + alpha * flow_loss, with alpha from the controller at this step's MFI loss;
        the controller's next state is the carry."""
        flow, info = self.flow_loss(batch, params, draws)
        # The controller's state comes in as an argument and leaves as a result: a gradient transform may not
        # change a tensor it did not receive.
        alpha_state = self.alpha_ctl.next_state(self.step, flow, state["alpha"])
        critic, critic_info = self.critic_loss(batch, params, draws, state["target_critic"])
        actor, actor_info = self.actor_loss(batch, params, draws)
        weighted_bc = alpha_state["alpha"].squeeze(0).to(flow.dtype) * flow
        total = critic + actor + weighted_bc
        # actor/loss: the actor's whole loss, BC term included, as every method logs it (a logged value only:
        # the gradient follows total)
        actor_info["actor/loss"] = actor + weighted_bc
        return total, ({**info, **critic_info, **actor_info, "total_loss": total}, alpha_state)

    # ------------------------------------------------------------------------------------------- update
    def state(self) -> dict:
        return {**super().state(), "alpha": self.alpha_ctl.state_dict()}

    @torch.no_grad()
    def update_on_device(self, batch: Batch, draws: dict, state: dict | None = None, foreach: bool = True) -> dict:
        """The update as one function of device tensors, in place on ``state`` (default: the agent's own;
        compiled as a whole with ``compile=True``; vmapped over a leading seed axis by ``PackedUpdate``)."""
        state = state if state is not None else self.state()
        grads, metrics, alpha_state = self.gradients(batch, draws, state)
        for name, value in alpha_state.items():
            state["alpha"][name].copy_(value)
        metrics["alpha"] = alpha_state["alpha"].squeeze(0)
        actor_grads, metrics["actor/grad_norm"] = clip_by_global_norm(list(grads["actor"].values()),
                                                                     self.cfg.grad_clip, foreach)
        critic_grads, metrics["critic/grad_norm"] = clip_by_global_norm(list(grads["critic"].values()),
                                                                       self.cfg.grad_clip, foreach)
        lr = actor_lr(state["update_count"], self.cfg.lr, self.cfg.lr_min_ratio, self.pretrain_steps,
                      self.cfg.lr_warmup_frac)
        state["actor_opt"]["lr"].copy_(lr)
        if self.ema_before_step:
            self.soft_update(state, foreach)
        self.adam_steps(state, {"actor": actor_grads, "critic": critic_grads}, foreach)
        if not self.ema_before_step:
            self.soft_update(state, foreach)
        state["update_count"].add_(1)
        return {**{k: v.detach() for k, v in metrics.items()}, "actor/lr": lr}

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {**super().state_dict(), "alpha": self.alpha_ctl.state_dict()}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "alpha" in state:
            self.alpha_ctl.load_state_dict(state["alpha"])
