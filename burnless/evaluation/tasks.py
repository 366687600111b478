"""``TASKS.yaml``: the work a pair evaluation runs, validated like ``config.yaml``.

```yaml
tasks:
  - name: fix-parser                # unique; letters, digits, . _ -
    prompt: "Make tests/test_parser.py pass"
    revision: HEAD~3                # a git revision of this repository (default HEAD)
    verify: ["python -m pytest -q tests/test_parser.py"]   # all must exit 0: success
    labels: []                      # passed to `burnless run --label`
    turns: 2                        # at most this many turns per session (default 1)
```

Errors name the file, line and key path, with a did-you-mean for a misspelled key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from burnless.config import command_problem, convert
from burnless.errors import ConfigError
from burnless.yamlfile import Source, fail, kind_of, read_yaml

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
MAX_TURNS = 20


@dataclass(frozen=True)
class EvalTask:
    """One task of an evaluation: its prompt, revision and verify commands."""
    name: str = ""
    prompt: str = ""
    revision: str = "HEAD"
    verify: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    turns: int = 1


@dataclass(frozen=True)
class _File:
    """A tasks file as read."""
    tasks: tuple[EvalTask, ...] = ()


def load_tasks(path: Path) -> tuple[EvalTask, ...]:
    src = Source(default_file=path)
    data = read_yaml(path, src)
    if not isinstance(data, dict) or "tasks" not in data:
        raise fail(src, (), "the 'tasks' list is required")
    raw = data["tasks"]
    if not isinstance(raw, list) or not raw:
        raise fail(src, ("tasks",), f"must be a non-empty list of tasks, not {kind_of(raw)}")
    tasks: list[EvalTask] = []
    seen: set[str] = set()
    for i, body in enumerate(raw):
        where = ("tasks", str(i))
        task: EvalTask = convert(EvalTask, body, where, src)
        if not NAME_RE.fullmatch(task.name):
            raise fail(src, (*where, "name"), "required: 1-64 letters, digits, '.', '_', '-'")
        if task.name in seen:
            raise fail(src, (*where, "name"), f"{task.name!r} is used by an earlier task")
        seen.add(task.name)
        if not task.prompt.strip():
            raise fail(src, (*where, "prompt"), "required: the task as you would give it to "
                        "`burnless run`")
        if not task.verify:
            raise fail(src, (*where, "verify"), "required: the commands that decide success "
                        "(for example the project's tests)")
        for j, cmd in enumerate(task.verify):
            problem = command_problem(cmd)
            if problem:
                raise fail(src, (*where, "verify", str(j)), problem)
        if not task.revision.strip() or task.revision.startswith("-"):
            raise fail(src, (*where, "revision"), f"not a git revision: {task.revision!r}")
        if not 1 <= task.turns <= MAX_TURNS:
            raise fail(src, (*where, "turns"), f"must be 1 to {MAX_TURNS}, not {task.turns}")
        tasks.append(task)
    extra = sorted(set(data) - {"tasks"})
    if extra:
        raise fail(src, (extra[0],), "unknown key (TASKS.yaml holds only 'tasks')")
    return tuple(tasks)


def parse_pairs(spec: str, tiers: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """``gold:silver,gold:bronze`` → ((gold, silver), (gold, bronze)); tiers must exist."""
    pairs: list[tuple[str, str]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        planner, sep, executor = part.partition(":")
        if not sep or not planner or not executor:
            raise ConfigError(f"--pairs: {part!r} is not PLANNER:EXECUTOR (e.g. gold:silver)")
        for name in (planner, executor):
            if name not in tiers:
                raise ConfigError(f"--pairs: tier {name!r} is not defined; tiers: "
                                  f"{', '.join(map(str, tiers))}")
        if (planner, executor) not in pairs:
            pairs.append((planner, executor))
    if not pairs:
        raise ConfigError("--pairs: give at least one PLANNER:EXECUTOR pair")
    return tuple(pairs)
