"""The typer application: the root command, the command table and ``main`` (the parser and
its errors in burnless's one style). ``burnless.cli`` re-exports its names."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, NoReturn

import typer

from burnless import __version__
from burnless.cli import console
from burnless.errors import EXIT_INTERRUPTED, EXIT_MEANINGS, EXIT_USAGE


def epilog(examples: Sequence[str], exit_codes: bool = False) -> str:
    """A command's help epilog: examples, and the exit-code table (lines kept as written:
    a paragraph after a line holding only \b is not rewrapped)."""
    text = "\b\nExamples:\n" + "\n".join(f"  {e}" for e in examples)
    if exit_codes:
        text += "\n\n\b\nExit codes:\n" + "\n".join(
            f"  {code:<4} {meaning}" for code, meaning in EXIT_MEANINGS.items())
    return text


app = typer.Typer(
    name="burnless",
    help="Run AI agent work cheaply and honestly: tiers, capsules, audited claims, metered spend.",
    epilog=epilog([
        "burnless demo                                  # offline, simulated",
        "burnless init && burnless doctor",
        'burnless run "Refactor the auth module" --session auth',
        'burnless route "design the cache layer" --explain',
        "burnless usage --period last7d --by tier --chart",
        "burnless --config ci/burnless.yaml run \"...\"   # the state stays in this project",
        "burnless completion bash > ~/.local/share/bash-completion/completions/burnless",
    ], exit_codes=True),
    no_args_is_help=True,
    add_completion=False,  # `burnless completion SHELL` instead: no completion code at start-up
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's help renderer costs ~70 ms per invocation
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"burnless {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config: Annotated[
        str | None,
        typer.Option("--config", help="Config file (default: .burnless/config.yaml found "
                     "walking up from the cwd; or $BURNLESS_CONFIG). It only chooses the "
                     "configuration: the workspace stays the current project.",
                     show_default=False),
    ] = None,
    workspace: Annotated[
        str | None,
        typer.Option("--workspace", help="Project folder where workers run and state is "
                     "written (default: the nearest folder up from the cwd holding .burnless/, "
                     "else the cwd; or $BURNLESS_WORKSPACE).", show_default=False),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """burnless: a cheap model runs the loop, a frontier model plans, every claim is audited."""
    if config:
        os.environ["BURNLESS_CONFIG"] = config
    if workspace:
        os.environ["BURNLESS_WORKSPACE"] = workspace


# Each command: (module in burnless.cli, attribute); a Typer attribute is a command group.
# In this order in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run"),
    "route": ("route", "route"),
    "session": ("session", "app"),
    "usage": ("usage", "usage"),
    "metrics": ("metrics", "metrics"),
    "serve": ("metrics", "serve"),
    "keys": ("keys", "app"),
    "log": ("log", "log"),
    "init": ("init", "init"),
    "doctor": ("doctor", "doctor"),
    "mcp": ("mcp", "mcp"),
    "sim": ("sim", "app"),
    "demo": ("demo", "demo"),
    "eval": ("eval", "eval_"),
    "completion": ("completion", "completion"),
    "daemon": ("daemon", "app"),
}


def register(names: Iterable[str] = COMMANDS) -> typer.Typer:
    """Add ``names`` (all commands by default) to ``app``, importing only their modules."""
    for name in names:
        if name in _registered:
            continue
        module, attr = COMMANDS[name]
        mod = importlib.import_module(f"burnless.cli.{module}")
        target = getattr(mod, attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:  # a module's EPILOG maps its commands to their help's examples
            app.command(name, epilog=getattr(mod, "EPILOG", {}).get(attr))(target)
        _registered.add(name)
    return app


_registered: set[str] = set()


def invoked(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, after the root's options; None when that is not plain
    (``--help``, ``--version``, a typo): then every command is registered, for help and errors.
    """
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--config", "--workspace"):
            i += 2
        elif arg.startswith(("--config=", "--workspace=")):
            i += 1
        else:
            return arg if arg in COMMANDS else None
    return None


def _click_exceptions() -> Any:
    """click's exception classes: vendored in newer typer, the click package in older ones."""
    try:
        from typer._click import exceptions
    except ImportError:  # typer < 0.28 depends on click
        from click import exceptions  # type: ignore[no-redef,import-not-found,unused-ignore]
    return exceptions


def _usage_error(exc: Any) -> NoReturn:
    """A usage error from the parser (a missing argument, an unknown option or command) in the
    one error style: the usage line, the help hint, then ``burnless: error: ...``; exit 2."""
    ctx = exc.ctx
    if ctx is not None:
        sys.stderr.write(ctx.get_usage() + "\n")
        if ctx.command.get_help_option(ctx) is not None:
            sys.stderr.write(f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.\n")
    sys.stderr.write(f"burnless: error: {exc.format_message()}\n")
    sys.exit(EXIT_USAGE)


def main() -> None:
    console.setup_process()
    if os.environ.get("_BURNLESS_COMPLETE"):
        # The shell asks for completions (`burnless completion SHELL` installed the hook):
        # typer's completion classes answer; they are registered only then.
        from typer._completion_classes import completion_init

        completion_init()
    # Building every command's parser costs ~15 ms of imports and signature inspection; a
    # run needs only its own.
    name = invoked(sys.argv[1:])
    register([name] if name is not None else COMMANDS)
    clicks = _click_exceptions()
    try:
        # Not standalone: usage errors come back here, to be said in burnless's own style.
        with console.errors_to_exit():
            code = app(prog_name="burnless", standalone_mode=False)
    except getattr(clicks, "NoArgsIsHelpError", ()) as exc:  # click >= 8.2
        exc.show()  # `burnless` alone, `burnless session`: the help, on stderr, exit 2
        sys.exit(EXIT_USAGE)
    except clicks.UsageError as exc:
        _usage_error(exc)
    except clicks.ClickException as exc:
        sys.stderr.write(f"burnless: error: {exc.format_message()}\n")
        sys.exit(exc.exit_code)
    except typer.Abort:  # EOF or Ctrl-C in one of click's own prompts
        sys.stderr.write("burnless: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
