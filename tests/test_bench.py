"""The benchmark's own machinery (its figures are measured by running it, never asserted in tests)."""

import json
import os
from concurrent.futures.process import BrokenProcessPool

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mfql.agents import METHODS
from mfql.agents.networks import count_params
from mfql.bench import (
    amdahl_gain,
    bench_efficiency,
    bench_evaluation,
    bench_packed,
    efficiency_rows,
    isolated,
    make_bench_agent,
    measure,
    synthetic_batch,
)
from mfql.run.profiling import resident_mb


def child_state() -> dict:
    """What a benchmark child process computes with: its threads and whether it flushes denormals."""
    return {"threads": torch.get_num_threads(),
            "denormal_kept": int((torch.full((1 << 16,), 1e-40) * 1.0).count_nonzero())}


@pytest.mark.slow
def test_each_model_is_timed_in_a_fresh_process_set_up_like_the_parent():
    one, two = isolated((1, True), child_state), isolated((2, False), child_state)
    assert {k: one[k] for k in ("threads", "denormal_kept")} == {"threads": 1, "denormal_kept": 0}
    assert {k: two[k] for k in ("threads", "denormal_kept")} == {"threads": 2, "denormal_kept": 1 << 16}
    # and its peak memory: a fresh interpreter with torch, not this process's
    assert 50 < one["peak_rss_mb"] < resident_mb() + 1000


class OpNames(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def ops_of_one_update(model: str, method: str, floor: bool) -> list[str]:
    agent = make_bench_agent(model, torch.device("cpu"), compile=False, method=method, floor=floor)
    batch = synthetic_batch(agent.cfg.batch_size, torch.device("cpu"))
    with OpNames() as ops:
        agent.update(batch, 1)
    return ops.names


@pytest.mark.slow
@pytest.mark.parametrize(("model", "method"), [("small", "mfql"), ("paper", "mfql"), ("paper", "fql")])
def test_the_dispatch_floor_runs_every_op_of_the_update_on_next_to_no_arithmetic(model, method):
    full, floor = (ops_of_one_update(model, method, floor) for floor in (False, True))
    assert len(full) > 500 and floor == full
    small = make_bench_agent(model, torch.device("cpu"), compile=False, method=method, floor=True)
    assert small.cfg.batch_size == 2 and count_params(small.actor) < count_params(
        make_bench_agent(model, torch.device("cpu"), compile=False, method=method).actor) / 100


def test_amdahl_gain_is_amdahls_law():
    assert amdahl_gain(1.0, 8) == 8.0  # all dispatch: shared by every seed
    assert amdahl_gain(0.0, 8) == 1.0  # all arithmetic: paid per seed
    assert amdahl_gain(0.76, 8) == pytest.approx(2.985, abs=1e-3) and amdahl_gain(0.77, 8) > 3  # where 3x starts
    assert amdahl_gain(0.21, 8) == pytest.approx(1.225, abs=1e-3)


def dies() -> None:
    os._exit(9)  # as a child killed for memory: no exception, no result


def test_a_benchmark_child_that_dies_stops_the_benchmark_instead_of_hanging_it():
    with pytest.raises(BrokenProcessPool):
        isolated((1, True), dies)


def test_a_benchmark_cut_short_keeps_the_sections_it_measured(tmp_path):
    out = tmp_path / "bench.json"

    def cut_short() -> dict:
        raise KeyboardInterrupt  # as the time limit's signal would, in the middle of a section

    with pytest.raises(KeyboardInterrupt):
        measure({"device": "cpu"}, {"paper": lambda: {"updates_per_s": 1.5}, "small": cut_short}, str(out))
    assert json.loads(out.read_text()) == {"device": "cpu", "complete": False, "paper": {"updates_per_s": 1.5}}
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # no temporary file left
    result = measure({"device": "cpu"}, {"paper": lambda: {"updates_per_s": 1.5}}, None)
    assert result == {"device": "cpu", "complete": False, "paper": {"updates_per_s": 1.5}}


def test_the_efficiency_section_measures_every_method_and_counts_its_network_calls():
    cpu = torch.device("cpu")
    section = {m: bench_efficiency("small", cpu, 2, 2, False, m) for m in METHODS}
    for method, entry in section.items():
        agent = make_bench_agent("small", cpu, compile=False, method=method)
        assert entry["params"] == {name: count_params(getattr(agent, name)) for name in agent.NETWORKS}
        assert entry["act_latency_ms_batch1"] > 0 and entry["act_latency_ms_batch50"] > 0
        assert entry["eager"]["updates_per_s"] > 0 and entry["gflop_per_update"] > 0
        assert entry["peak_memory_mb"] > 0 and "compiled" not in entry
    # what the paper's efficiency claim rests on, counted rather than assumed: one network call per action for
    # FQL's one-step policy and ReBRAC, MeanFlow-QL's K candidates in one batched actor call and one critic call to
    # choose among them; FQL's 10 Euler steps of the flow policy only in training (its BC loss, then the target)
    assert section["fql"]["calls_per_action"] == {"actor.onestep": 1}
    assert section["rebrac"]["calls_per_action"] == {"actor": 1}
    assert section["mfql"]["calls_per_action"]["actor"] == 1 and sum(section["mfql"]["calls_per_action"].values()) == 2
    assert section["fql"]["calls_per_update"]["actor.bc_flow"] == 1 + 10
    assert section["rebrac"]["calls_per_update"]["target_actor"] == 1  # step 2: an actor step (actor_freq 2)
    builtin = ("mfql", "fql", "rebrac")
    rows = efficiency_rows({m: section[m] for m in reversed(builtin)})  # rows in the registry's order
    assert [r["method"] for r in rows] == list(builtin) and [r["calls_per_action"] for r in rows] == [2, 1, 1]
    assert [r["params"] for r in rows] == [sum(section[m]["params"].values()) for m in builtin]


@pytest.mark.slow  # real cube-single environments
def test_the_evaluation_section_times_each_number_of_environments_alive():
    out = bench_evaluation("small", torch.device("cpu"), episodes=3, env_steps=4, counts=[2], workers=[])
    assert set(out["by_envs"]) == {1, 2, 3}  # one at a time, the counts asked, all in lockstep
    assert all(row["episodes_per_s"] > 0 for row in out["by_envs"].values())
    assert out["mb_per_env"] > 10  # a cube environment's compiled MuJoCo model alone is tens of MB
    assert out["lockstep_episodes_per_s"] == out["by_envs"][3]["episodes_per_s"]
    assert out["sequential_episodes_per_s"] == out["by_envs"][1]["episodes_per_s"]


@pytest.mark.slow
def test_the_packed_section_reports_each_number_of_seeds_peak_memory():
    out = isolated((1, True), bench_packed, "small", torch.device("cpu"), 2, [2, 1], False)
    assert out["S1_aggregate_updates_per_s"] > 0 and out["S2_gain"] > 0
    # ascending S in a fresh process: each peak is the interpreter, torch and that many agents' update
    assert 100 < out["S1_peak_rss_mb"] <= out["S2_peak_rss_mb"] <= out["peak_rss_mb"]
