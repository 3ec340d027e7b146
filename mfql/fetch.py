"""Download a dataset into the project's data folder and record its checksums.

    python -m mfql.fetch dataset=<cube-single-play-v0 | D4RL/antmaze/umaze-v1 | ...> data_dir=<dir>

OGBench datasets come from the servers in ``ogbench_sources`` (OGBench's own first, then its maintainers'
Hugging Face mirror), tried in order, into ``<data_dir>/ogbench``; a file from a server that publishes its
SHA-256 (the mirror does) is kept only if it matches. D4RL datasets come from Minari's remote through
``minari.download_dataset`` into ``<data_dir>/minari``. Either way ``<data_dir>/checksums/<name>.json``
lists each file's SHA-256, and the log says which source served the files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mfql.config import check_out_dir, compose, run_cli
from mfql.data.datasets import MINARI_IDS, checksum, checksums_path, set_minari_root
from mfql.datagen import DATASET_RE as REGENERABLE_RE
from mfql.errors import ConfigError, DownloadError
from mfql.files import UMASK, write_json
from mfql.log import setup_logging

log = logging.getLogger("mfql.fetch")
OGBENCH_RE = re.compile(r"^[a-z0-9x]+(-[a-z0-9x]+)*-v[0-9]$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
TIMEOUT_S = 60



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
    out = checksums_path(data_dir, dataset)
    write_json(out, sums)
    return out


def published_sha256(headers) -> str | None:
    """The SHA-256 a server publishes for a file: Hugging Face sends it as X-Linked-Etag for LFS files."""
    for name in ("X-Linked-Etag", "X-Checksum-Sha256"):
        value = (headers.get(name) or "").strip().strip('"').removeprefix("W/").strip('"').lower()
        if SHA256_RE.match(value):
            return value
    return None


def download_file(url: str, dest: Path) -> str | None:
    """Stream ``url`` into ``dest`` (atomically); verify the published SHA-256 if there is one; return it."""
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    expected = published_sha256(response.headers)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle, response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                handle.write(block)
        if expected is not None and digest.hexdigest() != expected:
            raise DownloadError(f"{url}: SHA-256 {digest.hexdigest()[:12]}... does not match the published "
                                f"{expected[:12]}...")
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, dest)
    except (OSError, DownloadError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DownloadError(str(exc)) from None
    return expected


def fetch_ogbench(dataset: str, data_dir: Path, sources: list[str]) -> str:
    """Download both files of an OGBench dataset from the first source that serves them; return it."""
    folder = data_dir / "ogbench"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{dataset}.npz", f"{dataset}-val.npz"]
    if all((folder / n).is_file() for n in names):
        log.info("%s: both files already in %s", dataset, folder)
        return "already present"
    failures = []
    for source in sources:
        try:
            for name in names:
                if not (folder / name).is_file():
                    verified = download_file(f"{source.rstrip('/')}/{name}", folder / name)
                    log.info("%s: %s from %s (%s)", dataset, name, source,
                             f"SHA-256 verified against the source's {verified[:12]}..." if verified
                             else "the source publishes no checksum; recorded after download")
            log.info("%s: downloaded from %s", dataset, source)
            return source
        except DownloadError as exc:
            log.warning("%s: source failed: %s", dataset, exc)
            failures.append(str(exc))
    raise DownloadError("; ".join(failures) or "no source configured")


def check_minari_remote(timeout: float = 5.0) -> None:
    """Minari's datasets come from the Hugging Face hub (``HF_ENDPOINT`` if set): fail at once, in one line, when
    it cannot be reached, instead of after the hub client's retries."""
    url = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise DownloadError(f"Minari's remote {url.hostname}:{port} cannot be reached "
                            f"({exc.strerror or type(exc).__name__}); check the network, or copy the dataset "
                            "into <data_dir>/minari from a machine that has it") from None


def fetch(dataset: str, data_dir: Path, sources: list[str]) -> str:
    if dataset.startswith("D4RL/"):
        check_minari_remote()
        import minari

        set_minari_root(data_dir)
        minari.download_dataset(dataset)
        return "Minari's remote"
    return fetch_ogbench(dataset, data_dir, sources)


def check_dataset_name(dataset: str) -> None:
    if dataset.startswith("D4RL/"):
        if dataset not in MINARI_IDS.values():
            raise ConfigError(f"dataset={dataset!r} is not a dataset of the paper "
                              f"(valid Minari ids: {', '.join(sorted(MINARI_IDS.values()))})")
    elif not OGBENCH_RE.match(dataset):
        raise ConfigError(f"dataset={dataset!r} is not an OGBench dataset name (valid: e.g. cube-single-play-v0, "
                          "antmaze-large-navigate-v0) or a Minari id D4RL/<env>/<name>")


def main(argv: list[str]) -> None:
    cfg = compose("fetch", argv)
    check_dataset_name(cfg.dataset)
    data_dir = check_out_dir("data_dir", cfg.data_dir)
    if not cfg.checksum_only:
        try:
            source = fetch(cfg.dataset, data_dir, list(cfg.ogbench_sources))
        except ConfigError:
            raise
        except Exception as exc:  # network, HTTP or remote errors: one line, and what else to do
            reason = str(getattr(exc, "reason", exc)).splitlines()[0]
            hint = f"; without network, rebuild it with `python -m mfql.datagen dataset={cfg.dataset} " \
                   f"out_dir={data_dir / 'ogbench'}`" if REGENERABLE_RE.match(cfg.dataset) else ""
            raise FileNotFoundError(f"could not download dataset {cfg.dataset}: {reason}{hint}") from None
        log.info("source: %s", source)
    log.info("checksums: %s", record_checksums(cfg.dataset, data_dir))


if __name__ == "__main__":
    setup_logging()
    run_cli(main, "fetch")
