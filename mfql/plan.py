"""The pipeline's plan as pure functions: from the workflow config (config/config.yaml, a suite chosen) and the
task files to the runs, their seed packs, their `python -m mfql.train` options, their resources and the final
targets. The Snakefile's rules only call these; the tests call them directly, without Snakemake.

Every problem is a :class:`PlanError` with one line naming the bad key or value and what would be valid.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml
from omegaconf import OmegaConf

from mfql.agents import METHODS, baselines, proposed
from mfql.config import CONFIG_DIR, hydra_value, known_tasks, load_task, method_config, train_config
from mfql.data.datasets import checksums_path
from mfql.errors import ConfigError
from mfql.report.sweep import alpha_grid, load_overlay, parse_sweep_variant, sweep_tasks, sweep_variant, swept_option
from mfql.run.envs import env_mb, eval_pool_size

SETTINGS = ("offline", "o2o")
TRAIN_RULES = {"offline": "train_offline", "o2o": "finetune_online"}  # the training rule of each setting
# Set by the pipeline itself, so a suite's args may not set them.
PIPELINE_KEYS = ("task", "seed", "seeds", "out_dir", "data_dir", "model", "device", "threads", "overwrite", "method")
OVERLAY = "results/sweep/alpha.yaml"  # the sweep's picks, read by suites with alpha_source: swept
RUN_LOG_FILES = ["eval.csv", "train.csv", "config.yaml", "meta.json"]
FIGURES = ["curves_offline", "curves_env", "curves_o2o", "aggregates", "claims", "profiles", "efficiency"]
EFFICIENCY_BENCH = "results/efficiency/bench.json"  # every method's measured cost on the suite's device and model
TABLES = ["offline", "offline_env", "o2o"]

# A training job's host memory by part, MB, measured on the 2-core CPU machine (docs/performance.md, "Memory").
# On a GPU the networks, their update and the online rows live in the device's memory, not the host's.
PROCESS_MB = 800   # the interpreter, torch, MuJoCo and the dataset loader's own environment (661-764 measured)
CUDA_MB = 2000     # CUDA's libraries and context in host memory: an allowance, not yet measured on a GPU
# per seed on a CPU: networks, Adam and the update's working memory at batch 256 (packed seeds: vmapped)
SEED_MB = {("state", "paper"): 360, ("state", "small"): 100, ("pixels", "paper"): 1500, ("pixels", "small"): 1300}
SEED_MB_GPU = 100  # per seed on a GPU: the host copies of its weights that resume states and final.pt write
DATASET_COPIES = {"state": 1.2, "pixels": 1}  # the arrays as loaded, per MB of the files' arrays
ONLINE_ROW_BYTES = {"state": 650, "pixels": 12_400}  # one online row, at most (humanoidmaze; 64x64x3 frames)
MEMORY_MARGIN = 1.25  # requested over the sum of the parts
RUN_DEFAULTS = OmegaConf.load(CONFIG_DIR / "train.yaml")  # a run's options where neither suite nor variant set them
EVALUATE_DEFAULTS = OmegaConf.load(CONFIG_DIR / "evaluate.yaml")  # the final evaluation's, as the workflow runs it


def builtin_variants() -> dict:
    """The paper's method and each baseline as their papers ran them, a variant of the same name in every config;
    `variants:` adds (or redefines) others, of any registered method."""
    return {name: {"method": name} for name in (proposed(), *baselines())}


class PlanError(ConfigError):
    """A bad workflow config value or target; the message is one line for the user."""


def with_margin(parts: dict[str, float]) -> int:
    """A memory request, MB: the parts' sum and the margin, rounded up to 100 MB."""
    return int(-(-MEMORY_MARGIN * sum(parts.values()) // 100) * 100)


def run_dir(setting: str, variant: str, task: str, seed: int) -> str:
    return f"results/{setting}/{variant}/{task}/seed{seed}"


@dataclass
class Plan:
    config: dict            # the workflow config, as Snakemake read it (not modified)
    tasks: dict             # task id -> its task file (DictConfig)
    swept_alpha: dict = field(default_factory=dict)  # method -> task -> {"alpha": ...} from the sweep's overlay
    _swept_tasks: dict = field(default_factory=dict, repr=False)  # method -> its sweep's tasks (swept_tasks)

    @classmethod
    def build(cls, config: dict, schema: Path, workdir: Path = Path("."), check_args: bool = True) -> Plan:
        """Validate ``config`` against ``schema`` and the task files, then (``check_args``) check every run's
        options: seconds of config compositions, which a job's own Snakemake skips (its main process did them)."""
        validate(config, schema)
        plan = cls(config, {t: load_task(t) for t in known_tasks()})
        if plan.suite.get("alpha_source", "table") == "swept":
            try:
                plan.swept_alpha = load_overlay(workdir / OVERLAY)
            except (OSError, ValueError) as exc:
                raise PlanError(str(exc)) from None
        if check_args:
            plan.check_train_args()
        return plan

    @property
    def variants(self) -> dict:
        return {**builtin_variants(), **self.config.get("variants", {})}

    @property
    def suite(self) -> dict:
        return self.config["suites"][self.config["suite"]]

    @property
    def data_dir(self) -> str:
        return self.config["data_dir"].rstrip("/")

    @property
    def sweep(self) -> dict | None:
        """The suite's alpha_sweep section, if it sweeps alpha (the sweep suite)."""
        return self.suite.get("alpha_sweep")

    def tasks_of(self, setting: str) -> list[str]:
        chosen = self.suite.get(setting, {}).get("tasks", [])
        if chosen == "all":
            return sorted(self.tasks)
        if chosen == "o2o":
            return sorted(t for t, c in self.tasks.items() if "o2o" in c)
        if chosen == "sweep":  # the default task of each environment with an unpublished alpha, per method
            return sorted({t for method in self.swept_methods() for t in self.swept_tasks(method)})
        return list(chosen)

    def swept_methods(self) -> list[str]:
        """The methods of the suite's variants, in the suite's order."""
        return list(dict.fromkeys(self.variants[v]["method"] for v in self.suite.get("variants", [proposed()])
                                  if v in self.variants))

    def swept_tasks(self, method: str) -> list[str]:
        """The tasks a sweep runs ``method`` on (computed once per method: it reads every task file)."""
        if method not in self._swept_tasks:
            self._swept_tasks[method] = sweep_tasks(sorted(self.tasks), method)
        return self._swept_tasks[method]

    def variants_of(self, task: str) -> list[str]:
        """The variants a suite runs on a task: its list, or in a sweep each variant at every alpha of the
        task's grid (`<variant>-alpha<value>`)."""
        names = self.suite.get("variants", [proposed()])
        if self.sweep:
            return [sweep_variant(v, a) for v in names if task in self.swept_tasks(self.variants[v]["method"])
                    for a in alpha_grid(task, self.sweep["factors"], self.variants[v]["method"])]
        return names

    def variant_options(self, name: str) -> tuple[str, dict]:
        """(method, options) of a variant: its entry in `variants`, and for <variant>-alpha<v> also its method's
        swept option (agent.alpha; ReBRAC's agent.alpha_actor) at <v>."""
        swept = parse_sweep_variant(name)
        spec = self.variants[swept[0] if swept else name]
        args = dict(spec.get("args", {}))
        if swept:
            args[f"agent.{swept_option(spec['method'])}"] = swept[1]
        return spec["method"], args

    def seeds_of(self, setting: str, task: str) -> list[int]:
        part = self.suite[setting]
        if self.tasks[task].get("visual", False) and "visual_seeds" in part:
            return part["visual_seeds"]
        return part["seeds"]

    def seeds_per_job(self, setting: str) -> int:
        return self.suite.get(setting, {}).get("seeds_per_job", 1)

    def packs(self, setting: str) -> dict[tuple[int, ...], list[str]]:
        """{seeds of one job: the tasks trained in such jobs}: each task's seeds cut into groups of seeds_per_job."""
        size, groups = self.seeds_per_job(setting), {}
        for task in self.tasks_of(setting):
            seeds = self.seeds_of(setting, task)
            for first in range(0, len(seeds), size):
                groups.setdefault(tuple(seeds[first : first + size]), []).append(task)
        return groups

    def job_runtime(self, setting: str, seeds: int, attempt: int, task: str) -> int:
        """Minutes for a training job: the suite's runtime (O2O twice that: as many online as offline steps),
        times ceil(seeds / 2) for a packed job (a margin over the measured cost of packed seeds), times 3
        for a pixel task (an update of 174 GFLOP against the state model's 31, for half the steps), times the
        attempt (a retried job also gets more time)."""
        pixels = 3 if self.tasks[task].get("visual", False) else 1
        return self.suite["runtime"] * (2 if setting == "o2o" else 1) * -(-seeds // 2) * pixels * attempt

    def job_memory(self, setting: str, variant: str, task: str, seeds: int, dataset_mb: float) -> dict[str, float]:
        """A training job's host memory by part, MB, before the margin: the process (and CUDA's, on a GPU), the
        dataset's arrays (``dataset_mb``: ``mfql.data.datasets.dataset_mb``), the environments alive at once
        (the evaluation pool as the run sizes it, one online environment per seed), each seed's networks and
        update, on a CPU each seed's online rows, and the environment workers' processes."""
        args = self.train_args(setting, variant, task)
        run = {key: args.get(key, RUN_DEFAULTS[key])
               for key in ("online_steps", "buffer_size", "eval_episodes", "eval_envs", "env_memory_mb", "env_workers")}
        kind = "pixels" if self.tasks[task].get("visual", False) else "state"
        gpu = bool(self.suite["gpu"])
        online = seeds if run["online_steps"] > 0 else 0
        envs = online + eval_pool_size(task, run["eval_episodes"], run["eval_envs"], run["env_memory_mb"], online)
        parts = {"process": PROCESS_MB + (CUDA_MB if gpu else 0),
                 "dataset": DATASET_COPIES[kind] * dataset_mb,
                 "environments": envs * env_mb(task),
                 "seeds": seeds * (SEED_MB_GPU if gpu else SEED_MB[kind, self.suite["model"]])}
        if not gpu and online:
            rows = min(run["online_steps"], run["buffer_size"])
            parts["online rows"] = seeds * rows * ONLINE_ROW_BYTES[kind] / 2**20
        if run["env_workers"]:  # processes of their own: each at most what the job's own process holds
            parts["environment workers"] = run["env_workers"] * PROCESS_MB
        return parts

    def job_mem_mb(self, setting: str, variant: str, task: str, seeds: int, dataset_mb: float | None) -> int:
        """The host memory a training job asks for: its parts and the margin, once its dataset is there; before
        (a dry run ahead of the fetch), the suite's ``mem_mb`` (Snakemake asks again when the job is ready)."""
        if dataset_mb is None:
            return self.suite["mem_mb"]
        return with_margin(self.job_memory(setting, variant, task, seeds, dataset_mb))

    def evaluation_mem_mb(self, task: str) -> int:
        """The host memory a final evaluation (``python -m mfql.evaluate``, its default pool bound) asks for."""
        envs = eval_pool_size(task, self.suite["eval_episodes_final"], EVALUATE_DEFAULTS["envs"],
                              EVALUATE_DEFAULTS["env_memory_mb"])
        return with_margin({"process": PROCESS_MB, "environments": envs * env_mb(task)})

    def runs(self, setting: str) -> list[tuple[str, str, int]]:
        return [(v, t, s) for t in self.tasks_of(setting) for v in self.variants_of(t)
                for s in self.seeds_of(setting, t)]

    def checksum_file(self, task: str) -> str:
        """The file a dataset's fetch job writes last: the training job's data input."""
        return str(checksums_path(self.data_dir, self.tasks[task].dataset))

    def train_args(self, setting: str, variant: str, task: str) -> dict:
        """The `python -m mfql.train` options of a run: the suite's args for the setting, the variant's method
        and options (each in key order), and with alpha_source: swept the sweep's α for a task whose α is
        unpublished (offline, a method the sweep tuned, unless the variant sets that option itself)."""
        method, options = self.variant_options(variant)
        # each layer in key order: the command (and so Snakemake's params trigger) depends on what the suite
        # sets, not on the order its YAML lists it in
        args = {**dict(sorted(self.suite_args(setting, method).items())), "method": method,
                **dict(sorted(options.items()))}
        picked = self.swept_alpha.get(method, {}).get(task) if setting == "offline" else None
        if picked is not None and f"agent.{swept_option(method)}" not in options:
            args[f"agent.{swept_option(method)}"] = picked["alpha"]
        return args

    def suite_args(self, setting: str, method: str) -> dict:
        """The suite's args for a setting as they apply to ``method``: an ``agent.*`` option only where the method
        has it (a suite may set MeanFlow-QL's options beside FQL runs; each method's own keys: its config file)."""
        own = set(method_config(method).agent)
        return {key: value for key, value in self.suite.get(setting, {}).get("args", {}).items()
                if not key.startswith("agent.") or key.split(".")[1] in own}

    def as_options(self, args: dict) -> list[str]:
        """`key=value` options of `python -m mfql.train`: ``args`` and what the pipeline sets for every job."""
        args = {**args, "model": self.suite["model"], "device": "cuda" if self.suite["gpu"] else "cpu"}
        if self.config["overwrite"]:
            args["overwrite"] = True
        return [f"{k}={hydra_value(v)}" for k, v in args.items()]

    def train_options(self, setting: str, variant: str, task: str) -> list[str]:
        return self.as_options(self.train_args(setting, variant, task))

    def check_train_args(self) -> None:
        """Each setting's and variant's options, checked against the training config: a bad key, type or value
        stops the plan with one line naming where it was set, before any job starts."""
        for setting in SETTINGS:
            where = f"suites.{self.config['suite']}.{setting}.args"
            suite_args = self.suite.get(setting, {}).get("args", {})
            for key in suite_args:
                if key in PIPELINE_KEYS:
                    raise PlanError(f"{where}.{key}: set by the pipeline, not by a suite (valid: other options "
                                    "of `python -m mfql.train --help`)")
            tasks = self.tasks_of(setting)
            checked = tasks[:1] + [t for t in tasks if "o2o" in self.tasks[t]][:1]
            variants = {v: None for t in checked for v in self.variants_of(t)}
            methods = {self.variant_options(v)[0]: None for v in variants}
            for key in suite_args:
                if key.startswith("agent.") and not any(key in self.suite_args(setting, m) for m in methods):
                    raise PlanError(f"{where}.{key}: no method of this suite has it (valid: an agent option of "
                                    f"{', '.join(methods)}; `python -m mfql.train --help` lists them)")
            # the suite's args with each method first, then each variant's own options on top
            layers = [(where, {**self.suite_args(setting, m), "method": m}, None) for m in methods]
            layers += [(f"variants.{v}", None, v) for v in variants]
            composed = set()  # a variant without options of its own is its method's layer again: checked once
            for label, fixed, variant in layers:
                for task in checked:
                    args = fixed if variant is None else self.train_args(setting, variant, task)
                    argv = [f"task={task}", "seed=0", "out_dir=.", f"data_dir={self.data_dir}",
                            *self.as_options(args)]
                    if (key := tuple(sorted(argv))) in composed:
                        continue
                    composed.add(key)
                    try:  # the same composition the job will do, for a task of this setting
                        train_config(argv)
                    except ConfigError as exc:
                        raise PlanError(f"{label}: {exc}") from None

    def check_run(self, setting: str, variant: str, task: str) -> None:
        """A target path's variant and task (a training job's wildcards): one line if either is unknown."""
        target = f"target results/{setting}/{variant}/{task}/"
        base = parse_sweep_variant(variant)
        if (base[0] if base else variant) not in self.variants:
            raise PlanError(f"{target}: unknown variant {variant!r} (valid: {', '.join(self.variants)}, "
                            "or <variant>-alpha<number>)")
        if task not in self.tasks:
            close = difflib.get_close_matches(task, list(self.tasks), n=3, cutoff=0.6)
            raise PlanError(f"{target}: unknown task {task!r} (valid: ids of config/mfql/tasks/*.yaml"
                            + (f", e.g. {', '.join(close)})" if close else ")"))

    def run_files(self, setting: str, names=("final.pt", "eval.csv")) -> list[str]:
        return [f"{run_dir(setting, v, t, s)}/{n}" for v, t, s in self.runs(setting) for n in names]

    def planned_runs(self) -> list[dict]:
        """Exactly the runs this suite plans, with the options they must have been trained with."""
        return [{"setting": setting, "variant": v, "task": t, "seed": s, "dir": run_dir(setting, v, t, s),
                 "args": self.train_args(setting, v, t), "model": self.suite["model"]}
                for setting in SETTINGS for v, t, s in self.runs(setting)]

    def eval_files(self) -> list[str]:
        return [f for setting in SETTINGS for f in self.run_files(setting, ("eval.csv", "final_eval.json"))]

    def dataset_files(self) -> list[str]:
        return sorted({self.checksum_file(t) for setting in SETTINGS for t in self.tasks_of(setting)})

    def final_targets(self) -> list[str]:
        return (
            [f"results/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md", "tex")]
            + [f"results/figures/{f}.{ext}" for f in FIGURES for ext in ("png", "pdf")]
            + ["results/tables/efficiency.csv", "results/tables/efficiency.md", EFFICIENCY_BENCH]
            + ["results/figures/toy/toy.png", "results/verification/report.md", "results/verification/report.csv",
               "results/verification/claims.md", "results/verification/claims.csv"]
            + ([OVERLAY] if self.sweep else [])
        )


def validate(config: dict, schema: Path) -> None:
    """JSON-schema validation with one line naming the bad key, then the cross-checks a schema cannot do."""
    checker = jsonschema.Draft202012Validator(yaml.safe_load(schema.read_text()))
    error = jsonschema.exceptions.best_match(checker.iter_errors(config))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise PlanError(f"{key}: {error.message}")
    if config["suite"] not in config["suites"]:
        raise PlanError(f"suite: {config['suite']!r} is not defined (valid: {', '.join(config['suites'])})")
    for name, spec in config["suites"].items():
        if not {"offline", "o2o"} & set(spec):
            raise PlanError(f"suites.{name}: trains nothing (valid: an offline: or an o2o: section, or both)")
    variants = {**builtin_variants(), **config.get("variants", {})}
    suite = config["suites"][config["suite"]]
    for name in suite.get("variants", [proposed()]):
        base = parse_sweep_variant(name)
        if (base[0] if base else name) not in variants:
            raise PlanError(f"suites.{config['suite']}.variants: unknown variant {name!r} (valid: "
                            f"{', '.join(variants)}, or <variant>-alpha<number>)")
    for name, spec in variants.items():
        if spec["method"] not in METHODS:
            raise PlanError(f"variants.{name}.method: unknown method {spec['method']!r} (valid: {', '.join(METHODS)})")
        if parse_sweep_variant(name):
            raise PlanError(f"variants.{name}: names ending in -alpha<number> are the sweep's (valid: another name)")
    for name in suite.get("variants", [proposed()]):
        base = parse_sweep_variant(name)
        method = variants[base[0] if base else name]["method"]
        if (base or suite.get("alpha_sweep")) and METHODS[method].SWEPT is None:
            swept = ", ".join(m for m, c in METHODS.items() if c.SWEPT)
            raise PlanError(f"suites.{config['suite']}.variants: {name!r} sweeps alpha, and method {method!r} has no "
                            f"option for it (valid: a variant of {swept})")
    tasks = set(known_tasks())
    for setting in SETTINGS:
        chosen = suite.get(setting, {}).get("tasks", [])
        for task in chosen if isinstance(chosen, list) else []:
            if task not in tasks:
                raise PlanError(f"suites.{config['suite']}.{setting}.tasks: unknown task {task!r} "
                                f"(valid: ids of config/mfql/tasks/*.yaml)")


def task_pattern(tasks: list[str]) -> str:
    """A wildcard constraint matching exactly these task ids."""
    return "|".join(re.escape(t) for t in tasks)
