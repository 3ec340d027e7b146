"""``python -m <module> args`` for the tests, without paying for a new interpreter's imports each time.

A command runs in a process forked from a server that has already imported torch and mfql's commands
(multiprocessing's forkserver: the server is a fresh interpreter that imports and never computes, so no
thread pool is forked). The child then does what ``python -m`` does: it runs the module's code as
``__main__`` with ``sys.argv`` set, in the given working directory and environment, its stdout and stderr
at the file-descriptor level captured, so that logging, warnings and exit codes are the command's own; the
imports a new interpreter would do are done once. What differs from a new interpreter: what the preloaded
modules do when imported ran in the server, with its environment (OpenMP reads OMP_NUM_THREADS when torch
loads; ``MFQL_METHODS`` is read again in the child): a test of that starts a new interpreter itself.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# mfql's commands (`python -m <command>`): the server imports them, and every one is tested for --help
COMMANDS = ["mfql.train", "mfql.evaluate", "mfql.datagen", "mfql.fetch", "mfql.toy", "mfql.bench", "mfql.restore"]
PRELOAD = ["torch", *COMMANDS]
_context = None


def _server():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _as_main(module: str, args: list[str], cwd: str, environ: dict, stdout: str, stderr: str) -> None:
    """The forked child: ``python -m module *args`` from here on; leaves with the command's exit code."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environ)
    from mfql.agents import load_plugins

    load_plugins()  # what importing mfql does with this environment (the server imported it with its own)
    for fd, path in ((1, stdout), (2, stderr)):
        handle = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    sys.argv = [module, *args]
    sys.modules.pop(module, None)  # as in a new interpreter: the module is __main__, not imported by name
    code = 0
    try:
        import runpy

        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # an uncaught exception: its traceback on stderr and exit 1, as the interpreter does
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Started:
    """A command started by ``start``: what the tests use of ``subprocess.Popen``."""

    def __init__(self, process):
        self.process, self.pid = process, process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int | None:
        self.process.join(timeout)
        return self.process.exitcode


def start(module: str, args: list[str], cwd: Path, env: dict | None = None, stdout: str = os.devnull,
          stderr: str = os.devnull) -> Started:
    """``python -m module *args`` started in ``cwd`` with the environment ``env`` (default: this process's)."""
    environ = dict(os.environ if env is None else env)
    child = _server().Process(target=_as_main, args=(module, list(args), str(cwd), environ, stdout, stderr))
    child.start()
    return Started(child)


def run_forked(module: str, args: list[str], cwd: Path, timeout: float, env: dict | None = None
               ) -> subprocess.CompletedProcess:
    """``python -m module *args`` run to its end; text stdout and stderr."""
    with tempfile.TemporaryDirectory(prefix="mfql-command-") as folder:
        stdout, stderr = (os.path.join(folder, name) for name in ("stdout", "stderr"))
        for path in (stdout, stderr):
            open(path, "w").close()
        child = start(module, args, cwd, env, stdout, stderr).process
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired([module, *args], timeout)
        with open(stdout) as out, open(stderr) as err:
            return subprocess.CompletedProcess([sys.executable, "-m", module, *args], child.exitcode, out.read(),
                                               err.read())
