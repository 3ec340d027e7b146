"""Compare reproduced scores with the paper's reported numbers.

Every reported MFQL number gets the reproduced mean +- std and n, the difference, a two-sided Welch test
that uses both sides' spread and seed counts, and a status:
``reproduced`` (p >= alpha), ``differs`` (p < alpha), ``not comparable`` (our runs differ from the
paper's setting: budget, dataset source, model, episode length, or fewer than 2 seeds on a side) or
``no reported number``. Reproduced tasks with no reported number are listed too.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mfql.stats import welch_p_value

STATUSES = ("reproduced", "differs", "not comparable", "no reported number")
ASSUMED_SEEDS = 8  # Appendix D (third-party reading): 8 seeds per state-based task, when a row gives none
PAPER_ONLINE_STEPS = 1_000_000


def canonical_task(task_id: str) -> str:
    """'cube-double-play-singletask-v0 (=task2)' -> 'cube-double-play-singletask-task2-v0'."""
    match = re.match(r"^(.*)-singletask-v0 \(=task(\d)\)$", task_id.strip())
    return f"{match.group(1)}-singletask-task{match.group(2)}-v0" if match else task_id.strip()


def reported_mfql(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's MFQL rows, one per (setting, task, phase)."""
    rows = paper[paper.method == "MFQL"].copy()
    rows["setting"] = rows.setting.map({"offline": "offline", "offline2online": "o2o"})
    rows["task"] = rows.task_id.map(canonical_task)
    rows["phase"] = np.where(rows.table.str.contains("pre-finetune"), "before",
                             np.where(rows.table.str.contains("post-finetune"), "after", "score"))
    return rows[["table", "setting", "task", "phase", "mean", "std", "n_seeds", "source_note"]]


def not_comparable_reasons(runs: pd.DataFrame) -> list[str]:
    """Why our runs of one task are not the paper's setting (empty when they are)."""
    reasons = []
    if (runs.actor != "dit").any():
        reasons.append("small model, not the paper's")
    if (runs.offline_steps != runs.task_budget).any():
        reasons.append(f"{int(runs.offline_steps.iloc[0])} offline steps, paper {int(runs.task_budget.iloc[0])}")
    if (runs.setting == "o2o").any() and (runs.online_steps != PAPER_ONLINE_STEPS).any():
        reasons.append(f"{int(runs.online_steps.iloc[0])} online steps, paper {PAPER_ONLINE_STEPS}")
    if (runs.data_source == "regenerate").any():
        reasons.append("regenerated dataset, not OGBench's")
    if runs.env_max_steps.notna().any():
        reasons.append("shortened episodes")
    if runs.task.iloc[0].startswith("antmaze") and runs.suite.iloc[0] == "d4rl":
        reasons.append("Minari's regenerated antmaze data, not D4RL's")
    if len(runs) < 2:
        reasons.append("fewer than 2 seeds")
    return reasons


def verify(scores: pd.DataFrame, paper: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    reported = reported_mfql(paper)
    out = []
    seen = set()
    for rep in reported.itertuples(index=False):
        seen.add((rep.setting, rep.task, rep.phase))
        runs = scores[(scores.setting == rep.setting) & (scores.task == rep.task)] if len(scores) else scores
        column = "before" if rep.phase == "before" else "score"
        out.append(compare(rep._asdict(), runs, column, alpha))
    for (setting, task), runs in (scores.groupby(["setting", "task"]) if len(scores) else []):
        for phase, column in (("before", "before"), ("after", "score")) if setting == "o2o" else (("score", "score"),):
            if (setting, task, phase) not in seen:
                row = {"table": "-", "setting": setting, "task": task, "phase": phase, "mean": np.nan,
                       "std": np.nan, "n_seeds": np.nan, "source_note": ""}
                out.append(compare(row, runs, column, alpha))
    return pd.DataFrame(out)


def compare(rep: dict, runs: pd.DataFrame, column: str, alpha: float) -> dict:
    values = runs[column].dropna() if len(runs) else pd.Series(dtype=float)
    n = int(values.count())
    mean = float(values.mean()) if n else np.nan
    std = float(values.std(ddof=1)) if n > 1 else np.nan
    rep_n = int(rep["n_seeds"]) if not pd.isna(rep["n_seeds"]) else ASSUMED_SEEDS
    row = {"setting": rep["setting"], "task": rep["task"], "phase": rep["phase"], "table": rep["table"],
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
             "| setting | task | phase | reported | reproduced (n) | difference | p | status | why |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report.itertuples(index=False):
        reported = "-" if pd.isna(r.reported_mean) else f"{num(r.reported_mean)} ± {num(r.reported_std)}"
        reproduced = "-" if r.n == 0 else f"{num(r.reproduced_mean)} ± {num(r.reproduced_std)} ({r.n})"
        lines.append(f"| {r.setting} | {r.task} | {r.phase} | {reported} | {reproduced} | {num(r.difference)} | "
                     f"{num(r.p_value, 3)} | {r.status} | {r.reason} |")
    return "\n".join(lines) + "\n"
