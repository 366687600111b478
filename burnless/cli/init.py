"""burnless init: write .burnless/ from the example and say which agent CLIs are installed."""

from __future__ import annotations

from typing import Annotated

import typer

from burnless.cli import console
from burnless.cli.options import JsonOpt

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


def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config "
                                        "(the old files are kept as *.bak).")] = False,
    json_: JsonOpt = False,
) -> None:
    """Create .burnless/config.yaml and prefix.md in the current directory."""
    import shutil
    from importlib.resources import files
    from pathlib import Path

    from burnless.atomic import write_atomic
    from burnless.errors import UsageError

    state = Path.cwd() / ".burnless"
    config = state / "config.yaml"
    with console.json_errors(json_):
        if config.exists() and not force:
            raise UsageError(f"{config} already exists; use --force to overwrite it "
                             "(the old file is kept as config.yaml.bak)")
    example = files("burnless") / "example"
    state.mkdir(exist_ok=True)
    written: list[str] = []
    for name in ("config.yaml", "prefix.md"):
        target = state / name
        if target.exists():
            if name == "prefix.md" and not force:
                continue
            shutil.copy2(target, target.with_name(name + ".bak"))
        write_atomic(target, (example / name).read_bytes())
        written.append(str(target.relative_to(Path.cwd())))
    checks = state / "checks"
    if not checks.exists():
        _copy_tree(example / "checks", checks)
        written.append(str(checks.relative_to(Path.cwd())) + "/")
    gitignore = state / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(GITIGNORE, encoding="utf-8")
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


def _copy_tree(src: object, dst: object) -> None:
    """Copy a package resource directory (Traversable) to a real directory."""
    from pathlib import Path

    assert isinstance(dst, Path)
    if not hasattr(src, "iterdir") or not src.is_dir():  # type: ignore[attr-defined]
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
