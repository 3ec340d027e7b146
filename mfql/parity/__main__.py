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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import ListConfig

from mfql.agents import make_agent
from mfql.config import check_out_file, compose, require_int, run_cli, train_config
from mfql.errors import ConfigError
from mfql.files import write_json
from mfql.parity.core import SHAPES, Comparison, ParityError, check_official, copy_params, import_official, serve_draws
from mfql.report.results import flatten

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
    if cfg.parity != "official" and cfg.dtype != "float64":
        raise ConfigError(f"dtype={cfg.dtype!r} with parity={cfg.parity}: its differences are checked in float64 "
                          "only, where float32's tolerance cannot hide them (valid: float64)")
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


def our_agent(cfg, adapter, shape: str, parity: str):
    """mfql's agent for ``shape`` with the task file's hyperparameters for the method, as a run gets them."""
    task, obs_dim, action_dim = SHAPES[shape]
    agent_cfg = train_config([f"task={task}", "out_dir=.", f"method={cfg.method}", f"model={cfg.model}",
                              f"parity={parity}", *adapter.OVERRIDES]).agent
    return make_agent(cfg.method, agent_cfg, obs_dim, action_dim, np.zeros(obs_dim), np.ones(obs_dim),
                      adapter.BUDGET, "cpu")  # statistics 0 and 1: the official agents see raw observations


def build(cfg, adapter, module, shape: str, parity: str, jnp):
    """mfql's agent (``parity``) and the official one for ``shape``, mfql's holding the official parameters:
    (agent, official agent, parameter pairs)."""
    _, obs_dim, action_dim = SHAPES[shape]
    agent = our_agent(cfg, adapter, shape, parity)
    agent_cfg = agent.cfg
    official = cast_params(adapter.official_agent(module, agent_cfg, obs_dim, action_dim, cfg.seed), jnp,
                           jnp.float64 if cfg.dtype == "float64" else jnp.float32)
    pairs = adapter.pairs(official.network.params, agent)
    copy_params(pairs, official.network.params, agent)
    return agent, official, pairs


def check_shape(cfg, adapter, module, served, shape: str, cmp: Comparison, jax) -> None:
    import jax.numpy as jnp

    agent, official, pairs = build(cfg, adapter, module, shape, cfg.parity, jnp)
    undo = adapter.prepare(agent, official, cmp)
    try:
        theirs, final_draws = official_updates(cfg, adapter, served, official, agent, shape, cfg.updates, jax, jnp)
        compare_updates(cfg, adapter, served, cmp, agent, theirs, final_draws, pairs, jnp)
    finally:
        undo()


@dataclass
class OfficialUpdate:
    """One update of the official agent: its inputs, what its loss computed, and the agent before and after."""
    step: int     # the training loop's step, which both updates are given
    batch: dict   # mfql's tensors; the official agent got the same values
    draws: dict   # mfql's draws for an agent of the official parity, served to the official code in its order
    loss: object
    info: dict
    grads: object
    before: object
    after: object
    after_info: dict


def official_updates(cfg, adapter, served, official, agent, shape: str, updates: int, jax, jnp):
    """``updates`` updates of the official agent on fresh batches and ``agent``'s draws (an agent of the
    official parity: its draws are the official code's), from ``cfg.seed``: (the updates, the draws after
    them). Run once, compared with any number of mfql agents (``compare_updates``)."""
    _, obs_dim, action_dim = SHAPES[shape]
    generator, done = torch.Generator().manual_seed(cfg.seed), []
    first = type(agent).first_step("official")  # both agents' training loop (parity=corrected's is outside)
    for update in range(1, updates + 1):
        step = first + update - 1
        batch = random_batch(cfg.batch_size, obs_dim, action_dim, generator)
        draws = adapter.align(agent.draws(cfg.batch_size, generator), agent)
        theirs_batch = as_jax(batch, jnp)
        served.serve(**adapter.queues(draws, agent))
        (loss, info), grads = jax.value_and_grad(
            lambda p, agent=official, b=theirs_batch, s=step: adapter.official_loss(agent, b, p, s), has_aux=True)(
            official.network.params)
        served.serve(**adapter.queues(draws, agent))
        after, after_info = adapter.official_update(official, theirs_batch, step)
        if served.left():
            raise ParityError(f"the official update drew fewer values than served ({served.left()})")
        done.append(OfficialUpdate(step, batch, draws, loss, info, grads, official, after, after_info))
        official = after
    return done, adapter.align(agent.draws(cfg.batch_size, generator), agent)


def compare_updates(cfg, adapter, served, cmp, agent, official: list[OfficialUpdate], final_draws, pairs, jnp,
                    outputs: bool = True) -> None:
    """mfql's ``agent`` through the official updates, on their batches and draws, compared as it goes;
    ``outputs``: also the networks' outputs before the first update and after the last."""
    for update, theirs in enumerate(official, 1):
        # mfql's share of the draws (parity=corrected's K // 2 target candidates: the first of the official K)
        draws = adapter.agent_draws(theirs.draws, agent)
        if update == 1 and outputs:
            adapter.outputs(cmp, 0, theirs.before, agent, theirs.batch, draws, served, jnp)
        # gradients and losses, before the step (at this step: update() sets it too)
        agent.step.fill_(theirs.step)
        grads, metrics, carry = agent.gradients(theirs.batch, draws)
        adapter.losses(cmp, update, metrics, carry, theirs.loss, theirs.info)
        cmp.tree(update, "gradients", pairs, grads, theirs.grads, modules=agent.NETWORKS)
        # the update itself: clipping, the optimiser step, the targets, the method's own state
        ours_info = agent.update(theirs.batch, theirs.step, draws=draws)
        adapter.after_update(cmp, update, agent, ours_info, theirs.after, theirs.after_info)
        state = {name: dict(getattr(agent, name).named_parameters()) for name in agent.modules()}
        # float32: a parameter whose gradient is at round-off level takes an Adam step of up to about the
        # learning rate in a direction its round-off sets, on each side: 2 lr per update so far
        bound = 2 * update * max_lr(agent) if cfg.dtype == "float32" else 0.0
        params = theirs.after.network.params
        cmp.tree(update, "parameters", pairs, state, params, modules=agent.NETWORKS, bound=bound)
        cmp.tree(update, "targets", pairs, state, params, modules=[f"target_{n}" for n in agent.TARGETS], bound=bound)
    if outputs:
        last = official[-1]
        adapter.outputs(cmp, len(official), last.after, agent, last.batch, final_draws, served, jnp)


# ------------------------------------------------------------------------- parity=corrected
@dataclass
class Verdict:
    """Whether one of parity=corrected's differences acts exactly where it should."""
    shape: str
    correction: str
    why: str
    update: int                  # the update at which it must first act
    expected: dict[str, list[str]]  # group -> name prefixes that must differ there (each group at least once)
    first: int | None            # the first update at which anything differed
    differs: list[str]           # "group name" of each quantity that differed then
    passed: bool


def child(obj, name: str):
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def transplant(agent, source, path: str) -> None:
    """Give ``agent`` the setting at dotted ``path`` (attributes or dict keys) of ``source`` (a tensor: in place)."""
    *parents, last = path.split(".")
    for part in parents:
        agent, source = child(agent, part), child(source, part)
    value = child(source, last)
    if isinstance(value, torch.Tensor):
        child(agent, last).copy_(value)
    elif isinstance(agent, dict):
        agent[last] = value
    else:
        setattr(agent, last, value)


def judge(shape: str, correction, cmp: Comparison) -> Verdict:
    failed = cmp.failed()
    first = min((c.update for c in failed), default=None)
    now = [c for c in failed if c.update == first]
    expected = {group: list(prefixes) for group, prefixes in correction.differs.items()}
    where = all(c.name.startswith(tuple(expected.get(c.group, ()))) for c in now)
    everywhere = all(any(c.group == group for c in now) for group in expected)
    return Verdict(shape, correction.name, correction.why, correction.update, expected, first,
                   [f"{c.group} {c.name}" for c in now], first == correction.update and where and everywhere)


def the_corrections_are_all(cfg, adapter, shape: str, corrected) -> Verdict:
    """mfql's parity=corrected agent is its parity=official agent with exactly the listed corrections: the
    two agents, on the same parameters, batches, draws and steps, end every update with equal tensors."""
    agent = our_agent(cfg, adapter, shape, "official")
    for correction in adapter.CORRECTIONS:
        for path in correction.settings:
            transplant(agent, corrected, path)
    for name in agent.modules():
        getattr(agent, name).load_state_dict(getattr(corrected, name).state_dict())
    _, obs_dim, action_dim = SHAPES[shape]
    updates = max(c.update for c in adapter.CORRECTIONS) + 1
    batches, differs = torch.Generator().manual_seed(cfg.seed), []
    generators = [torch.Generator().manual_seed(cfg.seed) for _ in range(2)]
    for update in range(1, updates + 1):
        batch = random_batch(cfg.batch_size, obs_dim, action_dim, batches)
        for one, generator in zip((agent, corrected), generators):
            one.update(batch, update, draws=adapter.align(one.draws(cfg.batch_size, generator), one))
        ours, theirs = flatten(agent.state_dict()), flatten(corrected.state_dict())
        differs += [f"update {update} {name}" for name, value in ours.items()
                    if isinstance(value, torch.Tensor) and not torch.equal(value, theirs[name])]
    return Verdict(shape, "all of them", "parity=corrected = parity=official + the corrections above, tensor for "
                   f"tensor over {updates} updates", updates, {}, None, differs, not differs)


def check_corrections(cfg, adapter, module, served, shape: str, jax) -> list[Verdict]:
    """Each correction alone (a parity=official agent given that one setting of a parity=corrected agent)
    against the official code's updates (run once), up to the update where it acts; then all of them
    against mfql's corrected agent."""
    import jax.numpy as jnp

    corrected, verdicts = our_agent(cfg, adapter, shape, "corrected"), []
    agent, official, pairs = build(cfg, adapter, module, shape, "official", jnp)
    updates = max(c.update for c in adapter.CORRECTIONS)
    theirs, _ = official_updates(cfg, adapter, served, official, agent, shape, updates, jax, jnp)
    for correction in adapter.CORRECTIONS:
        agent = our_agent(cfg, adapter, shape, "official")
        copy_params(pairs, official.network.params, agent)
        for path in correction.settings:
            transplant(agent, corrected, path)
        cmp = Comparison(TOLERANCE[cfg.dtype])
        undo = adapter.prepare(agent, official, cmp)
        try:
            compare_updates(cfg, adapter, served, cmp, agent, theirs[:correction.update], None, pairs, jnp,
                            outputs=False)
        finally:
            undo()
        verdicts.append(judge(shape, correction, cmp))
    return [*verdicts, the_corrections_are_all(cfg, adapter, shape, corrected)]


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
    cmp, verdicts = Comparison(TOLERANCE[cfg.dtype]), []
    start = time.perf_counter()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if cfg.dtype == "float64" else torch.float32)
    try:
        with jax.disable_jit():
            for shape in cfg.shapes:
                if cfg.parity == "corrected":
                    verdicts += check_corrections(cfg, adapter, module, served, shape, jax)
                    continue
                first = len(cmp.checks)
                check_shape(cfg, adapter, module, served, shape, cmp, jax)
                for c in cmp.checks[first:]:
                    c.shape = shape
    finally:
        torch.set_default_dtype(previous)
    report = {"method": cfg.method, "official": f"{adapter.REPO}@{adapter.COMMIT}", "shapes": list(cfg.shapes),
              "model": cfg.model, "parity": cfg.parity, "dtype": cfg.dtype, "updates": cfg.updates,
              "batch_size": cfg.batch_size, "tolerance": cmp.tol,
              "passed": cmp.passed and all(v.passed for v in verdicts),
              "seconds": round(time.perf_counter() - start, 1), "groups": summarize(cmp), "checks": cmp.rows()}
    if cfg.parity == "corrected":
        report.update(updates=None, corrections=[asdict(v) for v in verdicts], outside=adapter.OUTSIDE)
    return cmp, report


def briefly(quantities: list[str]) -> str:
    """"group name" quantities, a network's parameter tensors counted under the network's name."""
    counts: dict[str, int] = {}
    for quantity in quantities:
        group, name = quantity.split(" ", 1)
        key = f"{group} {name.split('.')[0]}.*" if "." in name and "/" not in name else quantity
        counts[key] = counts.get(key, 0) + 1
    return "; ".join(k if n == 1 and not k.endswith("*") else f"{k} ({n} tensors)" for k, n in counts.items())


def print_corrections(report: dict) -> None:
    """Each correction: where it acts, what it changes there and why, and whether that is all it changes."""
    for v in report["corrections"]:
        print(f"{'pass' if v['passed'] else 'FAIL'}  {v['shape']:8s} {v['correction']}: {v['why']}")
        if v["expected"]:
            expected = "; ".join(f"{group} {', '.join(names)}" for group, names in v["expected"].items())
            print(f"      must first differ at update {v['update']}, in: {expected}")
            print(f"      differs first at update {v['first']}, in: {briefly(v['differs']) or 'nothing'}")
        elif v["differs"]:
            print(f"      unequal: {', '.join(v['differs'])}")
    for name, held in report["outside"].items():
        print(f"      not part of an update: {name}, {held}")


def main(argv: list[str]) -> None:
    cfg = compose("parity", argv)
    cmp, report = run(cfg)
    if cfg.parity == "corrected":
        print_corrections(report)
    for c in cmp.checks:
        print(f"{'pass' if c.passed else 'FAIL'}  {c.shape:8s} update {c.update}  {c.group:10s} {c.name:60s} "
              f"max abs {c.max_abs:.2e}  max rel {c.max_rel:.2e}  tol {c.tol:.1e}")
    for group, g in report["groups"].items():
        print(f"{group:10s} {g['checks'] - g['failed']}/{g['checks']} match, largest relative error {g['max_rel']:.2e}")
    rows = report.get("corrections") or cmp.rows()
    matched = sum(row["passed"] for row in rows)
    what = "corrections act where they should" if cfg.parity == "corrected" else "quantities match"
    print(f"{cfg.method} vs {report['official']} ({cfg.dtype}, model={cfg.model}, parity={cfg.parity}, "
          f"{', '.join(cfg.shapes)}): {'PASS' if report['passed'] else 'FAIL'}, {matched}/{len(rows)} {what}, "
          f"{report['seconds']} s")
    if cfg.out is not None:
        write_json(Path(str(cfg.out)), report)
    if not report["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    run_cli(main, "parity")
