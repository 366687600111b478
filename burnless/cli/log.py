"""burnless log RUN_ID: the raw output of one call."""

from __future__ import annotations

import errno
import shutil
import sys
from typing import Annotated

import typer

from burnless.cli import epilog
from burnless.cli.options import ConfigOpt, JsonOpt

EPILOG = {"log": epilog([
    "burnless log r-20261128T120000-a1b2c3",
    "burnless run \"...\" --json | jq -r .run_id | xargs burnless log",
    "burnless log r-20261128T120000-a1b2c3 --json | jq -r .text",
])}


def log(
    run_id: Annotated[str, typer.Argument(help="The run id (r-YYYYMMDDTHHMMSS-xxxxxx).")],
    json_: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Print the raw worker output (stdout and stderr) of one call."""
    from burnless.cli import console
    from burnless.config import load_config
    from burnless.errors import UsageError
    from burnless.runs import log_path
    from burnless.storage.atomic import open_regular

    with console.json_errors(json_):
        cfg = load_config(config)
        path = log_path(cfg.state_dir, run_id)
        try:
            f = open_regular(path)  # a FIFO planted under logs/ must not hang the command
        except FileNotFoundError:
            raise UsageError(f"no log for run {run_id} in {path.parent}") from None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise UsageError(
                    f"{path} is not a regular file; it is not a log burnless wrote") from None
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        if json_:
            data = f.read()
            # The log is the worker's bytes; JSON holds text (invalid UTF-8 becomes U+FFFD).
            console.emit_json({"run_id": run_id, "path": str(path), "bytes": len(data),
                               "text": data.decode("utf-8", errors="replace")})
            return
        shutil.copyfileobj(f, sys.stdout.buffer)
    sys.stdout.flush()
