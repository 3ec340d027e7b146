"""A finished run's files written back from the copies inside its final.pt, without importing torch.

``final.pt`` is ``torch.save``'s zip archive; its pickle holds the run's ``config``, ``meta`` and CSV copies beside
the tensors. :func:`read_final_records` unpickles it with an unpickler stricter than ``weights_only=True``:
plain containers, and tensors as inert placeholders whose bytes are never read; any other global stops it, and
the file then goes through :func:`mfql.run.checkpoint.load_final` (torch, ``weights_only=True``), which reads it
or refuses it with one line. So ``python -m mfql.restore`` (the pipeline's run_files job, one per run) starts
in a fraction of the time a process importing torch takes.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import zipfile
from pathlib import Path

from omegaconf import OmegaConf

from mfql.errors import ConfigError
from mfql.files import file_sha256, write_json, write_text

CSV_FILES = ("train.csv", "eval.csv")
RECORDS = ("config", "meta", "csv")


class _Skipped:
    """A tensor of a final.pt, or its storage: not built."""

    def __init__(self, *args) -> None:
        pass


class _RecordsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module == "torch._utils" and name.startswith("_rebuild_tensor")) or (
                module == "torch" and name.endswith("Storage")):
            return _Skipped
        raise pickle.UnpicklingError(f"{module}.{name} is not read without torch")

    def persistent_load(self, pid):
        return None  # a tensor's storage record: its bytes stay in the archive


def read_final_records(path: str | Path, expected_sha256: str | None = None) -> dict:
    """``{"config", "meta", "csv"}`` of a final.pt; refused with one line if its SHA-256 is not ``expected_sha256``
    (when given) or it is no readable checkpoint."""
    path = Path(path)
    if expected_sha256 is None or file_sha256(path) == expected_sha256:
        try:
            with zipfile.ZipFile(path) as archive:
                (pickled,) = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
                final = _RecordsUnpickler(io.BytesIO(archive.read(pickled))).load()
            return {key: final[key] for key in RECORDS}
        except (OSError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError, zipfile.BadZipFile):
            pass  # not a layout this reader knows: torch reads it, or says why not
    from mfql.run.checkpoint import load_final

    final = load_final(path, expected_sha256)
    return {key: final.get(key, {}) for key in RECORDS}


def restore_files(folder: Path, key: str | None = None) -> list[str]:
    """Write back whichever of config.yaml, meta.json and the CSVs are missing in ``folder``, from its final.pt's
    copies (``key``: refuse a final.pt of another run); the names written."""
    final_path, meta_path = folder / "final.pt", folder / "meta.json"
    expected = json.loads(meta_path.read_text()).get("final_sha256") if meta_path.is_file() else None
    final = read_final_records(final_path, expected)
    if key is not None and final["meta"].get("run_key") != key:
        raise ConfigError(f"{final_path} is not this run's checkpoint (run key {final['meta'].get('run_key')}, "
                          f"expected {key}); pass overwrite=true")
    restored = []
    for name in CSV_FILES:
        if not (folder / name).exists() and name in final["csv"]:
            write_text(folder / name, final["csv"][name])
            restored.append(name)
    if not (folder / "config.yaml").exists():
        write_text(folder / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(final["config"])))
        restored.append("config.yaml")
    if not meta_path.exists():
        write_json(meta_path, {**final["meta"], "final_sha256": file_sha256(final_path)})
        restored.append("meta.json")
    return restored
