"""Sensitivity: is a task only for ``local: true`` tiers?

A task is sensitive when any of these holds (every one that holds is a reason):

* it matches a regex of ``policy.sensitive_patterns`` (a search; case-sensitive unless the
  pattern says ``(?i)``, as routing rules);
* it names a path matching a glob of ``policy.sensitive_paths``;
* it carries the label ``sensitive`` (``--label sensitive``, any case, also inside a list such
  as ``--label "sensitive,urgent"``);
* it contains a secret while ``policy.redact_secrets`` is off (with redaction on, the secret is
  masked before it leaves, so it does not make the task sensitive).

Paths are path-like tokens of the task (see ``paths_in``), tried as written and normalized
(``./config/keys.json`` is also ``config/keys.json``; ``a/../secrets/x`` is ``secrets/x``;
``~`` and the home directory stand for each other), and also read without markdown emphasis
(``**secrets/x**``), as ``file://`` URLs and on both sides of a colon (``host:secrets/x`` as
scp and ``docker cp`` write it, ``keys/server.pem:12``). Globs follow gitignore's habits:

* ``*`` and ``?`` stay within one path segment, ``**`` spans directories (``secrets/**``,
  ``**/*.pem``), ``[abc]`` and ``[!abc]`` are classes; matching is case-sensitive;
* a glob without ``/`` (``*.pem``, ``.env``, ``.ssh``) matches any segment of the path, so it
  applies at any depth;
* a glob that matches a directory matches everything under it (``secrets`` and ``secrets/``
  cover ``secrets/prod.env``), and ``secrets/**`` also covers the directory itself
  (``list secrets/``);
* a glob with a ``/`` is anchored at the workspace for relative paths; an absolute, ``~/`` or
  ``../`` path is also tried from each of its directories (``/srv/app/secrets/prod.env`` matches
  ``secrets/**``), because burnless cannot tell where such a path meets the workspace and a
  false "sensitive" only keeps the work local while a missed one sends it out.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from burnless.errors import ConfigError

SENSITIVE_LABEL = "sensitive"


@dataclass(frozen=True)
class Sensitivity:
    """Whether work is sensitive (kept on local tiers), and why."""
    sensitive: bool
    reasons: tuple[str, ...]


def classify(
    task: str,
    *,
    patterns: Sequence[str],
    paths: Sequence[str],
    labels: Sequence[str],
    redact_secrets: bool,
) -> Sensitivity:
    reasons: list[str] = []
    for pattern in patterns:
        if _pattern(pattern).search(task):
            reasons.append(f"pattern '{pattern}' matched")
    if paths:
        for path in paths_in(task):
            glob = next((g for g in paths if path_matches(path, g)), None)
            if glob is not None:
                reasons.append(f"path '{path}' matches '{glob}'")
    if any(SENSITIVE_LABEL in _LABEL_SPLIT.split(label.strip().lower()) for label in labels):
        reasons.append(f"label {SENSITIVE_LABEL}")
    if not redact_secrets:
        from burnless.safety.secrets import find_secrets

        kinds = sorted({f.kind for f in find_secrets(task)})
        if kinds:
            reasons.append(f"secret ({', '.join(kinds)}) in task while redact_secrets is off")
    return Sensitivity(bool(reasons), tuple(reasons))


# -- paths in a text ------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\s\"'`()<>\[\]{},;|]+")
_QUOTED = re.compile(r"\"([^\"\n]+)\"|'([^'\n]+)'|`([^`\n]+)`")
_FILE_NAME = re.compile(r"[\w.-]*[A-Za-z_][\w-]*\.[A-Za-z][\w]{0,9}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"[A-Za-z]:/")
_DRIVE_ANY = re.compile(r"[A-Za-z]:[/\\]")
_LABEL_SPLIT = re.compile(r"[\s,;]+")


def paths_in(text: str) -> list[str]:
    """Path-like tokens of ``text``, as written, in order, without duplicates.

    A token is path-like when it has a ``/`` or ``\\``, starts with ``~`` or ``.``, or looks like
    a file name (``prod.env``, ``keys.json``). URLs are not paths (``file://`` URLs are). A
    quoted string with a ``/`` counts whole, spaces included; ``--config=secrets/x`` yields
    ``secrets/x``; see ``_variants`` for the other readings of a token.
    """
    found: dict[str, None] = {}
    candidates: list[str] = []
    for m in _QUOTED.finditer(text):
        inner = next(g for g in m.groups() if g is not None).strip()
        if " " in inner and ("/" in inner or "\\" in inner):
            candidates.append(inner)
    for token in _TOKEN.findall(text):
        candidates.append(token.rsplit("=", 1)[-1])  # --config=secrets/x, PATH=a/b
    for raw in candidates:
        token = raw.rstrip(".:!?").lstrip("@")
        for form in (token, *_variants(token)):
            if _is_path_like(form):
                found.setdefault(form, None)
    return list(found)


def _variants(token: str) -> list[str]:
    """Other readings of a token: ``**bold/path**``, ``file:///abs/path``, ``host:path``,
    ``path:line``. A missed path sends sensitive work out; an extra one only keeps it local."""
    out: list[str] = []
    stripped = token.strip("*")
    if stripped != token:
        out.append(stripped)
    if stripped.lower().startswith("file://"):
        rest = stripped[7:]
        out.append(rest[9:] if rest.lower().startswith("localhost/") else rest)
    elif ":" in stripped and not _SCHEME.match(stripped) and not _DRIVE_ANY.match(stripped):
        parts = stripped.split(":")
        out += [parts[0], parts[-1]]  # host:secrets/x (scp, docker cp), secrets/x.pem:12
    return [v for v in out if v]


def _is_path_like(token: str) -> bool:
    if set(token) <= {".", "/", "~", "\\", "…"}:
        return False  # "", ".", "..", "...", "/", "~"
    if _SCHEME.match(token):
        return False
    if "/" in token or "\\" in token or token.startswith(("~", ".")):
        return True
    return bool(_FILE_NAME.fullmatch(token))


# -- matching -------------------------------------------------------------------------------------


def path_matches(path: str, glob: str) -> bool:
    """Whether ``path`` (as written in a task) falls under ``glob`` (see the module docstring)."""
    rx = _glob(glob)
    anywhere = "/" not in glob.rstrip("/")
    # "secrets/**" also covers the directory itself: "list secrets/" works inside it
    base = glob.rstrip("/")
    dir_rx = _glob(base[:-3]) if base.endswith("/**") and base[:-3].strip("/") else None
    for cand in _forms(path):
        if anywhere:
            if any(rx.fullmatch(seg) for seg in cand.split("/") if seg):
                return True
        elif any(rx.fullmatch(prefix) or (dir_rx is not None and dir_rx.fullmatch(prefix))
                 for prefix in _self_and_parents(cand)):
            return True
    return False


def _forms(path: str) -> list[str]:
    """The path as written, normalized, with ``~`` swapped, and the tails of unanchored paths."""
    written = path.replace("\\", "/")
    norm = posixpath.normpath(written)
    if norm.startswith("./"):
        norm = norm[2:]
    forms = [written, norm]
    home = os.path.expanduser("~").replace("\\", "/").rstrip("/")
    if norm.startswith("~/"):
        forms.append(home + norm[1:])
    elif home and norm.startswith(home + "/"):
        forms.append("~" + norm[len(home) :])
    if norm.startswith(("/", "~/", "../")) or _DRIVE.match(norm):
        parts = norm.split("/")
        forms += ["/".join(parts[i:]) for i in range(1, len(parts))]
    return list(dict.fromkeys(f for f in forms if f and f != "."))


def _self_and_parents(path: str) -> list[str]:
    out = [path]
    pos = path.rfind("/")
    while pos > 0:
        out.append(path[:pos])
        pos = path.rfind("/", 0, pos)
    return out


@lru_cache(maxsize=256)
def _glob(glob: str) -> re.Pattern[str]:
    """Translate a glob: ``**`` spans directories, ``*`` and ``?`` stay within a segment."""
    g = glob.replace("\\", "/")
    if g.startswith("./"):
        g = g[2:]
    if g.endswith("/"):
        g = g.rstrip("/") or "/"  # "secrets/" names the directory; its contents follow
    out: list[str] = []
    i, n = 0, len(g)
    while i < n:
        c = g[i]
        if g.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif g.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := g.find("]", i + 2)) != -1:
            body = g[i + 1 : end]
            neg = body.startswith(("!", "^"))
            body = body[1:] if neg else body
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"policy.sensitive_patterns: {pattern!r} is not a valid regex: {exc}"
        ) from None
