"""The filesystem audit, as a library: each check against real files, then hostile claims and
hostile disks (real symlinks, FIFOs, sockets, sparse files). A worker that lies must never pass,
and nothing it leaves on disk may hang or crash the audit."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import socket
import stat
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from burnless import audit as audit_mod
from burnless.audit import AuditReport, audit, diff, snapshot
from burnless.envelope import FileClaim, extract
from tests.conftest import Workspace, quoted

IGNORE = (".git", ".burnless", "node_modules")


def checks(report: AuditReport) -> list[tuple[str, str]]:
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


# --- hostile claims, hostile disks ---------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()



def honest(path: str, data: bytes, action: str = "created") -> FileClaim:
    return FileClaim(path, action, len(data), sha(data))


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()``, failing (not hanging) if it takes longer than ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s: blocked?"
    if "error" in box:
        raise box["error"]
    return box["value"]


def worker_starts() -> None:
    """The time a worker takes to start: file times come from the kernel's coarse clock, up to
    a tick (1 to 10 ms) behind the snapshot's, so a change made at once may seem older."""
    time.sleep(0.02)


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    ws, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    ws.mkdir()
    elsewhere.mkdir()
    return ws, elsewhere


# ------------------------------------------------------------------ symlinks


def test_claimed_symlink_to_a_file_outside_is_outside(tmp_path: Path) -> None:
    ws, elsewhere = dirs(tmp_path)
    (elsewhere / "secret.txt").write_bytes(b"secret")
    (ws / "old-link.txt").symlink_to(elsewhere / "secret.txt")
    before = snapshot(ws, IGNORE)
    (ws / "leak.txt").symlink_to(elsewhere / "secret.txt")
    (elsewhere / "secret.txt").write_bytes(b"SECRET")
    report = audit(before, [honest("leak.txt", b"SECRET"),
                            honest("old-link.txt", b"SECRET", "modified")], ignore=IGNORE)
    assert checks(report) == [("outside", "leak.txt"), ("outside", "old-link.txt")]


def test_symlinked_directory_out_of_the_workspace_is_outside_for_every_action(
    tmp_path: Path
) -> None:
    ws, elsewhere = dirs(tmp_path)
    (ws / "link").symlink_to(elsewhere)
    before = snapshot(ws, IGNORE)
    (elsewhere / "x.txt").write_bytes(b"x")
    claims = [honest("link/x.txt", b"x"), FileClaim("link/gone.txt", "deleted"),
              FileClaim("link", "modified")]
    report = audit(before, claims, ignore=IGNORE)
    assert checks(report) == [("outside", "link/x.txt"), ("outside", "link/gone.txt"),
                              ("outside", "link")]


def test_dotdot_after_a_symlink_out_of_the_workspace_is_outside(tmp_path: Path) -> None:
    # 'link/../x.txt' normalises to 'x.txt', but the system reads it as elsewhere/x.txt.
    ws, elsewhere = dirs(tmp_path)
    (elsewhere / "sub").mkdir()
    (ws / "link").symlink_to(elsewhere / "sub")
    before = snapshot(ws, IGNORE)
    (ws / "x.txt").write_bytes(b"x")
    report = audit(before, [honest("link/../x.txt", b"x")], ignore=IGNORE)
    assert checks(report) == [("outside", "link/../x.txt")]


def test_symlink_loop_never_passes_and_never_raises(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    claims = [FileClaim("a", "created"), FileClaim("a/x.txt", "created"),
              FileClaim("b", "deleted")]
    report = audit(before, claims, ignore=IGNORE)
    assert [p for _, p in checks(report)] == ["a", "a/x.txt", "b"]
    assert {c for c, _ in checks(report)} <= {"outside", "missing", "present"}


def test_dangling_symlinks_are_missing_or_outside(tmp_path: Path) -> None:
    ws, elsewhere = dirs(tmp_path)
    before = snapshot(ws, IGNORE)
    (ws / "inside").symlink_to(ws / "nowhere.txt")
    (ws / "out").symlink_to(elsewhere / "nothing.txt")
    claims = [FileClaim("inside", "created", 0), FileClaim("out", "created", 0),
              FileClaim("inside", "deleted")]
    report = audit(before, claims, ignore=IGNORE)
    assert checks(report) == [("missing", "inside"), ("outside", "out"), ("present", "inside")]


def test_burnless_state_is_off_limits_through_a_symlink_too(tmp_path: Path) -> None:
    (tmp_path / ".burnless").mkdir()
    (tmp_path / ".burnless" / "ledger.jsonl").write_bytes(b"")
    (tmp_path / "state").symlink_to(".burnless")
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / ".burnless" / "ledger.jsonl").write_bytes(b"{}\n")
    claims = [honest("state/ledger.jsonl", b"{}\n", "modified"),
              honest("x/../.burnless/ledger.jsonl", b"{}\n", "modified")]
    report = audit(before, claims, ignore=IGNORE)
    assert [c for c, _ in checks(report)] == ["outside", "outside"]


def test_writing_through_a_symlinked_directory_inside_the_workspace_passes(
    tmp_path: Path
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "gone.txt").write_bytes(b"g")
    (tmp_path / "alias").symlink_to("real")
    before = snapshot(tmp_path, IGNORE)
    worker_starts()
    (tmp_path / "alias" / "new.txt").write_bytes(b"new")
    (tmp_path / "alias" / "gone.txt").unlink()
    report = audit(before, [honest("alias/new.txt", b"new"),
                            FileClaim("alias/gone.txt", "deleted")], ignore=IGNORE)
    assert report.verdict == "passed", checks(report)


# ------------------------------------------------------------------ path spellings


def test_dotdot_that_stays_inside_is_normalised_and_one_that_leaves_is_outside(
    tmp_path: Path
) -> None:
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(b"a")
    (tmp_path / "sub" / "b.txt").write_bytes(b"b")
    claims = [honest("sub/../a.txt", b"a"), honest("./sub/./b.txt", b"b"),
              honest("sub/../../a.txt", b"a")]
    report = audit(before, claims, ignore=IGNORE)
    assert checks(report) == [("outside", "sub/../../a.txt")]
    assert report.unclaimed == ()


def test_absolute_and_home_paths_are_outside_even_when_they_point_inside(
    tmp_path: Path
) -> None:
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "a.txt").write_bytes(b"a")
    absolute = str(tmp_path / "a.txt")
    claims = [honest("a.txt", b"a"), honest(absolute, b"a"), honest("/" + absolute, b"a"),
              honest(absolute.replace("/", "\\"), b"a"), honest("~/a.txt", b"a")]
    report = audit(before, claims, ignore=IGNORE)
    assert [c for c, _ in checks(report)] == ["outside"] * 4
    assert "a.txt" not in [p for _, p in checks(report)]


def test_backslashes_are_separators(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.txt").write_bytes(b"f")
    report = audit(before, [honest("sub\\f.txt", b"f"), honest("sub\\..\\..\\f.txt", b"f")],
                   ignore=IGNORE)
    assert checks(report) == [("outside", "sub\\..\\..\\f.txt")]
    assert report.unclaimed == ()


def test_empty_and_degenerate_paths(tmp_path: Path) -> None:
    ex = extract('```json\n{"status": "ok", "files": [{"path": ""}, {"path": "  "}, '
                 '{"path": null}, {"path": 7}]}\n```')
    assert ex.envelope is not None and ex.envelope.files == ()
    assert len(ex.findings) == 4
    before = snapshot(tmp_path, IGNORE)
    report = audit(before, [FileClaim(".", "modified"), FileClaim("a/..", "created"),
                            FileClaim("./", "deleted")], ignore=IGNORE)
    assert [c for c, _ in checks(report)] == ["outside"] * 3


def test_nul_byte_and_unencodable_paths_fail_without_raising(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    claims = [FileClaim("a\x00b.txt", "created"), FileClaim("a\ud800.txt", "created"),
              FileClaim("a\x00b.txt", "deleted")]
    report = audit(before, claims, ignore=IGNORE)
    assert [c for c, _ in checks(report)] == ["outside"] * 3


def test_lone_surrogates_from_json_escapes_are_replaced_in_the_envelope() -> None:
    ex = extract('```json\n{"status": "ok", "summary": "s\\ud800", "next": "\\udfff", '
                 '"plan": "step \\ud800", "commands": ["c\\ud800"], '
                 '"files": [{"path": "f\\ud800.txt", "sha256": "\\ud800"}]}\n```')
    env = ex.envelope
    assert env is not None
    assert (env.summary, env.next, env.plan, env.files[0].path, env.commands[0].cmd) == (
        "s?", "?", ("step ?",), "f?.txt", "c?")
    orjson.dumps([env.summary, env.next, env.files[0].to_dict()])  # writable as UTF-8


def test_newline_in_a_path(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "a\nb.txt").write_bytes(b"x")
    report = audit(before, [honest("a\nb.txt", b"x"), honest("a\nc.txt", b"x")],
                   ignore=IGNORE)
    assert checks(report) == [("missing", "a\nc.txt")]


def test_names_past_name_max_and_paths_past_path_max(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    long_name, long_path = "x" * 300, "/".join(["d" * 200] * 30)
    claims = [FileClaim(long_name, "created", 1, "0" * 64), FileClaim(long_path, "modified"),
              FileClaim(long_name, "deleted")]
    report = audit(before, claims, ignore=IGNORE)
    assert checks(report) == [("missing", long_name), ("missing", long_path),
                              ("unchanged", long_name)]


def test_unicode_normal_forms_are_different_names(tmp_path: Path) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "café.txt"), unicodedata.normalize("NFD", "café.txt")
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / nfd).write_bytes(b"c")
    if (tmp_path / nfc).exists():
        pytest.skip("this filesystem normalises names")
    report = audit(before, [honest(nfc, b"c"), honest(nfd, b"c")], ignore=IGNORE)
    assert checks(report) == [("missing", nfc)]


def test_a_claim_in_another_case_is_missing(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "a.txt").write_bytes(b"a")
    if (tmp_path / "A.TXT").exists():
        pytest.skip("case-insensitive filesystem")
    report = audit(before, [honest("A.TXT", b"a")], ignore=IGNORE)
    assert checks(report) == [("missing", "A.TXT")]
    assert report.unclaimed == ("a.txt",)


def test_the_same_path_claimed_twice_with_different_contents(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "a.txt").write_bytes(b"one")
    report = audit(before, [honest("a.txt", b"one"), honest("./a.txt", b"two")], ignore=IGNORE)
    assert checks(report) == [("hash", "a.txt")]
    report = audit(before, [honest("a.txt", b"one"), FileClaim("a.txt", "deleted")],
                   ignore=IGNORE)
    assert checks(report) == [("present", "a.txt")]


# ------------------------------------------------------------------ what is on disk


def test_directory_claimed_as_a_file(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "d").mkdir()
    report = audit(before, [FileClaim("d", "created", 4096, sha(b"")),
                            FileClaim("d", "deleted")], ignore=IGNORE)
    assert checks(report) == [("missing", "d"), ("present", "d")]


def test_claimed_fifo_is_missing_and_never_read(tmp_path: Path) -> None:
    (tmp_path / "old-fifo").mkdir()  # a directory now, a FIFO after the run
    before = snapshot(tmp_path, IGNORE)
    os.rmdir(tmp_path / "old-fifo")
    os.mkfifo(tmp_path / "old-fifo")
    os.mkfifo(tmp_path / "fifo")
    claims = [FileClaim("fifo", "created", 0, sha(b"")),
              FileClaim("old-fifo", "modified", 0, sha(b""))]
    try:
        report = within(2, lambda: audit(before, claims, ignore=IGNORE))
    finally:
        _unblock(tmp_path / "fifo", tmp_path / "old-fifo")
    assert checks(report) == [("missing", "fifo"), ("missing", "old-fifo")]
    assert report.changed == ("fifo", "old-fifo") and report.unclaimed == ()


def test_hashing_never_waits_on_a_fifo_swapped_in_after_the_stat(tmp_path: Path) -> None:
    # The race (a worker's leftover process swapping a checked file for a FIFO) in one step:
    # the hash alone, as it runs right after the stat said "regular file".
    os.mkfifo(tmp_path / "fifo")
    try:
        assert within(2, lambda: audit_mod._hash(str(tmp_path / "fifo"), 10)) is None
    finally:
        _unblock(tmp_path / "fifo")


def _unblock(*fifos: Path) -> None:
    """Open each FIFO for writing, so a reader stuck on it (a failed test) gets EOF."""
    for fifo in fifos:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader waiting: nothing to unblock


def test_claimed_socket_and_device_are_missing(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    claims = [FileClaim("sock", "created", 0, sha(b"")), FileClaim("zero", "created", 0,
                                                                   sha(b""))]
    try:
        os.mknod(tmp_path / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero
    except (PermissionError, OSError):
        claims.pop()
    (tmp_path / "devlink").symlink_to("/dev/zero")
    claims.append(FileClaim("devlink", "created", 0, sha(b"")))
    try:
        report = within(2, lambda: audit(before, claims, ignore=IGNORE))
    finally:
        sock.close()
    expected = [("missing", "sock"), ("missing", "zero"), ("outside", "devlink")]
    assert checks(report) == [e for e in expected if e[1] in {c.path for c in claims}]


def test_unreadable_file(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    f = tmp_path / "locked.txt"
    f.write_bytes(b"locked")
    f.chmod(0)
    try:
        report = audit(before, [honest("locked.txt", b"locked")], ignore=IGNORE)
        lie = audit(before, [honest("locked.txt", b"LOCKED")], ignore=IGNORE)
    finally:
        f.chmod(0o644)
    if os.geteuid() == 0:  # root reads it anyway: the claim is checked, and true
        assert report.verdict == "passed"
    else:  # the hash cannot be checked: not passed on trust
        assert checks(report) == [("hash", "locked.txt")]
    assert checks(lie) == [("hash", "locked.txt")]


def test_file_still_growing_while_hashed_does_not_keep_the_audit_reading(
    tmp_path: Path
) -> None:
    before = snapshot(tmp_path, IGNORE)
    f = tmp_path / "log.txt"
    f.write_bytes(b"start\n")
    stop = threading.Event()

    def writer() -> None:  # a process the worker left running
        with open(f, "ab") as out:
            while not stop.is_set():
                out.write(b"x" * (1 << 20))
                out.flush()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        time.sleep(0.05)
        report = within(5, lambda: audit(before, [FileClaim("log.txt", "created", None,
                                                            sha(b"start\n"))], ignore=IGNORE))
    finally:
        stop.set()
        t.join()
    assert checks(report) == [("hash", "log.txt")]


def test_huge_sparse_file_is_not_read_past_the_hashing_budget(tmp_path: Path) -> None:
    before = snapshot(tmp_path, IGNORE)
    size = audit_mod.MAX_CLAIM_HASH_BYTES + 1
    with open(tmp_path / "huge.bin", "wb") as f:
        f.truncate(size)  # instant to make; a terabyte would take minutes to hash
    t0 = time.monotonic()
    report = audit(before, [FileClaim("huge.bin", "created", size, sha(b"")),
                            FileClaim("huge.bin", "created", size)], ignore=IGNORE)
    assert time.monotonic() - t0 < 1
    assert checks(report) == [("hash", "huge.bin")]  # the size alone is checked, and true
    assert "not verified" in report.findings[0].detail


def test_hashing_budget_is_shared_by_all_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_mod, "MAX_CLAIM_HASH_BYTES", 10)
    before = snapshot(tmp_path, IGNORE)
    (tmp_path / "a.txt").write_bytes(b"12345678")
    (tmp_path / "b.txt").write_bytes(b"12345678")
    report = audit(before, [honest("a.txt", b"12345678"), honest("b.txt", b"12345678")],
                   ignore=IGNORE)
    assert checks(report) == [("hash", "b.txt")]


# ------------------------------------------------------------------ changed or not


def test_future_mtime_does_not_make_an_untouched_file_changed(tmp_path: Path) -> None:
    (tmp_path / "node_modules").mkdir()
    for name in ("node_modules/pkg.js", "tracked.js"):  # unpacked with a clock a day ahead
        (tmp_path / name).write_bytes(b"js")
        ahead = time.time() + 86400
        os.utime(tmp_path / name, (ahead, ahead))
    before = snapshot(tmp_path, IGNORE)
    report = audit(before, [honest("node_modules/pkg.js", b"js", "modified"),
                            honest("tracked.js", b"js", "modified")], ignore=IGNORE)
    assert checks(report) == [("unchanged", "node_modules/pkg.js"), ("unchanged", "tracked.js")]


def test_deleting_what_was_never_there_is_unchanged(tmp_path: Path) -> None:
    for d in ("src", "node_modules/pkg", "olddir/empty"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "node_modules" / "old.js").write_bytes(b"old")
    (tmp_path / "olddir" / "f.txt").write_bytes(b"f")
    before = snapshot(tmp_path, IGNORE)
    worker_starts()
    (tmp_path / "node_modules" / "old.js").unlink()
    (tmp_path / "olddir" / "f.txt").unlink()
    (tmp_path / "olddir" / "empty").rmdir()
    (tmp_path / "olddir").rmdir()
    claims = [FileClaim("src/ghost.txt", "deleted"),  # untouched directories: never there
              FileClaim("node_modules/pkg/ghost.js", "deleted"),
              FileClaim("node_modules/old.js", "deleted"),  # really gone, though ignored
              FileClaim("olddir", "deleted"), FileClaim("olddir/empty", "deleted"),
              FileClaim("olddir/f.txt", "deleted")]
    report = audit(before, claims, ignore=IGNORE)
    assert checks(report) == [("unchanged", "src/ghost.txt"),
                              ("unchanged", "node_modules/pkg/ghost.js")]


# ------------------------------------------------------------------ through the CLI


def scripted(ws: Workspace, tmp_path: Path, files: list[dict[str, Any]], act: str = "") -> None:
    """A silver tier whose worker runs ``act`` (Python, in the workspace) and claims ``files``
    (JSON-escaped, as a worker would send them)."""
    answer = "Done.\n\n```json\n" + json.dumps(
        {"status": "ok", "kind": "execution", "summary": "s\ud800", "files": files}
    ) + "\n```\n"
    script = tmp_path / "scripted_worker.py"
    script.write_text(f"import os, sys\nsys.stdin.read()\n{act}\nsys.stdout.write({answer!r})\n",
                      encoding="utf-8")
    command = shlex.join([sys.executable, str(script)])
    ws.config(f"tiers:\n  silver: {{command: {quoted(command)}}}\n")


def test_hostile_paths_fail_the_run_with_exit_3_and_everything_recorded(
    ws: Workspace, tmp_path: Path
) -> None:
    scripted(ws, tmp_path, [{"path": "a\x00b.txt", "action": "created"},
                            {"path": "c\ud800.txt", "action": "created"},
                            {"path": "ok.txt", "action": "created"}],
             act="open('ok.txt', 'w').write('ok')")
    code, res = ws.json("run", "do it")
    assert code == 3, res
    assert [(f["check"], f["path"]) for f in res["audit"]["findings"]] == [
        ("outside", "a\x00b.txt"), ("missing", "c?.txt")]
    assert res["summary"] == "s?"
    assert [r["audit"] for r in ws.ledger()] == ["failed"]
    assert [c["audit"] for c in ws.capsules()] == ["failed"]
