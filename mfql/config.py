"""Command-line configuration: Hydra's override grammar over config/mfql/*.yaml, with one-line errors.

We use Hydra's compose API rather than ``@hydra.main`` so that runs never change directory or create
timestamped output folders, and so that a bad option fails with one line naming the value.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "mfql"
TASK_DIR = CONFIG_DIR / "tasks"


class ConfigError(ValueError):
    """A bad command-line or config value; the message is one line for the user."""


def compose(name: str, overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"argument {item!r} is not of the form key=value")
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        key = _bad_key(exc, overrides)
        base = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
        valid = ", ".join(k for k in base if k != "agent") + (", agent.<key>" if "agent" in base else "")
        raise ConfigError(f"unknown or malformed option {key!r} (valid: {valid})") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"missing required option(s): {', '.join(m + '=...' for m in missing)}")
    return cfg


def _bad_key(exc: Exception, overrides: list[str]) -> str:
    text = str(exc)
    for item in overrides:
        if item.split("=", 1)[0] in text or item in text:
            return item
    return text.splitlines()[0]


def known_tasks() -> list[str]:
    return sorted(p.stem for p in TASK_DIR.glob("*.yaml"))


def load_task(task: str) -> DictConfig:
    path = TASK_DIR / f"{task}.yaml"
    if not path.is_file():
        close = [t for t in known_tasks() if task.split("-")[0] in t][:4]
        hint = f"e.g. {', '.join(close)}" if close else f"{len(known_tasks())} ids in {TASK_DIR}"
        raise ConfigError(f"unknown task {task!r} (valid: the paper's task ids, {hint})")
    return OmegaConf.load(path)


def train_config(argv: list[str]) -> DictConfig:
    """Compose the run config: train.yaml <- task file (offline, then o2o section if online) <- command line."""
    cfg = compose("train", argv)
    task = load_task(cfg.task)
    if task.get("visual", False):
        raise ConfigError(f"task={cfg.task!r} is pixel-based and needs an image encoder, which mfql does not have "
                          "yet (valid: the 68 state-based tasks of config/mfql/tasks/)")
    online = int(cfg.online_steps) > 0
    layers = [cfg, {"agent": task.get("agent", {})}]
    if online:
        layers.append({"agent": task.get("o2o", {}).get("agent", {})})
    # Re-apply the user's own agent.* overrides so that they win over the task file.
    layers.append(OmegaConf.from_dotlist([a for a in argv if a.startswith("agent.")]))
    merged = OmegaConf.merge(*layers)
    budget = task.o2o.offline_steps if online and "o2o" in task else task.offline_steps
    if merged.offline_steps is None:
        merged.offline_steps = int(budget)
    merged.suite = task.suite
    merged.env_group = task.env_group
    merged.dataset = task.dataset
    validate_train(merged)
    return merged


def validate_train(cfg: DictConfig) -> None:
    choices = {"parity": ("official", "corrected"), "tracker": ("none", "tensorboard", "wandb"),
               "agent.actor": ("dit", "mlp"), "agent.q_agg": ("mean", "min", "max")}
    for key, valid in choices.items():
        value = OmegaConf.select(cfg, key)
        if value not in valid:
            raise ConfigError(f"{key}={value!r} is not valid (valid: {', '.join(valid)})")
    for key in ("offline_steps", "online_steps", "eval_interval", "eval_episodes", "log_interval",
                "checkpoint_interval", "agent.num_candidates", "agent.batch_size", "agent.time_steps"):
        value = OmegaConf.select(cfg, key)
        minimum = 0 if key in ("offline_steps", "online_steps", "eval_episodes") else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"{key}={value!r} is not valid (valid: an integer >= {minimum})")
    if cfg.env_max_steps is not None and (not isinstance(cfg.env_max_steps, int) or cfg.env_max_steps < 1):
        raise ConfigError(f"env_max_steps={cfg.env_max_steps!r} is not valid (valid: null or an integer >= 1)")
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed!r} is not valid (valid: an integer >= 0)")
    package = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(cfg.tracker)
    if package and importlib.util.find_spec(package) is None:
        raise ConfigError(f"tracker={cfg.tracker} needs the {package} package (pip install {package}), "
                          "or tracker=none")
    device = str(cfg.device)
    if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise ConfigError(f"device={device!r} is not valid (valid: auto, cpu, cuda, cuda:N)")


def run_cli(main, argv: list[str] | None = None) -> None:
    """Run ``main(argv)``; a ConfigError or a missing or wrong dataset ends with one line on stderr, exit 2."""
    from mfql.data import DatasetError

    argv = sys.argv[1:] if argv is None else argv
    try:
        main(argv)
    except (ConfigError, DatasetError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
