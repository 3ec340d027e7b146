# Glue only: the plan (mfql/plan.py, unit-tested) built once, and the input functions the rules call.
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from mfql.config import hydra_value
from mfql.data.datasets import dataset_mb
from mfql.plan import EFFICIENCY_BENCH, OVERLAY, RUN_LOG_FILES, TABLES, TRAIN_RULES, Plan, PlanError, run_dir, task_pattern


def config_error(message):
    sys.exit(f"config error: {message}")


def check_executor():
    """`--profile slurm` on a machine without SLURM: one line now, not a traceback per status query."""
    plugin = workflow.executor_plugin
    if plugin is not None and plugin.name == "slurm" and shutil.which("sbatch") is None:
        config_error("the slurm executor (--profile slurm) needs SLURM's sbatch on PATH, and there is none on "
                     "this machine; run on the cluster's login node, or drop --profile slurm to run locally")


ROOT = Path(workflow.basedir)  # the repository: its config files are found from any --directory
try:  # the options of every run are checked once, by the main process, not again inside each job
    PLAN = Plan.build(config, ROOT / "workflow/schemas/config.schema.yaml", check_args=workflow.is_main_process)
except PlanError as exc:
    config_error(str(exc))
SUITE, DATA, TASKS, SWEEP = PLAN.suite, PLAN.data_dir, PLAN.tasks, PLAN.sweep


def dataset_of(setting):
    """Input function of a training rule: the task's dataset, once its variant and task are known ones."""

    def dataset(wc):
        try:
            PLAN.check_run(setting, wc.variant, wc.task)
        except PlanError as exc:
            raise WorkflowError(str(exc)) from None
        return PLAN.checksum_file(wc.task)

    return dataset


wildcard_constraints:
    dataset=r"[a-z0-9x-]+",  # OGBench dataset names (Minari ids are D4RL/{env}/{name})
    env=r"[a-z]+",
    name=r"[a-z0-9-]+",
    setting=r"offline|o2o",
    variant=r"[A-Za-z0-9_]+(-[A-Za-z0-9_.]+)*",
    task=r"[a-z0-9x-]+-v[0-9]",
    seed=r"\d+",
