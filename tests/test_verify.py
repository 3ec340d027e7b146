"""Verification logic on made-up runs."""

import numpy as np
import pandas as pd

from mfql.verify import canonical_task, reported_mfql, verify
from tests.conftest import ROOT

TASK = "humanoidmaze-medium-navigate-singletask-task1-v0"


def paper(rows):
    base = {"table": "MFQL Table 1 (offline)", "setting": "offline", "suite": "OGBench", "env_group": "x",
            "method": "MFQL", "n_seeds": 8, "source_note": "made up"}
    return pd.DataFrame([{**base, **r} for r in rows])


def scores(task, values, **overrides):
    base = {"setting": "offline", "suite": "ogbench", "env_group": "x", "task": task, "actor": "dit",
            "offline_steps": 1_000_000, "task_budget": 1_000_000, "online_steps": 0, "data_source": "download",
            "env_max_steps": np.nan}
    return pd.DataFrame([{**base, "seed": i, "score": v, **overrides} for i, v in enumerate(values)])


def test_reproduced_and_differs():
    reported = paper([{"task_id": TASK, "mean": 94.0, "std": 3.0}, {"task_id": "b-singletask-task1-v0",
                                                                     "mean": 50.0, "std": 2.0}])
    ours = pd.concat([scores(TASK, [93, 96, 91, 95, 94, 97, 92, 94]),
                      scores("b-singletask-task1-v0", [80, 82, 79, 81, 83, 80, 78, 82])])
    report = verify(ours, reported).set_index("task")
    assert report.loc[TASK, "status"] == "reproduced" and report.loc[TASK, "p_value"] > 0.05
    assert report.loc[TASK, "n"] == 8 and abs(report.loc[TASK, "difference"] - 0.0) < 1e-9
    other = report.loc["b-singletask-task1-v0"]
    assert other.status == "differs" and other.p_value < 1e-6 and other.difference == 30.625


def test_missing_seeds_missing_number_and_not_comparable():
    reported = paper([{"task_id": TASK, "mean": 94.0, "std": 3.0},
                      {"task_id": "c-singletask-task1-v0", "mean": np.nan, "std": np.nan},
                      {"task_id": "d-singletask-task1-v0", "mean": 10.0, "std": 1.0}])
    ours = pd.concat([scores(TASK, [94.0]),  # one seed only
                      scores("c-singletask-task1-v0", [1, 2]),
                      scores("d-singletask-task1-v0", [10, 11, 9], actor="mlp", offline_steps=2000),
                      scores("e-singletask-task1-v0", [5, 6])])  # not in the paper's rows
    report = verify(ours, reported).set_index("task")
    assert report.loc[TASK, "status"] == "not comparable" and "fewer than 2 seeds" in report.loc[TASK, "reason"]
    assert report.loc["c-singletask-task1-v0", "status"] == "no reported number"
    d = report.loc["d-singletask-task1-v0"]
    assert d.status == "not comparable" and "small model" in d.reason and "2000 offline steps" in d.reason
    assert report.loc["e-singletask-task1-v0", "status"] == "no reported number"


def test_reported_rows_without_runs_are_listed_and_o2o_phases_map():
    reported = paper([
        {"table": "MFQL Table 2 (offline-to-online) pre-finetune @1M offline steps", "setting": "offline2online",
         "task_id": "cube-double-play-singletask-v0 (=task2)", "mean": 3.0, "std": 2.0, "n_seeds": np.nan},
        {"table": "MFQL Table 2 (offline-to-online) post-finetune @2M total steps", "setting": "offline2online",
         "task_id": "cube-double-play-singletask-v0 (=task2)", "mean": 95.0, "std": 2.0, "n_seeds": np.nan},
    ])
    rows = reported_mfql(reported)
    assert list(rows.phase) == ["before", "after"] and set(rows.setting) == {"o2o"}
    task = "cube-double-play-singletask-task2-v0"
    ours = scores(task, [94, 96, 95, 93], setting="o2o", online_steps=1_000_000).assign(before=[2, 4, 3, 3])
    report = verify(ours, reported)
    assert list(report.status) == ["reproduced", "reproduced"]
    assert "reported n assumed 8" in report.reason.iloc[0]
    none = verify(ours.iloc[0:0], reported)
    assert set(none.status) == {"not comparable"} and set(none.reason) == {"not run in this suite"}


def test_canonical_task_ids_of_the_paper_csv():
    assert canonical_task("puzzle-4x4-play-singletask-v0 (=task4)") == "puzzle-4x4-play-singletask-task4-v0"
    assert canonical_task("pen-cloned-v1") == "pen-cloned-v1"
    csv = pd.read_csv(ROOT / "config/expected/paper_results.csv")
    from mfql.config import known_tasks

    mfql_tasks = set(reported_mfql(csv).task)
    assert mfql_tasks <= set(known_tasks())  # every reported MFQL number maps to a task of ours
