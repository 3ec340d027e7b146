"""Offline training and offline-to-online fine-tuning of MeanFlow-QL.

    python -m mfql.train task=<task id> seed=<n> out_dir=<dir> data_dir=<dir> [offline_steps=... online_steps=...]

Writes config.yaml, meta.json, train.csv, eval.csv and final.pt into out_dir. A rolling resume state lives
in out_dir/_resume/: killing the process and rerunning the same command continues the run.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from mfql.agent import MeanFlowQL
from mfql.buffer import ReplayBuffer
from mfql.checkpoint import rng_state, save_torch, seed_everything, set_rng_state, write_json, write_text
from mfql.config import CONFIG_DIR, run_cli, train_config
from mfql.data import checksum, dataset_files, flatten_obs, load_minari, load_ogbench, observation_stats
from mfql.envs import make_env, metric_name, online_reward
from mfql.evaluate import episode_seed, run_episodes
from mfql.log import CSVLog, Tracker, setup_logging

log = logging.getLogger("mfql.train")
CSV_FILES = ("train.csv", "eval.csv")
PACKAGES = ("torch", "numpy", "gymnasium", "mujoco", "ogbench", "minari", "hydra-core")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if sha.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class Run:
    """One training run: data, agent, buffer, environments and the step loop."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.resume_path = self.out / "_resume" / "state.pt"
        self.device = resolve_device(cfg.device)
        self.official = cfg.parity == "official"
        self.config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
        self.config_hash = hashlib.sha256(self.config_yaml.encode()).hexdigest()[:12]
        seed_everything(cfg.seed)

        self.minari_dataset = None
        if cfg.suite == "ogbench":
            _, dataset = load_ogbench(cfg.task, cfg.data_dir)
        else:
            self.minari_dataset, dataset = load_minari(cfg.task, cfg.data_dir)
        self.obs_dim = dataset["observations"].shape[1]
        self.action_dim = dataset["actions"].shape[1]
        padded = cfg.buffer_size if self.official else None
        mean, std = observation_stats(dataset["observations"], padded)
        self.agent = MeanFlowQL(cfg.agent, self.obs_dim, self.action_dim, mean, std, cfg.offline_steps, self.device)
        self.buffer = ReplayBuffer(dataset, cfg.buffer_size, cfg.online_steps, self.device)
        env_args = (cfg.task, cfg.suite, self.minari_dataset, cfg.env_max_steps)
        self.eval_env = make_env(*env_args) if cfg.eval_episodes > 0 else None
        self.env = make_env(*env_args) if cfg.online_steps > 0 else None
        self.first_step = 0 if self.official else 1  # the official loop also updates (with actor LR 0) at step 0
        self.last_step = cfg.offline_steps + cfg.online_steps
        self.episode, self.obs = 0, None
        # Fixed keys from the first row on, so train.csv keeps one header through the switch to online.
        self.online_stats = {"online/episodes": 0, "online/episode_return": float("nan")} if cfg.online_steps else {}
        if cfg.online_steps and cfg.suite == "ogbench":
            self.online_stats["online/success"] = float("nan")

    # ------------------------------------------------------------------------------------------ files
    def write_header_files(self) -> None:
        write_text(self.out / "config.yaml", self.config_yaml)
        files = dataset_files(self.cfg.task, self.cfg.suite, self.cfg.data_dir)
        meta = {
            "task": self.cfg.task, "suite": self.cfg.suite, "seed": self.cfg.seed, "parity": self.cfg.parity,
            "config_hash": self.config_hash, "git_commit": git_commit(), "versions": versions(),
            "device": str(self.device),
            "device_name": device_name(self.device),
            "dataset": {"source": "ogbench" if self.cfg.suite == "ogbench" else "minari",
                        "files": [str(f) for f in files], "sha256": checksum(files),
                        "transitions": self.buffer.num_offline},
            "ogbench_success_timing": "post" if self.cfg.suite == "ogbench" else None,
        }
        write_json(self.out / "meta.json", meta)

    def save_resume(self, step: int) -> None:
        # The CSVs so far travel with the state: a workflow manager may delete them before a rerun.
        csvs = {name: (self.out / name).read_text() for name in CSV_FILES if (self.out / name).exists()}
        state = {"step": step, "config_hash": self.config_hash, "agent": self.agent.state_dict(),
                 "rng": rng_state(), "buffer": self.buffer.online_state(), "episode": self.episode,
                 "online_stats": self.online_stats, "csv": csvs}
        save_torch(self.resume_path, state)

    def try_resume(self) -> int:
        """Returns the first step still to run."""
        if not self.resume_path.exists():
            return self.first_step
        state = torch.load(self.resume_path, map_location="cpu", weights_only=False)
        if state["config_hash"] != self.config_hash:
            log.warning("resume state in %s is from another config; starting over", self.resume_path)
            return self.first_step
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_online_state(state["buffer"])
        self.episode, self.online_stats = state["episode"], state["online_stats"]
        set_rng_state(state["rng"])
        for name in CSV_FILES:
            path = self.out / name
            path.unlink(missing_ok=True)
            if name in state["csv"]:
                path.write_text(state["csv"][name])
        log.info("resumed from step %d", state["step"])
        return state["step"] + 1

    def save_final(self) -> None:
        final = {**self.agent.weights(), "config": OmegaConf.to_container(self.cfg, resolve=True),
                 "obs_dim": self.obs_dim, "action_dim": self.action_dim, "step": self.last_step}
        save_torch(self.out / "final.pt", final)

    # ------------------------------------------------------------------------------------------- loop
    def online_step(self) -> None:
        """One environment step with the best-of-K action, stored in the same buffer."""
        if self.obs is None:
            self.obs, _ = self.env.reset(seed=episode_seed(self.cfg.seed, 1, self.episode))
            self.episode_return = 0.0
        obs = flatten_obs(self.obs)
        action = self.agent.act(torch.as_tensor(obs, device=self.device).unsqueeze(0))[0].cpu().numpy()
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_return += float(reward)
        self.buffer.add({"observations": obs, "actions": action,
                         "rewards": np.float32(online_reward(self.cfg.task, reward)),
                         "masks": np.float32(1.0 - float(terminated)), "next_observations": flatten_obs(next_obs)})
        self.obs = next_obs
        if terminated or truncated:
            self.episode += 1
            self.obs = None  # the next reset is seeded by the episode index, so it needs no saved state
            self.online_stats = {"online/episodes": self.episode, "online/episode_return": self.episode_return}
            if self.cfg.suite == "ogbench":
                self.online_stats["online/success"] = float(info["success"])

    def evaluate(self, step: int) -> dict:
        scores = run_episodes(self.agent, self.eval_env, self.cfg.suite, self.cfg.eval_episodes,
                              episode_seed(self.cfg.seed, 2, step), self.minari_dataset)
        return {"step": step, metric_name(self.cfg.suite): float(np.mean(scores)),
                f"{metric_name(self.cfg.suite)}_std": float(np.std(scores)), "episodes": len(scores)}

    def run(self) -> None:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        start = self.try_resume()
        if start == self.first_step:
            for name in CSV_FILES:
                (self.out / name).unlink(missing_ok=True)
        train_log, eval_log = (CSVLog(self.out / name) for name in CSV_FILES)
        self.write_header_files()
        tracker = Tracker(cfg.tracker, self.out, OmegaConf.to_container(cfg, resolve=True))
        log.info("task=%s suite=%s seed=%d parity=%s device=%s steps=%d+%d actor=%s config=%s",
                 cfg.task, cfg.suite, cfg.seed, cfg.parity, self.device, cfg.offline_steps, cfg.online_steps,
                 cfg.agent.actor, self.config_hash)
        pending_checkpoint = False
        bar = tqdm(range(start, self.last_step + 1), initial=start - self.first_step,
                   total=self.last_step + 1 - self.first_step, dynamic_ncols=True, disable=None,
                   mininterval=1.0, smoothing=0.05)
        tick, tick_step = time.perf_counter(), start
        for step in bar:
            if step > cfg.offline_steps:
                self.online_step()
            info = self.agent.update(self.buffer.sample(cfg.agent.batch_size), step)
            if step % cfg.log_interval == 0 or step == self.last_step:
                now = time.perf_counter()
                row = {"step": step, **{k: float(v) for k, v in info.items()}, **self.online_stats,
                       "updates_per_s": (step + 1 - tick_step) / max(now - tick, 1e-9)}
                tick, tick_step = now, step + 1
                train_log.write(row)
                tracker.log(row, "train/")
                bar.set_postfix({"critic": f"{row['critic/loss']:.3g}", "mfi": f"{row['flow/mfi_loss']:.3g}",
                                 "q": f"{row['actor/q']:.3g}", "ups": f"{row['updates_per_s']:.0f}"})
                log.info("step=%d critic/loss=%.4g flow/mfi_loss=%.4g actor/q=%.4g alpha=%.4g ups=%.1f", step,
                         row["critic/loss"], row["flow/mfi_loss"], row["actor/q"], row["alpha"], row["updates_per_s"])
            if self.eval_env is not None and (step % cfg.eval_interval == 0 or step == self.last_step):
                result = self.evaluate(step)
                eval_log.write(result)
                tracker.log(result, "eval/")
                log.info("eval step=%d %s=%.4f over %d episodes", step, metric_name(cfg.suite),
                         result[metric_name(cfg.suite)], result["episodes"])
            pending_checkpoint |= step % cfg.checkpoint_interval == 0
            # Online, only checkpoint between episodes: the environment state is then just its reset seed.
            if pending_checkpoint and step < self.last_step and (step <= cfg.offline_steps or self.obs is None):
                self.save_resume(step)
                pending_checkpoint = False
        self.save_final()
        tracker.close()
        self.resume_path.unlink(missing_ok=True)
        if self.resume_path.parent.exists() and not any(self.resume_path.parent.iterdir()):
            self.resume_path.parent.rmdir()
        log.info("done: %s", self.out / "final.pt")


def main(argv: list[str]) -> None:
    if "--help" in argv or "-h" in argv:  # the commented defaults are the documentation of every option
        print(__doc__.strip() + "\n\n" + (CONFIG_DIR / "train.yaml").read_text())
        return
    cfg = train_config([a for a in argv if a != "--cfg"])
    if "--cfg" in argv:  # print the fully resolved config of this command, write nothing
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return
    setup_logging()
    Run(cfg).run()


if __name__ == "__main__":
    run_cli(main)
