"""Shared fixtures: agent configs, a small OGBench dataset regenerated with the real oracles, and the helpers
every test that trains uses (quick options, training runs, kill-and-resume)."""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import tests.methods  # noqa: F401  (registers the methods that exist only for the tests, tests/methods/)
from mfql.agents import make_agent as make_method_agent
from mfql.config import compose, run_cli
from tests.commands import run_forked
from tests.commands import start as start_command

ROOT = Path(__file__).resolve().parent.parent
# Under `pytest -n` each worker gets its share of the cores, for its own torch and for the commands it starts
# (OMP_NUM_THREADS reaches them): workers that each ran one thread per core would contend for every core.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // WORKERS))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
TASK = "cube-single-play-singletask-task1-v0"
# A subprocess that may train a test-only method: it registers them too (its working directory is the root).
TEST_METHODS = {"MFQL_METHODS": "tests.methods"}
# The reduced quick suite of the workflow tests (same shape as `quick`, minutes of CPU).
CI_CONFIG = ROOT / "tests" / "workflow" / "config.yaml"
# A training run small enough for a test: the small model, 10-step episodes, one evaluation episode, CPU.
QUICK = ["model=small", "env_max_steps=10", "eval_episodes=1", "log_interval=10", "device=cpu"]


def agent_cfg(*overrides: str, model: str = "small", method: str = "mfql"):
    cfg = compose("train", [f"task={TASK}", "out_dir=.", f"method={method}", f"model={model}", *overrides])
    return cfg.agent


def make_agent(obs_dim=6, action_dim=3, *overrides: str, model: str = "small", steps: int = 1000,
               device: str = "cpu", compile: bool = False, method: str = "mfql", **kw):
    cfg = agent_cfg(*overrides, model=model, method=method)
    if kw:
        cfg = OmegaConf.merge(cfg, kw)
    return make_method_agent(method, cfg, obs_dim, action_dim, np.zeros(obs_dim), np.ones(obs_dim), steps, device,
                             compile)


def random_batch(n=32, obs_dim=6, action_dim=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "observations": torch.randn(n, obs_dim, generator=g),
        "actions": torch.rand(n, action_dim, generator=g) * 2 - 1,
        "rewards": -torch.rand(n, generator=g),
        "masks": (torch.rand(n, generator=g) > 0.1).float(),
        "next_observations": torch.randn(n, obs_dim, generator=g),
        "next_actions": torch.rand(n, action_dim, generator=g) * 2 - 1,  # drawn last: the others as before
    }


def run_module(module: str, *args: str, cwd=None, check=True, timeout=600, env=None):
    """``python -m module *args`` (``env``: its whole environment), forked from a process that has imported
    mfql already (tests/commands.py)."""
    proc = run_forked(module, list(args), cwd or ROOT, timeout, env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def run_command(module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m <module> *args`` as its ``__main__`` runs it (``run_cli``), but in this process: exit code,
    stdout and stderr without an interpreter's start and imports (about 2 s each). Only for what stops before
    any work is done (``--help``, a refused environment variable): a run would change this process's state."""
    main = importlib.import_module(module).main
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_cli(main, module.rsplit(".", 1)[1], list(args))
        except SystemExit as exc:
            code = exc.code
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def train_args(out, data_dir, *extra, task=TASK, quick=QUICK) -> list[str]:
    """``python -m mfql.train`` options of a quick run of ``task`` into ``out`` (``extra`` wins)."""
    return [f"task={task}", f"out_dir={out}", f"data_dir={data_dir}", *quick, *extra]


def train(out, data_dir, *extra, check=True, env=None, **kw):
    """A quick training run in a subprocess (``train_args``; ``env``: its environment); returns the process."""
    return run_module("mfql.train", *train_args(out, data_dir, *extra, **kw), check=check, env=env)


def kill_and_resume(args: list[str], out: Path, random_kills: int, seed: int, delays=(0.5, 6.0),
                    resume_dir: Path | None = None, env=None, evaluated: int | None = None):
    """Run ``python -m mfql.train *args`` (its out_dir ``out``), SIGKILL it while a resume state is written and
    at seeded random moments (``kill_repeatedly``; ``delays``: seconds after its start, which takes no imports
    here), then run it to the end. With ``evaluated``, killed once more as soon as its eval.csv has that step,
    then its eval.csv and train.csv deleted (as Snakemake deletes a job's declared outputs before it reruns it),
    so that the last run rebuilds them from its resume state."""
    kill_repeatedly(args, resume_dir or out / "_resume", random_kills=random_kills, seed=seed, delays=delays, env=env)
    if evaluated is not None:
        def evaluated_yet():
            with contextlib.suppress(OSError):
                return any(line.split(",")[0] == str(evaluated) for line in (out / "eval.csv").read_text().splitlines())
            return False

        kill_when(start_command("mfql.train", args, ROOT, env), evaluated_yet)
        for name in ("eval.csv", "train.csv"):
            (out / name).unlink(missing_ok=True)
    return run_module("mfql.train", *args, env=env)


def snakemake(*args, cwd=ROOT, check=True, timeout=1800):
    proc = subprocess.run(["snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


# `-n auto`: one worker per core, as many as the memory holds at a worker's peak (docs/performance.md).
WORKER_PEAK_GB = 5


def pytest_xdist_auto_num_workers(config):
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return max(1, min(len(os.sched_getaffinity(0)), int(memory_gb // WORKER_PEAK_GB)))


# Fixtures built once per worker process and shared by several tests: with `pytest -n` (pyproject.toml's addopts,
# --dist loadgroup) each one's tests run in one worker, so it is built once (a SLURM cluster is also private;
# the pixel dataset renders frames).
ONE_WORKER_FIXTURES = ("quick_run", "cluster", "finished", "meanflow_cube", "visual_dir")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        for name in ONE_WORKER_FIXTURES:
            if name in item.fixturenames:
                item.add_marker(pytest.mark.xdist_group(name))
                break
    if WORKERS > 1:  # the longest first (whole pipelines, then other slow tests): short ones fill the workers' ends
        items.sort(key=lambda item: 0 if item.get_closest_marker("pipeline") else
                   1 if item.get_closest_marker("slow") else 2)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory) -> Path:
    """The reduced quick suite (CI_CONFIG) end to end and its HTML report, in a scratch working directory.
    Tests that rerun parts of it use it in place (tests/test_workflow.py); others copy it."""
    work = tmp_path_factory.mktemp("pipeline")
    common = ("--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--configfile", str(CI_CONFIG))
    snakemake(*common, "--cores", "2")
    snakemake(*common, "--report", str(work / "results" / "report.html"))
    return work


@pytest.fixture(scope="session")
def ogbench_dir(tmp_path_factory) -> Path:
    """cube-single-play-v0 rebuilt by mfql.datagen: 4 train + 1 val episodes of 100 steps."""
    out = tmp_path_factory.mktemp("data") / "ogbench"
    run_module("mfql.datagen", "dataset=cube-single-play-v0", "episodes=4", "episode_steps=100",
               f"out_dir={out}", "seed=0")
    return out


@pytest.fixture(scope="session")
def visual_dir(tmp_path_factory) -> Path:
    """visual-cube-single-play-v0 rebuilt by mfql.datagen, frames rendered with EGL: 2 train + 1 val
    episodes of 15 steps (48 frames)."""
    out = tmp_path_factory.mktemp("visual") / "ogbench"
    run_module("mfql.datagen", "dataset=visual-cube-single-play-v0", "episodes=2", "episode_steps=15",
               "val_episodes=1", f"out_dir={out}", "seed=0")
    return out


def _write_minari(dataset_id: str, env_id: str, episodes: int, steps: int, terminal_episode: int | None,
                  ref: tuple[float, float]):
    """A dataset written with minari.create_dataset_from_buffers under its real id, from real rollouts."""
    import gymnasium as gym
    import gymnasium_robotics
    import minari
    from minari.data_collector import EpisodeBuffer

    gym.register_envs(gymnasium_robotics)
    env = gym.make(env_id)
    buffers = []
    rng = np.random.default_rng(0)
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        observations, actions, rewards = [obs], [], []
        for _ in range(steps):
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, reward, _, _, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
        rewards[steps // 2] = 1.0  # a sparse success, to see the antmaze shift
        terms = [False] * steps
        if ep == terminal_episode:
            terms[-1] = True
        truncs = [False] * (steps - 1) + [not terms[-1]]
        if isinstance(observations[0], dict):
            stacked = {k: np.stack([o[k] for o in observations]) for k in observations[0]}
        else:
            stacked = np.stack(observations)
        buffers.append(EpisodeBuffer(id=ep, observations=stacked, actions=np.stack(actions),
                                     rewards=rewards, terminations=terms, truncations=truncs))
    minari.create_dataset_from_buffers(dataset_id, buffers, env=env, eval_env=env_id, algorithm_name="random",
                                       ref_min_score=ref[0], ref_max_score=ref[1])


@pytest.fixture(scope="session")
def minari_dir(tmp_path_factory) -> Path:
    from mfql.data.datasets import set_minari_root

    root = tmp_path_factory.mktemp("d4rl")
    set_minari_root(root)
    _write_minari("D4RL/antmaze/umaze-v1", "AntMaze_UMaze-v4", 3, 30, 1, (0.0, 1.0))
    _write_minari("D4RL/pen/cloned-v2", "AdroitHandPen-v1", 2, 20, None, (96.26, 3076.83))
    return root


def metric_row(info: dict, dim: int = 0) -> torch.Tensor:
    """MeanFlow-QL's update metrics in the golden file's column order (tests/fixtures/make_update_golden.py,
    written with commit 207380d's names): critic loss, BC (MFI) loss, the actor's Q-and-bound loss, total
    loss, both gradient norms, alpha, the actor's learning rate. The golden file's "actor/loss" column is
    today's actor/q_loss + actor/bound_loss (actor/loss now includes the weighted BC term, as every method's)."""
    values = [info["critic/loss"], info["actor/bc_loss"], info["actor/q_loss"] + info["actor/bound_loss"],
              info["total_loss"], info["actor/grad_norm"], info["critic/grad_norm"], info["alpha"], info["actor/lr"]]
    return torch.stack([v.detach().double() for v in values], dim=dim)


def perturb(module, scale=0.05, seed=0):
    """Give every parameter (zero-initialised ones included) a random value so g is non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def read_final(path):
    return torch.load(path, weights_only=True)


def networks(final: dict) -> list[str]:
    """The keys of a final.pt that hold a network's (or the normalisation's) tensors."""
    return [k for k, v in final.items() if isinstance(v, dict) and v and all(isinstance(t, torch.Tensor)
                                                                                for t in v.values())]


def assert_same_weights(a, b):
    assert networks(a) == networks(b) and "actor" in networks(a)
    for key in networks(a):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"


def assert_packed_weights_close(packed, alone, updates: int, lr: float = 3e-4):
    """A packed seed's weights against the same seed trained alone, within float32 round-off. vmap batches the
    seeds' matmuls (and convolutions), so gradients differ in the last bits; Adam divides by the gradient's
    running scale, which turns such a difference in a near-zero gradient into up to a learning rate (``lr``: the
    largest, the critic's 3e-4) of weight per update. So no weight is further than ``updates`` learning rates
    away, and almost every weight (99 %) is within 1e-5; another seed or batch moves nearly all of them."""
    assert networks(packed) == networks(alone) and "actor" in networks(packed)
    diffs = torch.cat([(packed[key][name] - alone[key][name]).abs().flatten()
                       for key in networks(packed) for name in alone[key]])
    assert diffs.max() <= updates * lr
    assert (diffs > 1e-5).float().mean() < 0.01


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def kill_repeatedly(args, resume_dir, random_kills, seed, delays, env=None):
    """SIGKILL ``python -m mfql.train *args`` twice while a resume state in ``resume_dir`` is being written
    (atomic_write's temporary exists), then ``random_kills`` times at seeded random moments, each time starting
    it again."""
    start = lambda: start_command("mfql.train", args, ROOT, env)  # noqa: E731

    def writing_checkpoint():
        return resume_dir.is_dir() and any(p.name.startswith(".state.pt.") for p in resume_dir.iterdir())

    assert sum(kill_when(start(), writing_checkpoint) for _ in range(2)) >= 1, \
        f"never caught a checkpoint write in progress in {resume_dir}"
    rng = random.Random(seed)
    for _ in range(random_kills):
        proc, delay = start(), rng.uniform(*delays)
        kill_when(proc, lambda t=time.time() + delay: time.time() >= t)


def kill_when(proc, condition, timeout=300):
    """SIGKILL ``proc`` as soon as ``condition()`` holds; returns whether it did (False: the run ended first)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if condition():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.0005)
    proc.wait()
    return False
