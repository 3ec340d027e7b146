"""Collect run folders into tidy tables and the paper's per-task / per-environment / O2O tables.

Protocol (FQL / MFQL): a run's OGBench score is the mean of its last three evaluations, a D4RL score its
final evaluation; per task we report mean +- std over seeds; an environment's number is the mean over its
tasks; offline-to-online is reported as before (end of the offline phase) -> after (end of the run).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from mfql.agents import METHODS
from mfql.agents.schedules import evaluation_steps
from mfql.config import hydra_value, load_task, method_config, train_config
from mfql.errors import ResultError
from mfql.report.stats import run_score
from mfql.run.folder import key_config

SETTINGS = ("offline", "o2o")



def check_run(run_dir: Path, planned: dict, cfg, meta: dict, final_eval: dict | None) -> None:
    """Every file of a run folder belongs to the run the suite planned there: same task, seed, options,
    model and checkpoint. A stray folder or a final.pt of another task is refused, not reported."""
    def refuse(what: str) -> None:
        raise ResultError(f"{run_dir}: {what}; delete the folder's outputs and rerun it")

    if cfg.task != planned["task"] or int(cfg.seed) != int(planned["seed"]):
        refuse(f"config.yaml is of task {cfg.task} seed {cfg.seed}, the suite plans {planned['task']} "
               f"seed {planned['seed']} here")
    differing = identity_differences(cfg, planned)
    if differing:
        key, mine, plan = differing[0]
        more = (f" (and {len(differing) - 1} more: {', '.join(k for k, _, _ in differing[1:4])})"
                if differing[1:] else "")
        raise ResultError(f"{run_dir}: config.yaml has {key}={mine!r}, the suite plans {plan!r}{more}; rerun it "
                          "with --config overwrite=true (or delete the folder's outputs)")
    if meta.get("task") != cfg.task or int(meta.get("seed", -1)) != int(cfg.seed):
        refuse(f"meta.json is of task {meta.get('task')} seed {meta.get('seed')}, config.yaml of {cfg.task} "
               f"seed {cfg.seed}")
    if final_eval is not None:
        if final_eval.get("task") != cfg.task or final_eval.get("run_key") != meta.get("run_key"):
            refuse(f"final_eval.json evaluated a checkpoint of task {final_eval.get('task')} (run key "
                   f"{final_eval.get('run_key')}), not this run's ({cfg.task}, {meta.get('run_key')})")
        if final_eval.get("checkpoint_sha256") != meta.get("final_sha256"):
            refuse("final_eval.json evaluated another final.pt than the one meta.json records")


@lru_cache(maxsize=None)
def _planned_identity(task: str, options: tuple[str, ...]) -> dict:
    return flatten(key_config(train_config([f"task={task}", "seed=0", "out_dir=.", *options])))


def identity_differences(cfg, planned: dict) -> list[tuple[str, object, object]]:
    """(key, the run's value, the plan's value) for each key of the run's identity (its config, as its run key
    hashes it) that is not what the suite plans for it."""
    args = {**planned.get("args", {}), **({"model": planned["model"]} if "model" in planned else {})}
    plan = {**_planned_identity(planned["task"], tuple(f"{k}={hydra_value(v)}" for k, v in args.items())),
            "seed": int(planned["seed"])}
    mine = flatten(key_config(cfg))
    keys = sorted(set(mine) | set(plan), key=lambda k: (k.count("."), k))  # method, steps before agent.*
    return [(k, mine.get(k), plan.get(k)) for k in keys if mine.get(k) != plan.get(k)]


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def paper_sizes(cfg) -> bool:
    """Whether the run's networks are the paper's: every size its method's ``models.paper`` sets."""
    paper = method_config(cfg.method).models.paper
    return all(OmegaConf.select(cfg.agent, key) == value for key, value in paper.items())


def read_run(run_dir: Path, planned: dict | None = None) -> tuple[dict, pd.DataFrame]:
    """A run's description (from its resolved config) and its evaluations, scores in percent."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    meta = json.loads((run_dir / "meta.json").read_text())
    final_eval_path = run_dir / "final_eval.json"
    final_eval = json.loads(final_eval_path.read_text()) if final_eval_path.exists() else None
    if planned is not None:
        check_run(run_dir, planned, cfg, meta, final_eval)
    evals = scored_evaluations(run_dir, cfg, meta)
    metric = "success" if cfg.suite == "ogbench" else "normalized_return"
    scale = 100.0 if metric == "success" else 1.0
    method = cfg.method
    summary = METHODS[method].summary(cfg.agent)
    info = {
        "setting": planned["setting"] if planned else run_dir.parents[2].name,
        "variant": planned["variant"] if planned else run_dir.parents[1].name, "method": method,
        "task": cfg.task, "seed": int(cfg.seed), "suite": cfg.suite,
        "env_group": cfg.env_group, "metric": metric, "offline_steps": int(cfg.offline_steps),
        "online_steps": int(cfg.online_steps), "actor": summary["actor"], "parity": cfg.parity,
        "paper_sizes": paper_sizes(cfg), "alpha": summary["alpha"],
        "env_max_steps": cfg.env_max_steps, "eval_episodes": int(cfg.eval_episodes),
        "task_budget": int(load_task(cfg.task).offline_steps),
        "eval_differences": "; ".join(meta.get("minari_eval_env", {}).get("differences_from_d4rl", []))
        if meta.get("eval_protocol") == "minari" else "",
    }
    if final_eval is not None:
        info["final_eval"] = scale * final_eval[metric]
    curve = pd.DataFrame({"step": evals["step"], "value": scale * evals[metric]})
    return info, curve


def scored_evaluations(run_dir: Path, cfg, meta: dict) -> pd.DataFrame:
    """The run's eval.csv, which must hold the evaluations its score is made of (the final one, and for OGBench
    the last three); one that lacks them is written back from final.pt's copy if that copy has them."""
    steps = evaluation_steps(cfg)
    needed = set(steps[-1:] if cfg.suite == "d4rl" else steps[-3:])  # what the run's score is made of

    def complete(evals: pd.DataFrame) -> bool:
        return needed <= set(evals["step"])

    evals = pd.read_csv(run_dir / "eval.csv")
    if complete(evals):
        return evals
    copy = None
    if (run_dir / "final.pt").is_file():
        from io import StringIO

        from mfql.errors import CheckpointError
        from mfql.files import write_text
        from mfql.run.checkpoint import load_final

        try:
            copy = load_final(run_dir / "final.pt", meta.get("final_sha256")).get("csv", {}).get("eval.csv")
        except CheckpointError:
            copy = None
        if copy is not None and complete(pd.read_csv(StringIO(copy))):
            write_text(run_dir / "eval.csv", copy)
            return pd.read_csv(run_dir / "eval.csv")
    missing = sorted(needed - set(evals["step"]))
    raise ResultError(f"{run_dir}: eval.csv has {len(evals)} evaluations, none at step "
                      f"{', '.join(map(str, missing))} (its score needs the evaluations at "
                      f"{', '.join(map(str, sorted(needed)))}) and final.pt has no complete copy; rerun it with "
                      "--config overwrite=true (or delete the folder's outputs)")


def collect(planned: list[dict], data_source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs: one row per evaluation, tidy; scores: one row per run with the protocol's scores), from exactly
    the ``planned`` runs (dicts with setting, variant, task, seed, dir and the run's args and the suite's model)."""
    curves, scores = [], []
    for run in planned:
        info, curve = read_run(Path(run["dir"]), run)
        info["data_source"] = data_source
        curves.append(curve.assign(**{k: info[k] for k in ("setting", "variant", "method", "suite", "env_group",
                                                             "task", "seed", "metric")}))
        if info["setting"] == "o2o":
            before = curve[curve.step <= info["offline_steps"]]
            info["before"] = run_score(before.step.values, before.value.values, info["suite"])
        info["score"] = run_score(curve.step.values, curve.value.values, info["suite"])
        scores.append(info)
    columns = ["setting", "variant", "method", "suite", "env_group", "task", "seed", "metric", "step", "value"]
    runs = pd.concat(curves)[columns] if curves else pd.DataFrame(columns=columns)
    return runs, pd.DataFrame(scores)


def mean_std(values: pd.Series) -> dict:
    return {"mean": values.mean(), "std": values.std(ddof=1) if len(values) > 1 else float("nan"),
            "n": int(values.count())}


def per_task(scores: pd.DataFrame, setting: str) -> pd.DataFrame:
    rows = []
    part = scores[scores.setting == setting]
    for (suite, group, task, variant), runs in part.groupby(["suite", "env_group", "task", "variant"], sort=False):
        row = {"suite": suite, "env_group": group, "task": task, "variant": variant}
        if setting == "o2o":
            row.update({f"before_{k}": v for k, v in mean_std(runs.before).items()})
            row.update({f"after_{k}": v for k, v in mean_std(runs.score).items()})
            row.update({f"gain_{k}": v for k, v in mean_std(runs.score - runs.before).items()})
        else:
            row.update(mean_std(runs.score))
        rows.append(row)
    return pd.DataFrame(rows)


def per_env(scores: pd.DataFrame) -> pd.DataFrame:
    """Environment = mean over its tasks, taken per seed, then mean +- std over seeds."""
    offline = scores[scores.setting == "offline"]
    rows = []
    for (suite, group, variant), runs in offline.groupby(["suite", "env_group", "variant"], sort=False):
        per_seed = runs.groupby("seed").score.mean()
        rows.append({"suite": suite, "env_group": group, "variant": variant, "tasks": runs.task.nunique(),
                     **mean_std(per_seed)})
    return pd.DataFrame(rows)


def fmt(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "-"
    return f"{mean:.1f}" if np.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def display_table(table: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Human-readable: one row per task (or environment), one column per variant with mean ± std (n seeds),
    for O2O the score at the end of the offline phase → the final score (the gain from fine-tuning; seeds)."""
    if table.empty:
        return pd.DataFrame(columns=["task", "score"])
    key = "task" if "task" in table else "env_group"
    if setting == "o2o":
        cells = [f"{fmt(a, b)} → {fmt(c, d)} ({g:+.1f}; {n})" for a, b, c, d, g, n in
                 zip(table.before_mean, table.before_std, table.after_mean, table.after_std, table.gain_mean,
                     table.after_n)]
    else:
        cells = [f"{fmt(m, s)} ({n})" for m, s, n in zip(table["mean"], table["std"], table["n"])]
    wide = table.assign(cell=cells).pivot(index=key, columns="variant", values="cell")
    variants = list(dict.fromkeys(table.variant))  # the suite's order
    wide = wide.reindex(index=list(dict.fromkeys(table[key])), columns=variants).fillna("-")
    return wide.reset_index().rename_axis(columns=None)


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
