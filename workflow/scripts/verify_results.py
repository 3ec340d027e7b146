"""Reported vs reproduced numbers: results/verification/report.{md,csv} and summary.json."""
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from mfql.files import atomic_write, write_json, write_text  # noqa: E402
from mfql.report.verify import STATUSES, to_markdown, verify  # noqa: E402

sm = snakemake  # noqa: F821
report = verify(pd.read_csv(sm.input.scores), pd.read_csv(sm.input.expected), sm.params.alpha)
atomic_write(sm.output.csv, lambda tmp: report.to_csv(tmp, index=False))
write_text(sm.output.md, to_markdown(report))
counts = {s: int((report.status == s).sum()) for s in STATUSES}
write_json(sm.output.summary, {"counts": counts, "rows": len(report)})
