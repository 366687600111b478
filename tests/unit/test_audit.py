"""The filesystem audit, as a library: each check against real files."""

from __future__ import annotations

import os
from pathlib import Path

from burnless.audit import audit, diff, snapshot
from burnless.envelope import FileClaim

IGNORE = (".git", ".burnless", "node_modules")


def checks(report) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(f.check, f.path) for f in report.findings]


def test_same_size_rewrite_with_the_same_mtime_is_still_a_change(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes(b"hello")
    st = f.stat()
    before = snapshot(tmp_path, IGNORE)  # a.txt is racy: hashed
    f.write_bytes(b"HELLO")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # a clock that did not tick
    assert diff(before, snapshot(tmp_path, IGNORE)) == {"a.txt": "modified"}


def test_symlink_out_of_the_workspace_is_outside(tmp_path: Path) -> None:
    ws, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    ws.mkdir()
    elsewhere.mkdir()
    (ws / "link").symlink_to(elsewhere)
    before = snapshot(ws, IGNORE)
    (elsewhere / "x.txt").write_text("x")
    report = audit(before, [FileClaim("link/x.txt", "created")], ignore=IGNORE)
    assert checks(report) == [("outside", "link/x.txt")]


def test_paths_that_climb_out_or_are_absolute_are_outside(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    claims = [FileClaim("../x", "created"), FileClaim("/etc/passwd", "modified"),
              FileClaim("a/../../x", "created"), FileClaim(".burnless/ledger.jsonl", "modified")]
    report = audit(before, claims, ignore=IGNORE)
    assert [c for c, _ in checks(report)] == ["outside"] * 4


def test_deleted_and_present(tmp_path: Path) -> None:
    (tmp_path / "gone.txt").write_text("1")
    (tmp_path / "kept.txt").write_text("2")
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "gone.txt").unlink()
    report = audit(before, [FileClaim("gone.txt", "deleted"), FileClaim("kept.txt", "deleted")],
                   ignore=IGNORE)
    assert checks(report) == [("present", "kept.txt")]
    assert report.changed == ("gone.txt",)


def test_directory_claimed_as_file_is_missing_and_normalised_paths_match(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text("f")
    report = audit(before, [FileClaim("d", "created"), FileClaim("./d//f.txt", "created")],
                   ignore=IGNORE)
    assert checks(report) == [("missing", "d")]
    assert report.unclaimed == ()


def test_ignored_directories_are_not_snapshotted_but_claims_there_are_checked(
    tmp_path: Path
) -> None:
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "old.js").write_text("old")
    before = snapshot(tmp_path, IGNORE)
    assert "node_modules/old.js" not in before.entries
    (tmp_path / "node_modules" / "new.js").write_text("new")
    report = audit(before, [FileClaim("node_modules/new.js", "created", 3),
                            FileClaim("node_modules/old.js", "modified")], ignore=IGNORE)
    assert checks(report) == [("unchanged", "node_modules/old.js")]
    assert report.unclaimed == ()  # changes under ignored paths are not listed


def test_nothing_to_check_is_skipped(tmp_path: Path) -> None:
    assert audit(snapshot(tmp_path, IGNORE), [], ignore=IGNORE).verdict == "skipped"
