# Helpers only: config validation, task and seed lists, input functions, target lists.
import sys
from pathlib import Path

import jsonschema
import yaml

from mfql.config import known_tasks, load_task


def config_error(message):
    sys.exit(f"config error: {message}")


def validate_config(cfg):
    """JSON-schema validation with one line naming the bad key, then the cross-checks a schema cannot do."""
    schema = yaml.safe_load(open(workflow.source_path("../schemas/config.schema.yaml")))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        config_error(f"{key}: {error.message}")
    if cfg["suite"] not in cfg["suites"]:
        config_error(f"suite: {cfg['suite']!r} is not defined (valid: {', '.join(cfg['suites'])})")
    tasks = set(known_tasks())
    suite = cfg["suites"][cfg["suite"]]
    for setting in ("offline", "o2o"):
        chosen = suite.get(setting, {}).get("tasks", [])
        for task in chosen if isinstance(chosen, list) else []:
            if task not in tasks:
                config_error(f"suites.{cfg['suite']}.{setting}.tasks: unknown task {task!r} "
                             f"(valid: ids of config/mfql/tasks/*.yaml)")


validate_config(config)
ROOT = Path(workflow.basedir)  # the repository: its config files are found from any --directory
SUITE = config["suites"][config["suite"]]
DATA = config["data_dir"].rstrip("/")
TASKS = {t: load_task(t) for t in known_tasks()}


def tasks_of(setting):
    chosen = SUITE.get(setting, {}).get("tasks", [])
    if chosen == "all":
        return sorted(TASKS)
    if chosen == "o2o":
        return sorted(t for t, c in TASKS.items() if "o2o" in c)
    return list(chosen)


def seeds_of(setting, task):
    part = SUITE[setting]
    if TASKS[task].get("visual", False) and "visual_seeds" in part:
        return part["visual_seeds"]
    return part["seeds"]


def runs(setting):
    return [(t, s) for t in tasks_of(setting) for s in seeds_of(setting, t)]


def checksum_file(task):
    """The file a dataset's fetch job writes last: the training job's data input."""
    flat = "__".join(TASKS[task].dataset.split("/"))
    return f"{DATA}/checksums/{flat}.json"


def train_args(setting):
    """The suite's extra `python -m mfql.train` options, the same for every task and seed of a setting."""
    args = dict(SUITE.get(setting, {}).get("args", {}))
    args.update(model=SUITE["model"], device="auto")
    return " ".join(f"{k}={'null' if v is None else v}" for k, v in args.items())


def run_files(setting, names=("final.pt", "eval.csv")):
    return [f"results/{setting}/{t}/seed{s}/{n}" for t, s in runs(setting) for n in names]


def eval_files():
    return [f for setting in ("offline", "o2o") for f in run_files(setting, ("eval.csv", "final_eval.json"))]


FIGURES = ["curves_offline", "curves_env", "curves_o2o", "aggregates"]
TABLES = ["offline", "offline_env", "o2o"]


def final_targets():
    return (
        [f"results/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md", "tex")]
        + [f"results/figures/{f}.{ext}" for f in FIGURES for ext in ("png", "pdf")]
        + ["results/figures/toy/toy.png", "results/verification/report.md", "results/verification/report.csv"]
    )


wildcard_constraints:
    dataset=r"[a-z0-9x-]+",  # OGBench dataset names (Minari ids are D4RL/{env}/{name})
    env=r"[a-z]+",
    name=r"[a-z0-9-]+",
    setting=r"offline|o2o",
    task=r"[a-z0-9x-]+-v[0-9]",
    seed=r"\d+",
