"""Offline datasets as one transition dict (observations, actions, rewards, masks, next_observations).

OGBench comes through ``ogbench.make_env_and_datasets`` (its own .npz layout and reward relabelling);
D4RL comes through Minari with the paper's conventions (antmaze reward - 1, masks from terminals,
actions clipped to +-(1 - 1e-5)). Dataset folders are always passed explicitly, never ``~``.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mfql.errors import DatasetError
from mfql.run.envs import NO_ENV_CHECKER

ACTION_CLIP_EPS = 1e-5
KEYS = ("observations", "actions", "rewards", "masks", "next_observations")

# D4RL ids of the paper -> Minari ids.
ANTMAZE = ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")
ADROIT = ("pen", "door", "hammer", "relocate")
MINARI_IDS = {f"antmaze-{m}-v2": f"D4RL/antmaze/{m}-v1" for m in ANTMAZE}
MINARI_IDS.update({f"{e}-{k}-v1": f"D4RL/{e}/{k}-v2" for e in ADROIT for k in ("human", "cloned", "expert")})


def ogbench_dataset_name(task: str) -> str:
    """cube-single-play-singletask-task2-v0 -> cube-single-play-v0 (the file OGBench stores)."""
    parts = task.split("-")
    pos = parts.index("singletask")
    return "-".join(parts[:pos] + parts[-1:])


def dataset_files(task: str, suite: str, data_dir: str | Path) -> list[Path]:
    """The files a task reads (for checksums and the missing-data message)."""
    data_dir = Path(data_dir)
    if suite == "ogbench":
        name = ogbench_dataset_name(task)
        return [data_dir / "ogbench" / f"{name}.npz", data_dir / "ogbench" / f"{name}-val.npz"]
    root = data_dir / "minari" / MINARI_IDS[task] / "data"
    return sorted(root.glob("*")) if root.is_dir() else [root]


def dataset_mb(record: str | Path) -> float | None:
    """The arrays of a fetched or rebuilt dataset, MB, from the files its checksum record lists (``record``:
    <data_dir>/checksums/<name>.json): an .npz's arrays uncompressed, any other file's size. None while the
    record is not there (the dataset not yet fetched)."""
    record = Path(record)
    if not record.is_file():
        return None
    data_dir, total = record.parent.parent, 0
    for rel in json.loads(record.read_text()):
        path = data_dir / rel
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                total += sum(member.file_size for member in archive.infolist())
        else:
            total += path.stat().st_size
    return total / 2**20


def missing_data_message(task: str, suite: str, data_dir: str | Path) -> str:
    if suite == "ogbench":
        name = ogbench_dataset_name(task)
        return (f"dataset {name} for task {task} is not in {Path(data_dir) / 'ogbench'}; download it with "
                f"`python -m mfql.fetch dataset={name} data_dir={data_dir}` or rebuild it with "
                f"`python -m mfql.datagen dataset={name} out_dir={Path(data_dir) / 'ogbench'}`")
    return (f"dataset {MINARI_IDS[task]} for task {task} is not in {Path(data_dir) / 'minari'}; download it with "
            f"`python -m mfql.fetch dataset={MINARI_IDS[task]} data_dir={data_dir}`")



def checksums_path(data_dir: str | Path, dataset: str) -> Path:
    """Where fetch and datagen record a dataset's SHA-256s: <data_dir>/checksums/<name with / as __>.json."""
    return Path(data_dir) / "checksums" / f"{'__'.join(dataset.split('/'))}.json"


def recorded_checksums_file(task: str, suite: str, data_dir: str | Path) -> Path:
    return checksums_path(data_dir, ogbench_dataset_name(task) if suite == "ogbench" else MINARI_IDS[task])


def check_dataset(task: str, suite: str, data_dir: str | Path) -> str:
    """Check a task's dataset files are there and match the SHA-256 recorded when they were fetched or
    rebuilt (if recorded); return one SHA-256 over the files (of their per-file digests, in order)."""
    data_dir = Path(data_dir)
    files = dataset_files(task, suite, data_dir)
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(missing_data_message(task, suite, data_dir))
    sums = {f: checksum([f]) for f in files}
    record = recorded_checksums_file(task, suite, data_dir)
    if record.is_file():
        for rel, expected in json.loads(record.read_text()).items():
            path = data_dir / rel
            actual = sums[path] if path in sums else (checksum([path]) if path.is_file() else None)
            if actual != expected:
                how = missing_data_message(task, suite, data_dir).split("; ", 1)[1]
                name = record.stem.replace("__", "/")
                raise DatasetError(f"dataset {name}: {path} does not match the checksum recorded in {record}; "
                                   f"get it again: {how}")
    return hashlib.sha256("".join(sums[f] for f in files).encode()).hexdigest()


def checksum(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# What a damaged .npz raises inside numpy or ogbench: a truncated zip, a missing key, short arrays.
BROKEN_FILE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, IndexError, ValueError, OSError)


def load_ogbench(task: str, data_dir: str | Path, verify: bool = True):
    """Environment and training transitions of an OGBench single-task id (success computed after the step)."""
    import ogbench

    files = dataset_files(task, "ogbench", data_dir)
    if verify:
        check_dataset(task, "ogbench", data_dir)
    try:
        env, train, _ = ogbench.make_env_and_datasets(
            task, dataset_dir=str(files[0].parent), success_timing="post", **NO_ENV_CHECKER)
        dataset = {k: np.asarray(train[k], dtype=np.float32) for k in KEYS}
    except BROKEN_FILE_ERRORS as exc:
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        reason = (text.splitlines() or ["?"])[0][:160]
        how = missing_data_message(task, "ogbench", data_dir).split("; ", 1)[1]
        raise DatasetError(f"dataset files {files[0]} / {files[1].name} cannot be read ({type(exc).__name__}: "
                           f"{reason}); get them again: {how}") from None
    validate_transitions(dataset, env, str(files[0]))
    dataset["actions"] = np.clip(dataset["actions"], -1 + ACTION_CLIP_EPS, 1 - ACTION_CLIP_EPS)
    return env, dataset


def load_ogbench_pixels(task: str, data_dir: str | Path, verify: bool = True):
    """Environment and frames of a visual OGBench task, every frame once: ogbench's own loader in its compact
    mode (uint8 observations, no next_observations copy), relabelled for the task by ogbench. Returns
    {frames [M, H, W, C] uint8, ends [M] (1 on each trajectory's last frame, which starts no transition),
    actions, rewards, masks [M, ...] (row t: the transition from frame t)}."""
    import ogbench

    files = dataset_files(task, "ogbench", data_dir)
    if verify:
        check_dataset(task, "ogbench", data_dir)
    try:
        env, train, _ = ogbench.make_env_and_datasets(
            task, dataset_dir=str(files[0].parent), compact_dataset=True, success_timing="post", **NO_ENV_CHECKER)
    except BROKEN_FILE_ERRORS as exc:
        how = missing_data_message(task, "ogbench", data_dir).split("; ", 1)[1]
        raise DatasetError(f"dataset files {files[0]} / {files[1].name} cannot be read ({type(exc).__name__}); "
                           f"get them again: {how}") from None
    frames = train["observations"]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != env.observation_space.shape:
        raise DatasetError(f"dataset {files[0]}: 'observations' are {frames.dtype} {frames.shape}, the "
                           f"environment's frames uint8 {env.observation_space.shape}")
    dataset = {"frames": frames, "ends": 1.0 - np.asarray(train["valids"], dtype=np.float32),
               "actions": np.clip(np.asarray(train["actions"], dtype=np.float32), -1 + ACTION_CLIP_EPS,
                                  1 - ACTION_CLIP_EPS),
               "rewards": np.asarray(train["rewards"], dtype=np.float32),
               "masks": np.asarray(train["masks"], dtype=np.float32)}
    return env, dataset


def validate_transitions(dataset: dict[str, np.ndarray], env, source: str) -> None:
    """Shapes, lengths and finite values of the transition arrays, and their widths against the environment."""
    rows = len(dataset["observations"])
    if rows == 0:
        raise DatasetError(f"dataset {source} has no transitions")
    expected_ndim = {"observations": 2, "actions": 2, "next_observations": 2, "rewards": 1, "masks": 1}
    for key in KEYS:
        array = dataset[key]
        if array.ndim != expected_ndim[key] or len(array) != rows:
            raise DatasetError(f"dataset {source}: {key!r} has shape {array.shape}, expected "
                               f"{rows} rows and {expected_ndim[key]} dimension(s)")
        bad = ~np.isfinite(array)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DatasetError(f"dataset {source}: {key!r} has {int(bad.sum())} non-finite value(s) "
                               f"(first at row {row}); rebuild or re-download it")
    if dataset["next_observations"].shape != dataset["observations"].shape:
        raise DatasetError(f"dataset {source}: 'next_observations' has shape {dataset['next_observations'].shape},"
                           f" 'observations' {dataset['observations'].shape}")
    action_dim = int(np.prod(env.action_space.shape))
    if dataset["actions"].shape[1] != action_dim:
        raise DatasetError(f"dataset {source}: 'actions' are {dataset['actions'].shape[1]} wide, the "
                           f"environment's actions {action_dim}; the file belongs to another environment")
    space = env.observation_space
    obs_dim = (sum(int(np.prod(space[k].shape)) for k in ("achieved_goal", "observation"))
               if hasattr(space, "spaces") else int(np.prod(space.shape)))
    if dataset["observations"].shape[1] != obs_dim:
        raise DatasetError(f"dataset {source}: 'observations' are {dataset['observations'].shape[1]} wide, the "
                           f"environment's observations {obs_dim}; the file belongs to another environment")


def set_minari_root(data_dir: str | Path) -> Path:
    root = Path(data_dir).resolve() / "minari"
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    return root


def flatten_obs(obs) -> np.ndarray:
    """Minari antmaze observations are dicts; D4RL's layout is (x, y) followed by the rest of the state."""
    if isinstance(obs, dict):
        return np.concatenate([obs["achieved_goal"], obs["observation"]], axis=-1).astype(np.float32)
    if getattr(obs, "dtype", None) == np.uint8:
        return obs  # pixel frames stay uint8
    return np.asarray(obs, dtype=np.float32)


def minari_dataset_of(task: str, data_dir: str | Path, verify: bool = True):
    """The Minari dataset object of a D4RL task id (its evaluation env and reference scores)."""
    import minari

    set_minari_root(data_dir)
    if not (Path(data_dir) / "minari" / MINARI_IDS[task]).is_dir():
        raise FileNotFoundError(missing_data_message(task, "d4rl", data_dir))
    if verify:
        check_dataset(task, "d4rl", data_dir)
    try:
        return minari.load_dataset(MINARI_IDS[task])
    except Exception as exc:  # minari raises plain exceptions for a damaged folder or metadata
        raise DatasetError(f"Minari dataset {MINARI_IDS[task]} in {Path(data_dir) / 'minari'} cannot be read "
                           f"({type(exc).__name__}: {str(exc)[:160]}); download it again") from None


def load_minari(task: str, data_dir: str | Path, verify: bool = True, env=None):
    """Minari dataset of a D4RL task id, as transitions with the paper's conventions."""
    ds = minari_dataset_of(task, data_dir, verify)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in KEYS}
    for episode in ds.iterate_episodes():
        obs = flatten_obs(episode.observations)
        parts["observations"].append(obs[:-1])
        parts["next_observations"].append(obs[1:])
        parts["actions"].append(np.asarray(episode.actions, dtype=np.float32))
        parts["rewards"].append(np.asarray(episode.rewards, dtype=np.float32))
        parts["masks"].append(1.0 - np.asarray(episode.terminations, dtype=np.float32))
    dataset = {k: np.concatenate(v) for k, v in parts.items()}
    validate_transitions(dataset, env if env is not None else ds.recover_environment(eval_env=True),
                         MINARI_IDS[task])
    dataset = apply_d4rl_conventions(task, dataset)
    return ds, dataset


def apply_d4rl_conventions(task: str, dataset: dict) -> dict:
    """Antmaze rewards 0/1 -> -1/0; actions clipped to +-(1 - 1e-5). Masks are already 1 - terminals."""
    out = dict(dataset)
    if task.startswith("antmaze"):
        out["rewards"] = out["rewards"] - 1.0
    out["actions"] = np.clip(out["actions"], -1 + ACTION_CLIP_EPS, 1 - ACTION_CLIP_EPS)
    return out


def observation_stats(observations: np.ndarray, padded_rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std (std < 1e-6 -> 1) of the observations the networks are fed.

    ``padded_rows=None`` (parity=corrected): the dataset's exact statistics, computed in float64.
    ``padded_rows`` (parity=official): what the official code computes (docs/method.md, "Observation
    statistics"): NumPy's float32 ``mean`` and ``std`` over its replay buffer of ``max(padded_rows, N + 1)``
    rows, the dataset followed by zero rows, accumulated row by row as NumPy reduces over the first axis.
    The same numbers, bit for bit, without allocating the padded buffer.
    """
    if padded_rows is None:
        obs = observations.astype(np.float64)
        mean, std = obs.mean(0), obs.std(0)
    else:
        obs = np.asarray(observations, dtype=np.float32)
        rows = np.float32(max(padded_rows, len(obs) + 1))
        zero = np.zeros(obs.shape[1:], np.float32)
        chunks = [obs[i:i + _CHUNK] for i in range(0, len(obs), _CHUNK)]
        mean = _sum_rows(zero, chunks) / rows  # the zero rows add exactly nothing to a float32 sum
        pad_square = mean * mean  # each zero row's squared deviation from the mean
        pads = [np.broadcast_to(pad_square, (min(_CHUNK, int(rows) - i), *pad_square.shape))
                for i in range(len(obs), int(rows), _CHUNK)]
        squares = _sum_rows(_sum_rows(zero, ((chunk - mean) ** 2 for chunk in chunks)), pads)
        std = np.sqrt(squares / rows)
    mean, std = mean.astype(np.float32), std.astype(np.float32)
    std[std < 1e-6] = 1.0
    return mean, std


_CHUNK = 1 << 16


def _sum_rows(start: np.ndarray, blocks) -> np.ndarray:
    """``start`` plus every row of the arrays ``blocks``, added one row after the other in float32: exactly
    NumPy's sum over the first axis of all of them stacked (C order), in bounded memory. The order matters:
    NumPy sums along a contiguous axis pairwise, so each block is copied into a C-ordered array first."""
    total = start
    for block in blocks:
        rows = np.empty((len(block) + 1, *total.shape), np.float32)  # C order: summed one row after another
        rows[0], rows[1:] = total, block
        total = np.add.reduce(rows, axis=0)
    return total
