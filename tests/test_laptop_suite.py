"""The laptop suite's configuration (config/config.yaml, suites.laptop) end to end at tiny budgets: its
packed, compiled jobs of both its variants, the evaluations, the tables and the learning-curve figure."""

import copy

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from tests.conftest import ROOT
from tests.test_workflow import snakemake

pytestmark = pytest.mark.slow  # Snakemake, SLURM or DVC end to end: minutes


def test_laptop_suite_configuration_runs_end_to_end_at_tiny_budgets(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    laptop = config["suites"]["laptop"]
    tiny = copy.deepcopy(laptop)
    tiny["datagen"] = {"episodes": 3, "episode_steps": 100}
    tiny["offline"]["args"] = {**laptop["offline"]["args"], "offline_steps": 40, "eval_interval": 20,
                               "eval_episodes": 2, "log_interval": 20, "env_max_steps": 20}
    tiny["eval_episodes_final"] = 2
    tiny["toy"] = {"steps": 100, "batch_size": 64, "samples": 100}
    config.update(suite="laptop_ci", suites={"laptop_ci": tiny}, bootstrap={"reps": 200, "seed": 0})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    snakemake("--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--configfile", str(path),
              "--cores", "2")
    results = work / "results"
    variants, tasks, seeds = laptop["variants"], laptop["offline"]["tasks"], laptop["offline"]["seeds"]
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
    assert set(offline.variant) == set(variants) and set(offline.n) == {len(seeds)}
    for ext in ("png", "pdf"):
        assert (results / "figures" / f"curves_offline.{ext}").stat().st_size > 1000
