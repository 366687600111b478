"""burnless log RUN_ID: the raw output of one call."""

from __future__ import annotations

import errno
import shutil
import sys
from typing import Annotated

import typer

from burnless.cli.options import ConfigOpt


def log(
    run_id: Annotated[str, typer.Argument(help="The run id (r-YYYYMMDDTHHMMSS-xxxxxx).")],
    config: ConfigOpt = None,
) -> None:
    """Print the raw worker output (stdout and stderr) of one call."""
    from burnless.config import load_config
    from burnless.errors import UsageError
    from burnless.runs import log_path
    from burnless.storage.atomic import open_regular

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
        shutil.copyfileobj(f, sys.stdout.buffer)
    sys.stdout.flush()
