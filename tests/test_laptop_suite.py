"""The laptop suites' configurations (config/config.yaml, suites.laptop and suites.laptop_o2o) at tiny budgets,
from their datasets to their tables and learning curves: their packed, compiled jobs of both their variants, the
evaluations, the tables and the curves (for offline-to-online: the switch marked, the score at the end of the
offline phase beside the final one). The jobs that follow from the suite's model alone (the efficiency benchmark,
the toy) and the verification are the quick suite's, run whole in tests/test_workflow.py."""

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from mfql.report.figures import O2O_TITLE, SWITCH_LABEL, facet_grid, o2o_switch
from tests.conftest import ROOT, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]  # Snakemake, SLURM or DVC end to end: minutes


# make_tables writes every table, plot_curves every curve figure
TARGETS = ("results/tables/offline.csv", "results/figures/curves_offline.png")
TINY = {"offline_steps": 40, "eval_interval": 20, "eval_episodes": 2, "log_interval": 20, "env_max_steps": 20}


def run_tiny(tmp_path, name: str, phases: dict, seeds: list[int] | None = None,
             tasks: int | None = None) -> tuple[dict, Path]:
    """Run suite ``name`` up to its tables and curves (TARGETS) through Snakemake, with its phases' options
    updated by ``phases`` (setting -> options), 3 regenerated episodes, 2 final evaluation episodes, ``seeds`` if
    given and its first ``tasks`` tasks if given (a task is data to the pipeline: the same jobs, each compiled
    anew); (the suite as configured, the working folder)."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    suite = config["suites"][name]
    tiny = copy.deepcopy(suite)
    tiny["datagen"] = {"episodes": 3, "episode_steps": 100}
    for setting, options in phases.items():
        tiny[setting]["args"] = {**suite[setting]["args"], **options}
        tiny[setting]["seeds"] = seeds or suite[setting]["seeds"]
        tiny[setting]["tasks"] = suite[setting]["tasks"][:tasks]
    tiny["eval_episodes_final"] = 2
    tiny["toy"] = {"steps": 100, "batch_size": 64, "samples": 100}
    config.update(suite=f"{name}_ci", suites={f"{name}_ci": tiny}, bootstrap={"reps": 200, "seed": 0})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    snakemake("--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--configfile", str(path),
              "--cores", "2", *TARGETS)
    return suite, work


def test_laptop_suite_configuration_runs_end_to_end_at_tiny_budgets(tmp_path):
    laptop, work = run_tiny(tmp_path, "laptop", {"offline": TINY}, seeds=[0, 1], tasks=1)
    results = work / "results"
    variants, tasks, seeds = laptop["variants"], laptop["offline"]["tasks"][:1], [0, 1]
    # the suite's second task and third seed: the same jobs on other data, one more seed in each packed job
    assert len(laptop["offline"]["tasks"]) == 2 and laptop["offline"]["seeds"] == [0, 1, 2]
    for variant in variants:
        for task in tasks:
            for seed in seeds:
                run = results / "offline" / variant / task / f"seed{seed}"
                cfg = OmegaConf.load(run / "config.yaml")
                assert cfg.compile is True and cfg.offline_steps == 40 and cfg.seed == seed
                evals = pd.read_csv(run / "eval.csv")
                # MeanFlow-QL's loop starts at step 0 (as the official one), FQL's at step 1
                assert list(evals.step)[-2:] == [20, 40] and evals.success.between(0, 1).all()
    mfql = OmegaConf.load(results / "offline" / "mfql-short_budget" / tasks[0] / "seed0" / "config.yaml")
    assert mfql.method == "mfql" and mfql.agent.dynamic_alpha is False and mfql.agent.discount == 0.99
    assert mfql.agent.alpha == 60 and mfql.agent.num_candidates == 1
    assert len(list((work / "logs").glob("train_offline/*/*/seeds*.log"))) == len(variants) * len(tasks)  # packed
    offline = pd.read_csv(results / "tables" / "offline.csv")
    assert set(offline.variant) == set(variants) and set(offline.n) == {len(seeds)} and set(offline.task) == set(tasks)
    for ext in ("png", "pdf"):
        assert (results / "figures" / f"curves_offline.{ext}").stat().st_size > 1000


def test_laptop_o2o_suite_runs_end_to_end_and_its_figure_shows_the_switch(tmp_path):
    suite, work = run_tiny(tmp_path, "laptop_o2o", {"o2o": {**TINY, "online_steps": 40}}, seeds=[2])
    results = work / "results"
    variants, (task,), seeds = suite["variants"], suite["o2o"]["tasks"], [2]  # one seed: each is its own job
    assert suite["o2o"]["args"]["offline_steps"] == 30000 and suite["o2o"]["args"]["online_steps"] == 20000
    assert suite["o2o"]["seeds"] == [0, 1, 2] and "seeds_per_job" not in suite["o2o"]
    for variant in variants:
        for seed in seeds:
            run = results / "o2o" / variant / task / f"seed{seed}"
            cfg = OmegaConf.load(run / "config.yaml")
            assert cfg.compile is True and (cfg.offline_steps, cfg.online_steps) == (40, 40) and cfg.seed == seed
            assert list(pd.read_csv(run / "eval.csv").step)[-4:] == [20, 40, 60, 80]  # offline, then online
    assert not (results / "offline").exists()
    assert len(list((work / "logs").glob("finetune_online/*/*/seed?.log"))) == len(variants) * len(seeds)
    o2o = pd.read_csv(results / "tables" / "o2o.csv")
    assert set(o2o.variant) == set(variants) and set(o2o.after_n) == {len(seeds)}
    # the score at the end of the offline phase beside the final one, and the gain between them
    assert (o2o.after_mean - o2o.before_mean).round(6).tolist() == o2o.gain_mean.round(6).tolist()
    assert "→" in (results / "tables" / "o2o.md").read_text()
    scores = pd.read_csv(results / "tables" / "scores.csv")
    switch = o2o_switch(scores)
    assert switch == {task: 40}
    grid = facet_grid(pd.read_csv(results / "tables" / "runs.csv"), "task", O2O_TITLE, switch)
    assert [list(line.get_xdata()) for line in grid.axes_dict[task].lines
            if line.get_label() == SWITCH_LABEL] == [[0.04, 0.04]]
    for ext in ("png", "pdf"):
        assert (results / "figures" / f"curves_o2o.{ext}").stat().st_size > 1000
