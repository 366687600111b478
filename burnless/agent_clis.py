"""What burnless knows about the agent CLIs a tier may run (Codex, Gemini CLI), for ``init`` and
``doctor``: whether a command pins the model, and the Gemini CLI project settings that keep
its own part of every request stable, so the provider's prompt cache keeps serving it.

The Gemini CLI (0.61) puts a ``<session_context>`` block before the prompt: the date, the
workspace's directory tree (``.burnless/logs``, ``sessions``, every file a worker writes) —
and its tool list names the built-in agent skills in the order a directory walk returns them,
which changes from run to run. Either change makes the provider re-bill everything after it.
Two documented settings of ``.gemini/settings.json`` (the project settings file) turn both
off: ``context.includeDirectoryTree`` and ``skills.enabled``. The date stays (one miss a day).
Measured with ``python benchmarks/gemini_context.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from burnless.settings import Tier

# The project settings burnless wants, as (path in the JSON object, value).
GEMINI_SETTINGS: tuple[tuple[tuple[str, ...], object], ...] = (
    (("context", "includeDirectoryTree"), False),
    (("skills", "enabled"), False),
)
GEMINI_SETTINGS_FILE = Path(".gemini") / "settings.json"
_MODEL_FLAGS = ("-m", "--model")


def program(tier: Tier) -> str | None:
    """``codex`` or ``gemini`` when the tier's command runs that CLI, else None."""
    argv = tier.argv
    if tier.command is None or not argv:
        return None
    name = Path(argv[0]).name
    return name if name in ("codex", "gemini") else None


def pins_model(argv: list[str]) -> bool:
    """Whether the command names its model (``-m X``, ``--model X``/``=X``, Codex's
    ``-c model=X``)."""
    for i, arg in enumerate(argv):
        if arg in _MODEL_FLAGS and i + 1 < len(argv) and argv[i + 1].strip():
            return True
        if arg.startswith("--model=") or (arg.startswith("-m") and len(arg) > 2):
            return True
        if arg in ("-c", "--config") and i + 1 < len(argv) and argv[i + 1].startswith("model="):
            return True
    return False


def model_warning(tier: Tier) -> str | None:
    """Why a Codex or Gemini tier's model is not pinned, or None when it is."""
    cli = program(tier)
    if cli is None:
        return None
    argv = tier.argv
    if any("{model}" in a for a in argv) and not tier.model:
        return (f"its command passes {{model}} but tiers.{tier.name}.model is not set: the "
                f"{cli} CLI gets an empty model name")
    if pins_model(argv):
        return None
    why = ("Codex's output never names the model, so burnless prices the tier's `model` while "
           "Codex runs the one in its own config.toml"
           if cli == "codex" else
           "the Gemini CLI's \"auto\" model first asks a small router model which model should "
           "answer, on every call")
    return (f"its command does not pin a model: {why}; add `-m {{model}}` to the command and "
            f"set tiers.{tier.name}.model")


def _get(obj: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, object]:
    """(present, value); a non-object on the way counts as present (the user's, left alone)."""
    node: object = obj
    for key in path:
        if not isinstance(node, dict):
            return True, node
        if key not in node:
            return False, None
        node = node[key]
    return True, node


@dataclass(frozen=True)
class SettingsCheck:
    """What an agent CLI's settings file lacks of what burnless needs, and what the user set
    otherwise."""
    path: Path
    missing: tuple[str, ...]  # dotted names burnless would set
    overridden: tuple[str, ...]  # set by the user to another value: left alone
    unreadable: str = ""  # why the file could not be read (then nothing is written)
    data: dict[str, Any] | None = None


def check_gemini_settings(workspace: Path) -> SettingsCheck:
    path = workspace / GEMINI_SETTINGS_FILE
    data: dict[str, Any] = {}
    if path.is_symlink() or path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            # The CLI allows comments in this file; burnless does not rewrite such a file.
            return SettingsCheck(path, (), (), f"cannot read it as plain JSON ({exc})")
        if not isinstance(loaded, dict):
            return SettingsCheck(path, (), (), "it is not a JSON object")
        data = loaded
    missing: list[str] = []
    overridden: list[str] = []
    for keys, value in GEMINI_SETTINGS:
        present, current = _get(data, keys)
        if not present:
            missing.append(".".join(keys))
        elif current != value:
            overridden.append(".".join(keys))
    return SettingsCheck(path, tuple(missing), tuple(overridden), data=data)


def settings_snippet() -> str:
    """The settings as the JSON a user would add by hand."""
    out: dict[str, Any] = {}
    for keys, value in GEMINI_SETTINGS:
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return json.dumps(out, separators=(", ", ": "))


def with_gemini_settings(check: SettingsCheck) -> bytes:
    """The settings file with burnless's missing settings added (the user's own kept)."""
    data = json.loads(json.dumps(check.data or {}))  # a deep copy
    for keys, value in GEMINI_SETTINGS:
        if ".".join(keys) not in check.missing:
            continue
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = value
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")
