"""burnless log RUN_ID: the raw output of one call."""

from __future__ import annotations

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
    from burnless.ledger import log_path

    cfg = load_config(config)
    path = log_path(cfg.state_dir, run_id)
    try:
        with open(path, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
    except FileNotFoundError:
        raise UsageError(f"no log for run {run_id} in {path.parent}") from None
    sys.stdout.flush()
