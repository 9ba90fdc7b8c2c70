"""Workers die with the process that started them, even when it is SIGKILLed (issue 16.7)."""

import os
import signal
import subprocess
import sys
import time

from trashseg.procs import process_running

SCRIPT = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from trashseg.procs import die_with_parent

def work(path):
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, initializer=die_with_parent, initargs=(os.getpid(),))
    pool.submit(work, sys.argv[1])
    time.sleep(120)
"""


def _wait_for(predicate, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_pool_worker_dies_with_its_killed_parent(tmp_path):
    script, pid_file = tmp_path / "parent.py", tmp_path / "worker.pid"
    script.write_text(SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    worker = None
    try:
        assert _wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60)
        worker = int(pid_file.read_text())
        assert process_running(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait_for(lambda: not process_running(worker), 10), "worker outlived its parent"
    finally:
        parent.kill()
        if worker and process_running(worker):
            os.kill(worker, signal.SIGKILL)
