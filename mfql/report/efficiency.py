"""The performance-efficiency comparison the paper's claim needs: each method's score per environment group (this
suite's offline runs of the variant named after the method) beside what it costs to train and to act, as the
benchmark's efficiency section measured it (``python -m mfql.bench sections=[efficiency]``, on the suite's device
and model: one process per method).

The figure puts each method's score against its action latency at batch 1 (what a robot's control loop pays
per step) and against its training time per update; the table gives every measured figure, with the network
calls per action counted by hooks on the networks (not assumed from the method's description).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mfql.bench import efficiency_rows
from mfql.report.figures import empty, plt, save, sns


def cost_table(bench: dict) -> pd.DataFrame:
    """One row per method from a benchmark's JSON (its efficiency section), with the device it ran on."""
    if "efficiency" not in bench:
        raise ValueError("the benchmark's JSON has no efficiency section (valid: the output of "
                         "python -m mfql.bench sections=[efficiency])")
    costs = pd.DataFrame(efficiency_rows(bench["efficiency"]))
    costs.insert(3, "device", bench.get("device_name") or bench.get("device", "?"))
    costs["ms_per_update"] = 1e3 / costs.updates_per_s
    return costs


def efficiency_table(costs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per method and environment group with offline runs of the method's own variant: the group's
    score (the mean over its tasks of each task's mean over seeds), its tasks and runs, and the method's costs."""
    offline = scores[(scores.setting == "offline") & scores.variant.isin(costs.method)]
    per_task = offline.groupby(["variant", "env_group", "task"]).score.agg(["mean", "count"]).reset_index()
    groups = per_task.groupby(["variant", "env_group"]).agg(score=("mean", "mean"), tasks=("task", "nunique"),
                                                            runs=("count", "sum")).reset_index()
    return costs.merge(groups.rename(columns={"variant": "method"}), on="method")  # the registry's order


def to_markdown(costs: pd.DataFrame, table: pd.DataFrame) -> str:
    device, model = costs.device.iloc[0], costs.model.iloc[0]
    lines = ["# Performance and efficiency, per method", "",
             f"Measured by `python -m mfql.bench sections=[efficiency]` on {device} with the `{model}` model "
             "(cube-single shapes: observation 28, action 5, batch 256), one process per method. Updates/s: the "
             "training update (eager unless compiled is yes); latency: one action for a batch of 1 and of 50 "
             "observations; calls: forward calls of the method's networks (hooks), per action and per update; "
             f"peak memory: {costs.peak_memory_kind.iloc[0]}.", "",
             "| method | updates/s | ms/update | GFLOP/update | latency batch 1 (ms) | latency batch 50 (ms) | "
             "calls/action | calls/update | parameters | peak memory (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in costs.itertuples(index=False):
        lines.append(f"| {r.label} | {r.updates_per_s:.1f}{' (compiled)' if r.compiled else ''} | "
                     f"{r.ms_per_update:.1f} | {r.gflop_per_update:.2f} | {r.act_latency_ms_batch1:.3f} | "
                     f"{r.act_latency_ms_batch50:.3f} | {r.calls_per_action} | {r.calls_per_update} | "
                     f"{r.params:,} | {r.peak_memory_mb:.0f} |")
    lines += ["", "## Score beside cost, per environment group (offline runs of this suite)", ""]
    if table.empty:
        return "\n".join(lines + ["No offline runs of a method's own variant in this suite."]) + "\n"
    lines += ["| environment | method | score | tasks | runs | latency batch 1 (ms) | ms/update |",
              "|---|---|---|---|---|---|---|"]
    for r in table.sort_values("env_group", kind="stable").itertuples(index=False):  # methods in the registry order
        lines.append(f"| {r.env_group} | {r.label} | {r.score:.1f} | {r.tasks} | {r.runs} | "
                     f"{r.act_latency_ms_batch1:.3f} | {r.ms_per_update:.1f} |")
    return "\n".join(lines) + "\n"


def efficiency_figure(table: pd.DataFrame, stem: Path) -> None:
    """Score against action latency (batch 1) and against training time per update: a point per method and
    environment group, both cost axes logarithmic."""
    if table.empty:
        return empty(stem, "no offline runs of a method's own variant: nothing to compare")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, (column, label) in zip(axes, [("act_latency_ms_batch1", "action latency, batch 1 (ms)"),
                                          ("ms_per_update", "training time per update (ms)")]):
        sns.scatterplot(data=table, x=column, y="score", hue="label", style="env_group", s=70, ax=ax,
                        legend=ax is axes[-1])
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("score (mean over the group's tasks)")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"Performance vs cost per method ({table.device.iloc[0]}, {table.model.iloc[0]} model)",
                 fontsize=10)
    save(fig, stem)
