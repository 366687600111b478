"""The lock primitive: exclusive across processes, timed, released when the holder dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from burnless.storage.locks import LockTimeout, file_lock

HOLD = """
import sys, time
from pathlib import Path
from burnless.storage.locks import file_lock
with file_lock(Path(sys.argv[1]), 5):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lock_times_out_and_is_freed_when_the_holder_dies(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    proc = _holder(path)
    try:
        t0 = time.monotonic()
        with pytest.raises(LockTimeout), file_lock(path, 0.3):
            pass
        assert 0.25 < time.monotonic() - t0 < 3
        proc.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel frees the lock
        proc.wait()
        with file_lock(path, 2):
            pass
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_two_descriptors_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    path = tmp_path / "y.lock"
    with file_lock(path, 1), pytest.raises(LockTimeout), file_lock(path, 0.1):
        pass
