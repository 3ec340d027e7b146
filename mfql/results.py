"""Collect run folders into tidy tables and the paper's per-task / per-environment / O2O tables.

Protocol (FQL / MFQL): a run's OGBench score is the mean of its last three evaluations, a D4RL score its
final evaluation; per task we report mean +- std over seeds; an environment's number is the mean over its
tasks; offline-to-online is reported as before (end of the offline phase) -> after (end of the run).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from mfql.config import load_task
from mfql.stats import run_score

SETTINGS = ("offline", "o2o")


def run_dirs(results_dir: Path) -> list[Path]:
    return sorted(p.parent for s in SETTINGS for p in (results_dir / s).glob("*/seed*/eval.csv"))


def read_run(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """A run's description (from its resolved config) and its evaluations, scores in percent."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    evals = pd.read_csv(run_dir / "eval.csv")
    metric = "success" if cfg.suite == "ogbench" else "normalized_return"
    scale = 100.0 if metric == "success" else 1.0
    info = {
        "setting": run_dir.parent.parent.name, "task": cfg.task, "seed": int(cfg.seed), "suite": cfg.suite,
        "env_group": cfg.env_group, "metric": metric, "offline_steps": int(cfg.offline_steps),
        "online_steps": int(cfg.online_steps), "actor": cfg.agent.actor, "parity": cfg.parity,
        "env_max_steps": cfg.env_max_steps, "eval_episodes": int(cfg.eval_episodes),
        "task_budget": int(load_task(cfg.task).offline_steps),
    }
    final_eval = run_dir / "final_eval.json"
    if final_eval.exists():
        info["final_eval"] = scale * json.loads(final_eval.read_text())[metric]
    curve = pd.DataFrame({"step": evals["step"], "value": scale * evals[metric]})
    return info, curve


def collect(results_dir: Path, data_source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs: one row per evaluation, tidy; scores: one row per run with the protocol's scores)."""
    curves, scores = [], []
    for run_dir in run_dirs(results_dir):
        info, curve = read_run(run_dir)
        info["data_source"] = data_source
        curves.append(curve.assign(**{k: info[k] for k in ("setting", "suite", "env_group", "task", "seed",
                                                             "metric")}))
        if info["setting"] == "o2o":
            before = curve[curve.step <= info["offline_steps"]]
            info["before"] = run_score(before.step.values, before.value.values, info["suite"])
        info["score"] = run_score(curve.step.values, curve.value.values, info["suite"])
        scores.append(info)
    columns = ["setting", "suite", "env_group", "task", "seed", "metric", "step", "value"]
    runs = pd.concat(curves)[columns] if curves else pd.DataFrame(columns=columns)
    return runs, pd.DataFrame(scores)


def mean_std(values: pd.Series) -> dict:
    return {"mean": values.mean(), "std": values.std(ddof=1) if len(values) > 1 else float("nan"),
            "n": int(values.count())}


def per_task(scores: pd.DataFrame, setting: str) -> pd.DataFrame:
    rows = []
    for (suite, group, task), runs in scores[scores.setting == setting].groupby(["suite", "env_group", "task"]):
        row = {"suite": suite, "env_group": group, "task": task}
        if setting == "o2o":
            row.update({f"before_{k}": v for k, v in mean_std(runs.before).items()})
            row.update({f"after_{k}": v for k, v in mean_std(runs.score).items()})
        else:
            row.update(mean_std(runs.score))
        rows.append(row)
    return pd.DataFrame(rows)


def per_env(scores: pd.DataFrame) -> pd.DataFrame:
    """Environment = mean over its tasks, taken per seed, then mean +- std over seeds."""
    offline = scores[scores.setting == "offline"]
    rows = []
    for (suite, group), runs in offline.groupby(["suite", "env_group"]):
        per_seed = runs.groupby("seed").score.mean()
        rows.append({"suite": suite, "env_group": group, "tasks": runs.task.nunique(), **mean_std(per_seed)})
    return pd.DataFrame(rows)


def fmt(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "-"
    return f"{mean:.1f}" if np.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def display_table(table: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Human-readable columns: mean ± std (n), before → after for O2O."""
    if table.empty:
        return pd.DataFrame(columns=["task", "score"])
    key = "task" if "task" in table else "env_group"
    out = pd.DataFrame({key: table[key]})
    if setting == "o2o":
        out["before → after"] = [f"{fmt(a, b)} → {fmt(c, d)}" for a, b, c, d in
                                 zip(table.before_mean, table.before_std, table.after_mean, table.after_std)]
        out["seeds"] = table.after_n.values
    else:
        out["score"] = [fmt(m, s) for m, s in zip(table["mean"], table["std"])]
        out["seeds"] = table["n"].values
    return out


def to_markdown(table: pd.DataFrame) -> str:
    cells = [[str(c) for c in table.columns]] + [[str(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("---" for _ in table.columns) + "|")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, caption: str) -> str:
    def esc(value) -> str:
        return str(value).replace("_", r"\_").replace("±", r"$\pm$").replace("→", r"$\to$").replace("%", r"\%")

    head = " & ".join(esc(c) for c in table.columns) + r" \\"
    body = "\n".join(" & ".join(esc(v) for v in row) + r" \\" for row in table.itertuples(index=False))
    return (f"\\begin{{table}}[t]\n\\centering\n\\caption{{{esc(caption)}}}\n"
            f"\\begin{{tabular}}{{{'l' * len(table.columns)}}}\n\\toprule\n{head}\n\\midrule\n{body}\n"
            "\\bottomrule\n\\end{tabular}\n\\end{table}\n")
