"""α sweeps where the paper's value is missing, by FQL's protocol: tune on each environment's default task,
apply the pick to the environment's tasks whose α has no published source, and write the picks as a config
overlay that a later suite reads (``alpha_source: swept``).

The sweep tunes the paper's method's α (its task-file section, ``mfql:``). Which α values are published is read
from the task files themselves: the comment on each ``alpha`` line of that section is its source ("paper
Table 7 ..." or "our choice: ...", checked by a test for every task file).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml

from mfql.agents import proposed
from mfql.config import TASK_DIR, load_task

ALPHA_LINE = re.compile(r"^  alpha:\s*([0-9.eE+-]+)\s*#\s*(.+)$")
# OGBench's default task of each single-task environment (reward_task_id 0 in ogbench's envs: mazes 1,
# antsoccer 4, cube and scene 2, puzzle-3x3 and -4x4 4); FQL tunes its hyperparameters on these.
OGBENCH_DEFAULT_TASK = {"antmaze": 1, "humanoidmaze": 1, "antsoccer": 4, "cube": 2, "scene": 2, "puzzle": 4}
SWEEP_VARIANT = re.compile(r"^(?P<base>[a-z0-9_]+(?:-[a-z0-9_]+)*)-alpha(?P<alpha>[0-9]+(?:\.[0-9]+)?)$")


def alpha_source(task: str) -> str:
    """The source of a task's α for the paper's method: the comment on the alpha line of its task-file section."""
    load_task(task)  # a known task id, or one line
    lines = (TASK_DIR / f"{task}.yaml").read_text().splitlines()
    start = lines.index(f"{proposed()}:")
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        if match := ALPHA_LINE.match(line):
            return match.group(2).strip()
    raise ValueError(f"{task}: its task file's {proposed()}.alpha line has no source comment")


def alpha_is_published(task: str) -> bool:
    return alpha_source(task).startswith("paper")


def default_task(task: str) -> str:
    """The task an environment's hyperparameters are tuned on: OGBench's default task of the task's
    environment; a D4RL task is its own environment (FQL tunes each D4RL task: its README lists per-task α)."""
    match = re.match(r"^(?P<env>.+-singletask)-task\d-v0$", task)
    if not match:
        return task
    family = task.removeprefix("visual-").split("-")[0]
    return f"{match.group('env')}-task{OGBENCH_DEFAULT_TASK[family]}-v0"


def sweep_tasks(tasks: list[str]) -> list[str]:
    """The default tasks to sweep: those of every environment with an unpublished α among ``tasks``, unless the
    default task's own α is published (then its value serves the environment, as the task files already do).
    Pixel tasks are left out: each is its environment's only task in the suite, at 3x the cost per run."""
    chosen = set()
    for task in tasks:
        if load_task(task).get("visual", False) or alpha_is_published(task):
            continue
        default = default_task(task)
        if not alpha_is_published(default):
            chosen.add(default)
    return sorted(chosen)


def alpha_grid(task: str, factors: list[float]) -> list[float]:
    """The α values swept on a task: its task file's α times each factor (a grid around the known value)."""
    alpha = float(load_task(task)[proposed()].alpha)
    return sorted({float(f"{alpha * f:.6g}") for f in factors})


def alpha_name(alpha: float) -> str:
    """An α as it appears in a variant name: 30.0 -> '30', 0.3 -> '0.3'."""
    return f"{alpha:g}" if "e" not in f"{alpha:g}" else f"{alpha:f}".rstrip("0").rstrip(".")


def sweep_variant(base: str, alpha: float) -> str:
    """`<variant>-alpha<value>`: the base variant with agent.alpha=<value> (the sweep's runs)."""
    return f"{base}-alpha{alpha_name(alpha)}"


def parse_sweep_variant(name: str) -> tuple[str, float] | None:
    match = SWEEP_VARIANT.match(name)
    return (match.group("base"), float(match.group("alpha"))) if match else None


def select(scores: pd.DataFrame, tasks: list[str], grid: dict, rule: str) -> dict:
    """The overlay: for each task with an unpublished α, the α whose runs on the task's default task have the
    best mean score (ties: the smaller α, the stronger regularisation), with its provenance. ``scores`` has one
    row per run (task, alpha, score); ``grid`` says what was swept (for the provenance line)."""
    overlay = {}
    means = scores.groupby(["task", "alpha"]).score.agg(["mean", "count"]).reset_index()
    for task in tasks:
        if alpha_is_published(task) or load_task(task).get("visual", False):
            continue
        default = default_task(task)
        swept = means[means.task == default].sort_values(["mean", "alpha"], ascending=[False, True])
        if swept.empty:
            continue
        best = swept.iloc[0]
        values = ", ".join(alpha_name(a) for a in sorted(swept.alpha))
        overlay[task] = {"alpha": float(best["alpha"]),
                         "source": f"swept: alpha in [{values}] on {default}, {grid['budget']}, "
                                   f"{int(best['count'])} seeds; rule: {rule}"}
    return overlay


def load_overlay(path: str | Path) -> dict:
    """{task: {alpha, source}} from a sweep's overlay file; one line when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"alpha_source: swept needs the sweep's overlay {path}, and there is none; "
                                "run the sweep first: snakemake --cores all --config suite=sweep")
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("alpha", {}) if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("alpha"), (int, float)) for v in entries.values()):
        raise ValueError(f"{path}: not a sweep overlay (valid: 'alpha: {{<task>: {{alpha: <number>, "
                         "source: <text>}}}}', as the sweep writes it)")
    return entries
