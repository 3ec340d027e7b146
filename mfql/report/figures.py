"""Figures of the paper's kind (seaborn, PNG and PDF): learning curves per task and per environment group
with the mean and its 95 % t-interval over seeds, offline-to-online curves with the switch marked, and an
aggregate panel (IQM and mean with 95 % stratified-bootstrap confidence intervals)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from mfql.agents import METHODS, proposed  # noqa: E402
from mfql.files import atomic_write  # noqa: E402
from mfql.report.stats import iqm, stratified_bootstrap_ci, t_interval  # noqa: E402

sns.set_theme(style="whitegrid", palette="colorblind")
YLABEL = {"success": "OGBench success rate (%)", "normalized_return": "D4RL normalized return"}
SWITCH_LABEL = "offline → online"
O2O_TITLE = ("Offline-to-online curves: offline training on the dataset, then online fine-tuning\n"
             "(dashed line: the switch; online, one environment step and one update per step)")


def save(fig, stem: Path) -> None:
    """stem.png and stem.pdf, each written atomically."""
    for ext in ("png", "pdf"):
        atomic_write(stem.with_suffix(f".{ext}"),
                     lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=120, bbox_inches="tight"))
    plt.close(fig)


def empty(stem: Path, message: str) -> None:
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    save(fig, stem)


def facet_grid(data: pd.DataFrame, col: str, title: str, switch: dict | None = None) -> sns.FacetGrid:
    """One panel per ``col`` value, a line per variant (mean and 95 % t-interval over seeds); where ``switch``
    gives a panel's offline budget, a dashed vertical line marks the start of its online phase."""
    data = data.assign(step_k=data.step / 1000)
    grid = sns.relplot(data=data, x="step_k", y="value", col=col, col_wrap=min(4, data[col].nunique()),
                       hue="variant", kind="line", errorbar=t_interval, height=2.6, aspect=1.3,
                       facet_kws={"sharey": False})
    for name, ax in grid.axes_dict.items():
        metric = data[data[col] == name].metric.iloc[0]
        ax.set_ylabel(YLABEL[metric])
        ax.set_xlabel("steps (k)")
        ax.set_title(str(name), fontsize=8)
        if switch and name in switch:
            at = switch[name] / 1000
            ax.axvline(at, color="k", ls="--", lw=1, label=SWITCH_LABEL)
            ax.text(at, 1.0, " online →", transform=ax.get_xaxis_transform(), ha="left", va="top", fontsize=7)
            ax.text(at, 1.0, "← offline ", transform=ax.get_xaxis_transform(), ha="right", va="top", fontsize=7)
    grid.figure.suptitle(f"{title} (mean and 95 % t-interval over seeds)", y=1.0, va="bottom", fontsize=10)
    return grid


def facet_curves(data: pd.DataFrame, col: str, stem: Path, title: str, switch: dict | None = None) -> None:
    if data.empty:
        return empty(stem, f"no runs: {title}")
    save(facet_grid(data, col, title, switch).figure, stem)


def o2o_switch(scores: pd.DataFrame) -> dict:
    """Task -> the step at which its O2O runs start online (their offline budget)."""
    o2o = scores[scores.setting == "o2o"] if len(scores) else scores
    return o2o.groupby("task").offline_steps.first().to_dict() if len(o2o) else {}


def curves(runs: pd.DataFrame, scores: pd.DataFrame, out_dir: Path) -> None:
    offline = runs[runs.setting == "offline"]
    facet_curves(offline, "task", out_dir / "curves_offline", "Offline learning curves per task")
    per_env = offline.groupby(["env_group", "variant", "metric", "seed", "step"], as_index=False).value.mean()
    facet_curves(per_env, "env_group", out_dir / "curves_env", "Offline learning curves per environment")
    facet_curves(runs[runs.setting == "o2o"], "task", out_dir / "curves_o2o", O2O_TITLE, o2o_switch(scores))


def aggregates(scores: pd.DataFrame, stem: Path, reps: int, seed: int) -> pd.DataFrame:
    """IQM and mean over all runs of each suite and variant, with 95 % stratified-bootstrap CIs (fixed seed)."""
    rows = []
    offline = scores[scores.setting == "offline"] if len(scores) else scores
    for (suite, variant), runs in (offline.groupby(["suite", "variant"], sort=False) if len(offline) else []):
        matrix = runs.pivot_table(index="seed", columns="task", values="score").to_numpy()
        for name, fn in (("IQM", iqm), ("Mean", lambda x: float(np.mean(x)))):
            point, lo, hi = stratified_bootstrap_ci(matrix, fn, reps=reps, seed=seed)
            rows.append({"suite": suite, "variant": variant, "statistic": name, "value": point, "ci_low": lo,
                         "ci_high": hi, "runs": int(np.isfinite(matrix).sum()), "tasks": matrix.shape[1]})
    table = pd.DataFrame(rows)
    if table.empty:
        empty(stem, "no offline runs")
        return table
    labels = table.suite + " / " + table.variant
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.0 + 0.4 * labels.nunique()), sharey=True)
    for ax, (name, part) in zip(axes, table.assign(label=labels).groupby("statistic", sort=False)):
        y = np.arange(len(part))
        ax.errorbar(part.value, y, xerr=[part.value - part.ci_low, part.ci_high - part.value], fmt="o", capsize=4)
        ax.set_yticks(y, part.label)
        ax.set_title(name)
        ax.set_xlabel("score (success % or normalized return)")
    fig.suptitle(f"Aggregate offline scores, 95 % stratified-bootstrap CI ({reps} resamples, seed {seed})",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    save(fig, stem)
    return table


def claims_figure(iqms: pd.DataFrame, table: pd.DataFrame, stem: Path) -> None:
    """Per environment group: IQM of the paper's method and each baseline with its CI, and P(method > baseline)
    with its CI per baseline (0.5: no difference). Offline and the final O2O scores."""
    envs = table[table.level == "environment"] if len(table) else table
    if envs.empty:
        return empty(stem, f"no task has runs of both {proposed()} and a baseline")
    envs = envs[envs.phase != "before"]
    compared = [proposed(), *dict.fromkeys(envs.baseline)]
    shown = iqms[iqms.env_group.isin(envs.name) & iqms.variant.isin(compared)]
    labels = sorted({(s, g) for s, g in zip(envs.setting, envs.name)})
    y = {label: i for i, label in enumerate(labels)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 1.5 + 0.4 * len(labels)), sharey=True)
    offsets = dict(zip(compared, np.linspace(-0.12, 0.12, len(compared))))
    for variant, part in shown.groupby("variant", sort=False):
        pos = [y[(s, g)] + offsets[variant] for s, g in zip(part.setting, part.env_group)]
        left.errorbar(part.iqm, pos, xerr=[part.iqm - part.low, part.high - part.iqm], fmt="o", capsize=3,
                      label=variant)
    left.set_yticks(range(len(labels)), [f"{g} ({s})" for s, g in labels], fontsize=7)
    left.set_xlabel("IQM score")
    left.legend(fontsize=7)
    for baseline, part in envs.groupby("baseline", sort=False):
        pos = [y[(s, g)] + offsets[baseline] for s, g in zip(part.setting, part.name)]
        right.errorbar(part.poi, pos, xerr=[part.poi - part.poi_low, part.poi_high - part.poi], fmt="o", capsize=3,
                       label=f"vs {METHODS[baseline].LABEL}")
    right.axvline(0.5, color="k", ls="--", lw=1)
    right.set_xlim(0, 1)
    right.set_xlabel(f"P({METHODS[proposed()].LABEL} > baseline)")
    right.legend(fontsize=7)
    fig.suptitle(f"{METHODS[proposed()].LABEL} vs each baseline per environment, 95 % stratified-bootstrap CIs",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save(fig, stem)


def profiles_figure(profiles: pd.DataFrame, stem: Path) -> None:
    """Performance profiles (fraction of runs above a score, tasks weighted equally) per suite, one line per
    variant with its 95 % band."""
    if profiles.empty:
        return empty(stem, "no offline runs")
    suites = list(dict.fromkeys(profiles.suite))
    fig, axes = plt.subplots(1, len(suites), figsize=(4.5 * len(suites), 3.2), squeeze=False)
    for ax, suite in zip(axes[0], suites):
        for variant, part in profiles[profiles.suite == suite].groupby("variant", sort=False):
            ax.plot(part.tau, part.fraction, label=variant)
            ax.fill_between(part.tau, part.low, part.high, alpha=0.2)
        ax.set_title(suite)
        ax.set_xlabel("score threshold tau")
        ax.set_ylabel("fraction of runs with score > tau")
        ax.legend(fontsize=7)
    fig.suptitle("Offline performance profiles, 95 % stratified-bootstrap bands", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    save(fig, stem)
