"""The prompt: protocol header, project prefix, plan, capsules, task — in that order.

Parts 1-2 (header + project prefix) are the *stable prefix*: byte-identical for every turn of a
role while the config and ``prefix.md`` do not change. Parts 1-4 only grow at their end within an
epoch. Nothing volatile (time, run id, cost, machine path) is rendered before the task.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from burnless.session.capsule import Context, render, utf8_safe

PROTOCOL_VERSION = 1
ROLES = ("planner", "executor", "compactor")

_ENVELOPE_CONTRACT = """\
End your answer with one JSON object, the envelope (bare, or in a ```json fence):
{"status": "ok", "kind": "execution", "summary": "Added token refresh to auth/session.py",
 "files": [{"path": "auth/session.py", "action": "modified", "bytes": 2048, "sha256": "..."}],
 "commands": [{"cmd": "pytest -q tests/test_auth.py", "exit": 0}],
 "next": "wire refresh into the CLI"}

- status: "ok" (done), "partial" (part of it done), "failed" (could not do it), or
  "escalate" (this needs a stronger model).
- kind: "execution" if you changed files or ran commands; "thought" if you only answered,
  planned or reviewed.
- files: every file you created, modified or deleted, with a path relative to the working
  directory and action "created", "modified" or "deleted". "bytes" and "sha256" are optional;
  if you give them they must be exact.
- summary: one sentence. next: what should happen next, or "".
burnless checks every claim against the disk: claim exactly what you changed, nothing else."""

_ROLE_TEXT = {
    "planner": """\
You are the planner of a burnless session. Read the project instructions, the session log
and the task below, and write a short plan (2 to 7 concrete steps) that a cheaper model will
follow to carry out the task. Do not change any file and do not run anything.
Your envelope has kind "thought" and a "plan" list of steps, for example:
{"status": "ok", "kind": "thought", "summary": "Plan for the auth refactor",
 "plan": ["Read auth/session.py", "Add refresh_token()", "Run pytest -q"], "next": ""}""",
    "executor": """\
You are the executor of a burnless session. Carry out the task at the end of this prompt in
the current working directory, following the plan and the session log above it. Work only
inside the working directory. Keep the answer short: what you did, then the envelope.""",
    "compactor": """\
You are the compactor of a burnless session. Fold the session log above into a digest that a
later turn can work from: what was done, the files touched, decisions made, open items and
failed checks. Do not change any file. Your envelope has kind "thought" and the digest as its
"summary" (at most 15 short lines).""",
}


def header(role: str) -> str:
    """The fixed protocol header for a role (constant for a given burnless version)."""
    return (
        f'<burnless-protocol role="{role}" version="{PROTOCOL_VERSION}">\n'
        f"{_ROLE_TEXT[role]}\n\n{_ENVELOPE_CONTRACT}\n</burnless-protocol>\n\n"
    )


def project_block(prefix_md: str) -> str:
    """``prefix.md`` verbatim inside a tagged block (nothing when there is none)."""
    if not prefix_md:
        return ""
    body = prefix_md if prefix_md.endswith("\n") else prefix_md + "\n"
    return f"<project>\n{body}</project>\n\n"


def task_block(task: str) -> str:
    return f"<task>\n{utf8_safe(task).rstrip()}\n</task>\n"


@dataclass(frozen=True)
class Prompt:
    """A call's prompt in its parts: the stable prefix, then plan, capsules and task."""
    role: str
    header: str
    project: str
    plan: str
    capsules: str
    task: str
    # The plan and each capsule as separate blocks, in order (plan + capsules == "".join):
    # the API tier sends one content block each, so a cache breakpoint on the last one lets
    # turn N+1 read what turn N wrote.
    blocks: tuple[str, ...] = ()

    @property
    def stable_prefix(self) -> str:
        return self.header + self.project

    @property
    def context(self) -> str:
        return self.plan + self.capsules

    @property
    def text(self) -> str:
        return self.stable_prefix + self.context + self.task

    def parts(self) -> list[tuple[str, str]]:
        return [
            ("header", self.header),
            ("prefix", self.project),
            ("plan", self.plan),
            ("capsules", self.capsules),
            ("task", self.task),
        ]

    def digests(self) -> list[dict[str, object]]:
        """Byte length and sha256 of each part, for ``session prompt``."""
        out: list[dict[str, object]] = []
        for name, text in self.parts():
            data = text.encode("utf-8")
            digest = hashlib.sha256(data).hexdigest()
            out.append({"part": name, "bytes": len(data), "sha256": digest})
        return out


def render_prompt(role: str, prefix_md: str, context: Context, task: str) -> Prompt:
    if role not in ROLES:
        raise ValueError(f"unknown prompt role {role!r}")
    plan = render(context.plan) if context.plan is not None else ""
    capsules = tuple(render(c) for c in context.capsules)
    return Prompt(
        role=role,
        header=header(role),
        project=project_block(prefix_md),
        plan=plan,
        capsules="".join(capsules),
        task=task_block(task),
        blocks=((plan,) if plan else ()) + capsules,
    )


def read_prefix(state_dir: Path) -> str:
    """The project's ``prefix.md`` ("" when there is none).

    Raises OSError or UnicodeDecodeError; a FIFO or device in its place is refused, never
    waited on (opened non-blocking, then checked to be a regular file).
    """
    from burnless.storage.atomic import open_regular

    try:
        f = open_regular(state_dir / "prefix.md")
    except FileNotFoundError:
        return ""
    with f:
        return f.read().decode("utf-8")
