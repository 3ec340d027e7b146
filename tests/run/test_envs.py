"""The environments' measured memory table covers every task's family, and the evaluation pool fits its budget."""

from mfql.config import known_tasks
from mfql.run.envs import ENV_MB, env_family, eval_pool_size


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
