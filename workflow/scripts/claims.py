"""MFQL vs FQL, paired: results/verification/claims.{md,csv}, results/figures/{claims,profiles}.{png,pdf}."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mfql.agents import baselines, proposed  # noqa: E402
from mfql.files import atomic_write, write_text  # noqa: E402
from mfql.report.claims import claims, group_iqm, performance_profile, to_markdown  # noqa: E402
from mfql.report.figures import claims_figure, profiles_figure  # noqa: E402

sm = snakemake  # noqa: F821
scores = pd.read_csv(sm.input.scores)
table = claims(scores, pd.read_csv(sm.input.expected), sm.params.reps, sm.params.seed)
atomic_write(sm.output.csv, lambda tmp: table.to_csv(tmp, index=False))
write_text(sm.output.md, to_markdown(table))
paired = scores[scores.variant.isin([proposed(), *baselines()])] if len(scores) else scores
claims_figure(group_iqm(paired, sm.params.reps, sm.params.seed) if len(paired) else paired, table,
              Path(sm.output.claims_png).with_suffix(""))
offline = scores[scores.setting == "offline"] if len(scores) else scores
profile = performance_profile(offline, np.linspace(0, 100, 101), sm.params.reps, sm.params.seed) if len(offline) \
    else pd.DataFrame()
profiles_figure(profile, Path(sm.output.profiles_png).with_suffix(""))
