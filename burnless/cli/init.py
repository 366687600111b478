"""burnless init: write .burnless/ from the example and say which agent CLIs are installed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from burnless.cli import console, epilog
from burnless.cli.options import JsonOpt

if TYPE_CHECKING:
    from importlib.abc import Traversable

AGENT_CLIS = ("claude", "codex", "gemini", "ollama")
TIER_CLIS = ("claude", "codex", "gemini")  # what --cli accepts: the example's tiers run claude
# The example's Claude Code tiers run from this line up to the tier-0 comment; --cli swaps them.
_TIERS_START = "  # Claude Code tiers"
_TIERS_END = "  # Tier 0:"
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
    cli: Annotated[str, typer.Option(
        "--cli", help="The agent CLI the gold/silver/bronze tiers run: claude, codex or gemini "
        "(gemini also writes .gemini/settings.json).")] = "claude",
    claude_code: Annotated[bool, typer.Option(
        "--claude-code", help="Also write .mcp.json (the `burnless mcp` server) and a Claude "
        "Code subagent in .claude/agents/; an existing config is kept.")] = False,
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
    notes: list[str] = []
    keep_config = claude_code and _present(config) and not force
    dropped: list[str] = []
    with console.json_errors(json_):
        if cli not in TIER_CLIS:
            raise UsageError(f"--cli {cli!r}: expected one of {', '.join(TIER_CLIS)}")
        if _present(state) and not state.is_dir():
            raise UsageError(f"{state} exists and is not a directory; move it away and run "
                             "`burnless init` again")
        if _present(config) and not force and not claude_code:
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
                if name == "config.yaml":
                    if keep_config:
                        continue
                    if cli != "claude":
                        data = _with_tiers(data, (example / "tiers" / f"{cli}.yaml").read_bytes())
                    else:
                        data, dropped = _lean(data)
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
            if cli == "gemini":
                notes.extend(_gemini_settings(root, written))
        except OSError as exc:
            raise UsageError(f"cannot write {state}: {exc}") from None
        planned = _claude_code_files(root, config, force) if claude_code else []
    found = {name: shutil.which(name) for name in AGENT_CLIS}
    if json_:
        console.emit_json({
            "written": written, "clis": found, "notes": notes, "dropped_flags": dropped,
            "claude_code": [{"path": _shown(p.path), "action": p.action,
                             "undo": p.undo} for p in planned],
        })
        return
    for w in written:
        console.out(f"wrote {w}")
    if keep_config:
        console.out(f"kept {_shown(config)} (--force replaces it)")
    if dropped:
        console.out(f"  the installed claude does not accept {', '.join(dropped)}: left out "
                    "of the tiers (update Claude Code for leaner calls)")
    for note in notes:
        console.out(note)
    for name, path in found.items():
        console.out(f"  {name:<7} {'found at ' + path if path else 'not found on PATH'}")
    if not found[cli]:
        console.out(f"The tiers run `{cli}`, which is not on PATH; install it, run "
                    "`burnless init --force --cli codex|gemini|claude`, or edit the tiers in "
                    ".burnless/config.yaml. `burnless doctor` checks the setup.")
    if planned:
        _print_claude_code(planned)


def _lean(data: bytes) -> tuple[bytes, list[str]]:
    """The example config, without the lean flags the installed `claude` does not accept."""
    import shutil

    from burnless.claude_setup import lean_config
    from burnless.config import global_config_path
    from burnless.workers.claude_code import flags

    if shutil.which("claude") is None:
        return data, []
    known = flags("claude", global_config_path().parent / "cache")
    text, dropped = lean_config(data.decode("utf-8"), known)
    return text.encode("utf-8"), dropped


def _claude_code_files(root: Path, config: Path, force: bool) -> list[Any]:
    """Write .mcp.json and the subagent (backing up what --force replaces)."""
    from burnless import claude_setup
    from burnless.config import load_config
    from burnless.errors import BurnlessError, UsageError
    from burnless.storage.atomic import write_atomic

    try:
        cfg = load_config(config)
        models = [cfg.tiers[t].model for t in (cfg.executor, *cfg.routing.ladder)
                  if t in cfg.tiers]
    except BurnlessError:
        models = []  # the subagent still works; `burnless doctor` reports the config
    entry = claude_setup.mcp_entry(claude_setup.server_command())
    planned = [claude_setup.plan_mcp_json(root, entry, force),
               claude_setup.plan_agent(root, claude_setup.subagent_model(models), force)]
    try:
        for p in planned:
            if p.data is None:
                continue
            if p.action == "replaced":
                _backup(p.path, p.data)
            p.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(p.path, p.data)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or root}: {exc.strerror or exc}") from None
    return planned


def _print_claude_code(planned: list[Any]) -> None:
    from burnless import claude_setup

    console.out("Claude Code:")
    for p in planned:
        rel = _shown(p.path)
        console.out(f"  {p.action} {rel}  (undo: {p.undo})")
        if p.data is not None:
            for line in p.data.decode("utf-8").splitlines():
                console.out(f"    | {line}")
    server = claude_setup.SERVER_NAME
    console.out(f"  Claude Code asks once before it starts a project's MCP server. In `claude -p`,"
                f" allow the tools with --allowedTools mcp__{server}__run,mcp__{server}__consult."
                f" The subagent {claude_setup.AGENT_NAME} delegates through them; "
                "`burnless mcp` needs pip install 'burnless[mcp]'.")



def _with_tiers(config: bytes, tiers: bytes) -> bytes:
    """The example config with its Claude Code tiers replaced by another CLI's."""
    text = config.decode("utf-8")
    start, end = text.index(_TIERS_START), text.index(_TIERS_END)
    return (text[:start] + tiers.decode("utf-8") + text[end:]).encode("utf-8")


def _gemini_settings(root: Path, written: list[str]) -> list[str]:
    """Add burnless's settings to the project's .gemini/settings.json (the user's own kept)."""
    from burnless.agent_clis import check_gemini_settings, settings_snippet, with_gemini_settings
    from burnless.storage.atomic import write_atomic

    check = check_gemini_settings(root)
    shown = str(check.path.relative_to(root))
    if check.unreadable:
        return [f"{shown}: {check.unreadable}; left as it is. Add {settings_snippet()} to it "
                "so the Gemini CLI's context stays the same from call to call."]
    notes = []
    if check.missing:
        data = with_gemini_settings(check)
        check.path.parent.mkdir(parents=True, exist_ok=True)
        if _present(check.path):
            _backup(check.path, data)
        write_atomic(check.path, data)
        written.append(shown)
        notes.append(f"{shown}: set {', '.join(check.missing)} to false: the Gemini CLI then "
                     "sends the same context on every call (no directory tree, no skill list "
                     "in a changing order), which the provider's prompt cache keeps serving")
    if check.overridden:
        notes.append(f"{shown}: {', '.join(check.overridden)} already set by you; left as "
                     "it is (`burnless doctor` says what it costs)")
    return notes


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
