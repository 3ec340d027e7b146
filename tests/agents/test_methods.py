"""What every registered method must do, checked for each: the built-in methods and the test-only ones of
tests/methods/ alike. A new method is in every check by being registered."""

from __future__ import annotations

import os

import pytest
import torch
from omegaconf import OmegaConf

from mfql.agents import METHODS
from mfql.agents.packed import PackedUpdate
from mfql.config import method_file, run_cli, train_config, validate_train
from mfql.errors import ConfigError
from mfql.ranges import describe_ranges
from mfql.run.folder import key_config
from tests import conftest as run  # the training subprocess helpers
from tests.conftest import TASK, make_agent, random_batch

ALL = list(METHODS)
STEPS, SEEDS = 6, (3, 7)


def seeded(method: str, seed: int, **kw):
    torch.manual_seed(seed)
    return make_agent(6, 3, method=method, steps=40, **kw)


def updated(agent, seed: int, steps: int = STEPS, first: int = 1):
    """``agent`` after ``steps`` updates on seeded batches, its draws from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    for step in range(first, first + steps):
        agent.update(random_batch(32, seed=100 * seed + step), step, generator=generator)
    return agent


def tensors(agent) -> dict[str, torch.Tensor]:
    return {f"{m}.{k}": v for m in agent.modules() for k, v in getattr(agent, m).state_dict().items()}


def assert_close_agents(a, b, **tolerance):
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    for name in ta:
        torch.testing.assert_close(tb[name], ta[name], **tolerance, msg=name)


def bad_value(valid) -> object:
    """A value just outside a range (``mfql.ranges.Range``)."""
    if valid.kind == "widths":
        return [0]
    if valid.high is not None:
        return valid.high + 1
    if valid.low is not None:
        return valid.low if valid.low_open else valid.low - 1
    return None


@pytest.mark.parametrize("method", ALL)
def test_the_run_config_and_key_hold_the_methods_own_options_only(method):
    cfg = train_config([f"task={TASK}", "out_dir=.", f"method={method}", "model=small"])
    own = set(OmegaConf.load(method_file(method)).agent)
    assert set(cfg.agent) == own and "models" not in cfg
    key = key_config(cfg)
    assert key["method"] == method and set(key["agent"]) == own - {"encoder"}  # a state task's key leaves it out


@pytest.mark.parametrize("method", ALL)
def test_help_lists_the_methods_options_and_their_ranges(method, capsys):
    from mfql.train import main

    run_cli(main, "train", ["--help"])
    text = capsys.readouterr().out
    assert method_file(method).read_text() in text
    assert describe_ranges(METHODS[method].RANGES, "agent.") in text


@pytest.mark.parametrize("method", ALL)
def test_each_option_outside_its_range_stops_with_one_line_naming_it(method):
    """Each range checked as train_config checks it, on the composed config (composing it again per option
    would only repeat Hydra's work); one option through the whole command line too."""
    cfg = train_config([f"task={TASK}", "out_dir=.", f"method={method}"])
    checked = []
    for key, valid in METHODS[method].RANGES.items():
        value = bad_value(valid)
        if value is None:
            continue
        bad = cfg.copy()
        bad.agent[key] = value
        with pytest.raises(ConfigError) as info:
            validate_train(bad)
        message = str(info.value)
        assert message.startswith(f"agent.{key}=") and "is not valid (valid: " in message and "\n" not in message
        checked.append((key, value))
    assert len(checked) >= 2
    key, value = checked[0]
    shown = f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)
    with pytest.raises(ConfigError, match=f"^agent.{key}="):
        train_config([f"task={TASK}", "out_dir=.", f"method={method}", f"agent.{key}={shown}"])


@pytest.mark.parametrize("method", ALL)
def test_the_logged_metrics_use_the_shared_names(method):
    """One set of names across methods (docs/methods.md): critic/ and actor/ prefixes, actor/loss the actor's
    whole loss; an actor-critic method logs critic/loss, actor/q, actor/q_loss and actor/bc_loss."""
    info = seeded(method, 0).update(random_batch(32, seed=1), 2)
    assert all(key.startswith(("critic/", "actor/")) or "/" not in key for key in info), sorted(info)
    assert {"actor/loss", "total_loss"} <= set(info)
    if "critic" in METHODS[method].NETWORKS:
        assert {"critic/loss", "actor/q", "actor/q_loss", "actor/bc_loss"} <= set(info), sorted(info)


@pytest.mark.parametrize("method", ALL)
def test_the_update_is_deterministic_in_float64(method):
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        first, again, other = (updated(seeded(method, 0), seed) for seed in (1, 1, 2))
    finally:
        torch.set_default_dtype(default)
    assert all(v.dtype == torch.float64 for v in tensors(first).values())
    assert all(torch.equal(a, b) for a, b in zip(tensors(first).values(), tensors(again).values()))
    assert not all(torch.equal(a, b) for a, b in zip(tensors(first).values(), tensors(other).values()))


@pytest.mark.parametrize("method", ALL)
def test_packed_seeds_equal_each_seed_alone(method):
    agents = [seeded(method, seed) for seed in SEEDS]
    packed, generators = PackedUpdate(agents), [torch.Generator().manual_seed(s) for s in SEEDS]
    for step in range(1, STEPS + 1):
        batches = [random_batch(32, seed=100 * s + step) for s in SEEDS]
        packed.update({k: torch.stack([b[k] for b in batches]) for k in batches[0]}, step,
                      packed.draws(32, generators))
    for agent, seed in zip(agents, SEEDS):
        # vmap runs the seeds' matmuls as one batched matmul: float32 round-off differs, nothing else (Adam
        # divides by sqrt(v): an element with a near-zero gradient moves by up to lr either way, hence atol)
        assert_close_agents(updated(seeded(method, seed), seed), agent, rtol=1e-5, atol=1e-5)
        assert int(agent.update_count) == STEPS


@pytest.mark.slow
@pytest.mark.parametrize("method", ALL)
def test_the_compiled_update_equals_the_eager_one(method):
    compiled = updated(seeded(method, 3, compile=True), 3)
    # fused kernels reorder float ops: round-off only
    assert_close_agents(updated(seeded(method, 3), 3), compiled, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("method", ALL)
def test_a_run_writes_every_file_and_resumes_after_sigkill_as_if_never_killed(method, tmp_path, ogbench_dir):
    """Offline then online steps; killed while a resume state is written, at random moments, and in the online
    phase with its CSVs then deleted, each time rerun: the same files, eval.csv and weights to the bit, train.csv
    but for its timing column."""
    extra = [f"method={method}", "seed=1", "offline_steps=40", "online_steps=30", "eval_interval=20",
             "checkpoint_interval=3", "env_max_steps=12"]
    ref, out = tmp_path / "ref", tmp_path / "killed"
    env = {**os.environ, **run.TEST_METHODS}
    run.train(ref, ogbench_dir.parent, *extra, env=env)
    assert sorted(p.name for p in ref.iterdir()) == [".lock", "config.yaml", "eval.csv", "final.pt", "meta.json",
                                                      "train.csv"]
    assert [int(r["step"]) for r in run.read_csv(ref / "train.csv")][-1] == 70
    assert f"method: {method}" in (ref / "config.yaml").read_text()
    evaluated = run.run_module("mfql.evaluate", f"checkpoint={ref / 'final.pt'}", "episodes=2", "seed=1", env=env)
    assert '"episodes": 2' in evaluated.stdout  # the checkpoint says which method to rebuild
    run.kill_and_resume(run.train_args(out, ogbench_dir.parent, *extra), out, random_kills=2, seed=0, env=env,
                        evaluated=60)  # online: 40 offline steps, then 30 online
    assert (out / "eval.csv").read_bytes() == (ref / "eval.csv").read_bytes()  # bytes: one line ending throughout
    assert b"\r" not in (out / "train.csv").read_bytes() + (ref / "train.csv").read_bytes()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "updates_per_s"} for r in rows]  # noqa: E731
    assert strip(run.read_csv(out / "train.csv")) == strip(run.read_csv(ref / "train.csv"))
    run.assert_same_weights(run.read_final(ref / "final.pt"), run.read_final(out / "final.pt"))
    assert not list(out.rglob("*.tmp")) and not (out / "_resume").exists()
