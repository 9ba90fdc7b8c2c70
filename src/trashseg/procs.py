"""Worker processes that never outlive the command that started them.

A ``kill -9`` of ``trashseg predict`` (or train) gives it no chance to stop its DataLoader or CRF workers; a worker
blocked on its task queue then lives on as an orphan, holding its memory. Linux can deliver a signal to a child
when its parent dies (``prctl(PR_SET_PDEATHSIG)``); every worker the project starts asks for SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def process_running(pid: int) -> bool:
    """Whether `pid` is a live process; a zombie (dead, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: trust kill()


def die_with_parent(parent_pid: int, *_: object) -> None:
    """Worker initializer (``worker_init_fn`` / ``initializer``): SIGKILL this process when `parent_pid` dies.

    `parent_pid` is the pid of the process that creates the workers (pass ``os.getpid()`` there); extra
    arguments (a DataLoader's worker id) are ignored. A no-op outside Linux.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if not process_running(parent_pid):  # it died between our fork and the prctl: no signal will come
        os._exit(1)
