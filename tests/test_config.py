"""The run configuration on its own (no subprocess): how the command line, the task file and the method's own
per-task values combine, and what the run key depends on."""

from __future__ import annotations

import pytest

from mfql.config import group_choices, train_config
from mfql.errors import ConfigError
from mfql.run.folder import key_config, run_key
from tests.conftest import TASK

BASE = [f"task={TASK}", "out_dir=/tmp/x", "data_dir=/tmp/d"]


def test_the_task_file_sets_each_methods_own_values_and_the_command_line_wins():
    mfql = train_config(BASE)
    fql = train_config([*BASE, "method=fql"])
    assert (mfql.agent.alpha, mfql.agent.discount) == (120, 0.995)  # the task file's mfql: section
    assert (fql.agent.alpha, fql.agent.discount) == (300, 0.99)  # its fql: section (FQL's README flags)
    assert train_config([*BASE, "method=fql", "agent.alpha=7"]).agent.alpha == 7
    assert mfql.offline_steps == 1_000_000 and train_config([*BASE, "offline_steps=5"]).offline_steps == 5
    assert (mfql.suite, mfql.dataset) == ("ogbench", "cube-single-play-v0")


def test_offline_to_online_takes_the_tasks_o2o_values():
    o2o = train_config(["task=antmaze-umaze-v2", "out_dir=/tmp/x", "data_dir=/tmp/d", "online_steps=10"])
    assert o2o.agent.alpha == 100 and o2o.eval_protocol == "d4rl"


@pytest.mark.parametrize("args, needle", [
    (["method=ppo"], f"method='ppo' is not valid (valid: {', '.join(group_choices('method'))})"),
    (["seed=1", "seeds=[0,1]"], "seed=1 is not valid together with seeds=[0, 1]"),
    (["seeds=[0,0]"], "seeds=[0, 0] is not valid"),
    (["frame_stack=3"], "frame_stack=3 is not valid for the state task"),
    (["eval_protocol=d4rl"], "eval_protocol='d4rl' is not valid for task"),
    (["device=gpu"], "device='gpu' is not valid (valid: auto, cpu, cuda, cuda:N)"),
])
def test_bad_values_are_named_with_what_would_be_valid(args, needle):
    with pytest.raises(ConfigError) as info:
        train_config([*BASE, *args])
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_the_run_key_ignores_where_files_go_and_how_the_job_runs_but_not_what_it_computes():
    key = run_key(train_config([*BASE, "seed=0"]), "sha")
    assert run_key(train_config([*BASE, "seed=0", "out_dir=/elsewhere", "threads=2", "device=cpu"]), "sha") == key
    assert run_key(train_config([*BASE, "seed=1"]), "sha") != key
    assert run_key(train_config([*BASE, "seed=0", "agent.alpha=3"]), "sha") != key
    assert run_key(train_config([*BASE, "seed=0"]), "other data") != key
    assert run_key(train_config([*BASE, "seed=0", "method=fql"]), "sha") != key
    assert "out_dir" not in key_config(train_config(BASE))
