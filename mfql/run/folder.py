"""A run folder belongs to one run: its key, its lock, and what a rerun of the same command does there.

The run key is what determines a run's result: the resolved config without the keys that only say where
files go or how the job runs (``PLACEMENT_KEYS``: out_dir, data_dir, device, threads, flush_denormal, tracker,
overwrite, ...; these change results at most by float round-off), and the dataset's SHA-256.
``data_dir=./data`` and ``data_dir=data`` are the same run; another seed, task, hyperparameter or dataset is
another run. A folder holding another run is never written over unless ``overwrite=true``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfql.config import PIXEL_KEYS, PLACEMENT_KEYS
from mfql.errors import CheckpointError, ConfigError, RunError
from mfql.files import file_sha256, write_json, write_text
from mfql.run.checkpoint import load_state, save_state, save_torch
from mfql.run.records import CSV_FILES, read_final_records, restore_files

log = logging.getLogger("mfql.run.folder")
RUN_FILES = ("config.yaml", "meta.json", *CSV_FILES, "final.pt")
# What a run key hashes changed once, when each method got its own options (CHANGELOG.md, 2026-12-06): meta.json
# records this format; a folder of an earlier one is refused with that reason.
RUN_KEY_FORMAT = 2


def run_key(cfg: DictConfig, data_sha256: str) -> str:
    text = json.dumps({"config": key_config(cfg), "data_sha256": data_sha256}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key_config(cfg: DictConfig) -> dict:
    """The part of a resolved run config that determines its result: what the run key hashes."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in PLACEMENT_KEYS:
        plain.pop(key, None)
    if plain["agent"].get("encoder") is None:  # a state run: the key it had before pixel runs existed
        plain["agent"].pop("encoder", None)
        for key in PIXEL_KEYS:
            plain.pop(key, None)
    if plain.get("eval_protocol") is None:  # an OGBench run: the key it had before D4RL's protocol was an option
        plain.pop("eval_protocol", None)
    return plain


def describe(cfg: dict) -> str:
    return f"task={cfg.get('task')} seed={cfg.get('seed')}"


class RunFolder:
    """Every file of one run: config.yaml, meta.json, the CSVs, the resume states, final.pt, and the lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.resume_path = self.path / "_resume" / "state.pt"
        self.prev_path = self.path / "_resume" / "prev.pt"  # the state before, kept until the next is written
        self.final_path = self.path / "final.pt"
        self._lock_handle = None
        self._created_lock = self._created_dir = False

    # --------------------------------------------------------------------------------------------- lock
    def lock(self) -> None:
        """Hold the folder for this process (released by the OS when it ends, even by SIGKILL)."""
        self._created_dir = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._created_lock = not (self.path / ".lock").exists()
        handle = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise RunError(f"run folder {self.path} is in use by another mfql.train process (pid {holder}); "
                           f"wait for it to end or choose another out_dir") from None
        self._lock_handle = handle

    def _write_pid(self) -> None:
        """Name this process in the lock file, once it has taken the folder (a refusal leaves it as it was)."""
        self._lock_handle.seek(0)
        self._lock_handle.truncate()
        self._lock_handle.write(f"{os.getpid()}\n")
        self._lock_handle.flush()

    def release(self, remove: bool = False) -> None:
        if self._lock_handle is not None:
            if remove:
                (self.path / ".lock").unlink(missing_ok=True)
            self._lock_handle.close()
            self._lock_handle = None

    def abandon(self) -> None:
        """A run that failed before writing anything: leave no folder behind if this process made it."""
        self.release(remove=self._created_lock)
        if self._created_dir and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    # ------------------------------------------------------------------------------------------- owner
    def recorded(self) -> tuple[str | None, str, str] | None:
        """(run key, where it was read, description) of the run this folder holds, or None if it holds none.

        Read from meta.json, else the resume state, else final.pt: a workflow manager may have deleted some.
        """
        meta = self.path / "meta.json"
        if meta.is_file():
            try:
                record = json.loads(meta.read_text())
                return record.get("run_key"), "meta.json", f"task={record.get('task')} seed={record.get('seed')}"
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                return None, "meta.json (unreadable)", "an unknown run"
        for path in self.resume_paths():
            state = load_state(path)
            return state.get("run_key"), f"_resume/{path.name}", describe(state.get("config", {}))
        if self.final_path.is_file():
            final = read_final_records(self.final_path)
            return final["meta"].get("run_key"), "final.pt", describe(final["config"])
        leftovers = [n for n in RUN_FILES if (self.path / n).exists()]
        if leftovers:
            return None, ", ".join(leftovers), "no recorded run"
        return None

    def key_format(self) -> int | None:
        """The run key format meta.json records (1: before it recorded one), or None without a readable meta.json."""
        try:
            return int(json.loads((self.path / "meta.json").read_text()).get("run_key_format", 1))
        except (OSError, ValueError, AttributeError, TypeError):
            return None

    def claim(self, key: str, overwrite: bool) -> str:
        """Decide what this run does here: 'finished' (nothing to do), 'resume' or 'fresh'."""
        found = self.recorded()
        if found is not None and found[0] != key:
            if not overwrite:
                self.release(remove=self._created_lock)  # leave a refused folder as it was
                key_format = self.key_format()
                if key_format not in (None, RUN_KEY_FORMAT):
                    raise ConfigError(
                        f"out_dir={str(self.path)!r} holds {found[2]} keyed by an earlier mfql (run key format "
                        f"{key_format}, now {RUN_KEY_FORMAT}: each method has its own options since "
                        f"2026-12-06, CHANGELOG.md); pass overwrite=true to retrain it, or choose another out_dir")
                what = "another run" if found[0] else "files of"
                raise ConfigError(
                    f"out_dir={str(self.path)!r} holds {what} {found[2]} (run key {found[0] or 'none'} in "
                    f"{found[1]}, this run's is {key}); choose another out_dir, or pass overwrite=true to "
                    f"replace it")
            self._write_pid()
            log.warning("overwrite=true: replacing %s (%s) in %s", found[2], found[1], self.path)
            self.clear()
            return "fresh"
        self._write_pid()
        self._remove_stale_temporaries()
        if overwrite:
            self.clear()
            return "fresh"
        if self.final_path.is_file():
            try:
                restore_files(self.path, key)
            except CheckpointError as exc:
                raise CheckpointError(f"{exc} (or pass overwrite=true)") from None
            return "finished"
        if self.resume_paths():
            return "resume"
        for name in CSV_FILES:  # rows of an earlier attempt that never checkpointed
            (self.path / name).unlink(missing_ok=True)
        return "fresh"

    def resume_paths(self) -> list[Path]:
        """The resume states present, newest first."""
        return [p for p in (self.resume_path, self.prev_path) if p.is_file()]

    def clear(self) -> None:
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.path / "_resume", ignore_errors=True)

    def _remove_stale_temporaries(self) -> None:
        """Half-written files of a process killed mid-write (atomic_write's temporaries); we hold the lock."""
        for folder in (self.path, self.path / "_resume"):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------ while it runs
    def csvs(self) -> dict[str, str]:
        """The CSVs so far, as text (they travel inside resume states and final.pt)."""
        return {name: (self.path / name).read_bytes().decode() for name in CSV_FILES if (self.path / name).exists()}

    def write_start(self, config_yaml: str, meta: dict) -> None:
        write_text(self.path / "config.yaml", config_yaml)
        write_json(self.path / "meta.json", meta)

    def write_resume(self, state: dict) -> None:
        """The rolling resume state; the one before is kept until this one is written (packed jobs resume at
        the newest step every seed saved)."""
        if self.resume_path.is_file():
            os.replace(self.resume_path, self.prev_path)
        save_state(self.resume_path, state)

    def saved_states(self) -> dict[int, Path]:
        """Resume states on disk (checksum-verified when loaded), by step."""
        return {load_state(path)["step"]: path for path in self.resume_paths()}

    def write_back_csvs(self, csvs: dict[str, str]) -> None:
        """The CSVs as a resume state recorded them (rows after it are dropped)."""
        for name in CSV_FILES:
            path = self.path / name
            path.unlink(missing_ok=True)
            if name in csvs:
                write_text(path, csvs[name])

    def write_final(self, final: dict, meta: dict) -> None:
        """final.pt, then meta.json with its SHA-256, then the resume states are removed."""
        save_torch(self.final_path, final)
        write_json(self.path / "meta.json", {**meta, "final_sha256": file_sha256(self.final_path)})
        for path in (self.resume_path, self.prev_path):
            path.unlink(missing_ok=True)
        if self.resume_path.parent.exists() and not any(self.resume_path.parent.iterdir()):
            self.resume_path.parent.rmdir()
