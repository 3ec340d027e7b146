"""α sweeps where a method's per-task value is missing, by FQL's protocol: tune on each environment's default
task, apply the pick to the environment's tasks whose value has no published source, and write the picks as
a config overlay that a later suite reads (``alpha_source: swept``).

"α" is each method's behaviour-cloning weight, the option its class names ``SWEPT`` (MeanFlow-QL's and FQL's
``alpha``, ReBRAC's ``alpha_actor``), in the method's task-file section. Which values are published is read
from the task files themselves: the comment on the option's line (or, for a value without one, on its
section's line) is its source, and a source starting "our choice" is not published (checked by a test for
every task file).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml

from mfql.agents import METHODS, proposed
from mfql.config import TASK_DIR, load_task, method_config

VALUE_LINE = re.compile(r"^  (?P<key>[a-z_]+):\s*(?P<value>[0-9.eE+-]+)\s*(?:#\s*(?P<source>.+))?$")
SECTION_LINE = re.compile(r"^(?P<name>[a-z0-9_]+):\s*(?:#\s*(?P<source>.+))?$")
UNPUBLISHED = "our choice"  # how a task file's comment says that a value is not the paper's
# OGBench's default task of each single-task environment (reward_task_id 0 in ogbench's envs: mazes 1,
# antsoccer 4, cube and scene 2, puzzle-3x3 and -4x4 4); FQL tunes its hyperparameters on these.
OGBENCH_DEFAULT_TASK = {"antmaze": 1, "humanoidmaze": 1, "antsoccer": 4, "cube": 2, "scene": 2, "puzzle": 4}
SWEEP_VARIANT = re.compile(r"^(?P<base>[a-z0-9_]+(?:-[a-z0-9_]+)*)-alpha(?P<alpha>[0-9]+(?:\.[0-9]+)?)$")


def swept_option(method: str) -> str:
    """The option a method's α sweep tunes; one line for a method without one."""
    option = METHODS[method].SWEPT if method in METHODS else None
    if option is None:
        raise ValueError(f"method {method!r} has no option for the alpha sweep (valid: "
                         f"{', '.join(m for m, c in METHODS.items() if c.SWEPT)})")
    return option


def alpha_source(task: str, method: str | None = None) -> str:
    """The source of a task's α for ``method`` (default: the paper's): the comment on the option's line in the
    method's task-file section, or on the section's own line when the value line has none."""
    method = method or proposed()
    option = swept_option(method)
    load_task(task)  # a known task id, or one line
    lines = (TASK_DIR / f"{task}.yaml").read_text().splitlines()
    sections = [i for i, line in enumerate(lines) if (m := SECTION_LINE.match(line)) and m["name"] == method]
    if not sections:
        raise ValueError(f"{task}: its task file has no {method}: section")
    header = SECTION_LINE.match(lines[sections[0]])["source"]
    for line in lines[sections[0] + 1:]:
        if not line.startswith("  "):
            break
        if (match := VALUE_LINE.match(line)) and match["key"] == option:
            if match["source"] or header:
                return (match["source"] or header).strip()
            break
    raise ValueError(f"{task}: its task file's {method}.{option} line has no source comment")


def alpha_is_published(task: str, method: str | None = None) -> bool:
    return not alpha_source(task, method).startswith(UNPUBLISHED)


def default_task(task: str) -> str:
    """The task an environment's hyperparameters are tuned on: OGBench's default task of the task's
    environment; a D4RL task is its own environment (FQL tunes each D4RL task: its README lists per-task α)."""
    match = re.match(r"^(?P<env>.+-singletask)-task\d-v0$", task)
    if not match:
        return task
    family = task.removeprefix("visual-").split("-")[0]
    return f"{match.group('env')}-task{OGBENCH_DEFAULT_TASK[family]}-v0"


def sweep_tasks(tasks: list[str], method: str | None = None) -> list[str]:
    """The default tasks to sweep for ``method``: those of every environment with an unpublished α among
    ``tasks``, unless the default task's own α is published (then its value serves the environment, as the task
    files already do). Pixel tasks are left out: each is its environment's only task in the suite, at 3x the
    cost per run."""
    chosen = set()
    for task in tasks:
        if load_task(task).get("visual", False) or alpha_is_published(task, method):
            continue
        default = default_task(task)
        if not alpha_is_published(default, method):
            chosen.add(default)
    return sorted(chosen)


def task_alpha(task: str, method: str | None = None) -> float:
    """A task's α for ``method``: its task-file section's value, or the method's default."""
    method = method or proposed()
    option = swept_option(method)
    return float(load_task(task).get(method, {}).get(option, method_config(method).agent[option]))


def alpha_grid(task: str, factors: list[float], method: str | None = None) -> list[float]:
    """The α values swept on a task: its task file's α times each factor (a grid around the known value)."""
    alpha = task_alpha(task, method)
    return sorted({float(f"{alpha * f:.6g}") for f in factors})


def alpha_name(alpha: float) -> str:
    """An α as it appears in a variant name: 30.0 -> '30', 0.3 -> '0.3'."""
    return f"{alpha:g}" if "e" not in f"{alpha:g}" else f"{alpha:f}".rstrip("0").rstrip(".")


def sweep_variant(base: str, alpha: float) -> str:
    """`<variant>-alpha<value>`: the base variant with its method's swept option at <value> (the sweep's runs)."""
    return f"{base}-alpha{alpha_name(alpha)}"


def parse_sweep_variant(name: str) -> tuple[str, float] | None:
    match = SWEEP_VARIANT.match(name)
    return (match.group("base"), float(match.group("alpha"))) if match else None


def select(scores: pd.DataFrame, tasks: list[str], grid: dict, rule: str) -> dict:
    """The overlay, per method: for each task with an unpublished α, the α whose runs on the task's default task
    have the best mean score (ties: the smaller α, the stronger regularisation), with its provenance. ``scores``
    has one row per run (method, task, alpha, score); ``grid`` says what was swept (for the provenance line)."""
    overlay: dict = {}
    means = scores.groupby(["method", "task", "alpha"]).score.agg(["mean", "count"]).reset_index()
    for method in (m for m in METHODS if m in set(means.method)):
        option = swept_option(method)
        for task in tasks:
            if alpha_is_published(task, method) or load_task(task).get("visual", False):
                continue
            default = default_task(task)
            swept = means[(means.method == method) & (means.task == default)].sort_values(
                ["mean", "alpha"], ascending=[False, True])
            if swept.empty:
                continue
            best = swept.iloc[0]
            values = ", ".join(alpha_name(a) for a in sorted(swept.alpha))
            overlay.setdefault(method, {})[task] = {
                "alpha": float(best["alpha"]),
                "source": f"swept: {option} in [{values}] on {default}, {grid['budget']}, {int(best['count'])} "
                          f"seeds; rule: {rule}"}
    return overlay


def load_overlay(path: str | Path) -> dict:
    """{method: {task: {alpha, source}}} from a sweep's overlay file; one line when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"alpha_source: swept needs the sweep's overlay {path}, and there is none; "
                                "run the sweep first: snakemake --cores all --config suite=sweep")
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("alpha", {}) if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(
            method in METHODS and isinstance(tasks, dict)
            and all(isinstance(v, dict) and isinstance(v.get("alpha"), (int, float)) for v in tasks.values())
            for method, tasks in entries.items()):
        raise ValueError(f"{path}: not a sweep overlay (valid: 'alpha: {{<method>: {{<task>: {{alpha: <number>, "
                         "source: <text>}}}}}}', as the sweep writes it)")
    return entries
