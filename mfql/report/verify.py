"""Compare reproduced scores with the reported numbers: MFQL's (the paper's) against the runs of variant `mfql`,
FQL's (the FQL paper's, as the MFQL paper reuses them) against variant `fql`; an environment's reported
category average ("ALL (n tasks)") against the per-seed mean over its tasks. Other variants (ablations,
sweeps) have no reported numbers and are not listed.

Every reported number gets the reproduced mean +- std and n, the difference, a two-sided Welch test
that uses both sides' spread and seed counts, and a status:
``reproduced`` (p >= alpha), ``differs`` (p < alpha), ``not comparable`` (our runs differ from the
paper's setting: budget, dataset source, model, episode length, or fewer than 2 seeds on a side) or
``no reported number``. Reproduced tasks with no reported number are listed too.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mfql.agents import paper_variants
from mfql.report.stats import welch_p_value
from mfql.report.sweep import default_task

STATUSES = ("reproduced", "differs", "not comparable", "no reported number")
ASSUMED_SEEDS = 8  # Appendix D (third-party reading): 8 seeds per state-based task, when a row gives none
PAPER_ONLINE_STEPS = 1_000_000


def canonical_task(task_id: str) -> str:
    """'cube-double-play-singletask-v0 (=task2)' -> 'cube-double-play-singletask-task2-v0'; a bare
    'scene-play-singletask-v0' (FQL's tables) is OGBench's default task of that environment."""
    match = re.match(r"^(.*)-singletask-v0 \(=task(\d)\)$", task_id.strip())
    if match:
        return f"{match.group(1)}-singletask-task{match.group(2)}-v0"
    if task_id.strip().endswith("-singletask-v0"):
        return default_task(task_id.strip().replace("-singletask-v0", "-singletask-task1-v0"))
    return task_id.strip()


def environment_of(runs: pd.DataFrame, env_group: str) -> pd.DataFrame:
    """The runs of a reported environment row: its env_group, or FQL's "visual manipulation" row: the 5 pixel
    tasks (task1 of each visual environment)."""
    if env_group.startswith("visual manipulation"):
        return runs[runs.task.str.startswith("visual-")]
    return runs[runs.env_group == env_group]


PHASE_COLUMNS = {"offline": (("score", "score"),), "o2o": (("before", "before"), ("after", "score"))}
ENV_ROW = re.compile(r"^ALL \((\d+) tasks\)$")  # a reported category average over an environment's tasks


def reported(paper: pd.DataFrame, method: str = "MFQL") -> pd.DataFrame:
    """A method's reported rows, one per (setting, task or environment, phase)."""
    rows = paper[paper.method == method].copy()
    rows["setting"] = rows.setting.map({"offline": "offline", "offline2online": "o2o"})
    rows["task"] = rows.task_id.map(canonical_task)
    rows["phase"] = np.where(rows.table.str.contains("pre-finetune"), "before",
                             np.where(rows.table.str.contains("post-finetune"), "after", "score"))
    rows["method"] = method
    return rows[["table", "method", "setting", "env_group", "task", "phase", "mean", "std", "n_seeds",
                 "source_note"]]


def environment_runs(runs: pd.DataFrame, column: str) -> pd.DataFrame:
    """An environment's per-seed score (mean over its tasks) as one row per seed, for an ALL (n tasks) row."""
    per_seed = runs.groupby("seed")[column].mean()
    first = runs.groupby("seed").first()
    return first.assign(**{column: per_seed, "tasks_run": runs.groupby("seed").task.nunique()}).reset_index()


def not_comparable_reasons(runs: pd.DataFrame) -> list[str]:
    """Why our runs of one task are not the paper's setting (empty when they are)."""
    reasons = []
    if not runs.paper_sizes.all():
        reasons.append("small model, not the paper's")
    if (runs.offline_steps != runs.task_budget).any():
        reasons.append(f"{int(runs.offline_steps.iloc[0])} offline steps, paper {int(runs.task_budget.iloc[0])}")
    if (runs.setting == "o2o").any() and (runs.online_steps != PAPER_ONLINE_STEPS).any():
        reasons.append(f"{int(runs.online_steps.iloc[0])} online steps, paper {PAPER_ONLINE_STEPS}")
    if (runs.data_source == "regenerate").any():
        reasons.append("regenerated dataset, not OGBench's")
    if runs.env_max_steps.notna().any():
        reasons.append("shortened episodes")
    differences = sorted({d for d in runs.get("eval_differences", pd.Series(dtype=str)).fillna("") if d})
    if differences:
        reasons.append(f"Minari's evaluation env, not D4RL's: {differences[0]}")
    if runs.task.iloc[0].startswith("antmaze") and runs.suite.iloc[0] == "d4rl":
        reasons.append("Minari's regenerated antmaze data, not D4RL's")
    if len(runs) < 2:
        reasons.append("fewer than 2 seeds")
    return reasons


def verify(scores: pd.DataFrame, paper: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    out = []
    seen = set()
    for method, variant in paper_variants().items():  # reported method -> the variant that reproduces it
        mine = scores[scores.variant == variant] if len(scores) else scores
        for rep in reported(paper, method).itertuples(index=False):
            column = "before" if rep.phase == "before" else "score"
            env_row = ENV_ROW.match(rep.task)
            if env_row:
                runs = environment_of(mine[mine.setting == rep.setting], rep.env_group) if len(mine) else mine
                runs = environment_runs(runs, column) if len(runs) else runs
                task, tasks = f"{rep.env_group} (all {env_row.group(1)} tasks)", int(env_row.group(1))
            else:
                runs = mine[(mine.setting == rep.setting) & (mine.task == rep.task)] if len(mine) else mine
                task, tasks = rep.task, None
                seen.add((variant, rep.setting, rep.task, rep.phase))
            out.append(compare({**rep._asdict(), "task": task, "variant": variant}, runs, column, alpha, tasks))
        for (setting, task), runs in (mine.groupby(["setting", "task"]) if len(mine) else []):
            for phase, column in PHASE_COLUMNS[setting]:
                if (variant, setting, task, phase) not in seen:
                    row = {"table": "-", "method": method, "variant": variant, "setting": setting, "task": task,
                           "phase": phase, "mean": np.nan, "std": np.nan, "n_seeds": np.nan, "source_note": ""}
                    out.append(compare(row, runs, column, alpha))
    return pd.DataFrame(out, columns=REPORT_COLUMNS)


REPORT_COLUMNS = ["method", "variant", "setting", "task", "phase", "table", "reported_mean", "reported_std",
                  "reported_n", "reproduced_mean", "reproduced_std", "n", "difference", "p_value", "source",
                  "status", "reason"]


def compare(rep: dict, runs: pd.DataFrame, column: str, alpha: float, tasks: int | None = None) -> dict:
    """One report row; ``tasks``: the number of tasks an environment row averages (its runs: per seed)."""
    values = runs[column].dropna() if len(runs) else pd.Series(dtype=float)
    n = int(values.count())
    mean = float(values.mean()) if n else np.nan
    std = float(values.std(ddof=1)) if n > 1 else np.nan
    rep_n = int(rep["n_seeds"]) if not pd.isna(rep["n_seeds"]) else ASSUMED_SEEDS
    row = {"method": rep["method"], "variant": rep["variant"], "setting": rep["setting"], "task": rep["task"],
           "phase": rep["phase"], "table": rep["table"],
           "reported_mean": rep["mean"], "reported_std": rep["std"],
           "reported_n": rep_n if not pd.isna(rep["mean"]) else np.nan,
           "reproduced_mean": mean, "reproduced_std": std, "n": n,
           "difference": mean - rep["mean"] if n and not pd.isna(rep["mean"]) else np.nan,
           "p_value": np.nan, "source": rep["source_note"]}
    if pd.isna(rep["mean"]):
        row.update(status="no reported number", reason="the paper's value was not retrievable" if rep["table"] != "-"
                   else "task not in the paper's reported rows")
    elif n == 0:
        row.update(status="not comparable", reason="not run in this suite")
    elif tasks is not None and int(runs.tasks_run.min()) < tasks:
        row.update(status="not comparable",
                   reason=f"{int(runs.tasks_run.min())} of the environment's {tasks} tasks run")
    elif reasons := not_comparable_reasons(runs):
        row.update(status="not comparable", reason="; ".join(reasons))
    else:
        rep_std = rep["std"] if not pd.isna(rep["std"]) else 0.0
        p_value = welch_p_value(mean, std, n, rep["mean"], rep_std, rep_n)
        note = "" if not pd.isna(rep["n_seeds"]) else f"reported n assumed {ASSUMED_SEEDS}"
        row.update(p_value=p_value, status="reproduced" if p_value >= alpha else "differs",
                   reason=f"Welch t-test, alpha {alpha}" + (f"; {note}" if note else ""))
    return row


def to_markdown(report: pd.DataFrame) -> str:
    def num(x, digits=1):
        return "-" if pd.isna(x) else f"{x:.{digits}f}"

    counts = report.status.value_counts()
    lines = ["# Verification against the paper's reported numbers", "",
             "Reported numbers come from `config/expected/paper_results.csv` (each row keeps its source). "
             "Scores are success rates (%) for OGBench and D4RL normalised returns; OGBench runs are scored by "
             "the mean of their last three evaluations, D4RL runs by their final one.", "",
             "Status counts: " + ", ".join(f"{s}: {int(counts.get(s, 0))}" for s in STATUSES), "",
             "| method | setting | task | phase | reported | reproduced (n) | difference | p | status | why |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.itertuples(index=False):
        reported = "-" if pd.isna(r.reported_mean) else f"{num(r.reported_mean)} ± {num(r.reported_std)}"
        reproduced = "-" if r.n == 0 else f"{num(r.reproduced_mean)} ± {num(r.reproduced_std)} ({r.n})"
        lines.append(f"| {r.method} | {r.setting} | {r.task} | {r.phase} | {reported} | {reproduced} | "
                     f"{num(r.difference)} | {num(r.p_value, 3)} | {r.status} | {r.reason} |")
    return "\n".join(lines) + "\n"
