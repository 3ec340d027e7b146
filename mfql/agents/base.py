"""What the methods share: the 2-head critic and its target, the Q term of the actor loss, Adam on device
tensors, the update as one pure function of device tensors (eager, compiled, or vmapped over packed seeds),
checkpoints, and what the rest of mfql asks a method (its label, ranges, first step, summary).

A method implements ``make_actor``, ``setup`` (an optimiser ``<name>_opt`` per network of ``NETWORKS``, and its
own state), its losses and ``total_loss``, ``draws`` (every random draw of one update), ``update_on_device`` and
``act(obs, noises, generator, explore)`` (``explore``: an online collection step, else an evaluation). Every loss takes
``(batch, params, draws, ...)``, ``params`` being the parameters it differentiates (FQL's ``grad_params``);
``total_loss(batch, params, draws, state)`` returns ``(total, (metrics, carry))``, where ``carry`` is state the
loss computed and the update writes back (MeanFlow-QL's alpha controller; nothing for FQL).
"""

from __future__ import annotations

import copy

import torch
from torch.func import functional_call, grad_and_value
from torch.utils._pytree import tree_leaves

from mfql.agents.encoders import ENCODERS, make_encoder
from mfql.agents.networks import Critic
from mfql.agents.optim import adam_step
from mfql.errors import ConfigError
from mfql.ranges import INT_1, OPEN_FRACTION, POSITIVE, Range, check_choices, check_ranges

Batch = dict[str, torch.Tensor]
Params = dict[str, dict[str, torch.Tensor]]
# the agent.* options of the 2-head critic (``Critic``) and its target, for the methods that have them
CRITIC_RANGES: dict[str, Range] = {"critic_hidden_dims": Range("widths"), "num_q_heads": INT_1,
                                   "discount": OPEN_FRACTION, "tau": OPEN_FRACTION}


def compile_update(update, device: torch.device, written: list[torch.Tensor]):
    """``update`` compiled as one graph; on CUDA replayed as a CUDA graph ("reduce-overhead"), for which every
    tensor it writes in place (``written``) is marked static: a fixed address between replays."""
    if device.type != "cuda":
        # The C++ wrapper calls the graph's kernels without Python in between: on the 2-core CPU it was
        # measured 1.14x (small model) and 1.38x (paper model) faster than the Python wrapper, for a longer
        # first compile (about 4 min instead of 2 for the paper model; cached afterwards).
        return torch.compile(update, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})
    for tensor in written:
        torch._dynamo.mark_static_address(tensor)
    return torch.compile(update, fullgraph=True, dynamic=False, mode="reduce-overhead")


def sub_params(params: dict | None, name: str) -> dict | None:
    """The parameters of submodule ``name`` out of a module's named parameters (None stays None)."""
    if params is None:
        return None
    prefix = name + "."
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


class Encoded(torch.nn.Module):
    """A network on encoded images: ``net(encoder(images), *rest)``, the encoder owned by this network (FQL
    gives the critic and each actor network its own encoder, trained by that network's loss only)."""

    def __init__(self, encoder: torch.nn.Module, net: torch.nn.Module):
        super().__init__()
        self.encoder, self.net = encoder, net

    def forward(self, images: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        return self.net(self.encoder(images), *rest)


class Agent:
    LABEL = ""                # the method's name for people, in logs, tables and figures
    PAPER_NAME: str | None = None  # its name in the paper's tables (config/expected/paper_results.csv), if any
    # "proposed": the paper's method, which the claims compare with each "baseline"; any other: neither
    ROLE = "baseline"
    # the agent.* option that weighs behaviour cloning against Q, the one the α sweep tunes (None: not swept)
    SWEPT: str | None = None
    PROGRESS: tuple[str, ...] = ("critic/loss",)  # metrics shown beside the progress bar
    # valid values of the agent.* options every method reads (a method adds its own, CRITIC_RANGES if it has one)
    RANGES: dict[str, Range] = {"batch_size": INT_1, "sigma": POSITIVE}
    CHOICES: dict[str, tuple] = {}
    # the batch's fields the update reads ("next_actions" too for a method that needs them, e.g. ReBRAC's critic)
    BATCH_FIELDS: tuple[str, ...] = ("observations", "actions", "rewards", "masks", "next_observations")
    NETWORKS: tuple[str, ...] = ("actor", "critic")  # trained networks, each with its optimiser ``<name>_opt``
    TARGETS: tuple[str, ...] = ("critic",)  # networks with a target copy ``target_<name>`` (moved by soft_update)

    @classmethod
    def check_config(cls, cfg) -> None:
        """One line naming the first ``agent.*`` option out of its range or choices (cfg: the run's agent)."""
        check_ranges(cfg, cls.RANGES, prefix="agent.")
        check_choices(cfg, cls.CHOICES, prefix="agent.")
        if cfg.get("encoder") is not None and cfg.encoder not in ENCODERS:
            raise ConfigError(f"agent.encoder={cfg.encoder!r} is not valid (valid: null or one of "
                              f"{', '.join(ENCODERS)})")

    @classmethod
    def first_step(cls, parity: str) -> int:
        """The training loop's first step (the loop updates at every step from it to the last)."""
        return 1

    @classmethod
    def summary(cls, cfg) -> dict:
        """What a results table says of a run's agent (cfg: its agent config): its actor and its alpha."""
        return {"actor": cls.LABEL, "alpha": float(cfg.get(cls.SWEPT, "nan") if cls.SWEPT else "nan")}

    def start_warnings(self, offline_steps: int) -> list[str]:
        """Messages worth a warning at the start of a run with this configuration."""
        return []

    @property
    def candidates(self) -> int:
        """Noise draws per action (``act``'s ``noises`` is ``[candidates, B, A]``)."""
        return 1

    def __init__(self, cfg, obs_dim: int | tuple, action_dim: int, obs_mean, obs_std, pretrain_steps: int,
                 device: str | torch.device = "cpu", compile: bool = False):
        """``obs_dim``: the width of state observations, or the (H, W, C) shape of (stacked) images when
        ``cfg.encoder`` names an image encoder."""
        self.cfg = cfg
        self.device = torch.device(device)
        self.action_dim = action_dim
        self.pretrain_steps = pretrain_steps
        self.image_shape = tuple(obs_dim) if cfg.get("encoder") else None
        features = ENCODERS[cfg.encoder]["mlp_hidden_dims"][-1] if self.image_shape else obs_dim
        # first the actor: the seed's first draws
        self.actor = self.encoded(self.make_actor(features, action_dim)).to(self.device)
        if "critic" in self.NETWORKS:
            self.critic = self.encoded(Critic(features, action_dim, tuple(cfg.critic_hidden_dims),
                                                   cfg.num_q_heads)).to(self.device)
        for name in self.TARGETS:
            setattr(self, f"target_{name}", copy.deepcopy(getattr(self, name)).requires_grad_(False))
        self.obs_mean = torch.as_tensor(obs_mean, dtype=torch.float32).to(self.device)
        self.obs_std = torch.as_tensor(obs_std, dtype=torch.float32).to(self.device)
        self.setup()  # the method's optimisers and own state
        self.update_count = torch.zeros((), dtype=torch.long, device=self.device)
        self.step = torch.zeros((), dtype=torch.long, device=self.device)  # the loop's step, written by update()
        self.cuda_graphs = compile and self.device.type == "cuda"
        # torch.func.grad where the update is compiled or vmapped (packed seeds); plain autograd otherwise.
        self.grad_transform = compile
        self.compiled = compile
        if compile:  # the compiled program stands in for the method's own, under its name
            written = [*tree_leaves(self.state()), self.step]
            self.update_on_device = compile_update(self.update_on_device, self.device, written)

    def make_actor(self, obs_dim: int, action_dim: int) -> torch.nn.Module:
        raise NotImplementedError

    def encoded(self, module: torch.nn.Module) -> torch.nn.Module:
        """For pixel observations, each network (each of a ModuleDict's) behind an encoder of its own."""
        if self.image_shape is None:
            return module
        if isinstance(module, torch.nn.ModuleDict):
            return torch.nn.ModuleDict({name: self.encoded(net) for name, net in module.items()})
        return Encoded(make_encoder(self.cfg.encoder, self.image_shape), module)

    def setup(self) -> None:
        raise NotImplementedError

    def params(self) -> Params:
        return {"actor": dict(self.actor.named_parameters()), "critic": dict(self.critic.named_parameters())}

    def encode(self, module: torch.nn.Module, params: dict | None, obs: torch.Tensor):
        """(network, its parameters or None, its input) with pixel observations encoded once: the encoder of an
        ``Encoded`` network applied here, its inner network returned, for callers that use the encoding many
        times (best-of-K candidates, Euler steps). State observations pass through unchanged."""
        if self.image_shape is None:
            return module, params, obs
        enc = sub_params(params, "encoder")
        obs = module.encoder(obs) if enc is None else torch.func.functional_call(module.encoder, enc, (obs,))
        return module.net, sub_params(params, "net"), obs

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        if self.image_shape is not None:
            return obs  # images: uint8, scaled by the encoder; no statistics (as FQL)
        return (obs - self.obs_mean) / self.obs_std

    def q_term(self, obs: torch.Tensor, actions: torch.Tensor, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor loss's Q term and the critic's mean Q: -Q(s, clip(a)) averaged over heads and batch,
        divided by mean |Q| with ``normalize_q_loss``. The critic's parameters enter detached: the term trains
        the actor through its actions only."""
        critic_params = {name: p.detach() for name, p in params["critic"].items()}
        q = functional_call(self.critic, critic_params, (obs, actions.clamp(-1.0, 1.0))).mean(0)
        q_loss = -q.mean()
        if self.cfg.normalize_q_loss:
            q_loss = q_loss / q.abs().mean().detach()
        return q_loss, q

    def noise(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(*shape, self.action_dim, device=self.device, generator=generator) * self.cfg.sigma

    # ------------------------------------------------------------------------------------------- update
    def update(self, batch: Batch, step: int, draws: dict[str, torch.Tensor] | None = None,
               generator: torch.Generator | None = None) -> dict:
        """One gradient step; ``step`` is the loop's step. Returns device tensors (with CUDA graphs, valid
        until the next update: read or clone them before)."""
        draws = draws if draws is not None else self.draws(batch["actions"].shape[0], generator)
        self.step.fill_(step)  # a kernel argument, not a copy: no host synchronisation
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the last update's outputs may now be overwritten
        return self.update_on_device(batch, draws)

    def gradients(self, batch: Batch, draws: dict, state: dict | None = None):
        """Gradients of total_loss for every trained network, the metrics, and the loss's carry."""
        state = state if state is not None else self.state()
        params = {name: state[name] for name in self.NETWORKS}
        if self.grad_transform:
            grads, (_, (metrics, carry)) = grad_and_value(self.total_loss, argnums=1, has_aux=True)(
                batch, params, draws, state)
            return grads, metrics, carry
        # Eager, one agent: plain autograd on the same losses, about 25 % faster on CPU than the transform's
        # per-op wrapping (both paths are tested against each other and against the reference values).
        with torch.enable_grad():
            total, (metrics, carry) = self.total_loss(batch, params, draws, state)
            leaves = [p for group in params.values() for p in group.values()]
            flat = torch.autograd.grad(total, leaves, allow_unused=True)
        flat = iter(torch.zeros_like(p) if g is None else g for p, g in zip(leaves, flat))
        grads = {name: {key: next(flat) for key in group} for name, group in params.items()}
        return grads, {k: v.detach() for k, v in metrics.items()}, carry

    def modules(self) -> list[str]:
        """The names of every network the agent holds: the trained ones, then their targets."""
        return [*self.NETWORKS, *(f"target_{name}" for name in self.TARGETS)]

    def optimizers(self) -> list[str]:
        return [f"{name}_opt" for name in self.NETWORKS]

    def adam_steps(self, state: dict, grads: dict[str, list[torch.Tensor]], foreach: bool = True) -> None:
        """One Adam step of every trained network (``grads``: each network's gradients, in parameter order)."""
        for name in self.NETWORKS:
            opt = getattr(self, f"{name}_opt")
            adam_step(list(state[name].values()), list(grads[name]), state[f"{name}_opt"], opt.betas, opt.eps, foreach)

    def state(self) -> dict:
        """Every tensor the update changes, by name: the update reads and writes these and nothing else."""
        return {**{name: dict(getattr(self, name).named_parameters()) for name in self.modules()},
                **{name: getattr(self, name).state for name in self.optimizers()}, "update_count": self.update_count}

    @torch.no_grad()
    def soft_update(self, state: dict | None = None, foreach: bool = True,
                    rate: float | torch.Tensor | None = None) -> None:
        """Move each target towards its network by ``rate`` (default ``tau``; a tensor, e.g. ``tau`` on every
        n-th update and 0 otherwise, keeps the update free of host reads)."""
        state = state if state is not None else self.state()
        rate = self.cfg.tau if rate is None else rate
        for name in self.TARGETS:
            target, online = list(state[f"target_{name}"].values()), list(state[name].values())
            if foreach and not isinstance(rate, torch.Tensor):
                torch._foreach_lerp_(target, online, rate)
            else:
                for t, o in zip(target, online):
                    t.add_((o - t) * rate)  # lerp_, written out for vmap and tensor rates

    # ------------------------------------------------------------------------------------------ state
    def weights(self) -> dict:
        return {**{name: getattr(self, name).state_dict() for name in self.modules()},
                "obs_norm": {"mean": self.obs_mean, "std": self.obs_std}}

    def state_dict(self) -> dict:
        return {**self.weights(), **{name: getattr(self, name).state_dict() for name in self.optimizers()},
                "update_count": self.update_count}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for name in self.modules():
            getattr(self, name).load_state_dict(state[name])
        self.obs_mean = state["obs_norm"]["mean"].to(self.device)
        self.obs_std = state["obs_norm"]["std"].to(self.device)
        if self.optimizers()[0] in state:  # a resume state (final.pt holds the weights only)
            for name in self.optimizers():
                getattr(self, name).load_state_dict(state[name])
            self.update_count.copy_(torch.as_tensor(state["update_count"]))
