"""With verify.strict, fail when any reported number differs from its reproduction."""
import json
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from mfql.files import write_text  # noqa: E402

sm = snakemake  # noqa: F821
counts = json.load(open(sm.input[0]))["counts"]
line = ", ".join(f"{k}: {v}" for k, v in counts.items())
if sm.params.strict and counts["differs"]:
    print(f"verify.strict: {counts['differs']} reported number(s) differ ({line}); "
          "see results/verification/report.md", file=sys.stderr)
    sys.exit(1)
write_text(sm.output[0], f"{line}\n")
