"""Per-task, per-environment and offline-to-online tables as CSV, Markdown and LaTeX."""
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from mfql.files import atomic_write, write_text  # noqa: E402
from mfql.report.results import display_table, per_env, per_task, to_latex, to_markdown  # noqa: E402

scores = pd.read_csv(snakemake.input.scores)  # noqa: F821
n_seeds = scores.groupby(["setting", "task"]).seed.nunique().max() if len(scores) else 0
tables = {
    "offline": (per_task(scores, "offline"), "offline", "Offline results per task"),
    "offline_env": (per_env(scores), "offline", "Offline results per environment (mean over its tasks)"),
    "o2o": (per_task(scores, "o2o"), "o2o", "Offline-to-online results: the score at the end of the offline phase "
            "-> the final score after online fine-tuning (the gain; seeds)"),
}
for name, (table, setting, caption) in tables.items():
    caption = (f"{caption}, one column per variant: mean ± std over seeds (seeds, up to {n_seeds}); OGBench "
               "success %, D4RL normalized return")
    out = snakemake.output  # noqa: F821
    atomic_write(out[f"{name}_csv"], lambda tmp, t=table: t.to_csv(tmp, index=False))
    shown = display_table(table, setting)
    write_text(out[f"{name}_md"], f"{caption}\n\n" + to_markdown(shown))
    write_text(out[f"{name}_tex"], to_latex(shown, caption))
