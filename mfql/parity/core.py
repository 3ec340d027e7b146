"""What every method's parity check shares: the official code's files checked and imported from the user's
path, its random draws served from mfql's, parameters copied between the two, and quantities compared.

The official agents draw their randomness with ``jax.random`` inside their losses; mfql's take every draw of
an update as an argument (``Agent.draws``). The check draws mfql's, then hands the same arrays to the
official code in the order it asks for them (``ServedRandom`` stands in for ``jax.random`` in the official
agent's module; key splitting passes through), with JAX's jit disabled so that every call reaches it.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mfql.errors import ConfigError

FLOAT32_EPS = 2.0**-23  # float32's relative rounding step: the tolerance of what the official code keeps in float32
SHAPES = {  # shape -> (a task of that shape: its per-task hyperparameters, observation width or image, actions)
    "cube": ("cube-single-play-singletask-task1-v0", 28, 5),
    "antmaze": ("antmaze-large-navigate-singletask-task1-v0", 29, 8),
    "pixels": ("visual-cube-single-play-singletask-task1-v0", (64, 64, 9), 5),  # 3 stacked 64x64 RGB frames
}


class ParityError(ConfigError):
    """The official code is missing, of another commit, or asks for draws the check does not serve."""


# --------------------------------------------------------------------------------------- official code
def check_official(path: Path, files: dict[str, str], repo: str, commit: str) -> None:
    """Stop with one line unless ``path`` holds ``files`` (relative path -> SHA-256) as at ``repo``@``commit``."""
    if not path.is_dir():
        raise ParityError(f"official={str(path)!r} is not a folder (valid: a clone of {repo} at {commit})")
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise ParityError(f"official={str(path)!r} has no {name} (valid: a clone of {repo} at {commit})")
        if hashlib.sha256(file.read_bytes()).hexdigest() != expected:
            raise ParityError(f"official={str(path)!r}: {name} differs from {repo} at commit {commit} "
                              f"(check out that commit: git -C {path} checkout {commit})")


def import_official(path: Path, module: str):
    """The official repository's ``module`` (e.g. agents.fql), imported from ``path`` (its top-level packages
    ``agents`` and ``utils`` replace any imported before: one official repository per process)."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("agents", "utils")]:
        del sys.modules[name]
    sys.path.insert(0, str(path.resolve()))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(path.resolve()))


class ServedRandom:
    """``jax.random`` as the official module sees it: key handling is JAX's own; each sampling call returns
    the next array queued for it (``serve``), after checking that its shape is the one asked for."""

    SAMPLERS = ("normal", "uniform", "randint", "permutation")

    def __init__(self, random):
        self._random = random
        self._queues: dict[str, list[np.ndarray]] = {}

    def serve(self, **queues: Iterable) -> None:
        self._queues = {kind: [np.asarray(v) for v in values] for kind, values in queues.items()}

    def left(self) -> dict[str, int]:
        return {kind: len(q) for kind, q in self._queues.items() if q}

    def _next(self, kind: str, shape) -> object:
        import jax.numpy as jnp

        queue = self._queues.get(kind)
        if not queue:
            raise ParityError(f"the official code drew jax.random.{kind}{tuple(shape)} beyond the draws served "
                              "(the adapter's draw order does not match this commit)")
        value = queue.pop(0)
        if tuple(value.shape) != tuple(shape):
            raise ParityError(f"the official code drew jax.random.{kind}{tuple(shape)} where the draw served "
                              f"next has shape {tuple(value.shape)} (the adapter's draw order is wrong)")
        return jnp.asarray(value)

    def normal(self, key, shape=(), dtype=None):
        import jax

        if isinstance(key, jax.core.Tracer):  # inside jax.vmap over keys: one draw per key, served stacked
            return self._vmapped("normal", shape, key)
        return self._next("normal", shape)

    def _vmapped(self, kind: str, shape, key):
        """A draw inside ``jax.vmap`` over ``n`` keys: the next queued array, of shape ``[n, *shape]``, returned
        as the mapped result (a custom batching rule: the function itself cannot tell the keys apart)."""
        import jax.numpy as jnp
        from jax.custom_batching import custom_vmap

        queue = self._queues.get(kind)
        if not queue or tuple(queue[0].shape[1:]) != tuple(shape):
            raise ParityError(f"the official code drew jax.random.{kind}{tuple(shape)} per mapped key where the "
                              "draw served next does not fit (the adapter's draw order is wrong)")
        value = jnp.asarray(queue.pop(0))

        @custom_vmap
        def draw(key):
            return value[0]

        @draw.def_vmap
        def mapped(axis_size, in_batched, key):
            if axis_size != value.shape[0]:
                raise ParityError(f"the official code drew jax.random.{kind} for {axis_size} keys where "
                                  f"{value.shape[0]} were served")
            return value, True

        return draw(key)

    def uniform(self, key, shape=(), dtype=None, minval=0.0, maxval=1.0):
        return self._next("uniform", shape)

    def randint(self, key, shape, minval, maxval, dtype=None):
        return self._next("randint", shape)

    def permutation(self, key, x, axis=0, independent=False):
        return self._next("permutation", (int(x) if np.ndim(x) == 0 else len(x),))

    def __getattr__(self, name):
        return getattr(self._random, name)


class JaxServed:
    """The ``jax`` module with ``random`` replaced by a ``ServedRandom``: set as the official agent module's
    ``jax`` global, so that its losses draw what the check serves (its files are not touched)."""

    def __init__(self, jax, random: ServedRandom):
        self._jax, self.random = jax, random

    def __getattr__(self, name):
        return getattr(self._jax, name)


def serve_draws(module) -> ServedRandom:
    """Replace ``module``'s ``jax`` by one whose random draws are served; returns the server."""
    import jax

    served = ServedRandom(jax.random)
    module.jax = JaxServed(jax, served)
    return served


# ------------------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class Pair:
    """One official parameter and its mfql counterpart: ``theirs`` is a path in the official params tree,
    ``ours`` (module, parameter name) in mfql's agent; ``to_ours`` maps the official layout to mfql's."""

    theirs: tuple[str, ...]
    ours: tuple[str, str]
    to_ours: Callable[[np.ndarray], np.ndarray]


def layers_in_order(tree: dict) -> list[tuple[str, dict]]:
    """A flax MLP's layers in call order: Dense_0, LayerNorm_0, Dense_1, ... (flax names by kind and index)."""
    def key(name: str) -> tuple[int, int]:
        kind, index = name.rsplit("_", 1)
        return int(index), 0 if kind == "Dense" else 1
    return [(name, tree[name]) for name in sorted(tree, key=key)]


def mlp_pairs(tree: dict, prefix: tuple[str, ...], module: torch.nn.Module, name: str, path: str) -> list[Pair]:
    """Pairs for a flax MLP (``tree``, at ``prefix`` in the official params) and the torch layers of
    ``module`` (mfql module ``name``, its layers under ``path``) in order. Dense kernels are [in, out] in
    flax, torch.nn.Linear's weight [out, in]; an ensemble's (vmapped) parameters lead with the member axis,
    mfql's EnsembleDense / EnsembleLayerNorm keep a broadcast axis for the batch."""
    ours = [(n, m) for n, m in module.named_modules() if n and not list(m.children())
            and any(True for _ in m.parameters(recurse=False))]
    theirs = layers_in_order(tree)
    if len(ours) != len(theirs):
        raise ParityError(f"{name}.{path}: {len(ours)} layers in mfql, {len(theirs)} in the official network")
    pairs = []
    for (our_name, layer), (their_name, params) in zip(ours, theirs):
        full = f"{path}.{our_name}" if path else our_name
        kind = type(layer).__name__
        if kind == "Linear":
            pairs += [Pair((*prefix, their_name, "kernel"), (name, f"{full}.weight"), lambda a: a.T),
                      Pair((*prefix, their_name, "bias"), (name, f"{full}.bias"), lambda a: a)]
        elif kind == "LayerNorm":
            pairs += [Pair((*prefix, their_name, "scale"), (name, f"{full}.weight"), lambda a: a),
                      Pair((*prefix, their_name, "bias"), (name, f"{full}.bias"), lambda a: a)]
        elif kind == "EnsembleDense":
            pairs += [Pair((*prefix, their_name, "kernel"), (name, f"{full}.kernel"), lambda a: a),
                      Pair((*prefix, their_name, "bias"), (name, f"{full}.bias"), lambda a: a[:, None, :])]
        elif kind == "EnsembleLayerNorm":
            pairs += [Pair((*prefix, their_name, "scale"), (name, f"{full}.scale"), lambda a: a[:, None, :]),
                      Pair((*prefix, their_name, "bias"), (name, f"{full}.bias"), lambda a: a[:, None, :])]
        else:
            raise ParityError(f"{name}.{full}: no official counterpart for a {kind} layer")
    return pairs


def encoder_pairs(prefix: tuple[str, ...], encoder: torch.nn.Module, name: str, path: str) -> list[Pair]:
    """FQL's ImpalaEncoder (``stack_blocks_<i>/Conv_<k>``: the stack's convolution, then two per residual
    block; ``MLP_0/Dense_<k>``) and mfql's (``stacks.<i>.conv_in``, ``stacks.<i>.blocks.<j>.1`` and ``.3``,
    ``mlp.<k>``). Conv kernels are [kh, kw, in, out] in flax, [out, in, kh, kw] in torch; flax flattens the
    last feature map as (H, W, C), mfql as (C, H, W), which reorders the first MLP kernel's rows."""
    pairs: list[Pair] = []
    for i, stack in enumerate(encoder.stacks):
        convs = ["conv_in", *(f"blocks.{j}.{k}" for j in range(len(stack.blocks)) for k in (1, 3))]
        for c, ours in enumerate(convs):
            theirs = (*prefix, f"stack_blocks_{i}", f"Conv_{c}")
            pairs += [Pair((*theirs, "kernel"), (name, f"{path}.stacks.{i}.{ours}.weight"),
                           lambda a: a.transpose(3, 2, 0, 1)),
                      Pair((*theirs, "bias"), (name, f"{path}.stacks.{i}.{ours}.bias"), lambda a: a)]
    channels = encoder.stacks[-1].conv_in.out_channels
    linears = [k for k, m in enumerate(encoder.mlp) if isinstance(m, torch.nn.Linear)]
    side = int(round((encoder.mlp[linears[0]].in_features // channels) ** 0.5))

    def first(a: np.ndarray) -> np.ndarray:  # [(H W C), out] -> torch's [out, (C H W)]
        return a.reshape(side, side, channels, -1).transpose(2, 0, 1, 3).reshape(channels * side * side, -1).T

    for d, k in enumerate(linears):
        theirs = (*prefix, "MLP_0", f"Dense_{d}")
        pairs += [Pair((*theirs, "kernel"), (name, f"{path}.mlp.{k}.weight"), first if d == 0 else lambda a: a.T),
                  Pair((*theirs, "bias"), (name, f"{path}.mlp.{k}.bias"), lambda a: a)]
    return pairs


def leaf(tree, path: tuple[str, ...]) -> np.ndarray:
    for key in path:
        tree = tree[key]
    return np.asarray(tree)


@torch.no_grad()
def copy_params(pairs: list[Pair], params_tree, agent) -> None:
    """Copy each official parameter into mfql's agent (checking shapes); every mfql parameter must be paired."""
    named = {name: dict(getattr(agent, name).named_parameters()) for name in agent.modules()}
    paired = {p.ours for p in pairs}
    missing = [f"{m}.{n}" for m, group in named.items() for n in group if (m, n) not in paired]
    if missing:
        raise ParityError(f"mfql parameters without an official counterpart: {', '.join(missing[:5])}")
    for pair in pairs:
        value = torch.as_tensor(pair.to_ours(leaf(params_tree, pair.theirs)).copy())
        target = named[pair.ours[0]][pair.ours[1]]
        if value.shape != target.shape:
            raise ParityError(f"{pair.ours[0]}.{pair.ours[1]}: shape {tuple(target.shape)} in mfql, "
                              f"{tuple(value.shape)} from {'/'.join(pair.theirs)}")
        target.copy_(value.to(target.dtype))


# ------------------------------------------------------------------------------------------ comparing
@dataclass
class Check:
    update: int      # 0: before the first update (outputs, actions); n: during / after the n-th update
    group: str       # outputs | losses | bellman | gradients | parameters | targets | actions | alpha | ...
    name: str
    max_abs: float
    max_rel: float   # max |ours - theirs| / the quantity's scale: max |theirs|, or its network's (``tree``)
    tol: float
    passed: bool
    shape: str = ""  # the shape it was checked on (cube, antmaze, pixels)
    bound: float = 0.0  # an absolute difference that also passes (float32 parameters: docs/verification.md)


def relative_error(ours, theirs, scale: float | None = None) -> tuple[float, float]:
    """(max |ours - theirs|, that over ``scale``: by default max |theirs|; exact zeros: the absolute error)."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf"), float("inf")
    if a.size == 0:
        return 0.0, 0.0
    max_abs = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b))) if scale is None else scale
    return max_abs, max_abs / scale if scale > 0 else max_abs


class Comparison:
    """The checks of one run, in order, with the tolerance of its dtype."""

    def __init__(self, tol: float):
        self.tol = tol
        self.checks: list[Check] = []

    def add(self, update: int, group: str, name: str, ours, theirs, tol: float | None = None,
            scale: float | None = None, bound: float = 0.0) -> None:
        """``tol``: this quantity's own tolerance where it is looser than the dtype's (stated by the caller);
        ``bound``: an absolute difference that also passes."""
        if isinstance(ours, torch.Tensor):
            ours = ours.detach().cpu().double().numpy()
        max_abs, max_rel = relative_error(ours, theirs, scale)
        tol = self.tol if tol is None else max(tol, self.tol)
        passed = max_rel <= tol or max_abs <= bound
        self.checks.append(Check(update, group, name, max_abs, max_rel, tol, bool(passed), bound=bound))

    def tree(self, update: int, group: str, pairs: list[Pair], ours: dict, theirs, modules=None,
             bound: float = 0.0) -> None:
        """One check per paired parameter tensor (``ours``: module -> name -> tensor), its error relative to
        the largest value of its network: a tensor's round-off belongs to the sums over the whole network
        that made it (a layer initialised at zero, one small step old, has values a million times smaller
        than its neighbours and gradients that cancel, so its own scale would magnify the same round-off)."""
        chosen = [p for p in pairs if modules is None or p.ours[0] in modules]
        values = {p: p.to_ours(leaf(theirs, p.theirs)) for p in chosen}
        scale: dict[str, float] = {}
        for pair, value in values.items():
            scale[pair.ours[0]] = max(scale.get(pair.ours[0], 0.0), float(np.max(np.abs(value))))
        for pair, value in values.items():
            self.add(update, group, f"{pair.ours[0]}.{pair.ours[1]}", ours[pair.ours[0]][pair.ours[1]], value,
                     scale=scale[pair.ours[0]], bound=bound)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def rows(self) -> list[dict]:
        return [asdict(c) for c in self.checks]


def same_draws(draws: dict, agent) -> dict:
    """An agent's share of the draws when it takes all of them (``agent_draws`` of a method whose parities
    draw alike)."""
    return draws


def compare_losses(cmp: Comparison, update: int, names: dict[str, str], metrics: dict, info: dict, loss) -> None:
    """mfql's metrics against the official info values of the same quantities (``names``: ours -> theirs;
    one the official update did not log this time is skipped), and the total loss."""
    for ours, theirs in names.items():
        if theirs in info:
            cmp.add(update, "losses", ours, metrics[ours], info[theirs])
    cmp.add(update, "losses", "total_loss", metrics["total_loss"], loss)


def critic_outputs(cmp: Comparison, update: int, official, agent, obs, actions, jnp) -> None:
    """The critic's and the target critic's Q on the same observations and actions."""
    theirs_obs, theirs_actions = jnp.asarray(obs.numpy()), jnp.asarray(actions.numpy())
    with torch.no_grad():
        for name in ("critic", "target_critic"):
            cmp.add(update, "outputs", f"{name.replace('_', ' ')} Q(s, a)", getattr(agent, name)(obs, actions),
                    official.network.select(name)(theirs_obs, actions=theirs_actions))
