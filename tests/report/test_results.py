"""The results tables on made-up scores with known answers: per task, per environment (mean over tasks per
seed, then over seeds), offline-to-online before -> after, and the rendered tables."""

from __future__ import annotations

import pandas as pd
import pytest

from mfql.report.results import display_table, flatten, per_env, per_task, to_latex, to_markdown


def scores() -> pd.DataFrame:
    rows = []
    for variant, base in (("mfql", 10.0), ("fql", 30.0)):
        for t, task in enumerate(("a-task1", "a-task2")):
            for seed in (0, 1, 2):
                rows.append({"setting": "offline", "suite": "ogbench", "env_group": "a", "task": task,
                             "variant": variant, "seed": seed, "score": base + 10 * t + seed})
    rows.append({"setting": "o2o", "suite": "ogbench", "env_group": "a", "task": "a-task1", "variant": "mfql",
                 "seed": 0, "score": 80.0, "before": 20.0})
    return pd.DataFrame(rows)


def test_per_task_and_per_environment_means_and_stds():
    tasks = per_task(scores(), "offline").set_index(["task", "variant"])
    assert tasks.loc[("a-task2", "fql"), "mean"] == 41.0
    assert tasks.loc[("a-task2", "fql"), "std"] == pytest.approx(1.0) and tasks.loc[("a-task2", "fql"), "n"] == 3
    env = per_env(scores()).set_index("variant")
    # per seed: mean of (10 + s, 20 + s) = 15 + s, over seeds 0..2 -> 16 +- 1
    assert env.loc["mfql", "mean"] == 16.0 and env.loc["mfql", "std"] == pytest.approx(1.0)
    assert env.loc["mfql", "tasks"] == 2


def test_display_tables_keep_the_suites_order_and_show_o2o_as_before_to_after():
    shown = display_table(per_task(scores(), "offline"), "offline")
    assert list(shown.columns) == ["task", "mfql", "fql"]
    assert shown.iloc[0].tolist() == ["a-task1", "11.0 ± 1.0 (3)", "31.0 ± 1.0 (3)"]
    o2o = display_table(per_task(scores(), "o2o"), "o2o")
    assert o2o.iloc[0].tolist() == ["a-task1", "20.0 → 80.0 (+60.0; 1)"]
    md = to_markdown(shown).splitlines()
    assert md[:2] == ["| task | mfql | fql |", "|---|---|---|"] and len(md) == 4
    tex = to_latex(shown, "Scores in %")
    assert r"11.0 $\pm$ 1.0 (3)" in tex and r"Scores in \%" in tex and "a-task1" in tex


def test_flatten_names_nested_keys_with_dots():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
