"""A process that appends to a ledger and reads its index at once, as `burnless run` does.

    ledger_client.py STATE NAME CALLS GO_FILE

Waits until GO_FILE exists (so that every client starts together), then CALLS times: appends
one record of $0.25 for session NAME and reads the spend of NAME back through the index (the
budget check's path), which must count every call this process made. Prints one JSON line:
the spends it saw, and whether any read had to fall back to an index in memory.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

from burnless.accounting import ledger
from burnless.accounting.index import LedgerIndex
from burnless.accounting.ledger import LedgerRecord


def main() -> None:
    state, name, calls, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    while not go.exists():
        time.sleep(0.005)
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    seen: list[float] = []
    private = False
    for i in range(calls):
        ledger.record_call(state, LedgerRecord(
            run_id="r-20261128T120000-abcdef", session=name, role="execution", tier="silver",
            model="m", status="ok", cost_usd=0.25, cost_source="priced"))
        with LedgerIndex.open(state) as idx:
            private = private or idx.private
            spend = idx.spend(session=name, day=day)
        if spend.session_calls != i + 1:
            raise SystemExit(f"{name}: saw {spend.session_calls} calls after making {i + 1}")
        seen.append(spend.day_cost)
    sys.stdout.write(orjson.dumps({"seen": seen, "private": private}).decode() + "\n")


if __name__ == "__main__":
    main()
