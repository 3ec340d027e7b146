"""One training run: what it is built from (data, agent, buffer, environments), its files (through its
RunFolder), its divergence guard, its evaluations and what happens after each update. The step loop that
drives one run or a packed job's seeds is `mfql/run/loop.py`.
"""

from __future__ import annotations

import functools
import logging
import platform
import subprocess
import time
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from mfql.agents import METHODS, make_agent
from mfql.agents.schedules import first_step
from mfql.data.buffer import PixelBuffer, ReplayBuffer, offline_storage, pixel_storage
from mfql.data.datasets import dataset_files, load_minari, load_ogbench, load_ogbench_pixels, observation_stats
from mfql.errors import RunError
from mfql.log import CSVLog, Progress, Tracker
from mfql.run.checkpoint import load_state, rng_state, seed_everything, set_rng_state
from mfql.run.devices import device_name
from mfql.run.envpool import EnvPool, EnvSpec
from mfql.run.envs import env_family, env_mb, eval_pool_size, metric_name
from mfql.run.episodes import episode_seed, run_episodes
from mfql.run.folder import RUN_KEY_FORMAT, RunFolder
from mfql.run.online import OnlineEpisode
from mfql.run.profiling import MemoryLedger

log = logging.getLogger("mfql.train")
PACKAGES = ("torch", "numpy", "gymnasium", "mujoco", "ogbench", "minari", "hydra-core")


@dataclass
class SharedData:
    """A task's data, loaded once for every seed of a job."""
    minari_dataset: object | None  # the Minari dataset (D4RL tasks), for its evaluation environment
    arrays: dict                   # the dataset's arrays
    offline_rows: dict | None = None  # the buffer's offline rows on the device, shared by a packed job's seeds

    @classmethod
    def load(cls, cfg, device: torch.device | None = None) -> SharedData:
        """Read the run's task once (the checksums were checked before); with ``device``, also its buffer rows."""
        if cfg.agent.encoder is not None:
            minari_dataset, arrays = None, load_ogbench_pixels(cfg.task, cfg.data_dir, verify=False)[1]
        elif cfg.suite == "ogbench":
            minari_dataset, arrays = None, load_ogbench(cfg.task, cfg.data_dir, verify=False)[1]
        else:
            minari_dataset, arrays = load_minari(cfg.task, cfg.data_dir, verify=False)
        rows = None
        if device is not None:
            rows = (pixel_storage(arrays, cfg.frame_stack, device) if cfg.agent.encoder is not None
                    else offline_storage(arrays, device))
        return cls(minari_dataset, arrays, rows)


@dataclass
class Pools:
    """The environments of a job: one evaluation pool its seeds take turns with, and one online environment
    per seed (None without an online phase)."""
    evaluation: EnvPool
    online: EnvPool | None

    @classmethod
    def make(cls, cfgs: list, minari_dataset) -> Pools:
        cfg = cfgs[0]
        spec = EnvSpec(cfg.task, cfg.suite, str(cfg.data_dir), cfg.env_max_steps, cfg.frame_stack, cfg.eval_protocol)
        online_envs = len(cfgs) if cfg.online_steps > 0 else 0
        size = eval_pool_size(cfg.task, cfg.eval_episodes, cfg.eval_envs, cfg.env_memory_mb, online_envs)
        log.info("evaluation: %d of %d episodes at once (env_memory_mb=%d, %d MB per %s environment)", size,
                 cfg.eval_episodes, cfg.env_memory_mb, env_mb(cfg.task), env_family(cfg.task))
        evaluation = EnvPool(spec, size, cfg.env_workers, minari_dataset)
        online = EnvPool(spec, online_envs, cfg.env_workers, minari_dataset) if online_envs else None
        return cls(evaluation, online)

    def open(self) -> None:
        for pool in (self.evaluation, self.online):
            if pool is not None:
                pool.open()

    def close(self) -> None:
        for pool in (self.evaluation, self.online):
            if pool is not None:
                pool.close()


class Run:
    """One training run. ``folder``: its locked RunFolder (default: an unlocked one, for tests);
    ``shared``/``pools``/``index``: a packed job's data, environments and this seed's place in them (default:
    its own); ``compile_agent``: compile this run's own update (a packed job compiles its packed update);
    ``ledger``: the job's memory ledger, marked after each part this run builds."""

    def __init__(self, cfg, key: str, data_sha256: str, device: torch.device, folder: RunFolder | None = None,
                 shared: SharedData | None = None, pools: Pools | None = None, index: int = 0,
                 compile_agent: bool | None = None, ledger: MemoryLedger | None = None):
        self.cfg, self.run_key, self.data_sha256, self.device = cfg, key, data_sha256, device
        self.ledger = ledger if ledger is not None else MemoryLedger()
        self.folder = folder if folder is not None else RunFolder(cfg.out_dir)
        self.out = self.folder.path
        self.config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
        seed_everything(cfg.seed)  # network initialisation and the environments' own draws
        # Batches, update draws and online action noise come from the run's own generator, so that runs
        # packed in one process (seeds=[...]) draw exactly what each would draw alone.
        self.rng = torch.Generator(device=device).manual_seed(cfg.seed)
        if shared is None:
            shared = SharedData.load(cfg)
            self.ledger.mark("dataset")
        self.shared = shared
        dataset = self.shared.arrays
        self.action_dim = dataset["actions"].shape[1]
        if cfg.agent.encoder is not None:  # pixels: frames [H, W, C] stacked on channels, no statistics
            height, width, channels = dataset["frames"].shape[1:]
            self.obs_dim = [height, width, channels * cfg.frame_stack]
            mean, std = np.zeros(1, np.float32), np.ones(1, np.float32)
        else:
            self.obs_dim = dataset["observations"].shape[1]
            mean, std = observation_stats(dataset["observations"],
                                          cfg.buffer_size if cfg.parity == "official" else None)
        self.compiled = compile_choice(cfg, device)
        compile_agent = self.compiled if compile_agent is None else compile_agent
        self.agent = make_agent(cfg.method, cfg.agent, self.obs_dim, self.action_dim, mean, std, cfg.offline_steps,
                                device, compile=compile_agent)
        self.buffer = (PixelBuffer(dataset, cfg.frame_stack, cfg.p_aug, device, self.shared.offline_rows)
                       if cfg.agent.encoder is not None else
                       ReplayBuffer(dataset, cfg.buffer_size, cfg.online_steps, device, self.shared.offline_rows))
        self.buffer.next_actions = "next_actions" in self.agent.BATCH_FIELDS
        self.ledger.mark("agents and buffers")
        self.owns_pools = pools is None
        self.pools = pools if pools is not None else Pools.make([cfg], self.shared.minari_dataset)
        self.online = OnlineEpisode(cfg, self.agent, self.buffer, self.pools.online, index, self.action_dim, device,
                                    self.rng)
        # The official MeanFlow-QL loop also updates (with actor LR 0) at step 0; FQL's loop starts at 1.
        self.first_step = first_step(cfg.method, cfg.parity)
        self.last_step = cfg.offline_steps + cfg.online_steps
        # The first step whose loss was not finite (-1: none yet), kept on the device: no sync per step.
        self.first_bad_step = torch.full((), -1, dtype=torch.long, device=device)
        self.last_good_state: int | None = None
        self.progress: Progress | None = None  # the step loop's display, paused while this run evaluates
        self.metric = metric_name(cfg.suite)
        self.train_log = self.eval_log = self.tracker = None  # opened by begin()
        self.tick, self.tick_step = time.perf_counter(), self.first_step

    # ------------------------------------------------------------------------------------------ files
    def meta(self) -> dict:
        cfg = self.cfg
        files = dataset_files(cfg.task, cfg.suite, cfg.data_dir)
        return {
            "method": cfg.method, "task": cfg.task, "suite": cfg.suite, "seed": cfg.seed, "parity": cfg.parity,
            "run_key": self.run_key, "run_key_format": RUN_KEY_FORMAT, "git_commit": git_commit(),
            "versions": versions(),
            "device": str(self.device), "device_name": device_name(self.device),
            "threads": torch.get_num_threads(), "compiled": self.compiled,
            "dataset": {"source": "ogbench" if cfg.suite == "ogbench" else "minari",
                        "files": [str(f) for f in files], "sha256": self.data_sha256,
                        "transitions": self.buffer.num_offline},
            "ogbench_success_timing": "post" if cfg.suite == "ogbench" else None,
            **({"eval_protocol": cfg.eval_protocol, "minari_eval_env": self.minari_eval_env}
               if cfg.suite == "d4rl" else {}),
        }

    @functools.cached_property
    def minari_eval_env(self) -> dict:
        return minari_eval_env(self.cfg.task, self.shared.minari_dataset)  # made once, not at every meta write

    def save_resume(self, step: int) -> None:
        # The CSVs so far travel with the state: a workflow manager may delete them before a rerun.
        self.folder.write_resume({
            "step": step, "run_key": self.run_key, "config": OmegaConf.to_container(self.cfg, resolve=True),
            "agent": self.agent.state_dict(), "rng": rng_state(), "generator": self.rng.get_state(),
            "buffer": self.buffer.online_state(), **self.online.state(), "csv": self.folder.csvs()})
        self.last_good_state = step

    def resume(self, path: Path | None = None) -> int:
        """Load a resume state (default: the newest; checksum-verified, weights only); returns the first step
        still to run."""
        state = load_state(path or self.folder.resume_paths()[0])
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_online_state(state["buffer"])
        self.online.load_state(state)
        set_rng_state(state["rng"])
        self.rng.set_state(state["generator"])
        self.folder.write_back_csvs(state["csv"])
        self.last_good_state = state["step"]
        log.info("resumed from step %d", state["step"])
        return state["step"] + 1

    # ------------------------------------------------------------------------------------------ guard
    def watch(self, step: int, total_loss: torch.Tensor) -> None:
        """Remember the first step with a non-finite loss, with tensor ops only (read at check())."""
        bad = ~torch.isfinite(total_loss) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(bad, torch.full_like(self.first_bad_step, step), self.first_bad_step)

    def check(self, step: int) -> None:
        """Stop at the first sign of divergence, before a bad state can be checkpointed or logged as a result."""
        params = [p for name in self.agent.NETWORKS for p in getattr(self.agent, name).parameters()]
        finite = torch.stack([torch.isfinite(p).all() for p in params]).all()
        bad, finite = torch.stack([self.first_bad_step, finite.long()]).tolist()  # one read-back for both
        if bad < 0 and finite:
            return
        kept = (f"the last good resume state (step {self.last_good_state}) is kept in {self.folder.resume_path}"
                if self.last_good_state is not None else "no resume state was written before it")
        where = f"at step {bad}" if bad >= 0 else f"by step {step}"
        raise RunError(f"training diverged: non-finite loss {where} ({self.cfg.task} seed {self.cfg.seed}); {kept}; "
                       f"lower the method's learning rates (agent.*lr) or check the data, then rerun (with "
                       f"overwrite=true once the config differs)")

    # ---------------------------------------------------------------------------------------- per step
    def evaluate(self, step: int) -> dict:
        scores = run_episodes(self.agent, self.pools.evaluation, self.cfg.suite, self.cfg.eval_episodes,
                              episode_seed(self.cfg.seed, 2, step), self.shared.minari_dataset)
        return {"step": step, self.metric: float(np.mean(scores)), f"{self.metric}_std": float(np.std(scores)),
                "episodes": len(scores)}

    def begin(self, start: int) -> None:
        """Open the logs and write config.yaml and meta.json; ``start`` is the first step to run."""
        cfg = self.cfg
        self.train_log = CSVLog(self.out / "train.csv")
        # eval.csv exists from the start, header included: with eval_episodes=0 it stays a valid empty table.
        self.eval_log = CSVLog(self.out / "eval.csv", ["step", self.metric, f"{self.metric}_std", "episodes"])
        self.folder.write_start(self.config_yaml, self.meta())
        self.tracker = Tracker(cfg.tracker, self.out, OmegaConf.to_container(cfg, resolve=True))
        log.info("method=%s task=%s suite=%s seed=%d parity=%s device=%s threads=%d steps=%d+%d actor=%s run_key=%s",
                 cfg.method, cfg.task, cfg.suite, cfg.seed, cfg.parity, self.device, torch.get_num_threads(),
                 cfg.offline_steps, cfg.online_steps, METHODS[cfg.method].summary(cfg.agent)["actor"], self.run_key)
        self.tick, self.tick_step = time.perf_counter(), start
        for message in self.agent.start_warnings(cfg.offline_steps):
            log.warning(message)

    def after_update(self, step: int, info: dict) -> dict | None:
        """Everything after this step's update: divergence watch, train.csv row, evaluation, resume state.
        Returns the logged row, if this step logged one."""
        cfg = self.cfg
        self.watch(step, info["total_loss"])
        logs = step % cfg.log_interval == 0 or step == self.last_step
        evaluates = bool(self.pools.evaluation) and (step % cfg.eval_interval == 0 or step == self.last_step)
        # Mid-episode too: the resume state holds the episode's actions, which rebuild the environment.
        saves = step % cfg.checkpoint_interval == 0 and step < self.last_step
        if logs or evaluates or saves:
            self.check(step)  # once, before anything of this step is written
        row = None
        if logs:
            now = time.perf_counter()
            values = torch.stack([v.double() for v in info.values()]).tolist()  # one read-back per log row
            row = {"step": step, **dict(zip(info, values)), **self.online.stats,
                   "updates_per_s": (step + 1 - self.tick_step) / max(now - self.tick, 1e-9)}
            self.tick, self.tick_step = now, step + 1
            self.train_log.write(row)
            self.tracker.log(row, "train/")
            log.debug("seed=%d step=%d %s ups=%.1f", cfg.seed, step,
                      " ".join(f"{k}={row[k]:.4g}" for k in self.agent.PROGRESS), row["updates_per_s"])
        if evaluates:
            with self.progress.paused() if self.progress is not None else nullcontext():
                result = self.evaluate(step)
            self.eval_log.write(result)
            self.tracker.log(result, "eval/")
            log.info("eval seed=%d step=%d %s=%.4f over %d episodes", cfg.seed, step, self.metric,
                     result[self.metric], result["episodes"])
        if saves:
            self.save_resume(step)
        return row

    def finish(self) -> None:
        """The final checks and files: final.pt (with copies of the others), meta.json; resume states removed."""
        if self.owns_pools:  # a packed job's pools are closed by its loop
            self.pools.close()
        self.check(self.last_step)
        meta = self.meta()
        final = {**self.agent.weights(), "config": OmegaConf.to_container(self.cfg, resolve=True),
                 "obs_dim": self.obs_dim, "action_dim": self.action_dim, "step": self.last_step,
                 "meta": meta, "csv": self.folder.csvs()}
        self.folder.write_final(final, meta)
        self.tracker.close()
        log.info("done: %s", self.folder.final_path)


def minari_eval_env(task: str, minari_dataset) -> dict:
    """Minari's recorded evaluation environment of a D4RL task and how its episodes differ from D4RL's (what
    eval_protocol=d4rl restores; the verification names them for eval_protocol=minari)."""
    from mfql.run.protocol import spec_differences

    env = minari_dataset.recover_environment(eval_env=True)
    spec = env.spec
    env.close()
    return {"id": spec.id, "max_episode_steps": spec.max_episode_steps,
            "kwargs": {k: v for k, v in spec.kwargs.items() if k != "maze_map"},
            "differences_from_d4rl": spec_differences(task, spec)}


def compile_choice(cfg, device: torch.device) -> bool:
    return cfg.compile if cfg.compile is not None else device.type == "cuda"


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
