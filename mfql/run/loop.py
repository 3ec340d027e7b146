"""The step loop, one for a single run and for a packed job's seeds: resume, then per step the online
environment steps, one update (the run's own, or one vmapped update of every seed), and each run's logging,
evaluation and resume state.
"""

from __future__ import annotations

import logging

from mfql.agents.packed import PackedUpdate
from mfql.data.buffer import sample_packed
from mfql.errors import RunError
from mfql.log import Progress
from mfql.run.trainer import Run

log = logging.getLogger("mfql.train")


def start_step(runs: list[Run], statuses: list[str]) -> int:
    """Resume what can be resumed; returns the first step to run. Seeds packed together resume at the newest
    step every one of them saved; if some had no state at all, every seed starts over."""
    start = runs[0].first_step
    if "resume" in statuses and "fresh" in statuses:  # killed before every seed saved a state
        log.info("not every packed seed has a resume state: all start from the first step")
        for run, status in zip(runs, statuses):
            if status == "resume":
                run.folder.clear()
    elif "resume" in statuses:
        saved = [run.folder.saved_states() for run in runs]
        common = set.intersection(*(set(s) for s in saved))
        if not common:
            steps = ", ".join(f"seed {r.cfg.seed}: {sorted(s) or 'none'}" for r, s in zip(runs, saved))
            raise RunError(f"the packed seeds have no resume step in common ({steps}); rerun them one at a time "
                           f"(python -m mfql.train ... seed=<n> out_dir=<out_dir>/seed<n>)")
        start = max(common) + 1
        for run, states in zip(runs, saved):
            run.resume(states[start - 1])
    return start


def train(runs: list[Run], statuses: list[str], packed: bool, compile: bool = False) -> None:
    """Train ``runs`` to their last step. ``packed``: one vmapped update of every run's agent per step
    (``compile``: compiled), else the single run's own update (the plain path every packed one is tested
    against)."""
    start = start_step(runs, statuses)
    update = PackedUpdate([run.agent for run in runs], compile=compile) if packed else None
    for run in runs:
        run.begin(start)
    lead = runs[0]
    first, last, batch_size = lead.first_step, lead.last_step, lead.cfg.agent.batch_size
    bar = Progress(range(start, last + 1), total=last + 1 - first, initial=start - first, desc="train", logger=log)
    for run in runs:
        run.progress = bar
    generators, buffers = [run.rng for run in runs], [run.buffer for run in runs]
    online_pool = lead.pools.online
    for step in bar:
        if step > lead.cfg.offline_steps:  # each seed its own environment, episode and online rows
            actions = [run.online.act() for run in runs]
            for run, result in zip(runs, online_pool.step(actions)):  # stepped at once (env_workers)
                run.online.record(result)
        if update is None:
            infos = [lead.agent.update(lead.buffer.sample(batch_size, lead.rng), step, generator=lead.rng)]
        else:
            info = update.update(sample_packed(buffers, batch_size, generators), step,
                                 update.draws(batch_size, generators))
            infos = [{key: value[seed] for key, value in info.items()} for seed in range(len(runs))]
        if step == start:
            lead.ledger.mark("first update")  # compiles, when compiled
            lead.pools.open()  # after the compile (mfql.run.envpool.EnvPool)
            lead.ledger.mark("environments")
        rows = [run.after_update(step, one) for run, one in zip(runs, infos)]
        if rows[0] is not None:
            bar.set_postfix({**{short_name(k): f"{rows[0][k]:.3g}" for k in lead.agent.PROGRESS},
                             "ups": f"{rows[0]['updates_per_s']:.0f}"})
    for run in runs:
        run.finish()
    if not lead.owns_pools:
        lead.pools.close()
    log.info(lead.ledger.summary())


def short_name(metric: str) -> str:
    """critic/loss -> critic, actor/bc_loss -> bc, actor/q -> q: the progress bar's labels."""
    group, name = metric.split("/", 1)
    return group if name == "loss" else name.removesuffix("_loss")
