"""The claims section on made-up runs with known answers: probability of improvement as rliable defines it,
the paired stratified-bootstrap CI of MFQL - FQL, and agreement with the paper's own claim."""

import numpy as np
import pandas as pd
import pytest

from mfql.report.claims import claims, paired_bootstrap, performance_profile, probability_of_improvement, to_markdown

TASKS = ["scene-play-singletask-task2-v0", "cube-double-play-singletask-task2-v0"]


def test_probability_of_improvement_matches_rliable_on_a_known_case():
    # rliable 1.2.0: metrics.probability_of_improvement([[1, 5], [3, 7]], [[2, 5], [0, 7], [4, 1]]) = 0.58333
    # (task 1: 3 of 6 pairs won; task 2: 3 won + 2 ties = 4 of 6)
    x = [np.array([1.0, 3.0]), np.array([5.0, 7.0])]
    y = [np.array([2.0, 0.0, 4.0]), np.array([5.0, 7.0, 1.0])]
    assert probability_of_improvement(x, y) == pytest.approx(0.5833333333333333, abs=1e-15)
    assert probability_of_improvement([np.ones(3)], [np.ones(4)]) == 0.5  # all ties
    # one task won outright, one lost outright: 0.5 on average, however large the margins
    assert probability_of_improvement([np.array([9.0, 10]), np.array([0.0, 1])],
                                      [np.array([1.0, 2]), np.array([50.0, 60])]) == 0.5


def test_bootstrap_ci_of_a_difference_matches_its_normal_approximation():
    rng = np.random.default_rng(1)
    x, y = [rng.normal(60, 5, 200)], [rng.normal(50, 5, 200)]
    est = paired_bootstrap(x, y, {"d": lambda a, b: float(np.mean(a[0]) - np.mean(b[0]))}, reps=2000, seed=0)
    point, low, high = est["d"]
    assert point == pytest.approx(x[0].mean() - y[0].mean())
    half = 1.96 * np.sqrt(x[0].var(ddof=1) / 200 + y[0].var(ddof=1) / 200)  # about 0.98
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert low < point < high
    again = paired_bootstrap(x, y, {"d": lambda a, b: float(np.mean(a[0]) - np.mean(b[0]))}, reps=2000, seed=0)
    assert again == est  # seeded: same report every run


def runs(variant, offsets, seeds=8, **overrides):
    base = {"setting": "o2o", "suite": "ogbench", "offline_steps": 1_000_000, "task_budget": 1_000_000,
            "online_steps": 1_000_000, "data_source": "download", "env_max_steps": np.nan, "paper_sizes": True}
    rows = []
    for task, offset in zip(TASKS, offsets):
        env = task.split("-singletask")[0]
        for s in range(seeds):
            rows.append({**base, "variant": variant, "task": task, "env_group": env, "seed": s,
                         "score": offset + s, "before": offset / 2 + s, **overrides})
    return pd.DataFrame(rows)


def paper(mfql, fql, rebrac=None):
    rows = []
    for method, values in (("MFQL", mfql), ("FQL", fql), ("ReBRAC", rebrac or [])):
        for task, value in zip(["scene-play-singletask-v0 (=task2)", "cube-double-play-singletask-v0 (=task2)"],
                               values):
            for phase in ("pre-finetune", "post-finetune"):
                rows.append({"table": f"{method} Table 2 {phase}", "setting": "offline2online",
                             "suite": "OGBench", "env_group": "-", "task_id": task, "method": method,
                             "mean": value, "std": 1.0, "n_seeds": 8, "source_note": "made up"})
    return pd.DataFrame(rows)


def test_claims_on_made_up_runs_with_a_known_answer():
    # MFQL beats FQL by 20 on scene (every pair won), ties it exactly on cube-double
    scores = pd.concat([runs("mfql", [80, 30]), runs("fql", [60, 30]), runs("mfql-K1", [0, 0])])
    table = claims(scores, paper(mfql=[90, 40], fql=[50, 40]), reps=500, seed=0)
    rows = table.set_index(["phase", "level", "name"])
    scene = rows.loc[("after", "task", TASKS[0])]
    assert scene.difference == 20 and scene.poi == 1.0 and scene.ci_low > 0
    assert scene.verdict == "MFQL better" and scene.paper_claim == "MFQL better" and scene.agreement == "agrees"
    cube = rows.loc[("after", "task", TASKS[1])]
    assert cube.difference == 0 and cube.poi == pytest.approx(0.5) and cube.ci_low < 0 < cube.ci_high
    assert cube.verdict == "no clear difference" and cube.paper_claim == "equal"
    # environment rows (one task each here) and the suite row: the mean over tasks, P averaged over tasks
    suite = rows.loc[("after", "suite", "ogbench")]
    assert suite.difference == 10 and suite.poi == pytest.approx(0.75) and suite.tasks == 2
    assert suite.runs_method == 16 and suite.runs_baseline == 16 and (table.baseline == "fql").all()
    # before the online phase too (the "before" column), and only mfql vs fql: the ablation is not paired
    assert rows.loc[("before", "task", TASKS[0])].difference == 10
    assert len(table) == 2 * (2 + 2 + 1)
    # runs unlike the paper's (small model) are not compared with its claim
    small = claims(pd.concat([runs("mfql", [80, 30], paper_sizes=False), runs("fql", [60, 30])]),
                   paper(mfql=[90, 40], fql=[50, 40]), reps=100, seed=0)
    assert small[small.level == "task"].agreement.str.startswith("not comparable: small model").all()
    assert (small[small.level != "task"].agreement == "no reported pair").all()
    # a reported pair the runs contradict
    flipped = claims(scores, paper(mfql=[40, 40], fql=[90, 40]), reps=100, seed=0).set_index(["phase", "level",
                                                                                                 "name"])
    assert flipped.loc[("after", "task", TASKS[0]), "agreement"] == "contradicts"
    text = to_markdown(table)
    assert "| o2o | after | task | scene-play-singletask-task2-v0 | 83.5 (8) | 63.5 (8) | 20.0 [" in text


def test_claims_against_each_baseline_on_made_up_runs_with_known_answers():
    # MFQL: +20 over FQL on scene and a tie on cube-double; -10 against ReBRAC on scene, +20 on cube-double
    scores = pd.concat([runs("mfql", [80, 30]), runs("fql", [60, 30]), runs("rebrac", [90, 10])])
    table = claims(scores, paper(mfql=[90, 40], fql=[50, 40], rebrac=[95, 20]), reps=500, seed=0)
    assert list(table.baseline.unique()) == ["fql", "rebrac"] and len(table) == 2 * 2 * (2 + 2 + 1)
    rows = table.set_index(["baseline", "phase", "level", "name"])
    fql = rows.loc[("fql", "after", "task", TASKS[0])]
    assert fql.difference == 20 and fql.verdict == "MFQL better" and fql.agreement == "agrees"
    scene = rows.loc[("rebrac", "after", "task", TASKS[0])]
    assert scene.difference == -10 and scene.poi == 0.0 and scene.ci_high < 0
    assert scene.verdict == "ReBRAC better" and scene.paper_claim == "ReBRAC better" and scene.agreement == "agrees"
    cube = rows.loc[("rebrac", "after", "task", TASKS[1])]
    assert cube.difference == 20 and cube.poi == 1.0 and cube.paper_difference == 20 and cube.agreement == "agrees"
    suite = rows.loc[("rebrac", "after", "suite", "ogbench")]
    assert suite.difference == 5 and suite.poi == pytest.approx(0.5) and suite.runs_baseline == 16
    text = to_markdown(table)
    assert "## MeanFlow-QL vs FQL" in text and "## MeanFlow-QL vs ReBRAC" in text
    assert text.index("## MeanFlow-QL vs FQL") < text.index("## MeanFlow-QL vs ReBRAC")


def test_no_claims_without_both_methods():
    table = claims(runs("mfql", [80, 30]), paper(mfql=[90, 40], fql=[50, 40]), reps=10, seed=0)
    assert table.empty and "No task has runs of both" in to_markdown(table)


def test_performance_profile_is_the_fraction_of_runs_above_tau_tasks_weighted_equally():
    scores = pd.DataFrame({"suite": "ogbench", "variant": "mfql", "task": ["a"] * 4 + ["b"] * 2,
                           "score": [10.0, 20, 30, 40, 50, 60]})
    profile = performance_profile(scores, np.array([0.0, 25.0, 55.0]), reps=50, seed=0)
    # tau 25: half of a's runs, all of b's -> 0.75; tau 55: none of a's, half of b's -> 0.25
    assert list(profile.fraction) == [1.0, 0.75, 0.25]
    assert (profile.low <= profile.fraction).all() and (profile.fraction <= profile.high).all()
