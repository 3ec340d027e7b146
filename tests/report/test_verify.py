"""Verification logic on made-up runs."""

import numpy as np
import pandas as pd
import pytest

from mfql.report.verify import canonical_task, environment_of, reported, verify
from tests.conftest import ROOT

TASK = "humanoidmaze-medium-navigate-singletask-task1-v0"


def paper(rows):
    base = {"table": "MFQL Table 1 (offline)", "setting": "offline", "suite": "OGBench", "env_group": "x",
            "method": "MFQL", "n_seeds": 8, "source_note": "made up"}
    return pd.DataFrame([{**base, **r} for r in rows])


def scores(task, values, **overrides):
    base = {"setting": "offline", "variant": "mfql", "suite": "ogbench", "env_group": "x", "task": task,
            "paper_sizes": True,
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
                      scores("d-singletask-task1-v0", [10, 11, 9], paper_sizes=False, offline_steps=2000),
                      scores("e-singletask-task1-v0", [5, 6])])  # not in the paper's rows
    report = verify(ours, reported).set_index("task")
    assert report.loc[TASK, "status"] == "not comparable" and "fewer than 2 seeds" in report.loc[TASK, "reason"]
    assert report.loc["c-singletask-task1-v0", "status"] == "no reported number"
    d = report.loc["d-singletask-task1-v0"]
    assert d.status == "not comparable" and "small model" in d.reason and "2000 offline steps" in d.reason
    assert report.loc["e-singletask-task1-v0", "status"] == "no reported number"


def test_reported_rows_without_runs_are_listed_and_o2o_phases_map():
    reported_rows = paper([
        {"table": "MFQL Table 2 (offline-to-online) pre-finetune @1M offline steps", "setting": "offline2online",
         "task_id": "cube-double-play-singletask-v0 (=task2)", "mean": 3.0, "std": 2.0, "n_seeds": np.nan},
        {"table": "MFQL Table 2 (offline-to-online) post-finetune @2M total steps", "setting": "offline2online",
         "task_id": "cube-double-play-singletask-v0 (=task2)", "mean": 95.0, "std": 2.0, "n_seeds": np.nan},
    ])
    rows = reported(reported_rows)
    assert list(rows.phase) == ["before", "after"] and set(rows.setting) == {"o2o"}
    task = "cube-double-play-singletask-task2-v0"
    ours = scores(task, [94, 96, 95, 93], setting="o2o", online_steps=1_000_000).assign(before=[2, 4, 3, 3])
    report = verify(ours, reported_rows)
    assert list(report.status) == ["reproduced", "reproduced"]
    assert "reported n assumed 8" in report.reason.iloc[0]
    none = verify(ours.iloc[0:0], reported_rows)
    assert set(none.status) == {"not comparable"} and set(none.reason) == {"not run in this suite"}


def test_canonical_task_ids_of_the_paper_csv():
    assert canonical_task("puzzle-4x4-play-singletask-v0 (=task4)") == "puzzle-4x4-play-singletask-task4-v0"
    assert canonical_task("pen-cloned-v1") == "pen-cloned-v1"
    assert canonical_task("scene-play-singletask-v0") == "scene-play-singletask-task2-v0"  # OGBench's default
    assert canonical_task("antsoccer-arena-navigate-singletask-v0") == "antsoccer-arena-navigate-singletask-task4-v0"
    csv = pd.read_csv(ROOT / "config/expected/paper_results.csv")
    from mfql.config import known_tasks

    mfql_tasks = set(reported(csv).task)
    assert mfql_tasks <= set(known_tasks())  # every reported MFQL number maps to a task of ours


ENV = "antmaze-large-navigate"
ENV_TASKS = [f"{ENV}-singletask-task{i}-v0" for i in range(1, 6)]


def fql_env_paper(mean, std):
    return paper([{"table": "FQL-paper Table 1 (offline baselines, category averages)", "env_group": ENV,
                   "task_id": "ALL (5 tasks)", "method": "FQL", "mean": mean, "std": std}])


def test_fql_category_averages_are_checked_against_per_seed_environment_means():
    # seed s scores 70 + s on task i + 2 (i - 3): the environment's per-seed mean is 70 + s
    ours = pd.concat([scores(t, [70.0 + s + 2 * (i - 3) for s in range(8)], variant="fql", env_group=ENV)
                      for i, t in enumerate(ENV_TASKS, start=1)])
    report = verify(ours, fql_env_paper(73.5, 2.4))
    row = report[report.task == f"{ENV} (all 5 tasks)"].iloc[0]
    assert row.method == "FQL" and row.n == 8 and row.reproduced_mean == 73.5 and row.status == "reproduced"
    assert row.reproduced_std == pytest.approx(np.std(np.arange(8) + 70.0, ddof=1))
    far = verify(ours, fql_env_paper(20.0, 1.0))
    assert far[far.task == f"{ENV} (all 5 tasks)"].status.iloc[0] == "differs"
    # MFQL runs of the same tasks are not FQL's reproduction, and four of five tasks are not the average
    as_mfql = verify(ours.assign(variant="mfql"), fql_env_paper(73.5, 2.4)).set_index("method")
    assert as_mfql.loc["FQL", "reason"] == "not run in this suite"
    short = verify(ours[ours.task != ENV_TASKS[0]], fql_env_paper(73.5, 2.4)).iloc[0]
    assert short.status == "not comparable" and short.reason == "4 of the environment's 5 tasks run"
    # FQL's per-task runs are listed (no reported per-task number), ablation variants are not
    listed = verify(pd.concat([ours, ours.assign(variant="mfql-K1")]), fql_env_paper(73.5, 2.4))
    assert set(listed.variant) == {"fql"} and (listed.status == "no reported number").sum() == 5


@pytest.mark.slow
def test_every_fql_row_of_the_paper_csv_maps_to_our_tasks_or_environments():
    from mfql.config import known_tasks, load_task

    csv = pd.read_csv(ROOT / "config/expected/paper_results.csv")
    rows = reported(csv, "FQL")
    per_task = rows[~rows.task.str.startswith("ALL")]
    assert set(per_task.task) <= set(known_tasks()) and len(per_task) == 30  # O2O, before and after
    per_env = rows[rows.task.str.startswith("ALL")]
    assert len(per_env) == 13
    for row in per_env.itertuples():  # "ALL (n tasks)": n is the number of our tasks of that environment
        n = int(row.task.split("(")[1].split()[0])
        ours = pd.DataFrame({"task": known_tasks(), "env_group": [load_task(t).env_group for t in known_tasks()]})
        assert len(environment_of(ours, row.env_group)) == n, row.env_group
