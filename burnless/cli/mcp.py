"""burnless mcp: serve burnless's tools (run, consult, route, session_show, usage) over MCP."""

from __future__ import annotations

from burnless.cli import epilog
from burnless.cli.options import ConfigOpt


def mcp(config: ConfigOpt = None) -> None:
    """Serve run, consult, route, session_show and usage as MCP tools over stdio.

    For Claude Code: `burnless init --claude-code` writes the .mcp.json entry. Needs the MCP
    SDK: pip install 'burnless[mcp]'.
    """
    from burnless.errors import UsageError

    try:
        from burnless.mcp_server import serve
    except ImportError as exc:
        if exc.name is not None and (exc.name == "mcp" or exc.name.startswith("mcp.")):
            raise UsageError("`burnless mcp` needs the MCP SDK, which is not installed: "
                             "pip install 'burnless[mcp]'") from None
        raise
    serve(config)


EPILOG = {"mcp": epilog([
    "burnless init --claude-code          # writes .mcp.json: Claude Code starts this server",
    "claude mcp add burnless -- burnless mcp",
])}
