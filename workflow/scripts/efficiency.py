"""Each method's score per environment group beside its measured cost (table, Markdown, figure)."""
import json
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from mfql.files import atomic_write, write_text  # noqa: E402
from mfql.report.efficiency import cost_table, efficiency_figure, efficiency_table, to_markdown  # noqa: E402

sm = snakemake  # noqa: F821
costs = cost_table(json.loads(Path(sm.input.bench).read_text()))
table = efficiency_table(costs, pd.read_csv(sm.input.scores))
atomic_write(sm.output.csv, lambda tmp: table.to_csv(tmp, index=False))
write_text(sm.output.md, to_markdown(costs, table))
efficiency_figure(table, Path(sm.output.png).with_suffix(""))
