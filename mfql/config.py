"""Command-line configuration: Hydra's override grammar over config/mfql/*.yaml, with one-line errors.

We use Hydra's compose API rather than ``@hydra.main`` so that runs never change directory or create
timestamped output folders, and so that a bad option fails with one line naming the value.
Over 300 lines because every command's option checks live here, in one place (their ranges: mfql/ranges.py).
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import math
import os
import re
import sys
import tempfile
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from mfql.errors import CheckpointError, ConfigError, DatasetError, RunError
from mfql.ranges import SEED_MAX

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "mfql"
TASK_DIR = CONFIG_DIR / "tasks"
TASK_RE = re.compile(r"^[a-z0-9][a-z0-9x-]*-v[0-9]$")
# Keys that only say where files go or how the job runs; they never change the method (compile, eval_envs and
# env_memory_mb: the same arithmetic in another order, equal within float round-off).
# Top-level keys of pixel runs only; a state run's key leaves them out (null), as before pixels existed.
PIXEL_KEYS = ("frame_stack", "p_aug")
PLACEMENT_KEYS = ("out_dir", "data_dir", "device", "threads", "flush_denormal", "tracker", "overwrite", "compile",
                  "eval_envs", "env_memory_mb", "env_workers", "seeds")
METHOD_GROUP = "method"  # the config group of the methods' files, config/mfql/method/<name>.yaml


def hydra_value(value) -> str:
    """A YAML value as Hydra's command-line grammar reads it back (quoted for the shell by whoever runs it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return str(value)



def compose(name: str, overrides: list[str]) -> DictConfig:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:
        if item[:1] in "+~" and item:
            raise ConfigError(f"argument {item!r}: adding (+key) or deleting (~key) options is not supported "
                              "(valid: key=value for an option that --help lists)")
        if "=" not in item:
            raise ConfigError(f"argument {item!r} is not of the form key=value")
    groups = _groups(name)
    try:
        cfg = _hydra_compose(name, tuple(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        key = _bad_key(exc, overrides)
        group = key.split("=", 1)[0]
        if group in groups:  # a config group: name its choices
            raise ConfigError(f"{group}={key.split('=', 1)[-1]!r} is not valid (valid: "
                              f"{', '.join(group_choices(group))})") from None
        base = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
        valid = ", ".join(k for k in base if k != "defaults")
        valid += "".join(f", {g}" for g in groups) + (", agent.<key> (the method's)" if METHOD_GROUP in groups else "")
        raise ConfigError(f"unknown or malformed option {key!r} (valid: {valid})") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"missing required option(s): {', '.join(m + '=...' for m in missing)}")
    check_types(cfg, defaults(name, cfg.get("method")))
    return with_model(cfg, overrides) if "models" in cfg else cfg


def _hydra_compose(name: str, overrides: tuple[str, ...]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    # Methods from elsewhere: their folders join Hydra's search path only when asked for (it slows every compose).
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith(f"{METHOD_GROUP}=")]
    searchpath = []
    if not all((CONFIG_DIR / METHOD_GROUP / f"{c}.yaml").is_file() for c in chosen) and METHOD_GROUP in _groups(name):
        from mfql.agents import CONFIG_ROOTS  # the registry imports the methods, hence torch: only when needed

        if CONFIG_ROOTS:
            searchpath = [f"hydra.searchpath=[{','.join('file://' + str(p.resolve()) for p in CONFIG_ROOTS)}]"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=name, overrides=[*overrides, *searchpath])


def with_model(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The run config with the method's network sizes for ``model`` (its ``models:``) applied over ``agent``,
    the command line's own ``agent.*`` options winning, and ``models`` itself left out."""
    models = cfg.models
    if cfg.model not in models:
        raise ConfigError(f"model={cfg.model!r} is not valid (valid: {', '.join(models)})")
    sizes = models[cfg.model]
    with open_dict(cfg):
        del cfg["models"]
    given = OmegaConf.from_dotlist([a for a in overrides if a.startswith("agent.")])
    return OmegaConf.merge(cfg, {"agent": sizes}, given)


def _groups(name: str) -> list[str]:
    """The config groups a config file's defaults list names (``method`` for train)."""
    base = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    return [next(iter(d)) for d in base.get("defaults", []) if isinstance(d, DictConfig)]


def group_choices(group: str) -> list[str]:
    """The files of a config group: config/mfql/<group>/*.yaml, and those of registered methods from elsewhere."""
    from mfql.agents import CONFIG_ROOTS

    return sorted({p.stem for root in (CONFIG_DIR, *CONFIG_ROOTS) for p in (root / group).glob("*.yaml")})


def method_file(method: str) -> Path:
    """A method's config file (its agent options and network sizes)."""
    from mfql.agents import CONFIG_ROOTS

    for root in (CONFIG_DIR, *CONFIG_ROOTS):
        if (root / METHOD_GROUP / f"{method}.yaml").is_file():
            return root / METHOD_GROUP / f"{method}.yaml"
    raise ConfigError(f"method={method!r} has no config file (valid: {', '.join(group_choices(METHOD_GROUP))})")


@functools.lru_cache(maxsize=None)
def method_config(method: str) -> DictConfig:
    """A method's config file as read (read-only; read once per process): its ``agent`` options, ``models``."""
    cfg = OmegaConf.load(method_file(method))
    OmegaConf.set_readonly(cfg, True)
    return cfg


@functools.lru_cache(maxsize=None)
def defaults(name: str, method: str | None = None) -> DictConfig:
    """A command's composed defaults (required keys left as ???), for ``method`` if the command has one: the
    types every option must keep."""
    return _hydra_compose(name, (f"{METHOD_GROUP}={method}",) if method else ())


def _type_error(key: str, value, valid: str) -> ConfigError:
    return ConfigError(f"{key}={value!r} is not valid (valid: {valid})")


def check_types(cfg: DictConfig, base: DictConfig, prefix: str = "") -> None:
    """Every option keeps its default's type: integers stay integers, numbers are finite, flags are booleans.

    ``agent.alpha=abc`` or ``agent.alpha=nan`` then fails here with one line, not deep inside training.
    """
    for key in base:
        if key == "defaults" or OmegaConf.is_missing(base, key) or key not in cfg:
            continue
        name, default, value = prefix + str(key), base[key], cfg[key]
        if isinstance(default, DictConfig):
            if not isinstance(value, DictConfig):
                raise _type_error(name, value, "a mapping")
            check_types(value, default, name + ".")
        elif isinstance(default, ListConfig):
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in default)
            if not isinstance(value, ListConfig) or len(value) == 0 or (numbers and not all(
                    _is_number(v) for v in value)):
                kind = "a list of finite numbers" if numbers else "a list"
                raise _type_error(name, value, f"{kind}, e.g. {list(default)}")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise _type_error(name, value, "true or false")
        elif isinstance(default, int):
            if not isinstance(value, int) or isinstance(value, bool):
                raise _type_error(name, value, "an integer")
        elif isinstance(default, float):
            if not _is_number(value):
                raise _type_error(name, value, "a finite number")
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise _type_error(name, value, "a string")
        elif default is None and value is not None and not isinstance(value, (bool, str, ListConfig)) \
                and not _is_number(value):
            raise _type_error(name, value, "null, true, false, a number, a string or a list")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require_int(cfg: DictConfig, key: str, minimum: int, nullable: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if nullable and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _type_error(key, value, ("null or " if nullable else "") + f"an integer >= {minimum}")


def require_positive(cfg: DictConfig, key: str, nullable: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if nullable and value is None:
        return
    if not _is_number(value) or value <= 0:
        raise _type_error(key, value, ("null or " if nullable else "") + "a finite number > 0")


def check_out_dir(key: str, path: str | Path) -> Path:
    """An output folder that is (or can become) a writable folder; checked before any work starts."""
    if path is None or not str(path).strip():
        raise ConfigError(f"{key}={path!r} is empty (valid: a folder path, new or existing)")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={str(path)!r} is a file (valid: a folder, new or existing)")
    return _writable_from(key, path, path)


def check_out_file(key: str, path: str | Path) -> Path:
    """An output file that can be written (it is replaced atomically if it exists); checked before any work."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{key}={str(path)!r} is a folder (valid: a file path, new or existing)")
    return _writable_from(key, path, path.parent)


def _writable_from(key: str, path: Path, parent: Path) -> Path:
    """``path`` if ``parent``, or the nearest of its ancestors that exists, is a folder this process can write."""
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{key}={str(path)!r} is inside {str(parent)!r}, which is a file (valid: a folder path)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={str(path)!r} is not writable: no write permission on {str(parent)!r}")
    try:  # a read-only file system, or one that refuses files (/sys, /proc), passes the permission test
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as exc:
        raise ConfigError(f"{key}={str(path)!r} is not writable: {str(parent)!r} refuses new files "
                          f"({exc.strerror or type(exc).__name__})") from None
    return path


def check_in_dir(key: str, path: str | Path) -> Path:
    """An input folder: missing is left to the loader's own message; a file in its place is an error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={str(path)!r} is a file (valid: a folder)")
    return path


def _bad_key(exc: Exception, overrides: list[str]) -> str:
    text = str(exc)
    for item in overrides:
        if item.split("=", 1)[0] in text or item in text:
            return item
    return text.splitlines()[0]


def known_tasks() -> list[str]:
    return sorted(p.stem for p in TASK_DIR.glob("*.yaml"))


def load_task(task: str) -> DictConfig:
    # The id becomes a file name: only the id grammar, never a path (task=../model/small).
    path = TASK_DIR / f"{task}.yaml" if isinstance(task, str) and TASK_RE.match(task) else None
    if path is None or not path.is_file():
        close = difflib.get_close_matches(str(task), known_tasks(), n=3, cutoff=0.6)
        hint = f"e.g. {', '.join(close)}" if close else f"{len(known_tasks())} ids in {TASK_DIR}"
        raise ConfigError(f"task={task!r} is not a known task (valid: the paper's task ids, {hint})")
    return OmegaConf.load(path)


def train_config(argv: list[str]) -> DictConfig:
    """Compose the run config: train.yaml <- task file (offline, then o2o section if online) <- command line."""
    cfg = compose("train", argv)
    task = load_task(cfg.task)
    online = int(cfg.online_steps) > 0
    section = cfg.method  # the method's own per-task values
    layers = [cfg, {"agent": task.get(section) or {}}]
    if online:
        layers.append({"agent": task.get("o2o", {}).get(section) or {}})
    # Re-apply the user's own agent.* overrides so that they win over the task file.
    layers.append(OmegaConf.from_dotlist([a for a in argv if a.startswith("agent.")]))
    merged = OmegaConf.merge(*layers)
    budget = task.o2o.offline_steps if online and "o2o" in task else task.offline_steps
    if merged.offline_steps is None:
        merged.offline_steps = int(budget)
    merged.suite = task.suite
    merged.env_group = task.env_group
    merged.dataset = task.dataset
    for key in (*PIXEL_KEYS, "eval_protocol"):  # the task file's settings, unless the command line gives its own
        if key in task and not any(a.startswith(f"{key}=") for a in argv):
            merged[key] = task[key]
    given = {a.split("=", 1)[0] for a in argv}
    if merged.seeds is not None and "seed" in given:
        raise ConfigError(f"seed={merged.seed} is not valid together with seeds={list(merged.seeds)} (valid: one of "
                          "the two; seeds trains each seed into out_dir/seed<n>)")
    for key in PIXEL_KEYS:
        if key in given and not task.get("visual", False) and merged[key] is not None:
            raise ConfigError(f"{key}={merged[key]} is not valid for the state task {cfg.task} (valid: null; "
                              "pixel tasks only)")
    if task.get("visual", False) and online:
        raise ConfigError(f"online_steps={cfg.online_steps} is not valid for the pixel task {cfg.task} (valid: 0; "
                          "pixel tasks are offline only in FQL's and MeanFlow-QL's protocols)")
    if task.get("visual", False) != (merged.agent.get("encoder") is not None):
        raise ConfigError(f"agent.encoder={merged.agent.get('encoder')} is not valid for task {cfg.task} (valid: "
                          + ("an image encoder, e.g. impala_small)" if task.get("visual", False) else "null)"))
    from mfql.run.protocol import PROTOCOLS

    protocols = PROTOCOLS if merged.suite == "d4rl" else (None,)
    if merged.eval_protocol not in protocols:
        raise ConfigError(f"eval_protocol={merged.eval_protocol!r} is not valid for task {cfg.task} (valid: "
                          f"{', '.join(map(str, protocols)).replace('None', 'null')})")
    validate_train(merged)
    return merged


def validate_train(cfg: DictConfig) -> None:
    from mfql.agents import METHODS
    from mfql.ranges import TRAIN_RANGES, check_choices, check_ranges

    check_choices(cfg, {"parity": ("official", "corrected"), "tracker": ("none", "tensorboard", "wandb"),
                        "compile": (None, True, False), "matmul_precision": ("highest", "high")})
    check_ranges(cfg, TRAIN_RANGES)
    METHODS[cfg.method].check_config(cfg.agent)
    if cfg.seeds is not None:
        seeds = list(cfg.seeds) if isinstance(cfg.seeds, ListConfig) else cfg.seeds
        if not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds) or not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= SEED_MAX for s in seeds):
            raise _type_error("seeds", seeds, f"null or a list of distinct integers in [0, {SEED_MAX}], e.g. "
                                              "[0,1,2,3]")
    package = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(cfg.tracker)
    if package and importlib.util.find_spec(package) is None:
        raise ConfigError(f"tracker={cfg.tracker} needs the {package} package (pip install {package}), "
                          "or tracker=none")
    check_device(cfg.device)


def method_help() -> str:
    """--help's part on the methods: each method's file (its agent.* options) and every option's valid range."""
    from mfql.agents import METHODS
    from mfql.ranges import TRAIN_RANGES, describe_ranges

    parts = ["\nValid values of the numeric options (checked before any work):\n\n" + describe_ranges(TRAIN_RANGES)]
    for name, method in METHODS.items():
        path = method_file(name)
        parts.append(f"\nmethod={name} ({method.LABEL}): agent.* options, {os.path.relpath(path)}\n\n"
                     + path.read_text() + "\nValid values:\n\n" + describe_ranges(method.RANGES, "agent."))
    return "\n".join(parts) + "\n"


def check_device(value) -> None:
    if not (str(value) in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:[0-9]+", str(value))):
        raise ConfigError(f"device={value!r} is not valid (valid: auto, cpu, cuda, cuda:N)")



def run_cli(main, config_name: str, argv: list[str] | None = None) -> None:
    """Run ``main(argv)`` with ``--help`` (the command's usage and commented options) for every command.

    A bad option, a missing or wrong dataset or an unusable checkpoint ends with one line on stderr and exit 2;
    a run that cannot go on (diverged, folder in use) with one line and exit 3.
    """
    from mfql.log import check_environment

    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        doc = (sys.modules[main.__module__].__doc__ or "").strip()
        options = (CONFIG_DIR / f"{config_name}.yaml").read_text()
        print(doc + "\n\nOptions (key=value), with their defaults:\n\n" + options
              + (method_help() if METHOD_GROUP in _groups(config_name) else ""))
        return
    try:
        check_environment()
        main(argv)
    except (ConfigError, DatasetError, CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)
