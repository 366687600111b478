"""burnless completion SHELL: the shell completion script (no completion code at start-up)."""

from __future__ import annotations

from typing import Annotated

import typer

from burnless.cli import console, epilog

SHELLS = ("bash", "zsh", "fish", "powershell")


def completion(
    shell: Annotated[str, typer.Argument(help="bash | zsh | fish | powershell.",
                                         show_default=False)],
    install: Annotated[bool, typer.Option(
        "--install", help="Install it in the shell's start-up file instead of printing it "
        "(bash: ~/.bashrc, zsh: ~/.zshrc, fish: ~/.config/fish/completions/).")] = False,
) -> None:
    """Print the completion script for SHELL (or --install it).

    The script calls burnless back with _BURNLESS_COMPLETE set to ask for completions:
    commands, options, and the choices they take.
    """
    from burnless.errors import UsageError

    if shell not in SHELLS:
        raise UsageError(f"shell {shell!r}: expected one of {', '.join(SHELLS)}")
    from typer._completion_classes import completion_init
    from typer._completion_shared import get_completion_script
    from typer._completion_shared import install as put

    completion_init()
    if install:
        where, path = put(shell=shell, prog_name="burnless", complete_var="_BURNLESS_COMPLETE")
        console.out(f"{where} completion installed in {path}; it takes effect in a new shell")
        return
    console.out(get_completion_script(prog_name="burnless", complete_var="_BURNLESS_COMPLETE",
                                      shell=shell))


EPILOG = {"completion": epilog([
    "burnless completion bash > ~/.local/share/bash-completion/completions/burnless",
    'burnless completion zsh > "${fpath[1]}/_burnless"',
    "burnless completion fish > ~/.config/fish/completions/burnless.fish",
    "burnless completion bash --install",
])}
