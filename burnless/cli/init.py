"""burnless init: write .burnless/ from the example and say which agent CLIs are installed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from burnless.cli import console, epilog
from burnless.cli.options import JsonOpt

if TYPE_CHECKING:
    from importlib.abc import Traversable

AGENT_CLIS = ("claude", "codex", "gemini", "ollama")
GITIGNORE = """\
# burnless state: keep config.yaml and prefix.md under version control, not these.
sessions/
logs/
cache/
ledger.jsonl*
*.lock
*.torn
redact.key
reservations.json
breaker.json
"""


EPILOG = {"init": epilog([
    "burnless init && burnless doctor",
    "burnless --workspace ~/src/app init",
    "burnless init --force        # the old files are kept as *.bak",
])}


def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config "
                                        "(the old files are kept as *.bak).")] = False,
    json_: JsonOpt = False,
) -> None:
    """Create .burnless/config.yaml and prefix.md in the current directory (or --workspace)."""
    import shutil
    from importlib.resources import files

    from burnless.config import explicit_workspace
    from burnless.errors import UsageError
    from burnless.storage.atomic import write_atomic

    with console.json_errors(json_):
        root = explicit_workspace() or Path.cwd()
    state = root / ".burnless"
    config = state / "config.yaml"
    example = files("burnless") / "example"
    with console.json_errors(json_):
        if _present(state) and not state.is_dir():
            raise UsageError(f"{state} exists and is not a directory; move it away and run "
                             "`burnless init` again")
        if _present(config) and not force:
            raise UsageError(f"{config} already exists; use --force to overwrite it "
                             "(the old file is kept as a .bak copy)")
        for name in ("config.yaml", "prefix.md"):
            target = state / name
            if force and _present(target) and not target.is_file():
                raise UsageError(f"{target} exists and is not a regular file (a directory, "
                                 "a broken symlink...); move it away and run init again")
        try:
            # Read the example first: an install without it must not leave an empty .burnless/.
            datas = {name: (example / name).read_bytes() for name in ("config.yaml", "prefix.md")}
        except OSError as exc:
            raise UsageError(f"this burnless install lacks its example config ({exc}); "
                             "reinstall burnless") from None
        try:
            state.mkdir(exist_ok=True)
            written: list[str] = []
            for name, data in datas.items():
                target = state / name
                if _present(target):
                    if name == "prefix.md" and not force:
                        continue
                    _backup(target, data)
                write_atomic(target, data)
                written.append(_shown(target))
            checks = state / "checks"
            if not _present(checks):
                _copy_tree(example / "checks", checks)
                written.append(_shown(checks) + "/")
            gitignore = state / ".gitignore"
            if not _present(gitignore):
                gitignore.write_text(GITIGNORE, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {state}: {exc}") from None
    found = {name: shutil.which(name) for name in AGENT_CLIS}
    if json_:
        console.emit_json({"written": written, "clis": found})
        return
    for w in written:
        console.out(f"wrote {w}")
    for name, path in found.items():
        console.out(f"  {name:<7} {'found at ' + path if path else 'not found on PATH'}")
    if not found["claude"]:
        console.out("The example tiers run Claude Code (`claude`); install it or edit the tiers "
                    "in .burnless/config.yaml. `burnless doctor` checks the setup.")


def _shown(path: Path) -> str:
    """``path`` relative to the cwd when it is below it (the usual case), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _present(path: Path) -> bool:
    """Whether anything is at ``path``, a broken symlink included."""
    return path.is_symlink() or path.exists()


def _backup(target: Path, new: bytes) -> None:
    """Keep ``target`` as NAME.bak, or NAME.bak.1, .bak.2...: an older backup is never
    overwritten. Nothing to keep when it already holds ``new``."""
    import shutil

    if target.read_bytes() == new:
        return
    bak = target.with_name(target.name + ".bak")
    n = 0
    while _present(bak):
        n += 1
        bak = target.with_name(f"{target.name}.bak.{n}")
    shutil.copy2(target, bak)


def _copy_tree(src: Traversable, dst: Path) -> None:
    """Copy a package resource directory to a real directory."""
    if not src.is_dir():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name == "__pycache__":
            continue
        target = dst / item.name
        if item.is_dir():
            _copy_tree(item, target)
        else:
            target.write_bytes(item.read_bytes())
            if item.name.endswith(".py"):
                target.chmod(0o755)
