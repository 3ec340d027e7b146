"""Offline training and offline-to-online fine-tuning of MeanFlow-QL.

    python -m mfql.train task=<task id> seed=<n> out_dir=<dir> data_dir=<dir> [offline_steps=... online_steps=...]

Writes config.yaml, meta.json, train.csv, eval.csv and final.pt into out_dir. A rolling resume state lives
in out_dir/_resume/: killing the process and rerunning the same command continues the run.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import subprocess
import time
from contextlib import nullcontext
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from mfql.agents import make_agent
from mfql.buffer import PixelBuffer, ReplayBuffer, offline_storage, pixel_storage, sample_packed
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
from mfql.data import check_dataset, dataset_files, load_minari, load_ogbench, load_ogbench_pixels, observation_stats
from mfql.devices import check_cpp_compiler, configure_cpu, device_name, resolve_device, set_matmul_precision
from mfql.envpool import EnvPool, EnvSpec
from mfql.envs import metric_name, online_reward
from mfql.episodes import episode_seed, run_episodes
from mfql.log import CSVLog, Progress, Tracker, setup_logging
from mfql.packed import PackedUpdate
from mfql.runfolder import CSV_FILES, RunFolder, run_key
from mfql.schedules import first_step

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

    def __init__(self, cfg, key: str, data_sha256: str, device: torch.device, shared: tuple | None = None,
                 compile: bool | None = None, envs: tuple | None = None):
        """``shared``: (Minari dataset, arrays, offline buffer rows) already loaded by a packed job; ``compile``:
        None for the config's choice (a packed job compiles its packed update instead); ``envs``: (evaluation
        pool, online pool or None, this run's index in it) of a packed job (default: the run's own)."""
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.folder = RunFolder(self.out)
        self.resume_path = self.folder.resume_path
        self.device = device
        self.official = cfg.parity == "official"
        self.config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
        self.run_key, self.data_sha256 = key, data_sha256
        seed_everything(cfg.seed)  # network initialisation and the environments' own draws
        # Batches, update draws and online action noise come from the run's own generator, so that runs
        # packed in one process (seeds=[...]) draw exactly what each would draw alone.
        self.rng = torch.Generator(device=self.device).manual_seed(cfg.seed)

        self.minari_dataset, dataset, offline = shared if shared is not None else (*load_data(cfg), None)
        self.action_dim = dataset["actions"].shape[1]
        if cfg.agent.encoder is not None:  # pixels: frames [H, W, C] stacked on channels, no statistics
            height, width, channels = dataset["frames"].shape[1:]
            self.obs_dim = [height, width, channels * cfg.frame_stack]
            mean, std = np.zeros(1, np.float32), np.ones(1, np.float32)
        else:
            self.obs_dim = dataset["observations"].shape[1]
            padded = cfg.buffer_size if self.official else None
            mean, std = observation_stats(dataset["observations"], padded)
        self.compiled = compile_choice(cfg, device) if compile is None else compile
        self.agent = make_agent(cfg.method, cfg.agent, self.obs_dim, self.action_dim, mean, std, cfg.offline_steps,
                                self.device, compile=self.compiled and shared is None)
        self.buffer = (PixelBuffer(dataset, cfg.frame_stack, cfg.p_aug, self.device, offline)
                       if cfg.agent.encoder is not None else
                       ReplayBuffer(dataset, cfg.buffer_size, cfg.online_steps, self.device, offline))
        self.owns_envs = envs is None
        self.eval_envs, self.online_envs, self.online_index = envs if envs is not None else (
            *make_pools([cfg], self.minari_dataset), 0)
        # The official MeanFlow-QL loop also updates (with actor LR 0) at step 0; FQL's loop starts at 1.
        self.first_step = first_step(cfg.method, cfg.parity)
        self.last_step = cfg.offline_steps + cfg.online_steps
        self.episode, self.obs, self.episode_actions = 0, None, []
        # Fixed keys from the first row on, so train.csv keeps one header through the switch to online.
        self.online_stats = {"online/episodes": 0, "online/episode_return": float("nan")} if cfg.online_steps else {}
        if cfg.online_steps and cfg.suite == "ogbench":
            self.online_stats["online/success"] = float("nan")
        # The first step whose loss was not finite (-1: none yet), kept on the device: no sync per step.
        self.first_bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self.last_good_state = None
        self.progress: Progress | None = None  # the step loop's display, paused while this run evaluates

    # ------------------------------------------------------------------------------------------ files
    def meta(self) -> dict:
        files = dataset_files(self.cfg.task, self.cfg.suite, self.cfg.data_dir)
        return {
            "method": self.cfg.method, "task": self.cfg.task, "suite": self.cfg.suite, "seed": self.cfg.seed,
            "parity": self.cfg.parity,
            "run_key": self.run_key, "git_commit": git_commit(), "versions": versions(),
            "device": str(self.device), "device_name": device_name(self.device),
            "threads": torch.get_num_threads(), "compiled": self.compiled,
            "dataset": {"source": "ogbench" if self.cfg.suite == "ogbench" else "minari",
                        "files": [str(f) for f in files], "sha256": self.data_sha256,
                        "transitions": self.buffer.num_offline},
            "ogbench_success_timing": "post" if self.cfg.suite == "ogbench" else None,
            **({"eval_protocol": self.cfg.eval_protocol, "minari_eval_env": self.minari_eval_env}
               if self.cfg.suite == "d4rl" else {}),
        }

    @functools.cached_property
    def minari_eval_env(self) -> dict:
        return minari_eval_env(self.cfg.task, self.minari_dataset)  # made once, not at every meta.json write

    def read_csvs(self) -> dict:
        return {name: (self.out / name).read_bytes().decode() for name in CSV_FILES if (self.out / name).exists()}

    def save_resume(self, step: int) -> None:
        # The CSVs so far travel with the state: a workflow manager may delete them before a rerun.
        state = {"step": step, "run_key": self.run_key, "config": OmegaConf.to_container(self.cfg, resolve=True),
                 "agent": self.agent.state_dict(), "rng": rng_state(),
                 "generator": self.rng.get_state(), "buffer": self.buffer.online_state(),
                 "episode": self.episode, "online_stats": self.online_stats, "csv": self.read_csvs(),
                 "episode_actions": self.episode_in_progress()}
        if self.resume_path.is_file():  # keep the one before until this one is written (packed jobs)
            os.replace(self.resume_path, self.folder.prev_path)
        save_state(self.resume_path, state)
        self.last_good_state = step

    def saved_states(self) -> dict[int, Path]:
        """Resume states on disk (checksum-verified when loaded), by step."""
        return {load_state(path)["step"]: path for path in self.folder.resume_paths()}

    def resume(self, path: Path | None = None) -> int:
        """Load a resume state (default: the newest; checksum-verified, weights only); returns the first step
        still to run."""
        state = load_state(path or self.folder.resume_paths()[0])
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_online_state(state["buffer"])
        self.episode, self.online_stats = state["episode"], state["online_stats"]
        if state.get("episode_actions") is not None:
            self.replay_episode(state["episode_actions"])
        set_rng_state(state["rng"])
        self.rng.set_state(state["generator"])
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
    def start_episode(self) -> None:
        self.obs = self.online_envs.reset([(self.online_index, episode_seed(self.cfg.seed, 1, self.episode))])[0]
        self.episode_return, self.episode_actions = 0.0, []

    def episode_in_progress(self) -> dict | None:
        """The online episode under way, for a resume state: its actions so far (the environment's state is
        rebuilt by replaying them from the episode's seeded reset) and its current observation, to check that."""
        if self.obs is None:
            return None
        actions = np.array(self.episode_actions, dtype=np.float32).reshape(-1, self.action_dim)
        return {"actions": torch.as_tensor(actions), "observation": torch.as_tensor(self.obs)}

    def replay_episode(self, saved: dict) -> None:
        """Rebuild the environment mid-episode: reset with the episode's seed and step its saved actions."""
        self.start_episode()
        for action in saved["actions"].numpy():
            self.obs, reward, _, _, _ = self.online_envs.step([(self.online_index, action)])[0]
            self.episode_return += reward
            self.episode_actions.append(action)
        if not np.array_equal(self.obs, saved["observation"].numpy()):
            log.warning("replaying online episode %d (%d steps) did not reproduce its saved observation (another "
                        "MuJoCo build or CPU?): the run continues from the replayed state, no longer bit-identical "
                        "to an uninterrupted run", self.episode, len(saved["actions"]))

    def online_action(self) -> np.ndarray:
        """The best-of-K action at the current online observation (starting an episode if none is running)."""
        if self.obs is None:
            self.start_episode()
        obs = torch.as_tensor(self.obs, device=self.device).unsqueeze(0)
        self.action = self.agent.act(obs, generator=self.rng)[0].cpu().numpy()
        return self.action

    def online_record(self, result: tuple) -> None:
        """Store the step that ``online_action``'s action led to (``EnvPool.step``'s result) in the buffer."""
        next_obs, reward, terminated, truncated, success = result
        self.episode_return += reward
        self.episode_actions.append(self.action)
        self.buffer.add({"observations": self.obs, "actions": self.action,
                         "rewards": np.float32(online_reward(self.cfg.task, reward)),
                         "masks": np.float32(1.0 - float(terminated)), "next_observations": next_obs})
        self.obs = next_obs
        if terminated or truncated:
            self.episode += 1
            self.obs = None  # the next reset is seeded by the episode index, so it needs no saved state
            self.online_stats = {"online/episodes": self.episode, "online/episode_return": self.episode_return}
            if self.cfg.suite == "ogbench":
                self.online_stats["online/success"] = float(success)

    def online_step(self) -> None:
        """One environment step with the best-of-K action, stored in the same buffer."""
        action = self.online_action()
        self.online_record(self.online_envs.step([(self.online_index, action)])[0])

    def evaluate(self, step: int) -> dict:
        scores = run_episodes(self.agent, self.eval_envs, self.cfg.suite, self.cfg.eval_episodes,
                              episode_seed(self.cfg.seed, 2, step), self.minari_dataset)
        return {"step": step, metric_name(self.cfg.suite): float(np.mean(scores)),
                f"{metric_name(self.cfg.suite)}_std": float(np.std(scores)), "episodes": len(scores)}

    def begin(self, start: int) -> None:
        """Open the logs and write config.yaml and meta.json; ``start`` is the first step to run."""
        cfg = self.cfg
        self.metric = metric_name(cfg.suite)
        self.train_log = CSVLog(self.out / "train.csv")
        # eval.csv exists from the start, header included: with eval_episodes=0 it stays a valid empty table.
        self.eval_log = CSVLog(self.out / "eval.csv", ["step", self.metric, f"{self.metric}_std", "episodes"])
        write_text(self.out / "config.yaml", self.config_yaml)
        write_json(self.out / "meta.json", self.meta())
        self.tracker = Tracker(cfg.tracker, self.out, OmegaConf.to_container(cfg, resolve=True))
        log.info("method=%s task=%s suite=%s seed=%d parity=%s device=%s threads=%d steps=%d+%d actor=%s run_key=%s",
                 cfg.method, cfg.task, cfg.suite, cfg.seed, cfg.parity, self.device, torch.get_num_threads(),
                 cfg.offline_steps, cfg.online_steps, cfg.agent.actor if cfg.method == "mfql" else "fql", self.run_key)
        self.tick, self.tick_step = time.perf_counter(), start
        controller = getattr(self.agent, "alpha_ctl", None)
        if controller is not None and controller.unfilled_after_warmup():
            log.warning("with parity=official and offline_steps=%d the alpha controller's warm-up (%d steps) ends "
                        "before its history is full (%d steps), and alpha then grows x%g at each event until it is "
                        "about half full (the official code's averaging, docs/method.md); agent.dynamic_alpha=false "
                        "keeps alpha at the task's value", cfg.offline_steps, controller.warmup,
                        controller.interval * len(controller.history), controller.increase)

    def after_update(self, step: int, info: dict) -> dict | None:
        """Everything after this step's update: divergence watch, train.csv row, evaluation, resume state.
        Returns the logged row, if this step logged one."""
        cfg = self.cfg
        self.watch(step, info["total_loss"])
        row = None
        if step % cfg.log_interval == 0 or step == self.last_step:
            self.check(step)
            now = time.perf_counter()
            values = torch.stack([v.double() for v in info.values()]).tolist()  # one read-back per log row
            row = {"step": step, **dict(zip(info, values)), **self.online_stats,
                   "updates_per_s": (step + 1 - self.tick_step) / max(now - self.tick, 1e-9)}
            self.tick, self.tick_step = now, step + 1
            self.train_log.write(row)
            self.tracker.log(row, "train/")
            log.debug("seed=%d step=%d %s ups=%.1f", cfg.seed, step,
                      " ".join(f"{k}={row[k]:.4g}" for k in self.agent.PROGRESS), row["updates_per_s"])
        if self.eval_envs and (step % cfg.eval_interval == 0 or step == self.last_step):
            self.check(step)
            with self.progress.paused() if self.progress is not None else nullcontext():
                result = self.evaluate(step)
            self.eval_log.write(result)
            self.tracker.log(result, "eval/")
            log.info("eval seed=%d step=%d %s=%.4f over %d episodes", cfg.seed, step, self.metric,
                     result[self.metric], result["episodes"])
        # Mid-episode too: the resume state holds the episode's actions, which rebuild the environment.
        if step % cfg.checkpoint_interval == 0 and step < self.last_step:
            self.check(step)
            self.save_resume(step)
        return row

    def finish(self) -> None:
        if self.owns_envs:  # a packed job's pools are closed by run_packed
            close_pools(self.eval_envs, self.online_envs)
        self.check(self.last_step)
        self.save_final()
        self.tracker.close()
        for path in (self.resume_path, self.folder.prev_path):
            path.unlink(missing_ok=True)
        if self.resume_path.parent.exists() and not any(self.resume_path.parent.iterdir()):
            self.resume_path.parent.rmdir()
        log.info("done: %s", self.out / "final.pt")

    def run(self, resume: bool) -> None:
        start = self.resume() if resume else self.first_step
        self.begin(start)
        bar = Progress(range(start, self.last_step + 1), total=self.last_step + 1 - self.first_step,
                       initial=start - self.first_step, desc="train", logger=log)
        self.progress = bar
        batch_size = self.cfg.agent.batch_size
        for step in bar:
            if step > self.cfg.offline_steps:
                self.online_step()
            info = self.agent.update(self.buffer.sample(batch_size, self.rng), step, generator=self.rng)
            row = self.after_update(step, info)
            if row is not None:
                bar.set_postfix({**{short_name(k): f"{row[k]:.3g}" for k in self.agent.PROGRESS},
                                 "ups": f"{row['updates_per_s']:.0f}"})
        self.finish()


def minari_eval_env(task: str, minari_dataset) -> dict:
    """Minari's recorded evaluation environment of a D4RL task and how its episodes differ from D4RL's (what
    eval_protocol=d4rl restores; the verification names them for eval_protocol=minari)."""
    from mfql.protocol import spec_differences

    env = minari_dataset.recover_environment(eval_env=True)
    spec = env.spec
    env.close()
    return {"id": spec.id, "max_episode_steps": spec.max_episode_steps,
            "kwargs": {k: v for k, v in spec.kwargs.items() if k != "maze_map"},
            "differences_from_d4rl": spec_differences(task, spec)}


def make_pools(cfgs: list, minari_dataset) -> tuple:
    """(evaluation pool, online pool or None) for the runs of ``cfgs`` (one run, or a packed job's seeds: they
    evaluate one after another, so they share the evaluation environments; each has its own online one)."""
    cfg = cfgs[0]
    spec = EnvSpec(cfg.task, cfg.suite, str(cfg.data_dir), cfg.env_max_steps, cfg.frame_stack, cfg.eval_protocol)
    eval_pool = EnvPool(spec, min(cfg.eval_envs, cfg.eval_episodes), cfg.env_workers, minari_dataset)
    online = EnvPool(spec, len(cfgs), cfg.env_workers, minari_dataset) if cfg.online_steps > 0 else None
    return eval_pool, online


def close_pools(*pools) -> None:
    for pool in pools:
        if pool is not None:
            pool.close()


def short_name(metric: str) -> str:
    """critic/loss -> critic, flow/mfi_loss -> mfi, actor/q -> q: the progress bar's labels."""
    group, name = metric.split("/", 1)
    return group if name == "loss" else name.removesuffix("_loss")


def compile_choice(cfg, device: torch.device) -> bool:
    return cfg.compile if cfg.compile is not None else device.type == "cuda"


def load_data(cfg) -> tuple:
    """(Minari dataset or None, arrays) of the run's task, read once (the checksums were checked before)."""
    if cfg.agent.encoder is not None:
        return None, load_ogbench_pixels(cfg.task, cfg.data_dir, verify=False)[1]
    if cfg.suite == "ogbench":
        return None, load_ogbench(cfg.task, cfg.data_dir, verify=False)[1]
    return load_minari(cfg.task, cfg.data_dir, verify=False)


def run_packed(runs: list[Run], statuses: list[str], compile: bool) -> None:
    """Train the seeds of ``runs`` together: one vmapped update per step, then each seed's own logging,
    evaluation and resume state. Resumed seeds continue from the newest step they all saved."""
    start = runs[0].first_step
    if "resume" in statuses and "fresh" in statuses:  # killed before every seed saved a state: start over
        log.info("not every packed seed has a resume state: all start from the first step")
        for run, status in zip(runs, statuses):
            if status == "resume":
                run.folder.clear()
    elif "resume" in statuses:
        saved = [run.saved_states() for run in runs]
        common = set.intersection(*(set(s) for s in saved))
        if not common:
            steps = ", ".join(f"seed {r.cfg.seed}: {sorted(s) or 'none'}" for r, s in zip(runs, saved))
            raise RunError(f"the packed seeds have no resume step in common ({steps}); rerun them one at a time "
                           f"(python -m mfql.train ... seed=<n> out_dir=<out_dir>/seed<n>)")
        start = max(common) + 1
        for run, states in zip(runs, saved):
            run.resume(states[start - 1])
    packed = PackedUpdate([run.agent for run in runs], compile=compile)
    for run in runs:
        run.begin(start)
    first, last = runs[0].first_step, runs[0].last_step
    bar = Progress(range(start, last + 1), total=last + 1 - first, initial=start - first, desc="train", logger=log)
    for run in runs:
        run.progress = bar
    batch_size = runs[0].cfg.agent.batch_size
    generators = [run.rng for run in runs]
    buffers, online_envs = [run.buffer for run in runs], runs[0].online_envs
    for step in bar:
        if step > runs[0].cfg.offline_steps:  # each seed its own environment, episode and online rows
            actions = [(run.online_index, run.online_action()) for run in runs]
            for run, result in zip(runs, online_envs.step(actions)):  # stepped at once (env_workers)
                run.online_record(result)
        info = packed.update(sample_packed(buffers, batch_size, generators), step, packed.draws(batch_size, generators))
        for seed, run in enumerate(runs):
            run.after_update(step, {key: value[seed] for key, value in info.items()})
    for run in runs:
        run.finish()
    close_pools(runs[0].eval_envs, online_envs)


def main(argv: list[str]) -> None:
    cfg = train_config([a for a in argv if a != "--cfg"])
    if "--cfg" in argv:  # print the fully resolved config of this command, write nothing
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return
    setup_logging()
    out = check_out_dir("out_dir", cfg.out_dir)
    check_in_dir("data_dir", cfg.data_dir)
    device = resolve_device(cfg.device)
    if compile_choice(cfg, device) and device.type == "cpu":
        check_cpp_compiler()
    data_sha256 = check_dataset(cfg.task, cfg.suite, cfg.data_dir)
    seeds = list(cfg.seeds) if cfg.seeds is not None else [cfg.seed]
    cfgs = [seed_config(cfg, seed, out) for seed in seeds] if cfg.seeds is not None else [cfg]
    claimed = []
    for run_cfg in cfgs:  # each seed's folder is its own run: the same run key as that seed trained alone
        key = run_key(run_cfg, data_sha256)
        folder = RunFolder(Path(run_cfg.out_dir))
        folder.lock()
        status = folder.claim(key, cfg.overwrite)
        if status == "finished":
            log.info("%s already holds this finished run (task=%s seed=%d, run key %s): nothing to do",
                     run_cfg.out_dir, cfg.task, run_cfg.seed, key)
            folder.release()
            continue
        claimed.append((run_cfg, key, folder, status))
    if not claimed:
        return
    configure_cpu(cfg.threads, cfg.flush_denormal)
    set_matmul_precision(cfg.matmul_precision)
    runs = []
    try:  # loads and checks the data: may still refuse it
        if cfg.seeds is None:
            runs.append(Run(cfg, claimed[0][1], data_sha256, device))
        else:
            minari_dataset, dataset = load_data(cfg)
            shared = (minari_dataset, dataset, pixel_storage(dataset, cfg.frame_stack, device)
                      if cfg.agent.encoder is not None else offline_storage(dataset, device))
            eval_pool, online_pool = make_pools([c for c, _, _, _ in claimed], minari_dataset)
            runs = [Run(run_cfg, key, data_sha256, device, shared, compile_choice(cfg, device),
                        (eval_pool, online_pool, index)) for index, (run_cfg, key, _, _) in enumerate(claimed)]
    except BaseException:
        for _, _, folder, _ in claimed:
            folder.abandon()
        raise
    statuses = [status for _, _, _, status in claimed]
    if cfg.seeds is None:
        runs[0].run(resume=statuses[0] == "resume")
    else:
        log.info("packed: seeds %s of %s in one process (%s)", [r.cfg.seed for r in runs], cfg.task,
                 ", ".join(f"seed {r.cfg.seed}: {st}" for r, st in zip(runs, statuses)))
        run_packed(runs, statuses, compile_choice(cfg, device))


def seed_config(cfg, seed: int, out: Path):
    """The config of one seed of a packed job: exactly the config of ``seed=<n> out_dir=<out>/seed<n>``."""
    one = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    one.seed, one.seeds, one.out_dir = seed, None, str(out / f"seed{seed}")
    return one


if __name__ == "__main__":
    run_cli(main, "train")
