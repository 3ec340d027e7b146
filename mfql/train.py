"""Offline training and offline-to-online fine-tuning of MeanFlow-QL.

    python -m mfql.train task=<task id> seed=<n> out_dir=<dir> data_dir=<dir> [offline_steps=... online_steps=...]

Writes config.yaml, meta.json, train.csv, eval.csv and final.pt into out_dir. A rolling resume state lives
in out_dir/_resume/: killing the process and rerunning the same command continues the run.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from mfql.agent import MeanFlowQL
from mfql.buffer import ReplayBuffer
from mfql.checkpoint import (
    file_sha256,
    load_state,
    rng_state,
    save_state,
    save_torch,
    seed_everything,
    set_rng_state,
    write_json,
    write_text,
)
from mfql.config import RunError, check_in_dir, check_out_dir, run_cli, train_config
from mfql.data import check_dataset, dataset_files, flatten_obs, load_minari, load_ogbench, observation_stats
from mfql.devices import device_name, resolve_device, set_matmul_precision, set_threads
from mfql.envs import make_env, metric_name, online_reward
from mfql.evaluate import episode_seed, run_episodes
from mfql.log import CSVLog, Progress, Tracker, setup_logging
from mfql.runfolder import CSV_FILES, RunFolder, run_key

log = logging.getLogger("mfql.train")
PACKAGES = ("torch", "numpy", "gymnasium", "mujoco", "ogbench", "minari", "hydra-core")


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

    def __init__(self, cfg, key: str, data_sha256: str, device: torch.device):
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.resume_path = RunFolder(self.out).resume_path
        self.device = device
        self.official = cfg.parity == "official"
        self.config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
        self.run_key, self.data_sha256 = key, data_sha256
        seed_everything(cfg.seed)

        self.minari_dataset = None
        if cfg.suite == "ogbench":
            _, dataset = load_ogbench(cfg.task, cfg.data_dir, verify=False)
        else:
            self.minari_dataset, dataset = load_minari(cfg.task, cfg.data_dir, verify=False)
        self.obs_dim = dataset["observations"].shape[1]
        self.action_dim = dataset["actions"].shape[1]
        padded = cfg.buffer_size if self.official else None
        mean, std = observation_stats(dataset["observations"], padded)
        self.compiled = cfg.compile if cfg.compile is not None else device.type == "cuda"
        self.agent = MeanFlowQL(cfg.agent, self.obs_dim, self.action_dim, mean, std, cfg.offline_steps, self.device,
                                compile=self.compiled)
        self.buffer = ReplayBuffer(dataset, cfg.buffer_size, cfg.online_steps, self.device)
        env_args = (cfg.task, cfg.suite, self.minari_dataset, cfg.env_max_steps)
        self.eval_envs = [make_env(*env_args) for _ in range(min(cfg.eval_envs, cfg.eval_episodes))]
        self.env = make_env(*env_args) if cfg.online_steps > 0 else None
        self.first_step = 0 if self.official else 1  # the official loop also updates (with actor LR 0) at step 0
        self.last_step = cfg.offline_steps + cfg.online_steps
        self.episode, self.obs = 0, None
        # Fixed keys from the first row on, so train.csv keeps one header through the switch to online.
        self.online_stats = {"online/episodes": 0, "online/episode_return": float("nan")} if cfg.online_steps else {}
        if cfg.online_steps and cfg.suite == "ogbench":
            self.online_stats["online/success"] = float("nan")
        # The first step whose loss was not finite (-1: none yet), kept on the device: no sync per step.
        self.first_bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self.last_good_state = None

    # ------------------------------------------------------------------------------------------ files
    def meta(self) -> dict:
        files = dataset_files(self.cfg.task, self.cfg.suite, self.cfg.data_dir)
        return {
            "task": self.cfg.task, "suite": self.cfg.suite, "seed": self.cfg.seed, "parity": self.cfg.parity,
            "run_key": self.run_key, "git_commit": git_commit(), "versions": versions(),
            "device": str(self.device), "device_name": device_name(self.device),
            "threads": torch.get_num_threads(), "compiled": self.compiled,
            "dataset": {"source": "ogbench" if self.cfg.suite == "ogbench" else "minari",
                        "files": [str(f) for f in files], "sha256": self.data_sha256,
                        "transitions": self.buffer.num_offline},
            "ogbench_success_timing": "post" if self.cfg.suite == "ogbench" else None,
        }

    def read_csvs(self) -> dict:
        return {name: (self.out / name).read_text() for name in CSV_FILES if (self.out / name).exists()}

    def save_resume(self, step: int) -> None:
        # The CSVs so far travel with the state: a workflow manager may delete them before a rerun.
        state = {"step": step, "run_key": self.run_key, "config": OmegaConf.to_container(self.cfg, resolve=True),
                 "agent": self.agent.state_dict(), "rng": rng_state(), "buffer": self.buffer.online_state(),
                 "episode": self.episode, "online_stats": self.online_stats, "csv": self.read_csvs()}
        save_state(self.resume_path, state)
        self.last_good_state = step

    def resume(self) -> int:
        """Load the resume state (checksum-verified, weights only); returns the first step still to run."""
        state = load_state(self.resume_path)
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_online_state(state["buffer"])
        self.episode, self.online_stats = state["episode"], state["online_stats"]
        set_rng_state(state["rng"])
        for name in CSV_FILES:
            path = self.out / name
            path.unlink(missing_ok=True)
            if name in state["csv"]:
                write_text(path, state["csv"][name])
        self.last_good_state = state["step"]
        log.info("resumed from step %d", state["step"])
        return state["step"] + 1

    def save_final(self) -> None:
        meta = self.meta()
        final = {**self.agent.weights(), "config": OmegaConf.to_container(self.cfg, resolve=True),
                 "obs_dim": self.obs_dim, "action_dim": self.action_dim, "step": self.last_step,
                 "meta": meta, "csv": self.read_csvs()}
        save_torch(self.out / "final.pt", final)
        write_json(self.out / "meta.json", {**meta, "final_sha256": file_sha256(self.out / "final.pt")})

    # ------------------------------------------------------------------------------------------ guard
    def watch(self, step: int, total_loss: torch.Tensor) -> None:
        """Remember the first step with a non-finite loss, with tensor ops only (read at check())."""
        bad = ~torch.isfinite(total_loss) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(bad, torch.full_like(self.first_bad_step, step), self.first_bad_step)

    def check(self, step: int) -> None:
        """Stop at the first sign of divergence, before a bad state can be checkpointed or logged as a result."""
        params = [*self.agent.actor.parameters(), *self.agent.critic.parameters()]
        finite = torch.stack([torch.isfinite(p).all() for p in params]).all()
        bad, finite = torch.stack([self.first_bad_step, finite.long()]).tolist()  # one read-back for both
        if bad < 0 and finite:
            return
        kept = (f"the last good resume state (step {self.last_good_state}) is kept in {self.resume_path}"
                if self.last_good_state is not None else "no resume state was written before it")
        where = f"at step {bad}" if bad >= 0 else f"by step {step}"
        raise RunError(f"training diverged: non-finite loss {where} ({self.cfg.task} seed {self.cfg.seed}); {kept}; "
                       f"lower agent.lr / agent.critic_lr or check the data, then rerun (with overwrite=true once the "
                       f"config differs)")

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
        scores = run_episodes(self.agent, self.eval_envs, self.cfg.suite, self.cfg.eval_episodes,
                              episode_seed(self.cfg.seed, 2, step), self.minari_dataset)
        return {"step": step, metric_name(self.cfg.suite): float(np.mean(scores)),
                f"{metric_name(self.cfg.suite)}_std": float(np.std(scores)), "episodes": len(scores)}

    def run(self, resume: bool) -> None:
        cfg = self.cfg
        start = self.resume() if resume else self.first_step
        metric = metric_name(cfg.suite)
        train_log = CSVLog(self.out / "train.csv")
        # eval.csv exists from the start, header included: with eval_episodes=0 it stays a valid empty table.
        eval_log = CSVLog(self.out / "eval.csv", ["step", metric, f"{metric}_std", "episodes"])
        write_text(self.out / "config.yaml", self.config_yaml)
        write_json(self.out / "meta.json", self.meta())
        tracker = Tracker(cfg.tracker, self.out, OmegaConf.to_container(cfg, resolve=True))
        log.info("task=%s suite=%s seed=%d parity=%s device=%s threads=%d steps=%d+%d actor=%s run_key=%s",
                 cfg.task, cfg.suite, cfg.seed, cfg.parity, self.device, torch.get_num_threads(), cfg.offline_steps,
                 cfg.online_steps, cfg.agent.actor, self.run_key)
        pending_checkpoint = False
        bar = Progress(range(start, self.last_step + 1), total=self.last_step + 1 - self.first_step,
                       initial=start - self.first_step, desc="train", logger=log)
        tick, tick_step = time.perf_counter(), start
        for step in bar:
            if step > cfg.offline_steps:
                self.online_step()
            info = self.agent.update(self.buffer.sample(cfg.agent.batch_size), step)
            self.watch(step, info["total_loss"])
            if step % cfg.log_interval == 0 or step == self.last_step:
                self.check(step)
                now = time.perf_counter()
                values = torch.stack([v.double() for v in info.values()]).tolist()  # one read-back per log row
                row = {"step": step, **dict(zip(info, values)), **self.online_stats,
                       "updates_per_s": (step + 1 - tick_step) / max(now - tick, 1e-9)}
                tick, tick_step = now, step + 1
                train_log.write(row)
                tracker.log(row, "train/")
                bar.set_postfix({"critic": f"{row['critic/loss']:.3g}", "mfi": f"{row['flow/mfi_loss']:.3g}",
                                 "q": f"{row['actor/q']:.3g}", "ups": f"{row['updates_per_s']:.0f}"})
                log.debug("step=%d critic/loss=%.4g flow/mfi_loss=%.4g actor/q=%.4g alpha=%.4g ups=%.1f", step,
                          row["critic/loss"], row["flow/mfi_loss"], row["actor/q"], row["alpha"],
                          row["updates_per_s"])
            if self.eval_envs and (step % cfg.eval_interval == 0 or step == self.last_step):
                self.check(step)
                result = self.evaluate(step)
                eval_log.write(result)
                tracker.log(result, "eval/")
                log.info("eval step=%d %s=%.4f over %d episodes", step, metric, result[metric], result["episodes"])
            pending_checkpoint |= step % cfg.checkpoint_interval == 0
            # Online, only checkpoint between episodes: the environment state is then just its reset seed.
            if pending_checkpoint and step < self.last_step and (step <= cfg.offline_steps or self.obs is None):
                self.check(step)
                self.save_resume(step)
                pending_checkpoint = False
        self.check(self.last_step)
        self.save_final()
        tracker.close()
        self.resume_path.unlink(missing_ok=True)
        if self.resume_path.parent.exists() and not any(self.resume_path.parent.iterdir()):
            self.resume_path.parent.rmdir()
        log.info("done: %s", self.out / "final.pt")


def main(argv: list[str]) -> None:
    cfg = train_config([a for a in argv if a != "--cfg"])
    if "--cfg" in argv:  # print the fully resolved config of this command, write nothing
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return
    setup_logging()
    out = check_out_dir("out_dir", cfg.out_dir)
    check_in_dir("data_dir", cfg.data_dir)
    device = resolve_device(cfg.device)
    data_sha256 = check_dataset(cfg.task, cfg.suite, cfg.data_dir)
    key = run_key(cfg, data_sha256)
    folder = RunFolder(out)
    folder.lock()
    status = folder.claim(key, cfg.overwrite)
    if status == "finished":
        log.info("%s already holds this finished run (task=%s seed=%d, run key %s): nothing to do",
                 out, cfg.task, cfg.seed, key)
        return
    set_threads(cfg.threads)
    set_matmul_precision(cfg.matmul_precision)
    try:
        run = Run(cfg, key, data_sha256, device)  # loads and checks the data: may still refuse it
    except BaseException:
        folder.abandon()
        raise
    run.run(resume=status == "resume")


if __name__ == "__main__":
    run_cli(main, "train")
