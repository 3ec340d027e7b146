"""Environments stepped in worker processes give what stepping them here gives."""

import os

import numpy as np
import pytest

from mfql.run.envpool import EnvPool, EnvSpec
from tests.conftest import TASK


def play(pool, seeds, steps):
    rng = np.random.default_rng(0)
    observations = pool.reset(list(enumerate(seeds)))
    trace = [np.stack(observations)]
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (len(seeds), 5)).astype(np.float32)
        results = pool.step(list(enumerate(actions)))
        trace.append(np.stack([r[0] for r in results]))
        assert all(isinstance(r[1], float) and r[4] in (0.0, 1.0, False, True) for r in results)
    return np.stack(trace)


@pytest.mark.slow
def test_worker_processes_step_the_same_episodes_as_this_process():
    spec = EnvSpec(TASK, "ogbench", "unused", max_steps=30)
    seeds = [11, 12, 13]
    here = EnvPool(spec, 3, workers=0)
    workers = EnvPool(spec, 3, workers=2)  # environments 0 and 2 in worker 0, 1 in worker 1
    try:
        assert not workers.procs and here.envs is None  # nothing made before the first use
        workers.open()
        pids = [proc.pid for proc in workers.procs]
        assert len(pids) == 2 and os.getpid() not in pids and all(proc.is_alive() for proc in workers.procs)
        a, b = play(here, seeds, 20), play(workers, seeds, 20)
        assert a.shape == (21, 3, 28) and a.dtype == np.float32
        assert np.array_equal(a, b)  # float32 observations identical, in order
        assert not np.array_equal(a[:, 0], a[:, 1])  # seeds differ
        # a subset of the environments, out of order: results come back in the order asked
        part = workers.step([(2, np.zeros(5, np.float32)), (0, np.zeros(5, np.float32))])
        here_part = here.step([(2, np.zeros(5, np.float32)), (0, np.zeros(5, np.float32))])
        assert all(np.array_equal(p[0], q[0]) for p, q in zip(part, here_part))
    finally:
        workers.close()
        here.close()
    assert all(not proc.is_alive() for proc in workers.procs)


@pytest.mark.slow
def test_workers_exit_when_their_job_is_killed():
    import signal
    import subprocess
    import sys
    import time

    code = ("import time\nfrom mfql.run.envpool import EnvPool, EnvSpec\n"
            f"pool = EnvPool(EnvSpec({TASK!r}, 'ogbench', 'unused', 10), 2, workers=2)\n"
            "pool.reset([(0, 1), (1, 2)])\nprint(*[p.pid for p in pool.procs], flush=True)\ntime.sleep(300)\n")
    job = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in job.stdout.readline().split()]
    assert len(workers) == 2
    job.send_signal(signal.SIGKILL)
    job.wait()

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.time() + 30
    while time.time() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)  # each saw its pipe close and exited


@pytest.mark.slow
def test_a_worker_that_dies_mid_episode_stops_the_job_with_a_line_naming_it():
    import signal

    import pytest

    pool = EnvPool(EnvSpec(TASK, "ogbench", "unused", max_steps=10), 2, workers=2)
    try:
        pool.reset([(0, 1), (1, 2)])
        victim = pool.procs[1]
        os.kill(victim.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match=rf"environment worker mfql-env-1 \(pid {victim.pid}\) exited with "
                                               r"code -9 in the middle of an episode"):
            pool.step([(0, np.zeros(5, np.float32)), (1, np.zeros(5, np.float32))])
    finally:
        pool.close()
    assert not any(proc.is_alive() for proc in pool.procs)
