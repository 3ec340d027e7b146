"""MeanFlow-QL agent: residual one-step policy g(s, a_t, t) + 2-head critic, one combined update (spec a.2-a.15).

Every loss and the action sampler take their random draws (noises, times) as optional arguments so that
identical draws can be fed when comparing against another implementation.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch.nn import functional as F

from mfql.networks import Critic, make_actor
from mfql.schedules import AlphaController, actor_lr

Batch = dict[str, torch.Tensor]


@contextlib.contextmanager
def frozen(module: torch.nn.Module):
    """Let gradients flow through ``module`` to its inputs but not into its parameters."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def clip_grad_global_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """optax ``clip_by_global_norm``: scale by max_norm / norm only when norm exceeds max_norm."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.where(norm < max_norm, torch.ones_like(norm), max_norm / norm)
    torch._foreach_mul_(grads, scale)
    return norm


class MeanFlowQL:
    def __init__(self, cfg, obs_dim: int, action_dim: int, obs_mean, obs_std, pretrain_steps: int,
                 device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.official = cfg.parity == "official"
        self.device = torch.device(device)
        self.action_dim = action_dim
        self.actor = make_actor(cfg.actor, obs_dim, action_dim, cfg).to(self.device)
        self.critic = Critic(obs_dim, action_dim, tuple(cfg.critic_hidden_dims), cfg.num_q_heads).to(self.device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.obs_mean = torch.as_tensor(obs_mean, dtype=torch.float32, device=self.device)
        self.obs_std = torch.as_tensor(obs_std, dtype=torch.float32, device=self.device)
        self.pretrain_steps = pretrain_steps
        # The official code hard-codes the critic LR at 3e-4; the paper's Table 6 says 1e-4.
        self.critic_lr = cfg.critic_lr if cfg.critic_lr is not None else (3e-4 if self.official else 1e-4)
        adam = dict(betas=(0.9, 0.999), eps=1e-8)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=0.0, **adam)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.critic_lr, **adam)
        self.alpha_ctl = AlphaController(
            cfg.alpha, pretrain_steps, cfg.alpha_warmup_frac if self.official else cfg.alpha_warmup_frac_corrected,
            cfg.alpha_update_interval, cfg.alpha_loss_threshold, cfg.alpha_increase, cfg.alpha_decrease,
            cfg.alpha_window, tuple(cfg.alpha_bounds), cfg.dynamic_alpha, official_window=self.official)
        # Target candidates: the official jit falls back to the full K; the code meant K // 2.
        self.target_candidates = cfg.num_candidates if self.official else max(1, cfg.num_candidates // 2)
        self.update_count = 0

    # ----------------------------------------------------------------------------------------- sampling
    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def noise(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(*shape, self.action_dim, device=self.device, generator=generator) * self.cfg.sigma

    def one_step(self, obs_n: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The one-step action g(s, e, t=1)."""
        return self.actor(obs_n, noise, torch.ones(noise.shape[0], device=self.device))

    def best_of_k(self, obs_n: torch.Tensor, num: int, noises: torch.Tensor | None = None):
        """Value-guided best-of-K with the target critic (spec a.8/a.9).

        ``noises`` has shape ``[K, B, action_dim]``. Returns the chosen actions ``[B, A]`` and the target
        critic's per-head values at them ``[heads, B]``. Scores always reduce over the head axis.
        """
        batch = obs_n.shape[0]
        if noises is None:
            noises = self.noise(num, batch)
        obs_rep = obs_n.unsqueeze(0).expand(num, -1, -1).reshape(num * batch, -1)
        actions = self.one_step(obs_rep, noises.reshape(num * batch, -1)).clamp(-1.0, 1.0)
        q = self.target_critic(obs_rep, actions).reshape(-1, num, batch)
        best = q.mean(0).argmax(0)
        cols = torch.arange(batch, device=self.device)
        return actions.reshape(num, batch, -1)[best, cols], q[:, best, cols]

    @torch.no_grad()
    def act(self, obs: torch.Tensor, noises: torch.Tensor | None = None,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Action for raw observations ``[B, obs_dim]`` (evaluation and online collection)."""
        num = self.cfg.num_candidates
        obs_n = self.normalize(obs)
        if noises is None:
            noises = self.noise(num, obs.shape[0], generator=generator)
        return self.best_of_k(obs_n, num, noises)[0].clamp(-1.0, 1.0)

    # ------------------------------------------------------------------------------------------- losses
    def critic_loss(self, batch: Batch, target_noises: torch.Tensor | None = None):
        with torch.no_grad():
            next_obs_n = self.normalize(batch["next_observations"])
            _, next_qs = self.best_of_k(next_obs_n, self.target_candidates, target_noises)
            next_q = {"mean": next_qs.mean(0), "min": next_qs.min(0).values,
                      "max": next_qs.max(0).values}[self.cfg.q_agg]
            target = batch["rewards"] + self.cfg.discount * batch["masks"] * next_q
        q = self.critic(self.normalize(batch["observations"]), batch["actions"])
        loss = (q - target).pow(2).mean()
        return loss, {"critic/loss": loss, "critic/q_mean": q.mean()}

    def flow_loss(self, batch: Batch, times: torch.Tensor | None = None, noises: torch.Tensor | None = None):
        """MeanFlow-identity loss with b = 0 and the adaptive L2 weight (spec a.2-a.4)."""
        obs_n = self.normalize(batch["observations"])
        actions = batch["actions"]
        batch_size = actions.shape[0]
        if times is None:
            times = self.sample_times(batch_size)
        if noises is None:
            noises = self.noise(batch_size)
        g, target = self.mfi_output_and_target(obs_n, actions, times, noises)
        err = (g - target).pow(2).mean(-1).clamp_min(1e-12)
        weight = (err + self.cfg.adaptive_c).pow(1.0 - self.cfg.adaptive_gamma).clamp_min(1e-12).reciprocal()
        loss = (weight.clamp(1e-6, 1e6).detach() * err).mean()
        return loss, {"flow/mfi_loss": loss, "flow/raw_mse": err.mean()}

    def mfi_output_and_target(self, obs_n, actions, times, noises):
        """g(s, a_t, t) (differentiable) and its target a_t + (t - 1) v - t dg/dt (detached, clipped).

        One forward-mode JVP along the tangent (v, 1) of (a_t, t) gives g and dg/dt together.
        """
        t = times.reshape(-1, 1)
        a_t = (1.0 - t) * actions + t * noises
        v = noises - actions
        g, dg_dt = torch.func.jvp(lambda z, tt: self.actor(obs_n, z, tt), (a_t, times), (v, torch.ones_like(times)))
        target = (a_t + (t - 1.0) * v - t * dg_dt).detach().clamp(-self.cfg.target_clip, self.cfg.target_clip)
        return g, target

    def sample_times(self, batch_size: int) -> torch.Tensor:
        """t on the grid {1/T, ..., 1} when T <= 1000, else continuous U(0, 1) (spec a.3)."""
        steps = self.cfg.time_steps
        if steps <= 1000:
            return torch.randint(1, steps + 1, (batch_size,), device=self.device).float() / steps
        return torch.rand(batch_size, device=self.device)

    def actor_loss(self, batch: Batch, noises: torch.Tensor | None = None):
        obs_n = self.normalize(batch["observations"])
        if noises is None:
            noises = self.noise(obs_n.shape[0])
        actions = self.one_step(obs_n, noises)
        bound = F.relu(actions - 1.0).mean() + F.relu(-1.0 - actions).mean()
        with frozen(self.critic):
            q = self.critic(obs_n, actions.clamp(-1.0, 1.0)).mean(0)
        q_loss = -q.mean()
        if self.cfg.normalize_q_loss:
            q_loss = q_loss / q.abs().mean().detach()
        loss = q_loss + self.cfg.bound_loss_weight * bound
        return loss, {"actor/loss": loss, "actor/q": q.mean(), "actor/bound_loss": bound}

    # ------------------------------------------------------------------------------------------- update
    def update(self, batch: Batch, step: int, draws: dict[str, torch.Tensor] | None = None) -> dict:
        """One gradient step on critic_loss + actor_loss + alpha * flow_loss; ``step`` drives the alpha events."""
        draws = draws or {}
        flow, info = self.flow_loss(batch, draws.get("times"), draws.get("flow_noises"))
        # .item() syncs the device, so only read the loss at alpha events.
        alpha = self.alpha_ctl.update(step, flow.item()) if self.alpha_ctl.is_event(step) else self.alpha_ctl.alpha
        critic, critic_info = self.critic_loss(batch, draws.get("target_noises"))
        actor, actor_info = self.actor_loss(batch, draws.get("actor_noises"))
        total = critic + actor + alpha * flow

        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        total.backward()
        grad_norms = {
            "actor/grad_norm": clip_grad_global_norm(list(self.actor.parameters()), self.cfg.grad_clip),
            "critic/grad_norm": clip_grad_global_norm(list(self.critic.parameters()), self.cfg.grad_clip),
        }
        lr = actor_lr(self.update_count, self.cfg.lr, self.cfg.lr_min_ratio, self.pretrain_steps,
                      self.cfg.lr_warmup_frac)
        for group in self.actor_opt.param_groups:
            group["lr"] = lr
        if not self.official:
            self.soft_update()  # FQL: EMA towards the pre-update online critic
        self.actor_opt.step()
        self.critic_opt.step()
        if self.official:
            self.soft_update()  # official: EMA towards the updated online critic
        self.update_count += 1
        metrics = {**info, **critic_info, **actor_info, **grad_norms, "total_loss": total}
        return {**{k: v.detach() for k, v in metrics.items()}, "alpha": alpha, "actor/lr": lr}

    @torch.no_grad()
    def soft_update(self) -> None:
        target = list(self.target_critic.parameters())
        torch._foreach_lerp_(target, list(self.critic.parameters()), self.cfg.tau)

    # ------------------------------------------------------------------------------------------ state
    def weights(self) -> dict:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "target_critic": self.target_critic.state_dict(),
                "obs_norm": {"mean": self.obs_mean, "std": self.obs_std}}

    def state_dict(self) -> dict:
        return {**self.weights(), "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(), "alpha": self.alpha_ctl.state_dict(),
                "update_count": self.update_count}

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.obs_mean = state["obs_norm"]["mean"].to(self.device)
        self.obs_std = state["obs_norm"]["std"].to(self.device)
        if "actor_opt" in state:
            self.actor_opt.load_state_dict(state["actor_opt"])
            self.critic_opt.load_state_dict(state["critic_opt"])
            self.alpha_ctl.load_state_dict(state["alpha"])
            self.update_count = int(state["update_count"])
