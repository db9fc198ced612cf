"""OS process helpers for supervisors: children that cannot outlive their parent."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time

__all__ = ["die_with_parent", "terminate"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (use as `preexec_fn`).

    A supervisor killed with SIGKILL cannot stop its children; the kernel does it instead,
    so nothing is left behind. Elsewhere this is a no-op.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def terminate(*processes: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float) -> None:
    """Stop child processes as Ctrl-C or an orchestrator would: SIGTERM to all of them at
    once, up to `timeout` seconds in all for them to exit, then SIGKILL for the rest."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
