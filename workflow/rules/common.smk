# Helpers only: config validation, task and seed lists, input functions, target lists.
import difflib
import re
import shutil
import sys
from pathlib import Path

import jsonschema
import yaml

from mfql.config import ConfigError, hydra_value, known_tasks, load_task, train_config
from mfql.data import checksums_path
from mfql.runfolder import RunFolder
from mfql.sweep import alpha_grid, load_overlay, parse_sweep_variant, sweep_tasks, sweep_variant


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
    for name in suite.get("variants", ["mfql"]):
        base = parse_sweep_variant(name)
        if (base[0] if base else name) not in cfg["variants"]:
            config_error(f"suites.{cfg['suite']}.variants: unknown variant {name!r} (valid: "
                         f"{', '.join(cfg['variants'])}, or <variant>-alpha<number>)")
    for name in cfg["variants"]:
        if parse_sweep_variant(name):
            config_error(f"variants.{name}: names ending in -alpha<number> are the sweep's (valid: another name)")
    for setting in ("offline", "o2o"):
        chosen = suite.get(setting, {}).get("tasks", [])
        for task in chosen if isinstance(chosen, list) else []:
            if task not in tasks:
                config_error(f"suites.{cfg['suite']}.{setting}.tasks: unknown task {task!r} "
                             f"(valid: ids of config/mfql/tasks/*.yaml)")


def check_executor():
    """`--profile slurm` on a machine without SLURM: one line now, not a traceback per status query."""
    plugin = workflow.executor_plugin
    if plugin is not None and plugin.name == "slurm" and shutil.which("sbatch") is None:
        config_error("the slurm executor (--profile slurm) needs SLURM's sbatch on PATH, and there is none on "
                     "this machine; run on the cluster's login node, or drop --profile slurm to run locally")


def check_targets(argv):
    """A target or --forcerun path naming an unknown task: one line now, not an input-function traceback."""
    for arg in argv:
        match = re.match(r"^(?:\./)?results/(?:offline|o2o)/([^/]+)/([^/]+)/", arg)
        if match is None:
            continue
        variant, task = match.groups()
        base = parse_sweep_variant(variant)
        if (base[0] if base else variant) not in config["variants"]:
            config_error(f"target {arg}: unknown variant {variant!r} (valid: {', '.join(config['variants'])}, "
                         "or <variant>-alpha<number>)")
        if task not in TASKS:
            close = difflib.get_close_matches(task, list(TASKS), n=3, cutoff=0.6)
            config_error(f"target {arg}: unknown task {task!r} (valid: ids of config/mfql/tasks/*.yaml"
                         + (f", e.g. {', '.join(close)})" if close else ")"))


# the two methods as their papers ran them exist in every config; `variants:` adds (or redefines) others
config["variants"] = {"mfql": {"method": "mfql"}, "fql": {"method": "fql"}, **config.get("variants", {})}
validate_config(config)
ROOT = Path(workflow.basedir)  # the repository: its config files are found from any --directory
SUITE = config["suites"][config["suite"]]
DATA = config["data_dir"].rstrip("/")
TASKS = {t: load_task(t) for t in known_tasks()}
check_targets(sys.argv)
# Set by the pipeline itself, so a suite's args may not set them.
PIPELINE_KEYS = ("task", "seed", "seeds", "out_dir", "data_dir", "model", "device", "threads", "overwrite", "method")
SWEEP = SUITE.get("alpha_sweep")  # this suite sweeps alpha (the sweep suite)
OVERLAY = "results/sweep/alpha.yaml"  # the sweep's picks, read by suites with alpha_source: swept


def read_overlay():
    if SUITE.get("alpha_source", "table") != "swept":
        return {}
    try:
        return load_overlay(OVERLAY)
    except (OSError, ValueError) as exc:
        config_error(str(exc))


SWEPT_ALPHA = read_overlay()


def tasks_of(setting):
    chosen = SUITE.get(setting, {}).get("tasks", [])
    if chosen == "all":
        return sorted(TASKS)
    if chosen == "o2o":
        return sorted(t for t, c in TASKS.items() if "o2o" in c)
    if chosen == "sweep":  # the default task of each environment with an unpublished alpha
        return sweep_tasks(sorted(TASKS))
    return list(chosen)


def variants_of(task):
    """The variants a suite runs on a task: its list, or in a sweep each variant at every alpha of the task's
    grid (`<variant>-alpha<value>`)."""
    names = SUITE.get("variants", ["mfql"])
    if SWEEP:
        return [sweep_variant(v, a) for v in names for a in alpha_grid(task, SWEEP["factors"])]
    return names


def variant_options(name):
    """(method, options) of a variant: its entry in `variants`, and for <variant>-alpha<v> also agent.alpha."""
    swept = parse_sweep_variant(name)
    spec = config["variants"][swept[0] if swept else name]
    args = dict(spec.get("args", {}))
    if swept:
        args["agent.alpha"] = swept[1]
    return spec["method"], args


def seeds_of(setting, task):
    part = SUITE[setting]
    if TASKS[task].get("visual", False) and "visual_seeds" in part:
        return part["visual_seeds"]
    return part["seeds"]


def seeds_per_job(setting):
    return SUITE.get(setting, {}).get("seeds_per_job", 1)


TRAIN_RULES = {"offline": "train_offline", "o2o": "finetune_online"}  # the training rule of each setting


def packs(setting):
    """{seeds of one job: the tasks trained in such jobs}: each task's seeds cut into groups of seeds_per_job."""
    size, groups = seeds_per_job(setting), {}
    for task in tasks_of(setting):
        seeds = seeds_of(setting, task)
        for first in range(0, len(seeds), size):
            groups.setdefault(tuple(seeds[first : first + size]), []).append(task)
    return groups


def job_runtime(setting, seeds, attempt, task):
    """Minutes for a training job: the suite's runtime (O2O twice that: as many online as offline steps),
    times ceil(seeds / 2) for a packed job (8 packed seeds measured at most ~3x one seed's time: 4x), times 3
    for a pixel task (an update of 174 GFLOP against the state model's 31, for half the steps), times the
    attempt (a retried job also gets more time)."""
    pixels = 3 if TASKS[task].get("visual", False) else 1
    return SUITE["runtime"] * (2 if setting == "o2o" else 1) * -(-seeds // 2) * pixels * attempt


def packed_mem_mb(seeds):
    """Host memory of a packed job: the suite's per-job figure plus mem_mb_per_extra_seed for each further seed
    (the dataset is loaded once; each seed adds its agent, evaluation environments and logs)."""
    return SUITE["mem_mb"] + SUITE.get("mem_mb_per_extra_seed", 2000) * (seeds - 1)


def runs(setting):
    return [(v, t, s) for t in tasks_of(setting) for v in variants_of(t) for s in seeds_of(setting, t)]


def checksum_file(task):
    """The file a dataset's fetch job writes last: the training job's data input."""
    return str(checksums_path(DATA, TASKS[task].dataset))


def train_args(setting, variant, task):
    """The `python -m mfql.train` options of a run: the suite's args for the setting, the variant's method and
    options, and with alpha_source: swept the sweep's alpha for a task whose alpha is unpublished (offline,
    MFQL, unless the variant sets alpha itself)."""
    method, options = variant_options(variant)
    args = {**SUITE.get(setting, {}).get("args", {}), "method": method, **options}
    if setting == "offline" and method == "mfql" and task in SWEPT_ALPHA and "agent.alpha" not in options:
        args["agent.alpha"] = SWEPT_ALPHA[task]["alpha"]
    return args


def as_options(args):
    """`key=value` options of `python -m mfql.train`: ``args`` and what the pipeline sets for every job."""
    args = {**args, "model": SUITE["model"], "device": "cuda" if SUITE["gpu"] else "cpu"}
    if config["overwrite"]:
        args["overwrite"] = True
    return [f"{k}={hydra_value(v)}" for k, v in args.items()]


def train_options(setting, variant, task):
    return as_options(train_args(setting, variant, task))


def check_train_args():
    """Each setting's and variant's options, checked now against the training config: a bad key, type or value
    stops the plan with one line naming where it was set, before any job starts."""
    for setting in ("offline", "o2o"):
        where = f"suites.{config['suite']}.{setting}.args"
        suite_args = SUITE.get(setting, {}).get("args", {})
        for key in suite_args:
            if key in PIPELINE_KEYS:
                config_error(f"{where}.{key}: set by the pipeline, not by a suite (valid: other options of "
                             "`python -m mfql.train --help`)")
        tasks = tasks_of(setting)
        checked = tasks[:1] + [t for t in tasks if "o2o" in TASKS[t]][:1]
        variants = {v: None for t in checked for v in variants_of(t)}
        methods = {variant_options(v)[0]: None for v in variants}
        # the suite's args with each method first, then each variant's own options on top
        for label, args in [(where, lambda t, m=m: {**suite_args, "method": m}) for m in methods] + [
                (f"variants.{v}", lambda t, v=v: train_args(setting, v, t)) for v in variants]:
            for task in checked:
                try:  # the same composition the job will do, for a task of this setting
                    train_config([f"task={task}", "seed=0", "out_dir=.", f"data_dir={DATA}", *as_options(args(task))])
                except ConfigError as exc:
                    config_error(f"{label}: {exc}")


def run_dir(setting, variant, task, seed):
    return f"results/{setting}/{variant}/{task}/seed{seed}"


def run_files(setting, names=("final.pt", "eval.csv")):
    return [f"{run_dir(setting, v, t, s)}/{n}" for v, t, s in runs(setting) for n in names]


def restore_run_files(final_pt, log_path):
    """The run_files rule: write a finished run's files back from the copies inside its final.pt."""
    restored = RunFolder(Path(final_pt).parent).restore_files()
    Path(log_path).write_text(f"restored from {final_pt}: {', '.join(restored)}\n")


def planned_runs():
    """Exactly the runs this suite plans, with the options they must have been trained with."""
    return [{"setting": setting, "variant": v, "task": t, "seed": s, "dir": run_dir(setting, v, t, s),
             "args": train_args(setting, v, t), "model": SUITE["model"]}
            for setting in ("offline", "o2o") for v, t, s in runs(setting)]


def eval_files():
    return [f for setting in ("offline", "o2o") for f in run_files(setting, ("eval.csv", "final_eval.json"))]


check_train_args()
RUN_LOG_FILES = ["eval.csv", "train.csv", "config.yaml", "meta.json"]
FIGURES = ["curves_offline", "curves_env", "curves_o2o", "aggregates", "claims", "profiles"]
TABLES = ["offline", "offline_env", "o2o"]


def final_targets():
    return (
        [f"results/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md", "tex")]
        + [f"results/figures/{f}.{ext}" for f in FIGURES for ext in ("png", "pdf")]
        + ["results/figures/toy/toy.png", "results/verification/report.md", "results/verification/report.csv",
           "results/verification/claims.md", "results/verification/claims.csv"]
        + ([OVERLAY] if SWEEP else [])
    )


wildcard_constraints:
    dataset=r"[a-z0-9x-]+",  # OGBench dataset names (Minari ids are D4RL/{env}/{name})
    env=r"[a-z]+",
    name=r"[a-z0-9-]+",
    setting=r"offline|o2o",
    variant=r"[A-Za-z0-9_]+(-[A-Za-z0-9_.]+)*",
    task=r"[a-z0-9x-]+-v[0-9]",
    seed=r"\d+",
