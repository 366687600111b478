"""The lock primitive: exclusive across processes, timed, released when the holder dies; a lock
file removed while waited on never gives two holders."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
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


def test_a_lock_file_removed_while_waited_on_never_gives_two_holders(tmp_path: Path) -> None:
    path = tmp_path / "sess" / ".lock"
    spans: list[tuple[str, float, float]] = []
    errors: list[BaseException] = []

    def hold(name: str, seconds: float) -> None:
        try:
            with file_lock(path, 5):
                t0 = time.monotonic()
                time.sleep(seconds)
                spans.append((name, t0, time.monotonic()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with file_lock(path, 1):  # "session rm": holds the lock and removes the directory
        waiter = threading.Thread(target=hold, args=("waiter", 0.3))
        waiter.start()
        time.sleep(0.1)
        (tmp_path / "sess" / ".lock").unlink()
        (tmp_path / "sess").rmdir()
    newcomer = threading.Thread(target=hold, args=("newcomer", 0.3))
    newcomer.start()
    waiter.join(10)
    newcomer.join(10)
    assert not errors and len(spans) == 2
    (_, a0, a1), (_, b0, b1) = sorted(spans, key=lambda s: s[1])
    assert a1 <= b0, "two holders of the same lock at once"
