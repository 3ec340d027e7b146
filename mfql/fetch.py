"""Download a dataset into the project's data folder and record its checksum.

    python -m mfql.fetch dataset=<cube-single-play-v0 | D4RL/antmaze/umaze-v1 | ...> data_dir=<dir>

OGBench datasets come from OGBench's server through ``ogbench.download_datasets`` into
``<data_dir>/ogbench``; D4RL datasets from Minari's remote through ``minari.download_dataset`` into
``<data_dir>/minari``. Either way ``<data_dir>/checksums/<name>.json`` lists each file's SHA-256.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mfql.checkpoint import write_json
from mfql.config import ConfigError, compose, run_cli
from mfql.data import MINARI_IDS, checksum, set_minari_root

log = logging.getLogger("mfql.fetch")


def dataset_paths(dataset: str, data_dir: Path) -> list[Path]:
    if dataset.startswith("D4RL/"):
        root = data_dir / "minari" / dataset
        return sorted(p for p in root.rglob("*") if p.is_file())
    return [data_dir / "ogbench" / f"{dataset}.npz", data_dir / "ogbench" / f"{dataset}-val.npz"]


def record_checksums(dataset: str, data_dir: Path) -> Path:
    """Write ``<data_dir>/checksums/<dataset>.json`` ({file: sha256}) and return its path."""
    paths = dataset_paths(dataset, data_dir)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise FileNotFoundError(f"dataset {dataset} is incomplete in {data_dir}: missing {missing or 'all files'}")
    sums = {str(p.relative_to(data_dir)): checksum([p]) for p in paths}
    out = data_dir / "checksums" / f"{dataset.replace('/', '__')}.json"
    write_json(out, sums)
    return out


def fetch(dataset: str, data_dir: Path) -> None:
    if dataset.startswith("D4RL/"):
        if dataset not in MINARI_IDS.values():
            raise ConfigError(f"dataset={dataset!r} is not a dataset of the paper "
                              f"(valid Minari ids: {', '.join(sorted(MINARI_IDS.values()))})")
        import minari

        set_minari_root(data_dir)
        minari.download_dataset(dataset)
    else:
        import ogbench

        ogbench.download_datasets([dataset], dataset_dir=str(data_dir / "ogbench"))


def main(argv: list[str]) -> None:
    cfg = compose("fetch", argv)
    data_dir = Path(cfg.data_dir)
    if not cfg.checksum_only:
        try:
            fetch(cfg.dataset, data_dir)
        except ConfigError:
            raise
        except Exception as exc:  # network, HTTP or remote errors: one line, and what else to do
            reason = str(getattr(exc, "reason", exc)).splitlines()[0]
            hint = "" if cfg.dataset.startswith("D4RL/") else (
                f"; without network, rebuild it with `python -m mfql.datagen dataset={cfg.dataset} "
                f"out_dir={data_dir / 'ogbench'}`")
            raise FileNotFoundError(f"could not download dataset {cfg.dataset}: {reason}{hint}") from None
    log.info("checksums: %s", record_checksums(cfg.dataset, data_dir))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_cli(main)
