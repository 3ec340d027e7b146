"""The performance-efficiency report on a made-up benchmark and made-up runs with known answers."""

import pandas as pd
import pytest

from mfql.report.efficiency import cost_table, efficiency_figure, efficiency_table, to_markdown


def entry(method, label, updates_per_s, latency, calls, compiled=None):
    out = {"method": method, "label": label, "model": "small", "eager": {"updates_per_s": updates_per_s},
           "gflop_per_update": 1.0, "params": {"actor": 10, "critic": 20}, "params_total": 30,
           "act_latency_ms_batch1": latency, "act_latency_ms_batch50": 2 * latency,
           "calls_per_action": calls, "calls_per_update": {"actor": 3, "critic": 2}, "peak_memory_mb": 300.0,
           "peak_memory_kind": "process, resident"}
    if compiled:
        out["compiled"] = {"updates_per_s": compiled}
    return out


BENCH = {"device": "cpu", "device_name": "test CPU", "efficiency": {
    "rebrac": entry("rebrac", "ReBRAC", 40.0, 0.05, {"actor": 1}),
    "mfql": entry("mfql", "MeanFlow-QL", 10.0, 0.8, {"actor": 1, "target_critic": 1}, compiled=25.0),
    "fql": entry("fql", "FQL", 20.0, 0.1, {"actor.onestep": 1})}}


def scores():
    rows = []
    for variant, offset in (("mfql", 50), ("fql", 30), ("rebrac", 10), ("mfql-K1", 99)):
        for task, add in (("cube-single-play-singletask-task1-v0", 0), ("cube-single-play-singletask-task2-v0", 10)):
            for seed in (0, 1):
                rows.append({"setting": "offline", "env_group": "cube-single-play", "task": task,
                             "variant": variant, "seed": seed, "score": offset + add + seed})
        rows.append({"setting": "o2o", "env_group": "cube-single-play", "task": task, "variant": variant,
                     "seed": 0, "score": 1000.0})
    return pd.DataFrame(rows)


def test_costs_per_method_in_the_registry_order_with_the_best_measured_rate():
    costs = cost_table(BENCH)
    assert list(costs.method) == ["mfql", "fql", "rebrac"] and set(costs.device) == {"test CPU"}
    assert list(costs.updates_per_s) == [25.0, 20.0, 40.0] and list(costs.compiled) == [True, False, False]
    assert list(costs.ms_per_update) == [40.0, 50.0, 25.0] and list(costs.calls_per_action) == [2, 1, 1]
    with pytest.raises(ValueError, match="no efficiency section"):
        cost_table({"device": "cpu", "paper": {}})


def test_each_methods_score_per_environment_beside_its_cost(tmp_path):
    costs = cost_table(BENCH)
    table = efficiency_table(costs, scores())
    assert list(table.method) == ["mfql", "fql", "rebrac"]  # the registry's order, one environment group each
    table = table.set_index("method")
    # the group's score: the mean over its two tasks of each task's seed mean (offline runs of its own variant)
    assert table.loc["mfql", "score"] == 55.5 and table.loc["fql", "score"] == 35.5
    assert table.loc["rebrac", "score"] == 15.5 and "mfql-K1" not in table.index
    assert table.loc["mfql", "tasks"] == 2 and table.loc["mfql", "runs"] == 4
    assert table.loc["rebrac", "act_latency_ms_batch1"] == 0.05
    text = to_markdown(costs, efficiency_table(costs, scores()))
    assert "| MeanFlow-QL | 25.0 (compiled) | 40.0 | 1.00 | 0.800 | 1.600 | 2 | 5 | 30 | 300 |" in text
    assert "| cube-single-play | ReBRAC | 15.5 | 2 | 4 | 0.050 | 25.0 |" in text
    assert text.index("| cube-single-play | MeanFlow-QL |") < text.index("| cube-single-play | FQL |")
    efficiency_figure(efficiency_table(costs, scores()), tmp_path / "efficiency")
    assert (tmp_path / "efficiency.png").stat().st_size > 1000 and (tmp_path / "efficiency.pdf").is_file()
    none = efficiency_table(costs, scores()[lambda s: s.variant == "mfql-K1"])
    assert none.empty and "No offline runs of a method's own variant" in to_markdown(costs, none)
