"""The atomic write: a reader sees the old file or the new one, whatever kills the writer
or fills the disk; failures name the file and leave the target as it was."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from burnless.storage.atomic import write_atomic
from tests.conftest import kill_while_writing, limited

ATOMIC_WRITER = """
import sys
from pathlib import Path
from burnless.storage.atomic import write_atomic
path, size = Path(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
i = 0
while True:
    i += 1
    write_atomic(path, (b"A" if i % 2 else b"B") * size)
"""


def test_sigkill_mid_write_atomic_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    size = 2 << 20
    path.write_bytes(b"O" * size)
    rng = random.Random(7)
    for _ in range(4):
        kill_while_writing(ATOMIC_WRITER, str(path), str(size), after=rng.uniform(0.01, 0.15))
        data = path.read_bytes()
        assert len(data) == size and data in (b"A" * size, b"B" * size, b"O" * size)
    # Leftover temp files are hidden and never mistaken for the target.
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == {path.name}


def test_write_atomic_failures_name_the_file_and_leave_the_target(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(target, b"x")
    with pytest.raises(FileNotFoundError) as info:
        write_atomic(tmp_path / "missing" / "f", b"x")
    assert "missing" in str(info.value)
    f = tmp_path / "f"
    f.write_bytes(b"old")
    p = limited("import sys\nfrom pathlib import Path\nfrom burnless.storage.atomic import "
                "write_atomic\ntry:\n    write_atomic(Path(sys.argv[1]), b'n' * 100000)\n"
                "except OSError as e:\n    print(type(e).__name__, e)\n", 1000, str(f))
    assert p.returncode == 0 and str(f) in p.stdout and "File too large" in p.stdout, p.stderr
    assert f.read_bytes() == b"old" and sorted(q.name for q in tmp_path.iterdir()) == ["d", "f"]
