"""Write back the files of a finished run from the copies inside its final.pt.

    python -m mfql.restore run_dir=<folder of a finished run>

config.yaml, meta.json, train.csv and eval.csv travel inside final.pt; whichever of them is missing is written
again (the others are left as they are), so a deleted eval.csv is restored, never retrained. A final.pt whose
SHA-256 differs from the one its meta.json records is refused. The pipeline's ``run_files`` job is this command.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mfql.config import compose, run_cli
from mfql.errors import ConfigError
from mfql.log import setup_logging
from mfql.run.records import restore_files

log = logging.getLogger("mfql.restore")


def main(argv: list[str]) -> None:
    cfg = compose("restore", argv)
    folder = Path(str(cfg.run_dir))
    if not (folder / "final.pt").is_file():
        raise ConfigError(f"run_dir={str(folder)!r} holds no final.pt (valid: the folder of a finished run of "
                          f"mfql.train)")
    restored = restore_files(folder)
    log.info("restored from %s: %s", folder / "final.pt", ", ".join(restored) or "nothing (every file is there)")


if __name__ == "__main__":
    setup_logging()
    run_cli(main, "restore")
