"""Environments stepped together, in this process or spread over worker processes (``env_workers``).

The agent acts for all running environments at once; the pool then steps each with its action. With
``workers > 0`` environment ``i`` lives in worker ``i % workers`` and the workers step their environments
in parallel (MuJoCo holds the GIL, so threads would not help). Each environment is reset with an explicit
seed, so results do not depend on the number of workers.

A worker rebuilds its environments from an ``EnvSpec`` (names and paths, nothing large is pickled) and exits
when its pipe closes, so a killed training job leaves no worker behind.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import numpy as np

from mfql.data.datasets import flatten_obs
from mfql.run.envs import make_env


@dataclass(frozen=True)
class EnvSpec:
    task: str
    suite: str
    data_dir: str
    max_steps: int | None = None
    frame_stack: int | None = None
    protocol: str | None = None  # D4RL tasks: d4rl | minari (mfql/run/protocol.py)

    def make(self, minari_dataset=None):
        if self.suite != "ogbench" and minari_dataset is None:
            from mfql.data.datasets import minari_dataset_of

            minari_dataset = minari_dataset_of(self.task, self.data_dir, verify=False)  # checked by the job
        return make_env(self.task, self.suite, minari_dataset, self.max_steps, self.frame_stack, self.protocol)


def step_env(env, action) -> tuple:
    """(observation: float32, or uint8 frames; reward, terminated, truncated, success or None): all a caller
    uses of a step."""
    obs, reward, terminated, truncated, info = env.step(action)
    return flatten_obs(obs), float(reward), bool(terminated), bool(truncated), info.get("success")


def reset_env(env, seed: int) -> np.ndarray:
    return flatten_obs(env.reset(seed=seed)[0])


def _worker(conn, spec: EnvSpec, count: int) -> None:
    envs = [spec.make() for _ in range(count)]
    try:
        while True:
            command, items = conn.recv()
            if command == "reset":
                conn.send([reset_env(envs[j], seed) for j, seed in items])
            elif command == "step":
                conn.send([step_env(envs[j], action) for j, action in items])
            else:
                break
    except (EOFError, KeyboardInterrupt):  # the job ended or was killed: nothing left to serve
        pass
    finally:
        for env in envs:
            env.close()


class EnvPool:
    """``count`` environments of one task. ``reset`` and ``step`` take ``(index, seed or action)`` pairs and
    return one result per pair, in order. Nothing is made before ``open`` or the first reset: a training job
    makes its environments after its first update, so that compiling it (a C++ compiler's or Triton's
    processes) does not add its passing memory to theirs."""

    def __init__(self, spec: EnvSpec, count: int, workers: int = 0, minari_dataset=None):
        self.spec, self.count, self.workers = spec, count, min(workers, count)
        self.minari_dataset = minari_dataset
        self.envs, self.conns, self.procs = None, [], []

    @property
    def opened(self) -> bool:
        return self.envs is not None or bool(self.procs)

    def open(self) -> None:
        """Make the environments here, or start the worker processes that make them; once."""
        if self.opened:
            return
        if self.workers == 0:
            self.envs = [self.spec.make(self.minari_dataset) for _ in range(self.count)]
            return
        context = mp.get_context("spawn")  # no fork of a process that runs torch threads
        for w in range(self.workers):
            parent, child = context.Pipe()
            proc = context.Process(target=_worker, args=(child, self.spec, len(range(w, self.count, self.workers))),
                                   daemon=True, name=f"mfql-env-{w}")
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    @classmethod
    def of(cls, envs: list) -> EnvPool:
        """An in-process pool of environments already made."""
        pool = cls.__new__(cls)
        pool.spec, pool.count, pool.workers, pool.envs, pool.conns, pool.procs = None, len(envs), 0, list(envs), [], []
        return pool

    def __len__(self) -> int:
        return self.count

    @property
    def d4rl_task(self) -> str | None:
        """The task whose episodes are scored with D4RL's reference scores (protocol d4rl), if any."""
        return self.spec.task if self.spec is not None and self.spec.protocol == "d4rl" else None

    def _call(self, command: str, items: list[tuple[int, object]]) -> list:
        self.open()
        if self.workers == 0:
            run = reset_env if command == "reset" else step_env
            return [run(self.envs[i], value) for i, value in items]
        per_worker = [[] for _ in range(self.workers)]
        for position, (i, value) in enumerate(items):
            per_worker[i % self.workers].append((position, i // self.workers, value))
        busy = [w for w in range(self.workers) if per_worker[w]]
        try:
            for w in busy:  # send to every worker first, so that they all step at once
                self.conns[w].send((command, [(j, value) for _, j, value in per_worker[w]]))
            results = [None] * len(items)
            for w in busy:
                for (position, _, _), result in zip(per_worker[w], self.conns[w].recv()):
                    results[position] = result
        except (EOFError, OSError):  # a pipe closed at its other end: a worker is gone
            raise self._gone() from None
        return results

    def _gone(self) -> RuntimeError:
        """The error that names the first worker that exited (its traceback, if it raised, is above)."""
        for proc in self.procs:
            proc.join(timeout=0.5)  # one that is exiting: its exit code
            if proc.exitcode is not None:
                return RuntimeError(f"environment worker {proc.name} (pid {proc.pid}) exited with code "
                                    f"{proc.exitcode} in the middle of an episode")
        return RuntimeError("an environment worker's pipe closed in the middle of an episode")

    def reset(self, items: list[tuple[int, int]]) -> list[np.ndarray]:
        return self._call("reset", items)

    def step(self, items: list[tuple[int, np.ndarray]]) -> list[tuple]:
        return self._call("step", items)

    def env(self, i: int):
        """Environment ``i`` itself (in-process pools only)."""
        self.open()
        return self.envs[i]

    def close(self) -> None:
        if self.workers == 0:
            for env in self.envs or []:
                env.close()
            return
        for conn, proc in zip(self.conns, self.procs):
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        self.workers, self.envs = 0, []
