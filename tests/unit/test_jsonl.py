"""The JSONL store: whole lines under a lock; torn tails skipped, then repaired; a writer killed
mid-append loses no whole record."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burnless.storage import jsonl
from tests.conftest import kill_while_writing

records = st.dictionaries(
    st.text(min_size=1, max_size=5),
    st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20), st.booleans(), st.none()),
    max_size=4,
)
# A sequence of operations: append a batch of records, or tear the file (a crash mid-write).
ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(records, min_size=1, max_size=3)),
        st.tuples(st.just("tear"), st.integers(1, 40)),
    ),
    max_size=25,
)


@given(ops)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_whole_record_reads_back_exactly_once(tmp_path: Path, seq: list) -> None:
    path = tmp_path / f"store-{os.urandom(4).hex()}.jsonl"
    expected: list[dict] = []
    for op, arg in seq:
        if op == "append":
            jsonl.append(path, arg, fsync=False)
            expected.extend(arg)
        else:
            # A writer died mid-line: part of a record, no newline.
            with open(path, "ab") as f:
                f.write(jsonl.dumps({"torn": "x" * arg})[: arg])
        got = jsonl.read(path)
        assert got == expected


def test_torn_tail_is_moved_aside_by_the_next_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "l.jsonl"
    jsonl.append(path, [{"a": 1}])
    with open(path, "ab") as f:
        f.write(b'{"b": 2, "tor')
    with caplog.at_level(logging.WARNING, logger="burnless"):
        assert jsonl.read(path) == [{"a": 1}]
    assert "torn" in caplog.text
    jsonl.append(path, [{"c": 3}])
    assert path.read_bytes() == b'{"a":1}\n{"c":3}\n'
    assert (tmp_path / "l.jsonl.torn").read_bytes() == b'{"b": 2, "tor\n'


def test_incremental_read_stops_before_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    jsonl.append(path, [{"a": 1}, {"a": 2}])
    recs, off = jsonl.read_from(path, 0)
    assert recs == [{"a": 1}, {"a": 2}]
    with open(path, "ab") as f:
        f.write(b'{"a": 3}\n{"a"')
    recs, off2 = jsonl.read_from(path, off)
    assert recs == [{"a": 3}] and off2 == off + len(b'{"a": 3}\n')


def test_garbage_line_in_the_middle_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\n[1]\n{"a": 2}\n')
    assert jsonl.read(path) == [{"a": 1}, {"a": 2}]


JSONL_WRITER = """
import sys
from pathlib import Path
from burnless.storage import jsonl
path = Path(sys.argv[1])
print("ready", flush=True)
i = 0
while i < 25:
    i += 1
    jsonl.append(path, [{"i": i, "pad": "x" * 300_000}], fsync=False)
"""


def test_sigkill_mid_append_loses_no_whole_record(tmp_path: Path) -> None:
    path = tmp_path / "capsules.jsonl"
    rng = random.Random(3)
    for _ in range(3):
        kill_while_writing(JSONL_WRITER, str(path), after=rng.uniform(0.0, 0.02))
        whole = jsonl.read(path)
        assert all(r["pad"] in ("x" * 300_000, "x") for r in whole)
        runs = b",".join(str(r["i"]).encode() for r in whole).split(b"-1")
        for run in runs:  # each writer's records: 1, 2, 3... none lost, none twice
            got = [int(x) for x in run.split(b",") if x]
            assert got == list(range(1, len(got) + 1))
        jsonl.append(path, [{"i": -1, "pad": "x"}])  # repairs a torn tail first
        assert jsonl.read(path) == [*whole, {"i": -1, "pad": "x"}]
