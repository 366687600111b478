#!/usr/bin/env python3
"""A fake worker: a real program that reads a burnless prompt on stdin and acts on it.

Usage: worker.py --mode MODE [--record DIR] [--prefix-file PATH] [--fail-while FILE]

The task (between the last ``<task>`` and ``</task>`` lines) drives file work:
``write PATH CONTENT...`` writes CONTENT to PATH. Modes:

    honest       do it and claim it exactly (bytes and sha256)
    liar         claim the write, do nothing
    wrong-size   do it, claim one byte more
    outside      claim a path outside the workspace
    unclaimed    do it, and also write PATH.extra without claiming it
    sleeper      fork a grandchild that sleeps (pids in DIR/pids), then sleep
    crasher      print half an answer and exit 3
    garbage      print bytes that are not an envelope (and a broken JSON)
    claude-json  honest, wrapped as `claude -p --output-format json` with usage and cost
    escalate     answer status escalate
    fail         answer status failed
    noenvelope   answer plain text, exit 0
    nested       task "nest SESSION TASK...": run `burnless run TASK --session SESSION` from
                 inside the worker; its exit code goes to DIR/nested-exit
    echo         print the task it received back (no envelope)
    chatty       print 2 MB on stdout and 1 MB on stderr BEFORE reading stdin, then honest
    slow         sleep 0.3 s, then honest

With --record DIR the prompt (stdin), argv and environment are saved in DIR (numbered), so tests
can assert exactly what burnless sent. A prompt whose protocol role is planner gets a plan.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path


def task_of(prompt: str) -> str:
    lines = prompt.splitlines()
    starts = [i for i, line in enumerate(lines) if line == "<task>"]
    if not starts:
        return prompt.strip()
    body = []
    for line in lines[starts[-1] + 1:]:
        if line == "</task>":
            break
        body.append(line)
    return "\n".join(body).strip()


def role_of(text: str) -> str:
    m = re.search(r'<burnless-protocol role="(\w+)"', text)
    return m.group(1) if m else "executor"


def envelope(status: str, kind: str, summary: str, files: list[dict] | None = None,
             plan: list[str] | None = None, nxt: str = "") -> str:
    env: dict = {"status": status, "kind": kind, "summary": summary, "files": files or [],
                 "commands": [], "next": nxt}
    if plan is not None:
        env["plan"] = plan
    return "Done.\n\n```json\n" + json.dumps(env) + "\n```\n"


def claim(path: str, data: bytes, action: str = "created", extra: int = 0) -> dict:
    return {"path": path, "action": action, "bytes": len(data) + extra,
            "sha256": hashlib.sha256(data).hexdigest()}


def record(dirpath: str | None, prompt: str, argv: list[str]) -> None:
    if not dirpath:
        return
    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    n = len(list(d.glob("prompt-*.txt"))) + 1
    (d / f"prompt-{n}.txt").write_text(prompt, encoding="utf-8")
    (d / f"argv-{n}.json").write_text(json.dumps(argv), encoding="utf-8")
    (d / f"env-{n}.json").write_text(json.dumps(dict(os.environ)), encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="honest")
    ap.add_argument("--record")
    ap.add_argument("--prefix-file")
    ap.add_argument("--fail-while", help="while this file exists, answer as Claude Code does "
                    "when the API refuses the request (is_error, exit 1), whatever the role")
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()
    if args.mode == "chatty":  # fills both pipes before reading: burnless must keep draining
        for i in range(20_000):
            sys.stdout.write(f"progress line {i:06d} " + "." * 80 + "\n")
        for i in range(10_000):
            sys.stderr.write(f"debug line {i:06d} " + "-" * 80 + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
        args.mode = "honest"
    prompt = sys.stdin.read() if not sys.stdin.isatty() else ""
    if args.rest:
        prompt = " ".join(args.rest)
    record(args.record, prompt, sys.argv)
    if args.fail_while and Path(args.fail_while).exists():
        sys.stdout.write(json.dumps({
            "type": "result", "subtype": "success", "is_error": True, "duration_ms": 5,
            "result": 'API Error: 400 {"type":"error","error":{"type":"invalid_request_error",'
                      '"message":"system: unexpected role"}}',
            "session_id": "fake", "num_turns": 1, "total_cost_usd": 0,
            "usage": {"input_tokens": 0, "output_tokens": 0}}))
        return 1
    header = Path(args.prefix_file).read_text() if args.prefix_file else prompt
    task = task_of(prompt)
    mode = args.mode

    if role_of(header) == "planner":
        emit(envelope("ok", "thought", f"plan for: {task[:40]}",
                      plan=[f"understand: {task[:30]}", "do it", "check it"]), mode)
        return 0
    if role_of(header) == "compactor":
        emit(envelope("ok", "thought", "DIGEST: everything so far was fine"), mode)
        return 0

    m = re.match(r"write (\S+) (.*)", task, re.DOTALL)
    path, content = (m.group(1), m.group(2).encode()) if m else ("", b"")

    if mode == "nested":
        import subprocess

        _, session, inner = task.split(" ", 2)
        p = subprocess.run([sys.executable, "-m", "burnless", "run", inner, "--session", session],
                           capture_output=True, text=True, timeout=60)
        if args.record:
            Path(args.record, "nested-exit").write_text(f"{p.returncode}\n{p.stderr}")
        sys.stdout.write(envelope("ok", "thought", f"inner run exited {p.returncode}"))
        return 0
    if mode == "echo":
        sys.stdout.write(f"I was asked: {task}\n")
        return 0
    if mode == "slow":
        time.sleep(0.3)
        mode = "honest"
    if mode == "crasher":
        sys.stdout.write("Working on it... the answer is")
        sys.stdout.flush()
        sys.stderr.write("fatal: worker crashed\n")
        return 3
    if mode == "garbage":
        sys.stdout.write("\x00\x01garbage {not json] ```json\n"
                         '{"status": "ok", "files": [\n```\n')
        return 0
    if mode == "noenvelope":
        sys.stdout.write("I looked at it and everything seems fine.\n")
        return 0
    if mode == "escalate":
        sys.stdout.write(envelope("escalate", "thought", "too hard for me"))
        return 0
    if mode == "fail":
        sys.stdout.write(envelope("failed", "thought", "could not do it"))
        return 0
    if mode == "sleeper":
        pid = os.fork()
        if pid == 0:  # the grandchild: sleeps in the same process group
            time.sleep(120)
            os._exit(0)
        if args.record:
            Path(args.record, "pids").write_text(f"{os.getpid()} {pid}")
        time.sleep(120)
        return 0

    files: list[dict] = []
    if path:
        if mode == "outside":
            files = [claim("../outside.txt", content)]
        elif mode == "liar":
            files = [claim(path, content)]
        else:
            target = Path(path)
            action = "modified" if target.exists() else "created"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            files = [claim(path, content, action, extra=1 if mode == "wrong-size" else 0)]
            if mode == "unclaimed":
                Path(path + ".extra").write_bytes(b"not claimed")
    summary = f"wrote {path}" if path else f"answered: {task[:60]}"
    answer = envelope("ok", "execution" if files else "thought", summary, files, nxt="carry on")
    emit(answer, mode)
    return 0


def emit(answer: str, mode: str) -> None:
    if mode != "claude-json":
        sys.stdout.write(answer)
        return
    out = {
        "type": "result", "subtype": "success", "is_error": False, "result": answer,
        "session_id": "fake", "num_turns": 1, "duration_ms": 5, "total_cost_usd": 0.0123,
        "usage": {"input_tokens": 100, "output_tokens": 50,
                  "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 8000},
        "modelUsage": {"claude-haiku-4-5": {"inputTokens": 100, "outputTokens": 50,
                                            "cacheReadInputTokens": 8000,
                                            "cacheCreationInputTokens": 2000,
                                            "costUSD": 0.0123}},
    }
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
