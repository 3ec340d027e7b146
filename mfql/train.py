"""Offline training and offline-to-online fine-tuning of MeanFlow-QL.

    python -m mfql.train task=<task id> seed=<n> out_dir=<dir> data_dir=<dir> [offline_steps=... online_steps=...]

Writes config.yaml, meta.json, train.csv, eval.csv and final.pt into out_dir. A rolling resume state lives
in out_dir/_resume/: killing the process and rerunning the same command continues the run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from omegaconf import OmegaConf

from mfql.config import check_in_dir, check_out_dir, run_cli, train_config
from mfql.data.datasets import check_dataset
from mfql.log import setup_logging
from mfql.run import loop
from mfql.run.devices import check_cpp_compiler, configure_cpu, resolve_device, set_matmul_precision
from mfql.run.folder import RunFolder, run_key
from mfql.run.profiling import MemoryLedger
from mfql.run.trainer import Pools, Run, SharedData, compile_choice

log = logging.getLogger("mfql.train")


class Claim(NamedTuple):
    """A seed's run that this process holds and will train: its config, run key, locked folder and status."""
    cfg: object
    key: str
    folder: RunFolder
    status: str  # "fresh" or "resume"


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
        claimed.append(Claim(run_cfg, key, folder, status))
    if not claimed:
        return
    configure_cpu(cfg.threads, cfg.flush_denormal)
    set_matmul_precision(cfg.matmul_precision)
    packed = cfg.seeds is not None
    compile = compile_choice(cfg, device)
    runs, ledger = [], MemoryLedger()
    try:  # loads and checks the data: may still refuse it
        if not packed:
            runs.append(Run(cfg, claimed[0].key, data_sha256, device, claimed[0].folder, ledger=ledger))
        else:
            shared = SharedData.load(cfg, device)
            ledger.mark("dataset")
            pools = Pools.make([c.cfg for c in claimed], shared.minari_dataset)
            runs = [Run(c.cfg, c.key, data_sha256, device, c.folder, shared, pools, index, compile_agent=False,
                        ledger=ledger) for index, c in enumerate(claimed)]
    except BaseException:
        for claim in claimed:
            claim.folder.abandon()
        raise
    statuses = [c.status for c in claimed]
    if packed:
        log.info("packed: seeds %s of %s in one process (%s)", [r.cfg.seed for r in runs], cfg.task,
                 ", ".join(f"seed {r.cfg.seed}: {st}" for r, st in zip(runs, statuses)))
    loop.train(runs, statuses, packed, compile)


def seed_config(cfg, seed: int, out: Path):
    """The config of one seed of a packed job: exactly the config of ``seed=<n> out_dir=<out>/seed<n>``."""
    one = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    one.seed, one.seeds, one.out_dir = seed, None, str(out / f"seed{seed}")
    return one


if __name__ == "__main__":
    run_cli(main, "train")
