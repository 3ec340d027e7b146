"""Bad input, table-driven: every command refuses it with exit code 2 and one line naming the value and what
would be valid, and leaves the run folder it was pointed at exactly as it was (or never creates one)."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from tests.commands import COMMANDS
from tests.conftest import QUICK, TASK, run_command, run_module, train_args

TINY = [*QUICK, "env_max_steps=5", "log_interval=5", "offline_steps=5", "eval_interval=5"]


def snapshot(folder):
    """Every file under a folder with its bytes (None if the folder does not exist)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, ogbench_dir):
    """A finished small run and its data folder."""
    root = tmp_path_factory.mktemp("finished")
    data = root / "data"
    shutil.copytree(ogbench_dir.parent, data)
    run = root / "run"
    run_module("mfql.train", *train_args(run, data, "seed=0", quick=TINY))
    return run, data


def damaged_data(root, ogbench_dir, how):
    """A copy of the regenerated cube-single data with one kind of damage in the training file."""
    data = root / f"data-{how}"
    shutil.copytree(ogbench_dir.parent, data)
    path = data / "ogbench" / "cube-single-play-v0.npz"
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:2000])
        return data
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if how == "keyless":
        del arrays["actions"]
    elif how == "short":
        arrays["actions"] = arrays["actions"][:-50]
    elif how == "nan":
        arrays["observations"][7, 3] = np.nan
    elif how == "wide":
        arrays["actions"] = np.concatenate([arrays["actions"], arrays["actions"][:, :1]], axis=1)
    np.savez_compressed(path, **arrays)
    return data


# (command, arguments, the text the one error line must contain). {run}: the finished run's folder, {data}: its
# data, {file}: an ordinary file, {bad:<how>}: damaged data, {new}: a folder that must not come to exist.
CASES = [
    ("mfql.train", ["task=cube-single-play-singletask-task9-v0"],
     "task='cube-single-play-singletask-task9-v0' is not a known task"),
    ("mfql.train", ["task=../model/small"], "task='../model/small' is not a known task"),
    ("mfql.train", ["learning_rate=3"], "unknown or malformed option 'learning_rate=3'"),
    ("mfql.train", ["parity=fast"], "parity='fast' is not valid (valid: official, corrected)"),
    ("mfql.train", ["model=big"], "model='big' is not valid (valid: paper, small)"),
    ("mfql.train", ["agent.alpha=abc"], "agent.alpha='abc' is not valid (valid: a finite number)"),
    ("mfql.train", ["agent.alpha=nan"], "agent.alpha=nan is not valid (valid: a finite number)"),
    ("mfql.train", ["agent.alpha=-1"], "agent.alpha=-1 is not valid (valid: a number > 0)"),
    ("mfql.train", ["agent.alpha_bounds=[a,b]"], "agent.alpha_bounds=['a', 'b'] is not valid"),
    ("mfql.train", ["agent.dynamic_alpha=maybe"], "agent.dynamic_alpha='maybe' is not valid (valid: true or false)"),
    ("mfql.train", ["agent.lr=1e38"], "agent.lr=1e+38 is not valid (valid: a number in (0, 1])"),
    ("mfql.train", ["agent.num_candidates=0"], "agent.num_candidates=0 is not valid (valid: an integer >= 1)"),
    ("mfql.train", ["offline_steps=-1"], "offline_steps=-1 is not valid (valid: an integer >= 0)"),
    ("mfql.train", ["eval_interval=abc"], "eval_interval='abc' is not valid (valid: an integer)"),
    ("mfql.train", ["env_max_steps=0"], "env_max_steps=0 is not valid (valid: null or an integer >= 1)"),
    ("mfql.train", ["threads=0"], "threads=0 is not valid (valid: null or an integer >= 1)"),
    ("mfql.train", ["flush_denormal=maybe"], "flush_denormal='maybe' is not valid (valid: true or false)"),
    ("mfql.evaluate", ["checkpoint={run}/final.pt", "flush_denormal=1"],
     "flush_denormal=1 is not valid (valid: true or false)"),
    ("mfql.train", ["device=tpu"], "device='tpu' is not valid (valid: auto, cpu, cuda, cuda:N)"),
    ("mfql.train", ["device=cuda"], "device='cuda' but CUDA is not usable here"),
    ("mfql.train", ["tracker=mlflow"], "tracker='mlflow' is not valid (valid: none, tensorboard, wandb)"),
    ("mfql.train", ["task=visual-cube-single-play-singletask-task1-v0", "online_steps=5"],
     "online_steps=5 is not valid for the pixel task visual-cube-single-play-singletask-task1-v0 (valid: 0;"),
    ("mfql.train", ["task=cube-single-play-singletask-task1-v0", "agent.encoder=impala_small"],
     "agent.encoder=impala_small is not valid for task cube-single-play-singletask-task1-v0 (valid: null)"),
    ("mfql.train", ["task=visual-cube-single-play-singletask-task1-v0", "agent.encoder=resnet"],
     "agent.encoder='resnet' is not valid (valid: null or one of impala, impala_small"),
    ("mfql.train", ["task=visual-cube-single-play-singletask-task1-v0", "p_aug=2"],
     "p_aug=2 is not valid (valid: null or a number in [0, 1])"),
    ("mfql.train", ["out_dir={file}"], "is a file (valid: a folder, new or existing)"),
    ("mfql.train", ["out_dir={file}/sub"], "which is a file (valid: a folder path)"),
    ("mfql.train", ["data_dir={file}"], "is a file (valid: a folder)"),
    ("mfql.train", ["seed=1"], "holds another run task=cube-single-play-singletask-task1-v0 seed=0"),
    ("mfql.train", ["agent.alpha=7"], "choose another out_dir, or pass overwrite=true to replace it"),
    ("mfql.train", ["out_dir={new}", "data_dir={bad:truncated}"], "cannot be read (BadZipFile"),
    ("mfql.train", ["out_dir={new}", "data_dir={bad:keyless}"], "(KeyError: actions is not a file in the archive)"),
    ("mfql.train", ["out_dir={new}", "data_dir={bad:short}"], "cannot be read"),
    ("mfql.train", ["out_dir={new}", "data_dir={bad:nan}"],
     "'observations' has 1 non-finite value(s) (first at row 7)"),
    ("mfql.train", ["out_dir={new}", "data_dir={bad:wide}"], "'actions' are 6 wide, the environment's actions 5"),
    ("mfql.evaluate", ["checkpoint={run}/final.pt", "episodes=abc"], "episodes='abc' is not valid (valid: an integer)"),
    ("mfql.evaluate", ["checkpoint={run}/final.pt", "episodes=0"], "episodes=0 is not valid (valid: an integer >= 1)"),
    ("mfql.evaluate", ["checkpoint={run}/missing.pt"], "does not exist (valid: a final.pt written by mfql.train)"),
    ("mfql.restore", ["run_dir={new}"], "holds no final.pt (valid: the folder of a finished run of mfql.train)"),
    ("mfql.restore", ["run_dir={foreign}"], "does not match the SHA-256 recorded in its run's meta.json"),
    ("mfql.restore", ["run_dir={run}", "overwrite=true"], "unknown or malformed option 'overwrite=true'"),
    ("mfql.evaluate", ["checkpoint={truncated_final}"], "is not a readable mfql checkpoint"),
    ("mfql.evaluate", ["checkpoint={foreign_final}"], "does not match the SHA-256 recorded in its run's meta.json"),
    ("mfql.datagen", ["dataset=cube-sixfold-play-v0", "out_dir={new}"],
     "dataset='cube-sixfold-play-v0' cannot be regenerated"),
    ("mfql.datagen", ["dataset=cube-single-play-v0", "val_episodes=-1", "out_dir={new}"],
     "val_episodes=-1 is not valid"),
    ("mfql.datagen", ["dataset=cube-single-play-v0", "episodes=100000", "out_dir={file}"],
     "is a file (valid: a folder"),
    ("mfql.toy", ["out_dir={file}", "steps=100000000"], "is a file (valid: a folder, new or existing)"),
    ("mfql.toy", ["out_dir={new}", "steps=0"], "steps=0 is not valid (valid: an integer >= 1)"),
    ("mfql.toy", ["out_dir={new}", "model=big"], "model='big' is not valid (valid: paper, small)"),
    ("mfql.fetch", ["dataset=../../etc/passwd", "data_dir={new}"], "is not an OGBench dataset name"),
    ("mfql.fetch", ["dataset=D4RL/foo/bar-v0", "data_dir={new}"], "is not a dataset of the paper"),
    ("mfql.bench", ["updates=0"], "updates=0 is not valid (valid: an integer >= 1)"),
    ("mfql.bench", ["eval_env_workers=[0]"], "eval_env_workers=[0] is not valid"),
    ("mfql.bench", ["sections=[paper,speed]"], "sections=['paper', 'speed'] is not valid (valid: null for all, or a "),
    ("mfql.bench", ["efficiency_model=huge"], "efficiency_model='huge' is not valid (valid: paper, small)"),
    ("mfql.bench", ["out={run}"], "is a folder (valid: a file path, new or existing)"),
    ("mfql.bench", ["out={file}/bench.json"], "which is a file (valid: a folder path)"),
    ("mfql.train", ["out_dir={new}", "env_workers=-2"], "env_workers=-2 is not valid (valid: an integer >= 0)"),
    ("mfql.evaluate", ["checkpoint={run}/final.pt", "env_workers=x"], "env_workers='x' is not valid"),
    ("mfql.evaluate", ["checkpoint={run}/final.pt", "out={run}"], "is a folder (valid: a file path, new or existing)"),
    ("mfql.evaluate", ["checkpoint={run}/final.pt", "out={run}/final.pt"], "would overwrite a file of the run"),
    ("mfql.evaluate", ["checkpoint={run}/final.pt", "out={run}/eval.csv"], "would overwrite a file of the run"),
    ("mfql.evaluate", ["checkpoint={run}/final.pt", "out={file}/eval.json"], "which is a file (valid: a folder path)"),
    # every numeric hyperparameter has a range (mfql/ranges.py), for both methods
    ("mfql.train", ["agent.tau=5"], "agent.tau=5 is not valid (valid: a number in (0, 1])"),
    ("mfql.train", ["agent.alpha_bounds=[10,0.1]"], "agent.alpha_bounds=[10, 0.1] is not valid (valid: [lo, hi] "
                                                    "with 0 < lo <= 1 <= hi"),
    ("mfql.train", ["agent.adaptive_gamma=-3"], "agent.adaptive_gamma=-3 is not valid (valid: a number in [0, 1])"),
    ("mfql.train", ["agent.lr_warmup_frac=5"], "agent.lr_warmup_frac=5 is not valid (valid: a number in [0, 1])"),
    ("mfql.train", ["agent.mlp_actor_hidden_dims=[0]"],
     "agent.mlp_actor_hidden_dims=[0] is not valid (valid: a non-empty list of integers >= 1"),
    ("mfql.train", ["agent.mlp_actor_hidden_dims=[-5]"], "agent.mlp_actor_hidden_dims=[-5] is not valid"),
    ("mfql.train", ["method=fql", "agent.actor_hidden_dims=[1.5]"], "agent.actor_hidden_dims=[1.5] is not valid"),
    ("mfql.train", ["method=fql", "agent.flow_steps=0"], "agent.flow_steps=0 is not valid (valid: an integer >= 1)"),
    ("mfql.train", ["method=fql", "agent.lr=-1"], "agent.lr=-1 is not valid (valid: a number in (0, 1])"),
    ("mfql.train", ["method=fql", "agent.q_agg=max"], "agent.q_agg='max' is not valid (valid: mean, min)"),
    ("mfql.train", ["method=fql", "agent.num_candidates=3"], "unknown or malformed option 'agent.num_candidates=3'"),
    ("mfql.train", ["seed=4294967296"], "seed=4294967296 is not valid (valid: an integer in [0, 4294967295])"),
    ("mfql.train", ["seeds=[0,1]"], "seed=0 is not valid together with seeds=[0, 1] (valid: one of the two"),
    ("mfql.train", ["frame_stack=3"], "frame_stack=3 is not valid for the state task"),
    ("mfql.train", ["+foo=1"], "argument '+foo=1': adding (+key) or deleting (~key) options is not supported"),
    ("mfql.train", ["~agent.alpha=10.0"], "argument '~agent.alpha=10.0': adding (+key) or deleting (~key)"),
    ("mfql.train", ["~agent="], "argument '~agent=': adding (+key) or deleting (~key)"),
    ("mfql.train", ["out_dir="], "out_dir='' is empty (valid: a folder path, new or existing)"),
    ("mfql.train", ["out_dir=/sys/mfql-test"], "out_dir='/sys/mfql-test' is not writable: '/sys' refuses new files"),
    ("mfql.train", ["device=cuda:abc"], "device='cuda:abc' is not valid (valid: auto, cpu, cuda, cuda:N)"),
    ("mfql.toy", ["out_dir={new}", "samples=1"], "samples=1 is not valid (valid: an integer >= 2)"),
    ("mfql.toy", ["out_dir={new}", "seed=4294967296"], "seed=4294967296 is not valid (valid: an integer in [0, "
                                                       "4294967295])"),
    ("mfql.toy", ["out_dir={new}", "mlp_hidden_dims=[0]"], "mlp_hidden_dims=[0] is not valid"),
    ("mfql.datagen", ["dataset=cube-single-play-v0", "seed=2147483648", "out_dir={new}"],
     "seed=2147483648 is not valid (valid: an integer in [0, 2147483647]"),
    ("mfql.bench", ["compile=maybe"], "compile='maybe' is not valid (valid: null, true, false)"),
    ("mfql.bench", ["device=cuda:x"], "device='cuda:x' is not valid"),
]


@pytest.mark.slow
@pytest.mark.parametrize("module, args, needle", CASES, ids=[f"{m.split('.')[1]}:{' '.join(a)}" for m, a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(module, args, needle, finished, ogbench_dir, tmp_path):
    run, data = finished
    before = snapshot(run)
    plain_file = tmp_path / "plain.txt"
    plain_file.write_text("not a folder\n")
    truncated_final = tmp_path / "truncated" / "final.pt"
    truncated_final.parent.mkdir()
    truncated_final.write_bytes((run / "final.pt").read_bytes()[:5000])
    foreign = tmp_path / "foreign"  # another run's final.pt copied over this run's: meta.json's SHA-256 differs
    shutil.copytree(run, foreign)
    with zipfile.ZipFile(foreign / "final.pt", "a") as archive:
        archive.writestr("extra", b"tampered")
    new = tmp_path / "new"

    def fill(arg):
        if "{bad:" in arg:
            how = arg.split("{bad:")[1].rstrip("}")
            return arg.split("{")[0] + str(damaged_data(tmp_path, ogbench_dir, how))
        return arg.format(run=run, data=data, file=plain_file, new=new, truncated_final=truncated_final,
                          foreign=foreign, foreign_final=foreign / "final.pt")

    filled = [fill(a) for a in args]
    if module == "mfql.train":
        base = {"task": TASK, "seed": "0", "out_dir": str(run), "data_dir": str(data)}
        base.update({k: v for k, v in (q.split("=", 1) for q in TINY)})
        base.update({a.split("=", 1)[0]: a.split("=", 1)[1] for a in filled})
        filled = [f"{k}={v}" for k, v in base.items()]
    proc = run_module(module, *filled, check=False, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr[-2000:]
    assert snapshot(run) == before, "the finished run's folder changed"
    assert not new.exists(), f"{new} was created"


@pytest.mark.parametrize("name, value, needle", [
    ("MFQL_PROGRESS_SECONDS", "abc", "environment variable MFQL_PROGRESS_SECONDS='abc' is not valid (valid: seconds "
                                     "between progress lines, a number >= 0)"),
    ("SLURM_CPUS_PER_TASK", "four", "environment variable SLURM_CPUS_PER_TASK='four' is not valid (valid: an "
                                    "integer >= 1;"),
])
def test_a_malformed_environment_variable_is_named_in_one_line(name, value, needle, ogbench_dir, tmp_path,
                                                              monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "kept.txt").write_text("a file of the folder the command was pointed at")
    before = snapshot(run)
    monkeypatch.setenv(name, value)
    proc = run_command("mfql.train", *train_args(run, ogbench_dir.parent, quick=TINY))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {needle}"), proc.stderr
    assert snapshot(run) == before and proc.stdout == ""


def test_train_help_lists_every_range():
    from mfql.ranges import TRAIN_RANGES

    text = run_command("mfql.train", "--help").stdout
    assert all(f"  {key} " in text for key in TRAIN_RANGES)


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_has_help(module):
    proc = run_command(module, "--help")
    assert proc.returncode == 0 and f"python -m {module}" in proc.stdout and "Options (key=value)" in proc.stdout
    assert proc.stderr == ""
