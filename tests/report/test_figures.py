"""The offline-to-online figure on made-up runs with known answers: the switch marked at each task's offline
budget, one line per variant at the mean over seeds, and both files written."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfql.report.figures import O2O_TITLE, SWITCH_LABEL, curves, facet_grid, o2o_switch


def o2o_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two variants x 3 seeds on two tasks; evaluations every 1k steps; the online phase starts at 2k (task a)
    and 3k (task b); a seed's value is step/1000 + seed (+ 10 for fql)."""
    curves_, scores = [], []
    for task, budget in (("a-task1", 2000), ("b-task1", 3000)):
        for variant, offset in (("mfql", 0.0), ("fql", 10.0)):
            for seed in (0, 1, 2):
                for step in range(0, 5001, 1000):
                    curves_.append({"setting": "o2o", "variant": variant, "env_group": task[0], "task": task,
                                    "seed": seed, "metric": "success", "step": step,
                                    "value": step / 1000 + seed + offset})
                scores.append({"setting": "o2o", "variant": variant, "task": task, "seed": seed,
                               "offline_steps": budget})
    return pd.DataFrame(curves_), pd.DataFrame(scores)


def test_the_o2o_figure_marks_the_switch_at_each_tasks_offline_budget(tmp_path):
    runs, scores = o2o_runs()
    switch = o2o_switch(scores)
    assert switch == {"a-task1": 2000, "b-task1": 3000}
    grid = facet_grid(runs, "task", O2O_TITLE, switch)
    for task, budget in switch.items():
        ax = grid.axes_dict[task]
        marks = [line for line in ax.lines if line.get_label() == SWITCH_LABEL]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [budget / 1000] * 2
        assert {t.get_text().strip() for t in ax.texts} == {"← offline", "online →"}
        # one line per variant through the mean over seeds (seeds 0..2: + 1)
        means = [line.get_ydata() for line in ax.lines if len(line.get_xdata()) == 6]  # hue order: the data's
        assert len(means) == 2
        for mean, offset in zip(means, (0.0, 10.0)):
            np.testing.assert_allclose(mean, np.arange(6) + 1 + offset)
    assert "online fine-tuning" in grid.figure.texts[0].get_text()
    curves(runs, scores, tmp_path)
    for ext in ("png", "pdf"):
        assert (tmp_path / f"curves_o2o.{ext}").stat().st_size > 1000


def test_offline_runs_have_no_switch():
    runs, scores = o2o_runs()
    assert o2o_switch(scores.assign(setting="offline")) == {}
    assert o2o_switch(pd.DataFrame()) == {}
