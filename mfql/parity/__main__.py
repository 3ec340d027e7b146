"""mfql's update against the official JAX code's: ``python -m mfql.parity method=fql official=PATH``.

Builds the official agent through its own constructor from the clone at PATH (its files checked against the
expected commit), and mfql's agent for the same shapes and hyperparameters; copies every parameter from the
official agent into mfql's; then, for a few updates, feeds both the same batch and the same random draws and
compares network outputs, actions, the Bellman target, every loss and logged value, the gradient of every
parameter, and every parameter and target network after the optimiser step. Prints one line per quantity
(its largest absolute and relative error, the tolerance, pass or FAIL) and a summary; exits 0 only if every
quantity matches. Needs the parity extra: ``pip install -e ".[parity]"``.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import ListConfig

from mfql.agents import make_agent
from mfql.config import check_out_file, compose, require_int, run_cli, train_config
from mfql.errors import ConfigError
from mfql.files import write_json
from mfql.parity.core import SHAPES, Comparison, ParityError, check_official, copy_params, import_official, serve_draws

# method -> the module that pairs it with its official code
ADAPTERS = {"mfql": "mfql.parity.meanflow", "fql": "mfql.parity.fql", "rebrac": "mfql.parity.rebrac"}
TOLERANCE = {"float64": 1e-9, "float32": 1e-3}  # largest error relative to the quantity's scale (docs/verification.md)


def check_config(cfg) -> None:
    if cfg.method not in ADAPTERS:
        raise ConfigError(f"method={cfg.method!r} has no parity check (valid: {', '.join(ADAPTERS)})")
    if not isinstance(cfg.shapes, ListConfig) or not len(cfg.shapes) or not set(cfg.shapes) <= set(SHAPES):
        raise ConfigError(f"shapes={cfg.shapes!r} is not valid (valid: a non-empty list of {', '.join(SHAPES)})")
    if cfg.dtype not in TOLERANCE:
        raise ConfigError(f"dtype={cfg.dtype!r} is not valid (valid: {', '.join(TOLERANCE)})")
    adapter = importlib.import_module(ADAPTERS[cfg.method])
    if cfg.model not in adapter.MODELS:
        raise ConfigError(f"model={cfg.model!r} has no counterpart in {cfg.method}'s official code "
                          f"(valid: {', '.join(adapter.MODELS)})")
    if cfg.parity not in adapter.PARITIES:
        raise ConfigError(f"parity={cfg.parity!r} is not checked for {cfg.method} "
                          f"(valid: {', '.join(adapter.PARITIES)})")
    if "pixels" in cfg.shapes and not adapter.PIXELS:
        raise ConfigError(f"shapes={list(cfg.shapes)}: the pixel shape is not checked for {cfg.method} "
                          "(valid: cube, antmaze)")
    require_int(cfg, "updates", 1)
    require_int(cfg, "batch_size", 2)
    require_int(cfg, "seed", 0)
    if cfg.out is not None:
        check_out_file("out", str(cfg.out))


def load_jax(dtype: str):
    try:
        import jax
    except ImportError:
        raise ConfigError('the parity check needs JAX and the official code\'s libraries: pip install -e ".[parity]"')
    jax.config.update("jax_enable_x64", dtype == "float64")
    jax.config.update("jax_platform_name", "cpu")
    return jax


def random_obs(n: int, obs_dim, generator: torch.Generator) -> torch.Tensor:
    """State vectors, or uint8 images (H, W, C) as the pixel buffer returns them."""
    if isinstance(obs_dim, tuple):
        return torch.randint(0, 256, (n, *obs_dim), dtype=torch.uint8, generator=generator)
    return torch.randn(n, obs_dim, generator=generator)


def random_batch(n: int, obs_dim, action_dim: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"observations": random_obs(n, obs_dim, generator),
            "actions": torch.rand(n, action_dim, generator=generator) * 2 - 1,
            "rewards": -torch.rand(n, generator=generator),
            "masks": (torch.rand(n, generator=generator) > 0.1).to(torch.get_default_dtype()),
            "next_observations": random_obs(n, obs_dim, generator),
            "next_actions": torch.rand(n, action_dim, generator=generator) * 2 - 1}


def as_jax(batch: dict, jnp) -> dict:
    return {k: jnp.asarray(v.numpy()) for k, v in batch.items()}


def cast_params(official, jnp, dtype):
    """The official agent with its parameters in ``dtype`` (its initialisers make float32) and its optimiser
    state made for them (from plain dicts, as the official constructors make it)."""
    import jax
    from flax.core import unfreeze

    params = jax.tree_util.tree_map(lambda p: jnp.asarray(p, dtype), official.network.params)
    network = official.network.replace(params=params, opt_state=official.network.tx.init(unfreeze(params)))
    return official.replace(network=network)


def check_shape(cfg, adapter, module, served, shape: str, cmp: Comparison, jax) -> None:
    import jax.numpy as jnp

    task, obs_dim, action_dim = SHAPES[shape]
    # the task file's hyperparameters for the method, as a run of that task gets them
    agent_cfg = train_config([f"task={task}", "out_dir=.", f"method={cfg.method}", f"model={cfg.model}",
                              f"parity={cfg.parity}", *adapter.OVERRIDES]).agent
    agent = make_agent(cfg.method, agent_cfg, obs_dim, action_dim, np.zeros(obs_dim), np.ones(obs_dim),
                       adapter.BUDGET, "cpu")  # statistics 0 and 1: the official agents see raw observations
    official = cast_params(adapter.official_agent(module, agent_cfg, obs_dim, action_dim, cfg.seed), jnp,
                           jnp.float64 if cfg.dtype == "float64" else jnp.float32)
    pairs = adapter.pairs(official.network.params, agent)
    copy_params(pairs, official.network.params, agent)
    undo = adapter.prepare(agent, official, cmp)
    try:
        run_updates(cfg, adapter, served, cmp, agent, official, pairs, obs_dim, action_dim, jax, jnp)
    finally:
        undo()


def run_updates(cfg, adapter, served, cmp, agent, official, pairs, obs_dim, action_dim, jax, jnp) -> None:
    """``cfg.updates`` updates of both agents on the same batches and draws, compared as they go."""
    generator = torch.Generator().manual_seed(cfg.seed)
    first = type(agent).first_step(cfg.parity)
    for update in range(1, cfg.updates + 1):
        step = first + update - 1  # the training loop's step, which both updates are given
        batch = random_batch(cfg.batch_size, obs_dim, action_dim, generator)
        draws = adapter.align(agent.draws(cfg.batch_size, generator), agent)
        theirs_batch = as_jax(batch, jnp)
        if update == 1:
            adapter.outputs(cmp, 0, official, agent, batch, draws, served, jnp)
        # gradients and losses, before the step (at this step: update() sets it too)
        agent.step.fill_(step)
        grads, metrics, carry = agent.gradients(batch, draws)
        served.serve(**adapter.queues(draws, agent))
        (loss, info), their_grads = jax.value_and_grad(
            lambda p, agent=official, b=theirs_batch, s=step: adapter.official_loss(agent, b, p, s), has_aux=True)(
            official.network.params)
        adapter.losses(cmp, update, metrics, carry, loss, info)
        cmp.tree(update, "gradients", pairs, grads, their_grads, modules=agent.NETWORKS)
        # the update itself: clipping, the optimiser step, the targets, the method's own state
        ours_info = agent.update(batch, step, draws=draws)
        served.serve(**adapter.queues(draws, agent))
        official, their_info = adapter.official_update(official, theirs_batch, step)
        if served.left():
            raise ParityError(f"the official update drew fewer values than served ({served.left()})")
        adapter.after_update(cmp, update, agent, ours_info, official, their_info)
        state = {name: dict(getattr(agent, name).named_parameters()) for name in agent.modules()}
        # float32: a parameter whose gradient is at round-off level takes an Adam step of up to about the
        # learning rate in a direction its round-off sets, on each side: 2 lr per update so far
        bound = 2 * update * max_lr(agent) if cfg.dtype == "float32" else 0.0
        cmp.tree(update, "parameters", pairs, state, official.network.params, modules=agent.NETWORKS, bound=bound)
        cmp.tree(update, "targets", pairs, state, official.network.params,
                 modules=[f"target_{n}" for n in agent.TARGETS], bound=bound)
    final_draws = adapter.align(agent.draws(cfg.batch_size, generator), agent)
    adapter.outputs(cmp, cfg.updates, official, agent, batch, final_draws, served, jnp)


def max_lr(agent) -> float:
    """The largest learning rate of the agent's optimisers (their Adam states hold it)."""
    return max(float(getattr(agent, name).state["lr"]) for name in agent.optimizers())


def summarize(cmp: Comparison) -> dict:
    groups = {}
    for c in cmp.checks:
        g = groups.setdefault(c.group, {"checks": 0, "failed": 0, "max_rel": 0.0})
        g["checks"] += 1
        g["failed"] += not c.passed
        g["max_rel"] = max(g["max_rel"], c.max_rel)
    return groups


def run(cfg) -> tuple[Comparison, dict]:
    """Every shape of ``cfg``: (the comparison, the report)."""
    check_config(cfg)
    adapter = importlib.import_module(ADAPTERS[cfg.method])
    official_path = Path(str(cfg.official))
    check_official(official_path, adapter.FILES, adapter.REPO, adapter.COMMIT)
    jax = load_jax(cfg.dtype)
    module = import_official(official_path, adapter.MODULE)
    served = serve_draws(module)
    cmp = Comparison(TOLERANCE[cfg.dtype])
    start = time.perf_counter()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if cfg.dtype == "float64" else torch.float32)
    try:
        with jax.disable_jit():
            for shape in cfg.shapes:
                first = len(cmp.checks)
                check_shape(cfg, adapter, module, served, shape, cmp, jax)
                for c in cmp.checks[first:]:
                    c.shape = shape
    finally:
        torch.set_default_dtype(previous)
    report = {"method": cfg.method, "official": f"{adapter.REPO}@{adapter.COMMIT}", "shapes": list(cfg.shapes),
              "model": cfg.model, "parity": cfg.parity, "dtype": cfg.dtype, "updates": cfg.updates,
              "batch_size": cfg.batch_size, "tolerance": cmp.tol, "passed": cmp.passed,
              "seconds": round(time.perf_counter() - start, 1), "groups": summarize(cmp), "checks": cmp.rows()}
    return cmp, report


def main(argv: list[str]) -> None:
    cfg = compose("parity", argv)
    cmp, report = run(cfg)
    for c in cmp.checks:
        print(f"{'pass' if c.passed else 'FAIL'}  {c.shape:8s} update {c.update}  {c.group:10s} {c.name:60s} "
              f"max abs {c.max_abs:.2e}  max rel {c.max_rel:.2e}  tol {c.tol:.1e}")
    for group, g in report["groups"].items():
        print(f"{group:10s} {g['checks'] - g['failed']}/{g['checks']} match, largest relative error {g['max_rel']:.2e}")
    failed = cmp.failed()
    print(f"{cfg.method} vs {report['official']} ({cfg.dtype}, model={cfg.model}, parity={cfg.parity}, "
          f"{', '.join(cfg.shapes)}): {'PASS' if not failed else 'FAIL'}, {len(cmp.checks) - len(failed)}/"
          f"{len(cmp.checks)} quantities match, {report['seconds']} s")
    if cfg.out is not None:
        write_json(Path(str(cfg.out)), report)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run_cli(main, "parity")
