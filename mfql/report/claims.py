"""The paper's claims, paired: the paper's method (MeanFlow-QL) against each baseline on the same tasks, data
and protocol.

For each baseline, task, environment group and suite, per setting and phase: the difference of mean scores
MFQL - baseline with a 95 % stratified-bootstrap CI (runs resampled with replacement within each task and method),
the probability of improvement P(MFQL > baseline) as rliable defines it (per task the Mann-Whitney statistic
over all run pairs, ties counting one half, averaged over tasks) with its CI from the same resamples, and
the paper's own claim from the reported numbers next to it. We implement these few lines instead of using
rliable 1.2.0 (archived upstream): it ships only an sdist and `import rliable.library` fails with the arch
7.2.0 / pandas 3 it installs; tests check our numbers against rliable's definitions on known answers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mfql.agents import METHODS, baselines, proposed
from mfql.report.stats import iqm, stratified_bootstrap_ci
from mfql.report.verify import PHASE_COLUMNS, not_comparable_reasons, reported

# each method is compared as its paper ran it: the variant named after it
COLUMNS = ["setting", "phase", "level", "name", "method", "baseline", "tasks", "runs_method", "runs_baseline",
           "mean_method", "mean_baseline", "difference", "ci_low", "ci_high", "poi", "poi_low", "poi_high", "verdict",
           "paper_method", "paper_baseline", "paper_difference", "paper_claim", "agreement"]


def probability_of_improvement(x: list[np.ndarray], y: list[np.ndarray]) -> float:
    """P(X > Y) + 0.5 P(X = Y) over all pairs of runs, per task (lists of per-task run scores), averaged."""
    per_task = []
    for xs, ys in zip(x, y):
        diff = np.asarray(xs, dtype=float)[:, None] - np.asarray(ys, dtype=float)[None, :]
        per_task.append(float(((diff > 0) + 0.5 * (diff == 0)).mean()))
    return float(np.mean(per_task))


def mean_difference(x: list[np.ndarray], y: list[np.ndarray]) -> float:
    """Mean over tasks of (mean score of X - mean score of Y): an environment's score is its tasks' mean."""
    return float(np.mean([np.mean(xs) - np.mean(ys) for xs, ys in zip(x, y)]))


def paired_bootstrap(x: list[np.ndarray], y: list[np.ndarray], statistics: dict, reps: int, seed: int,
                     level: float = 0.95) -> dict:
    """{name: (point, low, high)}: each statistic on the runs and its percentile CI, resampling the runs of
    each task and method independently (stratified bootstrap; the same resamples for every statistic)."""
    rng = np.random.default_rng(seed)
    draws = {name: np.empty(reps) for name in statistics}
    for i in range(reps):
        xs = [rng.choice(c, size=len(c)) for c in x]
        ys = [rng.choice(c, size=len(c)) for c in y]
        for name, fn in statistics.items():
            draws[name][i] = fn(xs, ys)
    tail = (1 - level) / 2 * 100
    return {name: (fn(x, y), *np.percentile(draws[name], [tail, 100 - tail])) for name, fn in statistics.items()}


def verdict(low: float, high: float, a: str, b: str) -> str:
    return f"{a} better" if low > 0 else f"{b} better" if high < 0 else "no clear difference"


def paper_claim(difference: float, a: str, b: str) -> str:
    if pd.isna(difference):
        return "-"
    return f"{a} better" if difference > 0 else f"{b} better" if difference < 0 else "equal"


def agreement(ours: str, theirs: str, reasons: list[str]) -> str:
    if theirs == "-":
        return "no reported pair"
    if reasons:
        return "not comparable: " + "; ".join(reasons)
    if ours == "no clear difference":
        return "not shown (CI includes 0)"
    return "agrees" if ours == theirs else "contradicts"


def paper_values(paper: pd.DataFrame) -> dict:
    """{(setting, level, name, phase): {method: mean}} of the reported numbers of every registered method."""
    values: dict = {}
    for method in (m.PAPER_NAME for m in METHODS.values() if m.PAPER_NAME):
        for row in reported(paper, method).itertuples(index=False):
            level, name = ("environment", row.env_group) if row.task.startswith("ALL") else ("task", row.task)
            values.setdefault((row.setting, level, name, row.phase), {})[method] = row.mean
    return values


def claims(scores: pd.DataFrame, paper: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (baseline, setting, phase, level, name) where the paper's method and that baseline have runs."""
    values = paper_values(paper)
    rows = [row for baseline in baselines() for row in compared(scores, values, proposed(), baseline, reps, seed)]
    return pd.DataFrame(rows, columns=COLUMNS)


def compared(scores: pd.DataFrame, values: dict, a: str, b: str, reps: int, seed: int) -> list[dict]:
    """The rows of method ``a`` against baseline ``b`` (variants named after them)."""
    if scores.empty or not {a, b} <= set(scores.variant):
        return []
    stats = {"difference": mean_difference, "poi": probability_of_improvement}
    label_a, label_b = METHODS[a].PAPER_NAME or a, METHODS[b].PAPER_NAME or b
    rows = []
    for setting, phases in PHASE_COLUMNS.items():
        part = scores[(scores.setting == setting) & scores.variant.isin([a, b])]
        both = part.groupby("task").variant.nunique()
        part = part[part.task.isin(both[both == 2].index)]
        if part.empty:
            continue
        units = [("task", name, runs) for name, runs in part.groupby("task")]
        units += [("environment", name, runs) for name, runs in part.groupby("env_group")]
        units += [("suite", name, runs) for name, runs in part.groupby("suite")]
        for phase, column in phases:
            for level, name, runs in units:
                tasks = sorted(runs.task.unique())
                x = [runs[(runs.task == t) & (runs.variant == a)][column].to_numpy(float) for t in tasks]
                y = [runs[(runs.task == t) & (runs.variant == b)][column].to_numpy(float) for t in tasks]
                est = paired_bootstrap(x, y, stats, reps, seed)
                reported_pair = values.get((setting, level, name, phase), {})
                paper_a, paper_b = reported_pair.get(label_a, np.nan), reported_pair.get(label_b, np.nan)
                ours = verdict(*est["difference"][1:], label_a, label_b)
                claim = paper_claim(paper_a - paper_b, label_a, label_b)
                rows.append({
                    "setting": setting, "phase": phase, "level": level, "name": name, "method": a, "baseline": b,
                    "tasks": len(tasks), "runs_method": sum(map(len, x)), "runs_baseline": sum(map(len, y)),
                    "mean_method": float(np.mean([c.mean() for c in x])),
                    "mean_baseline": float(np.mean([c.mean() for c in y])),
                    "difference": est["difference"][0], "ci_low": est["difference"][1],
                    "ci_high": est["difference"][2], "poi": est["poi"][0], "poi_low": est["poi"][1],
                    "poi_high": est["poi"][2], "verdict": ours, "paper_method": paper_a, "paper_baseline": paper_b,
                    "paper_difference": paper_a - paper_b, "paper_claim": claim,
                    "agreement": agreement(ours, claim, not_comparable_reasons(runs)),
                })
    return rows


def group_iqm(scores: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    """IQM with 95 % stratified-bootstrap CI per (setting, environment group, variant): the figure's left panel."""
    rows = []
    for (setting, group, variant), runs in scores.groupby(["setting", "env_group", "variant"]):
        matrix = runs.pivot_table(index="seed", columns="task", values="score").to_numpy()
        point, lo, hi = stratified_bootstrap_ci(matrix, iqm, reps=reps, seed=seed)
        rows.append({"setting": setting, "env_group": group, "variant": variant, "iqm": point, "low": lo,
                     "high": hi})
    return pd.DataFrame(rows)


def performance_profile(scores: pd.DataFrame, taus: np.ndarray, reps: int, seed: int) -> pd.DataFrame:
    """rliable's run-score distribution per variant: the fraction of runs scoring above tau (each task weighted
    equally), with a 95 % stratified-bootstrap band."""
    rows = []
    for (suite, variant), runs in scores.groupby(["suite", "variant"]):
        columns = [g.score.to_numpy(float) for _, g in runs.groupby("task")]

        def profile(cols):
            return np.mean([(c[:, None] > taus[None, :]).mean(axis=0) for c in cols], axis=0)

        rng = np.random.default_rng(seed)
        draws = np.stack([profile([rng.choice(c, size=len(c)) for c in columns]) for _ in range(reps)])
        low, high = np.percentile(draws, [2.5, 97.5], axis=0)
        rows += [{"suite": suite, "variant": variant, "tau": t, "fraction": f, "low": lo, "high": hi}
                 for t, f, lo, hi in zip(taus, profile(columns), low, high)]
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    def num(x, digits=1):
        return "-" if pd.isna(x) else f"{x:.{digits}f}"

    a = METHODS[proposed()]
    lines = [f"# Claims: {a.LABEL} vs each baseline, paired", "",
             f"Runs of the variant `{proposed()}` and of each baseline's variant "
             f"({', '.join(f'`{b}`' for b in baselines())}) on the same tasks, data, budgets and seeds. Difference = "
             "mean score method - baseline (an environment's or suite's: the mean over its tasks), 95 % "
             "stratified-bootstrap CI (runs resampled within each task and method); P(method > baseline): "
             "probability of improvement as rliable defines it, same resamples. Paper: the reported numbers where "
             "both exist.", ""]
    if table.empty:
        return "\n".join(lines + [f"No task has runs of both `{proposed()}` and a baseline in this suite."]) + "\n"
    for baseline, part in table.groupby("baseline", sort=False):
        b = METHODS[baseline]
        x, y = a.PAPER_NAME or proposed(), b.PAPER_NAME or baseline
        counts = part[part.level != "suite"].agreement.str.split(":").str[0].value_counts()
        lines += [f"## {a.LABEL} vs {b.LABEL}", "", "Agreement with the paper (tasks and environments): "
                  + ", ".join(f"{k}: {v}" for k, v in counts.items()), "",
                  f"| setting | phase | level | name | {x} | {y} | {x} - {y} [95 % CI] | P({x} > {y}) [95 % CI] | "
                  f"verdict | paper {x} - {y} | paper says | agreement |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in part.itertuples(index=False):
            lines.append(
                f"| {r.setting} | {r.phase} | {r.level} | {r.name} | {num(r.mean_method)} ({r.runs_method}) | "
                f"{num(r.mean_baseline)} ({r.runs_baseline}) | {num(r.difference)} [{num(r.ci_low)}, "
                f"{num(r.ci_high)}] | {num(r.poi, 2)} [{num(r.poi_low, 2)}, {num(r.poi_high, 2)}] | {r.verdict} | "
                f"{num(r.paper_difference)} | {r.paper_claim} | {r.agreement} |")
        lines.append("")
    return "\n".join(lines)
