"""``burnless mcp``: burnless as an MCP server over stdio, for Claude Code and other MCP clients.

Five tools: ``run`` (a task, audited, in a session), ``consult`` (a question to the planner
tier, answered in text), ``route``, ``session_show`` and ``usage``. Every ``run`` and
``consult`` is an ordinary ``BurnlessAgent.run`` turn — routing, policy, budget, audit, capsule
and ledger record as from the command line — so whatever the core records about a turn (a
parent run, a delegation tree) it records here too. A refusal (budget, policy, a busy session,
a bad argument) comes back as a tool error carrying burnless's message; a worker that fails or
lies is a result with ``ok: false`` and the audit's findings, which the assistant can act on.

While a worker runs, the call reports MCP progress notifications (when the client asked for
them with a progress token): the role and tier when a call starts, then the worker's latest
output line (masked, at most a few a second).

This module imports the ``mcp`` SDK (and with it pydantic and anyio) at import time: only
``burnless mcp`` imports it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field
from typing_extensions import TypedDict  # pydantic reads nested TypedDicts from here on < 3.12

from burnless.errors import BurnlessError, UsageError

# The model that calls these tools reads their descriptions on every request: short.
INSTRUCTIONS = (
    "burnless runs tasks on cheaper model tiers and checks what they claim. Delegate "
    "mechanical, well-specified work (edits, file writes, renames, boilerplate) with `run`; "
    "ask the planner tier with `consult` before a decision that deserves a stronger model. "
    "Each result says whether the audit passed and what it cost."
)
CONSULT_TASK = (
    "Consultation: answer the question below in text, for the agent that asked it. Change no "
    "file and claim none: this is a thought turn (envelope kind \"thought\", files []).\n\n"
    "Question: {question}"
)
LINE_INTERVAL_S = 0.5  # at most two progress lines a second reach the client


class FindingOut(TypedDict):
    check: str
    path: str
    detail: str


class AuditOut(TypedDict):
    verdict: str
    findings: list[FindingOut]
    unclaimed: list[str]


class TokensOut(TypedDict):
    input: int
    output: int
    cache_read: int
    cache_write: int


class RunOut(TypedDict):
    ok: bool
    status: str
    exit_code: int
    session: str
    tier: str
    model: str | None
    run_id: str
    summary: str
    files: list[str]
    next: str
    audit: AuditOut
    cost_usd: float | None
    cost_source: str
    usage: TokensOut
    calls: int
    plan: list[str]
    warnings: list[str]
    findings: list[str]
    log: str


class ConsultOut(TypedDict):
    ok: bool
    answer: str
    tier: str
    model: str | None
    session: str
    run_id: str
    cost_usd: float | None
    cost_source: str
    changed_files: list[str]
    warnings: list[str]


class RouteOut(TypedDict):
    tier: str
    natural: str
    pinned: str | None
    policy: str | None
    reasons: list[str]
    cascade: bool
    sensitive: bool
    ladder: list[str]


class CapsuleOut(TypedDict):
    seq: int
    epoch: int
    role: str
    tier: str
    status: str
    audit: str
    summary: str
    files: list[str]
    plan: list[str]
    run_id: str


class SessionOut(TypedDict):
    id: str
    executor: str | None
    capsules: int
    epoch: int
    calls: int
    cost_usd: float | None
    pins: dict[str, str]
    recent: list[CapsuleOut]


class StatsOut(TypedDict):
    key: str
    calls: int
    input: int
    output: int
    cache_read: int
    cache_write: int
    cost_usd: float | None
    refusals: int
    audit_failures: int


class UsageOut(TypedDict):
    by: str
    since: str | None
    until: str
    rows: list[StatsOut]
    total: StatsOut


# ---------------------------------------------------------------------- progress


class McpProgress:
    """The ``burnless.calls.Progress`` protocol as MCP progress notifications.

    ``start`` and ``stop`` come from the thread running the turn, ``line`` from the threads
    that drain the worker's output: each notification is handed to the server's event loop
    through its token. A notification that cannot be sent (the client went away) is dropped:
    progress never fails a turn.
    """

    def __init__(self, ctx: Context[Any, Any], token: anyio.lowlevel.EventLoopToken) -> None:
        self._ctx = ctx
        self._token = token
        self._lock = threading.Lock()
        self._n = 0
        self._label = ""
        self._last_line = 0.0

    def start(self, role: str, tier: str) -> None:
        self._label = f"{role} on {tier}"
        self._send(f"{self._label}: started")

    def line(self, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_line < LINE_INTERVAL_S:
                return
            self._last_line = now
        text = " ".join(text.split())
        if text:
            self._send(f"{self._label}: {text[:200]}")

    def stop(self) -> None:
        self._send(f"{self._label}: finished")

    def _send(self, message: str) -> None:
        with self._lock:
            self._n += 1
            n = self._n
        try:
            anyio.from_thread.run(self._ctx.report_progress, float(n), None, message,
                                  token=self._token)
        except Exception:  # noqa: BLE001 - a lost notification must not fail the turn
            pass


# ---------------------------------------------------------------------- the tools


def _tool_error(exc: BurnlessError) -> ToolError:
    return ToolError(f"burnless: {exc} ({type(exc).__name__}, exit {exc.exit_code})")


async def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run a blocking burnless call off the event loop; its refusals become tool errors."""
    try:
        return await anyio.to_thread.run_sync(fn)
    except BurnlessError as exc:
        raise _tool_error(exc) from None


def _run_out(result: Any) -> RunOut:
    d = result.to_dict()
    audit = d["audit"]
    return RunOut(
        ok=d["ok"], status=d["status"], exit_code=d["exit_code"], session=d["session"],
        tier=d["tier"], model=d["model"], run_id=d["run_id"], summary=d["summary"],
        files=d["files"], next=d["next"],
        audit=AuditOut(
            verdict=audit["verdict"],
            findings=[FindingOut(check=f["check"], path=f["path"], detail=f.get("detail", ""))
                      for f in audit["findings"]],
            unclaimed=audit["unclaimed"],
        ),
        cost_usd=d["cost_usd"], cost_source=d["cost_source"], usage=TokensOut(
            input=d["usage"]["input"], output=d["usage"]["output"],
            cache_read=d["usage"]["cache_read"], cache_write=d["usage"]["cache_write"]),
        calls=len(d["calls"]), plan=d["plan"], warnings=d["warnings"], findings=d["findings"],
        log=d["log"],
    )


def build_server(config_path: str | None = None) -> MCPServer[Any]:
    """The MCP server; each tool call loads the configuration afresh (as one CLI call would)."""
    from burnless import __version__

    server: MCPServer[Any] = MCPServer(
        "burnless", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING",
    )

    def agent() -> Any:
        from burnless.agent import BurnlessAgent

        return BurnlessAgent(config_path)

    @server.tool(description=(
        "Run a task as one audited burnless turn on a cheaper tier (routed, or the tier "
        "named) in a session; returns status, summary, files, the audit's verdict and "
        "findings, and the cost. ok is false when the work failed or its claims do not "
        "hold."))
    async def run(
        task: Annotated[str, Field(description="What to do, self-contained: files, names, "
                                   "expected result.", min_length=1)],
        ctx: Context[Any, Any],
        session: Annotated[str | None, Field(description="Session id: turns of one session "
                                             "share capsules (default $BURNLESS_SESSION, else "
                                             "'default').")] = None,
        tier: Annotated[str | None, Field(description="Force this tier.")] = None,
        cascade: Annotated[bool, Field(description="Climb the ladder, cheapest first, until "
                                       "a rung succeeds.")] = False,
        plan: Annotated[bool, Field(description="Let the planner tier plan a new "
                                    "session's first turn.")] = True,
        labels: Annotated[list[str], Field(description="Labels for routing rules and policy "
                                           "(e.g. 'sensitive').")] = [],  # noqa: B006
        verify: Annotated[list[str], Field(description="Commands that must exit 0 after the "
                                           "worker.")] = [],  # noqa: B006
        timeout: Annotated[float | None, Field(description="Seconds before the worker is "
                                               "killed.", gt=0)] = None,
    ) -> RunOut:
        progress = McpProgress(ctx, anyio.lowlevel.current_token())
        call = functools.partial(
            _run_turn, agent, task, session, tier=tier, cascade=cascade, plan=plan,
            labels=list(labels), verify=list(verify), timeout=timeout, progress=progress)
        out: RunOut = await _in_thread(call)
        return out

    @server.tool(description=(
        "Ask the planner tier (the stronger model) a question and get its answer in text. "
        "A thought turn: it changes no file. Recorded in the session and the ledger like any "
        "turn."))
    async def consult(
        question: Annotated[str, Field(description="The question, with the context the "
                                       "planner needs to answer it.", min_length=1)],
        ctx: Context[Any, Any],
        session: Annotated[str | None, Field(description="Session id (the answer becomes "
                                             "one of its capsules).")] = None,
        timeout: Annotated[float | None, Field(description="Seconds before the planner is "
                                               "killed.", gt=0)] = None,
    ) -> ConsultOut:
        progress = McpProgress(ctx, anyio.lowlevel.current_token())
        out: ConsultOut = await _in_thread(functools.partial(
            _consult, agent, question, session, timeout=timeout, progress=progress))
        return out

    @server.tool(description="Which tier would serve a task, and why; runs nothing.")
    async def route(
        task: Annotated[str, Field(description="The task.", min_length=1)],
        session: Annotated[str | None, Field(description="Session id.")] = None,
        labels: Annotated[list[str], Field(description="Labels.")] = [],  # noqa: B006
        tier: Annotated[str | None, Field(description="Force this tier.")] = None,
        cascade: Annotated[bool, Field(description="As run's cascade.")] = False,
    ) -> RouteOut:
        def decide() -> RouteOut:
            d = agent().route(task, session, labels=list(labels), tier=tier,
                              cascade=cascade).to_dict()
            return RouteOut(tier=d["tier"], natural=d["natural"], pinned=d["pinned"],
                            policy=d["policy"], reasons=d["reasons"], cascade=d["cascade"],
                            sensitive=d["sensitive"], ladder=d["ladder"])

        out: RouteOut = await _in_thread(decide)
        return out

    @server.tool(description="A session's capsules (its most recent turns), pins, calls and "
                             "cost.")
    async def session_show(
        session: Annotated[str, Field(description="Session id.", min_length=1)],
        recent: Annotated[int, Field(description="How many of the latest capsules to "
                                     "return.", ge=0, le=200)] = 20,
    ) -> SessionOut:
        out: SessionOut = await _in_thread(functools.partial(_session, agent, session, recent))
        return out

    @server.tool(description="Calls, tokens, cache hits and cost from the ledger, per group.")
    async def usage(
        by: Annotated[str, Field(description="tier | model | session | role | day")] = "tier",
        period: Annotated[str | None, Field(description="today | last7d | last30d | all "
                                            "(default last30d).")] = None,
        since: Annotated[str | None, Field(description="From this UTC day on (YYYY-MM-DD), "
                                           "instead of period.")] = None,
    ) -> UsageOut:
        out: UsageOut = await _in_thread(functools.partial(_usage, agent, by, period, since))
        return out

    return server


def _run_turn(agent: Callable[[], Any], task: str, session: str | None, **kwargs: Any) -> RunOut:
    return _run_out(agent().run(task, session, **kwargs))


def _consult(
    agent: Callable[[], Any], question: str, session: str | None, *, timeout: float | None,
    progress: McpProgress,
) -> ConsultOut:
    """A question to the planner tier, as an execution turn forced onto that tier, with no
    plan and an instruction to change nothing; a file it changes anyway is reported."""
    a = agent()
    planner = a.config.planner
    if not planner:
        raise UsageError("consult needs a planner tier; this configuration has `planner: null`")
    if not question.strip():
        raise UsageError("the question is empty")
    result = a.run(CONSULT_TASK.format(question=question.strip()), session, tier=planner,
                   plan=False, timeout=timeout, progress=progress)
    changed = sorted({*result.files, *result.audit.changed, *result.audit.unclaimed})
    warnings = list(result.warnings)
    if changed:
        warnings.append("the planner changed files during a consultation: " + ", ".join(changed))
    answer = result.summary
    if result.log and result.tier in a.config.tiers:
        answer = _answer_text(a.config.workspace / result.log,
                              a.config.tiers[result.tier].format) or answer
    return ConsultOut(
        ok=result.ok and not changed, answer=answer, tier=result.tier, model=result.model,
        session=result.session, run_id=result.run_id,
        cost_usd=None if result.cost_usd is None else round(result.cost_usd, 8),
        cost_source=result.cost_source, changed_files=changed, warnings=warnings,
    )


def _answer_text(log: Any, fmt: str) -> str:
    """The planner's prose, without its envelope: the answer a consultation asked for.

    Read from the call's log (masked when it was written), parsed as the tier's output was.
    """
    from burnless.envelope import extract
    from burnless.formats import parse_output

    try:
        raw = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    text = parse_output(raw, fmt).text
    return extract(text).prose.strip()


def _session(agent: Callable[[], Any], sid: str, recent: int) -> SessionOut:
    from burnless.accounting import ledger
    from burnless.accounting.index import billed
    from burnless.session.context import current_epoch
    from burnless.session.store import Session, check_session_id

    cfg = agent().config
    s = Session(cfg.state_dir, check_session_id(sid))
    if not s.exists():
        raise UsageError(f"no session {sid!r} in {cfg.state_dir / 'sessions'}")
    caps = s.capsules()
    meta = s.meta()
    rows = [r for r in ledger.read(cfg.state_dir)
            if r.get("session") == sid and billed(r.get("status"), r.get("cached"))]
    costs = [r.get("cost_usd") for r in rows]
    known = [c for c in costs if isinstance(c, (int, float))]
    return SessionOut(
        id=sid, executor=meta.executor, capsules=len(caps),
        epoch=current_epoch(caps) if caps else 0, calls=len(rows),
        cost_usd=round(sum(known), 8) if len(known) == len(costs) else None,
        pins={k: v.command or f"api {v.api}" for k, v in sorted(meta.pins.items())},
        recent=[CapsuleOut(seq=c.seq, epoch=c.epoch, role=c.role, tier=c.tier,
                           status=c.status, audit=c.audit, summary=c.summary,
                           files=list(c.files), plan=list(c.plan), run_id=c.run_id)
                for c in (caps[-recent:] if recent else [])],
    )


def _stats(key: str, s: Any) -> StatsOut:
    return StatsOut(key=key, calls=s.calls, input=s.input, output=s.output,
                    cache_read=s.cache_read, cache_write=s.cache_write,
                    cost_usd=None if s.cost_unknown else round(s.cost_usd, 8),
                    refusals=s.refusals, audit_failures=s.audit_failures)


def _usage(agent: Callable[[], Any], by: str, period: str | None, since: str | None) -> UsageOut:
    from burnless.accounting.usage import report

    rep = report(agent().config.state_dir, by=by, period=period, since=since)
    return UsageOut(by=rep.by, since=rep.since, until=rep.today,
                    rows=[_stats(r.key or "-", r.stats) for r in rep.rows],
                    total=_stats("TOTAL", rep.total))


def serve(config_path: str | None = None) -> None:
    """Serve over stdio until the client closes it."""
    build_server(config_path).run("stdio")
