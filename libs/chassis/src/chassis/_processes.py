"""OS process helpers for supervisors: children that cannot outlive their parent."""

from __future__ import annotations

import ctypes
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (use as `preexec_fn`).

    A supervisor killed with SIGKILL cannot stop its children; the kernel does it instead,
    so nothing is left behind. Elsewhere this is a no-op.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
