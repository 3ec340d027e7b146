"""The α sweep's plan and pick: sources read from the task files, default tasks, the grid, the selection rule on
made-up scores with a known answer, and the overlay file."""

import pandas as pd
import pytest

from mfql.config import known_tasks
from mfql.report.sweep import (
    alpha_grid,
    alpha_is_published,
    alpha_source,
    default_task,
    load_overlay,
    parse_sweep_variant,
    select,
    sweep_tasks,
    sweep_variant,
)


def test_every_task_file_names_the_source_of_each_methods_alpha():
    sources = {t: alpha_source(t) for t in known_tasks()}
    assert all(s.startswith(("paper Table 7", "our choice")) for s in sources.values()), sources
    published = sorted(t for t in known_tasks() if alpha_is_published(t))
    assert len(published) == 12 and "cube-double-play-singletask-task2-v0" in published
    # FQL: every value from FQL's README (the section's comment); ReBRAC: its actor weight, from FQL's README on
    # humanoidmaze-medium (5 tasks) and visual-cube-single, our choice elsewhere
    assert all(alpha_source(t, "fql").startswith("method=fql: FQL README") for t in known_tasks())
    rebrac = sorted(t for t in known_tasks() if alpha_is_published(t, "rebrac"))
    assert len(rebrac) == 6 and all(t.startswith(("humanoidmaze-medium", "visual-cube-single")) for t in rebrac)
    assert alpha_source("pen-human-v1", "rebrac").startswith("our choice")
    with pytest.raises(ValueError, match="method 'nope'|'nope'"):
        alpha_source("pen-human-v1", "nope")


def test_default_tasks_are_ogbench_s():
    assert default_task("scene-play-singletask-task5-v0") == "scene-play-singletask-task2-v0"
    assert default_task("puzzle-4x4-play-singletask-task1-v0") == "puzzle-4x4-play-singletask-task4-v0"
    antsoccer = "antsoccer-arena-navigate-singletask-task{}-v0"
    assert default_task(antsoccer.format(2)) == antsoccer.format(4)
    assert default_task("humanoidmaze-large-navigate-singletask-task3-v0") == (
        "humanoidmaze-large-navigate-singletask-task1-v0")
    assert default_task("pen-human-v1") == "pen-human-v1"  # a D4RL task is its own environment


def test_sweep_covers_each_environment_with_an_unpublished_alpha_once():
    tasks = sweep_tasks(known_tasks())
    # 7 OGBench default tasks (cube-double and both humanoidmazes have a published default-task alpha) and the
    # 9 D4RL tasks without one; pixel tasks wait for pixel training
    assert len(tasks) == 16
    assert "cube-single-play-singletask-task2-v0" in tasks and "cube-single-play-singletask-task1-v0" not in tasks
    assert not [t for t in tasks if t.startswith(("cube-double", "humanoidmaze", "visual"))]
    assert alpha_grid("cube-single-play-singletask-task2-v0", [0.1, 0.3, 1, 3, 10]) == [12, 36, 120, 360, 1200]
    # ReBRAC: every environment but humanoidmaze-medium's (and the pixel tasks), around its task files' values
    rebrac = sweep_tasks(known_tasks(), "rebrac")
    assert len(rebrac) == 9 + 18 and "humanoidmaze-large-navigate-singletask-task1-v0" in rebrac
    assert not [t for t in rebrac if t.startswith(("humanoidmaze-medium", "visual"))]
    assert alpha_grid("cube-single-play-singletask-task2-v0", [0.1, 1, 10], "rebrac") == [0.1, 1, 10]
    assert sweep_tasks(known_tasks(), "fql") == []  # FQL's values are all published
    assert parse_sweep_variant(sweep_variant("mfql", 0.3)) == ("mfql", 0.3)
    assert parse_sweep_variant("mfql-K1") is None


def test_selection_rule_picks_the_best_mean_and_the_smaller_alpha_on_ties():
    default = "cube-single-play-singletask-task2-v0"
    pen = "pen-human-v1"
    scores = pd.DataFrame([
        {"task": default, "alpha": 12.0, "score": 10.0}, {"task": default, "alpha": 12.0, "score": 30.0},
        {"task": default, "alpha": 36.0, "score": 40.0}, {"task": default, "alpha": 36.0, "score": 44.0},
        {"task": default, "alpha": 120.0, "score": 42.0}, {"task": default, "alpha": 120.0, "score": 42.0},
        {"task": pen, "alpha": 1000.0, "score": 50.0}, {"task": pen, "alpha": 3000.0, "score": 50.0},
    ]).assign(method="mfql")
    rebrac = pd.DataFrame([{"task": default, "alpha": 0.1, "score": 5.0}, {"task": default, "alpha": 1.0, "score": 9.0},
                           {"task": "humanoidmaze-medium-navigate-singletask-task1-v0", "alpha": 0.1, "score": 1.0}])
    both = select(pd.concat([scores, rebrac.assign(method="rebrac")]), known_tasks(),
                  {"budget": "250000 offline steps"}, "best mean")
    assert list(both) == ["mfql", "rebrac"] and {v["alpha"] for v in both["rebrac"].values()} == {1.0}
    assert set(both["rebrac"]) == {f"cube-single-play-singletask-task{i}-v0" for i in range(1, 6)}  # humanoidmaze-
    assert both["rebrac"][default]["source"].startswith("swept: alpha_actor in [0.1, 1] on ")  # medium: published
    overlay = select(scores, known_tasks(), {"budget": "250000 offline steps"}, "best mean")
    assert list(overlay) == ["mfql"]
    overlay = overlay["mfql"]
    cube = {t: v for t, v in overlay.items() if t.startswith("cube-single")}
    assert set(cube) == {f"cube-single-play-singletask-task{i}-v0" for i in range(1, 6)}
    assert {v["alpha"] for v in cube.values()} == {36.0}  # 42 vs 42 vs 20: ties between 36 and 120 -> 36
    assert cube[default]["source"] == (f"swept: alpha in [12, 36, 120] on {default}, 250000 offline steps, "
                                       "2 seeds; rule: best mean")
    assert overlay[pen]["alpha"] == 1000.0  # a tie: the smaller alpha
    assert "door-cloned-v1" not in overlay and "cube-double-play-singletask-task1-v0" not in overlay


def test_overlay_file_errors_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the sweep first"):
        load_overlay(tmp_path / "alpha.yaml")
    for wrong in ("alpha: {mfql: {pen-human-v1: {alpha: lots}}}", "alpha: {pen-human-v1: {alpha: 3}}",
                  "alpha: {sac: {pen-human-v1: {alpha: 3}}}"):
        (tmp_path / "alpha.yaml").write_text(wrong + "\n")
        with pytest.raises(ValueError, match="not a sweep overlay"):
            load_overlay(tmp_path / "alpha.yaml")
    (tmp_path / "alpha.yaml").write_text("alpha: {rebrac: {pen-human-v1: {alpha: 3, source: x}}}\n")
    assert load_overlay(tmp_path / "alpha.yaml") == {"rebrac": {"pen-human-v1": {"alpha": 3, "source": "x"}}}
