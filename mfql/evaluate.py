"""Seeded evaluation of a trained policy: the same call gives the same numbers.

    python -m mfql.evaluate checkpoint=<final.pt> episodes=<n> seed=<n> [envs=<n>] [out=<file.json>]

Prints (or writes to ``out``) JSON with the mean score, every episode's score, and the checkpoint's task,
run key and SHA-256. A final.pt whose SHA-256 differs from the one its run recorded is refused.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError

from mfql.config import check_in_dir, check_out_file, compose, require_int, run_cli
from mfql.data.datasets import minari_dataset_of
from mfql.errors import ConfigError
from mfql.files import file_sha256, write_json
from mfql.log import setup_logging
from mfql.run.devices import configure_cpu
from mfql.run.envpool import EnvPool, EnvSpec
from mfql.run.envs import eval_pool_size, metric_name
from mfql.run.episodes import run_episodes
from mfql.run.folder import RUN_FILES

log = logging.getLogger("mfql.evaluate")


def recorded_sha256(path: Path) -> str | None:
    """The final.pt SHA-256 that the run recorded in its meta.json beside it, if any."""
    meta = path.parent / "meta.json"
    if path.name != "final.pt" or not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get("final_sha256")
    except (json.JSONDecodeError, AttributeError):
        raise ConfigError(f"{meta} is not valid JSON; retrain the run or remove the file") from None


FINAL_KEYS = ("config", "obs_dim", "action_dim", "obs_norm", "actor")  # and every network of its method


def agent_from_checkpoint(path: str | Path, device: str = "cpu"):
    from mfql.agents import make_agent
    from mfql.errors import CheckpointError
    from mfql.run.checkpoint import load_final

    def require(keys) -> None:
        missing = [k for k in keys if k not in state] if isinstance(state, dict) else list(keys)
        if missing:
            raise CheckpointError(f"{path} is a torch file but not a final.pt of mfql.train (it lacks "
                                  f"{', '.join(missing)}); pass the final.pt of a run")

    path = Path(path)
    state = load_final(path, recorded_sha256(path))
    require(FINAL_KEYS)
    cfg = OmegaConf.create(state["config"])
    try:
        agent = make_agent(cfg.method, cfg.agent, state["obs_dim"], state["action_dim"],
                           state["obs_norm"]["mean"], state["obs_norm"]["std"], int(cfg.offline_steps), device)
    except (KeyError, ConfigAttributeError) as exc:  # a method this mfql lacks, or options it no longer has
        raise CheckpointError(f"{path}: its config does not describe a method of this mfql ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0]}); evaluate it with the mfql that wrote it "
                              f"(git commit {state.get('meta', {}).get('git_commit', 'unknown')})") from None
    require(agent.modules())
    agent.load_state_dict(state)
    return agent, cfg, state.get("meta", {})


def main(argv: list[str]) -> None:
    cfg = compose("evaluate", argv)
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise ConfigError(f"checkpoint={str(path)!r} does not exist (valid: a final.pt written by mfql.train)")
    if cfg.out is not None:
        out = check_out_file("out", str(cfg.out))
        # the workflow writes final_eval.json beside final.pt: any name but the run's own files
        if out.name in RUN_FILES and (out.parent / "meta.json").exists() or out.parent.name == "_resume":
            raise ConfigError(f"out={str(out)!r} would overwrite a file of the run in {str(out.parent)!r} "
                              f"(valid: another file name, e.g. final_eval.json)")
    require_int(cfg, "episodes", 1)
    require_int(cfg, "envs", 1)
    require_int(cfg, "env_memory_mb", 1)
    require_int(cfg, "env_workers", 0)
    require_int(cfg, "seed", 0)
    require_int(cfg, "threads", 1, nullable=True)
    if cfg.data_dir is not None:
        check_in_dir("data_dir", cfg.data_dir)
    configure_cpu(cfg.threads, cfg.flush_denormal)
    agent, run_cfg, meta = agent_from_checkpoint(path)
    data_dir = cfg.data_dir if cfg.data_dir is not None else run_cfg.data_dir
    minari_dataset = minari_dataset_of(run_cfg.task, data_dir) if run_cfg.suite != "ogbench" else None
    pool = EnvPool(EnvSpec(run_cfg.task, run_cfg.suite, str(data_dir), run_cfg.env_max_steps,
                           run_cfg.get("frame_stack"), run_cfg.get("eval_protocol")),
                   eval_pool_size(run_cfg.task, cfg.episodes, cfg.envs, cfg.env_memory_mb), cfg.env_workers,
                   minari_dataset)
    try:
        scores = run_episodes(agent, pool, run_cfg.suite, cfg.episodes, cfg.seed, minari_dataset, progress=True)
    finally:
        pool.close()
    name = metric_name(run_cfg.suite)  # success in [0, 1]; D4RL normalised return x 100
    result = {"checkpoint": str(path), "checkpoint_sha256": file_sha256(path), "task": run_cfg.task,
              "run_seed": int(run_cfg.seed), "run_key": meta.get("run_key"), "seed": cfg.seed,
              "episodes": cfg.episodes, "metric": name, name: float(np.mean(scores)), "per_episode": scores}
    if cfg.out is None:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        write_json(cfg.out, result)


if __name__ == "__main__":
    setup_logging()
    run_cli(main, "evaluate")
