"""The environments' measured memory table covers every task's family, and the evaluation pool fits its budget;
OGBench environments are made without gymnasium's passive checker, and their episodes are those of ogbench's own
make (the checker only warns, but it resets and renders a pixel environment once more)."""

import numpy as np
import ogbench
import pytest

from mfql.config import known_tasks
from mfql.run.envs import ENV_MB, env_family, eval_pool_size, make_env


def test_every_task_has_a_measured_environment_footprint():
    assert {env_family(task) for task in known_tasks()} == set(ENV_MB)
    assert env_family("visual-scene-play-singletask-task1-v0") == "pixels"
    assert env_family("antmaze-large-diverse-v2") == env_family("humanoidmaze-medium-navigate-singletask-task1-v0")


def test_the_evaluation_pool_fits_its_memory_budget():
    cube, pixels, maze = ("cube-single-play-singletask-task1-v0", "visual-cube-single-play-singletask-task1-v0",
                          "antmaze-large-navigate-singletask-task1-v0")
    assert eval_pool_size(cube, 20, 50, 2000) == 2000 // ENV_MB["manipulation"]  # the budget binds
    assert eval_pool_size(cube, 20, 50, 2000, online_envs=3) == 2000 // ENV_MB["manipulation"] - 3
    assert eval_pool_size(maze, 20, 50, 2000) == 20  # the episodes bind
    assert eval_pool_size(maze, 80, 50, 2000) == 50  # eval_envs binds
    assert eval_pool_size(pixels, 50, 50, 100) == 1  # at least one, whatever the budget
    assert eval_pool_size(cube, 0, 50, 2000) == 0  # no evaluation, no environment


def episodes(env, seeds=(3, 4), steps=4) -> list[np.ndarray]:
    """Every observation, reward and success of a few seeded episodes with seeded random actions."""
    out = []
    for seed in seeds:
        out.append(np.asarray(env.reset(seed=seed)[0]))
        rng = np.random.default_rng(seed)
        for _ in range(steps):
            ob, reward, _, _, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            out += [np.asarray(ob), np.array([reward, info.get("success", 0)], dtype=np.float64)]
    return out


def wrappers(env) -> list[str]:
    names = []
    while hasattr(env, "env"):
        names.append(type(env).__name__)
        env = env.env
    return names


@pytest.mark.parametrize("task", [
    "cube-single-play-singletask-task2-v0",
    pytest.param("visual-cube-single-play-singletask-task1-v0", marks=pytest.mark.slow),  # renders with EGL
])
def test_episodes_equal_those_of_ogbench_own_environment(task):
    ours, theirs = make_env(task, "ogbench"), ogbench.make_env_and_datasets(task, env_only=True, success_timing="post")
    try:
        assert "PassiveEnvChecker" not in wrappers(ours) and "PassiveEnvChecker" in wrappers(theirs)
        a, b = episodes(ours), episodes(theirs)
        assert len(a) == len(b) == 18
        assert all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))
    finally:
        ours.close()
        theirs.close()
