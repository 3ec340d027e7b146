"""The progress display's rate and time left on a scripted clock: a slow first step (compilation) and an
evaluation pause do not enter them."""

from __future__ import annotations

import logging

from mfql.log import Progress


class ScriptedClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_eta_uses_the_recent_rate_without_compile_or_evaluation_pauses(monkeypatch, caplog):
    monkeypatch.setenv("MFQL_PROGRESS_SECONDS", "0")  # a line at every step (stderr is not a TTY here)
    clock = ScriptedClock()
    bar = Progress(None, 1000, "train", logger=logging.getLogger("test.progress"), clock=clock)
    clock.now += 300.0  # the first step compiles for five minutes
    bar.update()
    assert bar.rate() is None
    for step in range(1, 500):
        clock.now += 0.5 if step < 100 else 0.25  # 2 steps/s, then 4 steps/s
        if step == 450:
            with bar.paused():  # a 120 s evaluation
                clock.now += 120.0
        with caplog.at_level(logging.INFO, logger="test.progress"):
            bar.update()
    # the last 60 s of stepping: 240 steps at 4/s; the evaluation's 120 s are not in it
    assert bar.rate() == 4.0
    assert caplog.records[-1].getMessage() == "train 500/1000 (50%) 4.0/s ETA 2m05s"  # 500 steps / 4 per s


def test_rate_window_spans_the_start_until_it_is_long_enough(monkeypatch):
    monkeypatch.setenv("MFQL_PROGRESS_SECONDS", "1000")
    clock = ScriptedClock()
    bar = Progress(None, 100, "train", clock=clock)
    clock.now += 50.0
    bar.update()
    for _ in range(10):
        clock.now += 2.0
        bar.update()
    assert bar.rate() == 0.5  # 10 steps in 20 s, the 50 s first step excluded
