"""Models of prompt-caching billing (pure, no I/O): Anthropic's rules for the Messages API
(``PromptCache``), and the automatic prefix caching of OpenAI and Gemini (``PrefixCache``).

The rules, each with its source, are written out in ``docs/simulator.md``. In short: a
request is a list of blocks (tools, then system, then message content); a cache entry is
written at each ``cache_control`` breakpoint (at most 4) for the exact prefix ending there,
per model; a breakpoint reads the longest prefix some earlier request wrote, looking at no
more than 20 block positions (itself included); entries live 5 minutes (or 1 hour) from
their last use; prefixes shorter than the model's minimum cacheable length are not cached.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from burnless.accounting.tokens import Tokens, estimate_tokens

MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20  # positions checked per breakpoint, the breakpoint itself counted first
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
WRITE_5M_MULTIPLIER = 1.25
WRITE_1H_MULTIPLIER = 2.0
READ_MULTIPLIER = 0.1
BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"
DEFAULT_MIN_CACHEABLE = 1024

Section = Literal["tools", "system", "messages"]


class CacheControlError(ValueError):
    """A request the real API rejects with 400 ``invalid_request_error``."""


def minimum_cacheable_tokens(model: str) -> int:
    """The shortest prefix (in tokens) the model caches; 1024 for a model not listed.

    The figures live in burnless's price table (``min_cache_tokens``), the one place that
    describes models, so ``doctor`` and the simulator agree.
    """
    from burnless.accounting.pricing import min_cacheable_tokens

    return min_cacheable_tokens(model) or DEFAULT_MIN_CACHEABLE


@dataclass(frozen=True)
class Block:
    """One cacheable unit of a request, in the API's order."""

    section: Section
    key: bytes  # canonical bytes hashed into the prefix (section, role, block minus cache_control)
    tokens: int
    ttl: str | None  # "5m" or "1h" when the block is a breakpoint


@dataclass(frozen=True)
class Usage:
    """The usage figures of one response, as the API reports them."""

    input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    output_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0

    def with_output(self, output_tokens: int) -> Usage:
        return replace(self, output_tokens=output_tokens)

    def to_api(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
            "service_tier": "standard",
        }

    def tokens(self) -> Tokens:
        return Tokens(
            input=self.input_tokens,
            output=self.output_tokens,
            cache_read=self.cache_read_input_tokens,
            cache_write=self.cache_creation_input_tokens,
        )


def cost_usd(usage: Usage, *, input_per_mtok: float, output_per_mtok: float) -> float:
    """What the usage costs at a model's base prices (USD per million tokens)."""
    input_units = (
        usage.input_tokens
        + usage.ephemeral_5m_input_tokens * WRITE_5M_MULTIPLIER
        + usage.ephemeral_1h_input_tokens * WRITE_1H_MULTIPLIER
        + usage.cache_read_input_tokens * READ_MULTIPLIER
    )
    return (input_units * input_per_mtok + usage.output_tokens * output_per_mtok) / 1_000_000


def block_text(block: Mapping[str, Any]) -> str:
    """What a block's tokens are estimated from: a text block's text, else its canonical JSON."""
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    return _canonical(block).decode("utf-8")


def _canonical(block: Mapping[str, Any]) -> bytes:
    return orjson.dumps(
        {k: v for k, v in block.items() if k != "cache_control"}, option=orjson.OPT_SORT_KEYS
    )


def _ttl(block: Mapping[str, Any], where: str) -> str | None:
    control = block.get("cache_control")
    if control is None:
        return None
    if not isinstance(control, Mapping) or control.get("type") != "ephemeral":
        raise CacheControlError(f"{where}.cache_control: type must be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if ttl not in TTL_SECONDS:
        raise CacheControlError(f"{where}.cache_control.ttl: must be '5m' or '1h', got {ttl!r}")
    if block.get("type") == "text" and not block.get("text"):
        raise CacheControlError(f"{where}: cache_control cannot be set for empty text blocks")
    return str(ttl)


def _block(section: Section, role: str, raw: Any, where: str) -> Block:
    if isinstance(raw, str):
        raw = {"type": "text", "text": raw}
    if not isinstance(raw, Mapping):
        raise CacheControlError(f"{where}: a content block must be an object")
    key = section.encode() + b"\0" + role.encode() + b"\0" + _canonical(raw)
    return Block(section, key, estimate_tokens(block_text(raw)), _ttl(raw, where))


def plain_block(section: Section, role: str, raw: Any) -> Block:
    """A block of an OpenAI or Gemini request (no ``cache_control``: caching is automatic):
    a string is a text block, an object its JSON, any other value is wrapped."""
    if isinstance(raw, str):
        raw = {"type": "text", "text": raw}
    elif not isinstance(raw, Mapping):
        raw = {"value": raw}
    key = section.encode() + b"\0" + role.encode() + b"\0" + _canonical(raw)
    return Block(section, key, estimate_tokens(block_text(raw)), None)


def split_blocks(request: Mapping[str, Any]) -> list[Block]:
    """The request's blocks in the API's order: tools, system, then each message's content.

    A system text block starting with ``x-anthropic-billing-header:`` is left out: Claude Code
    sends one that differs on every call, and the real API does not let it break the cache.
    """
    blocks: list[Block] = []
    for i, tool in enumerate(request.get("tools") or []):
        blocks.append(_block("tools", "", tool, f"tools.{i}"))
    system = request.get("system")
    for i, raw in enumerate([system] if isinstance(system, str) else system or []):
        if isinstance(raw, Mapping) and str(raw.get("text", "")).startswith(BILLING_HEADER_PREFIX):
            continue
        if raw == "":
            continue
        blocks.append(_block("system", "", raw, f"system.{i}"))
    for m, message in enumerate(request.get("messages") or []):
        if not isinstance(message, Mapping):
            raise CacheControlError(f"messages.{m}: a message must be an object")
        role = str(message.get("role", ""))
        content = message.get("content")
        for c, raw in enumerate([content] if isinstance(content, str) else content or []):
            blocks.append(_block("messages", role, raw, f"messages.{m}.content.{c}"))
    return _with_automatic_breakpoint(blocks, request.get("cache_control"))


def _with_automatic_breakpoint(blocks: list[Block], control: Any) -> list[Block]:
    """A top-level ``cache_control`` puts one breakpoint on the last cacheable block."""
    explicit = sum(1 for b in blocks if b.ttl)
    if control is not None:
        ttl = _ttl({"cache_control": control}, "cache_control")
        target = next((i for i in range(len(blocks) - 1, -1, -1) if blocks[i].tokens > 0), None)
        if target is not None:
            current = blocks[target].ttl
            if current is not None and current != ttl:
                raise CacheControlError(
                    "cache_control: the last block already has a cache_control with another ttl"
                )
            if current is None:
                if explicit >= MAX_BREAKPOINTS:
                    raise CacheControlError(
                        f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be "
                        "provided; automatic caching needs a free one."
                    )
                b = blocks[target]
                blocks[target] = Block(b.section, b.key, b.tokens, ttl)
                explicit += 1
    if explicit > MAX_BREAKPOINTS:
        raise CacheControlError(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {explicit}."
        )
    seen_5m = False
    for b in blocks:
        if b.ttl == "5m":
            seen_5m = True
        elif b.ttl == "1h" and seen_5m:
            raise CacheControlError(
                "cache_control: a ttl='1h' breakpoint must not come after a ttl='5m' one"
            )
    return blocks


@dataclass
class _Entry:
    """A cached prefix: its TTL and when it expires."""
    ttl: float
    expires_at: float


class PromptCache:
    """The server-side cache: entries keyed by (model, prefix hash), with an injectable clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, bytes], _Entry] = {}
        self._lock = threading.Lock()

    def bill(self, request: Mapping[str, Any]) -> Usage:
        """Bill the request's input (output_tokens is 0) and update the cache as the API would.

        Raises CacheControlError for a request the real API would reject.
        """
        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise CacheControlError("model: field required")
        blocks = split_blocks(request)
        with self._lock:
            return self._bill(model, blocks, self._clock())

    def _bill(self, model: str, blocks: Sequence[Block], now: float) -> Usage:
        self._expire(now)
        hashes: list[bytes] = []
        totals: list[int] = []
        digest, total = b"", 0
        for b in blocks:
            digest = hashlib.sha256(digest + b.key).digest()
            total += b.tokens
            hashes.append(digest)
            totals.append(total)
        breakpoints = [i for i, b in enumerate(blocks) if b.ttl]

        hit = -1  # index of the block ending the longest cached prefix
        for bp in breakpoints:
            for j in range(bp, max(-1, bp - LOOKBACK_BLOCKS), -1):
                entry = self._entries.get((model, hashes[j]))
                if entry is not None:
                    entry.expires_at = now + entry.ttl  # a hit refreshes the entry's lifetime
                    hit = max(hit, j)
                    break
        a = totals[hit] if hit >= 0 else 0

        minimum = minimum_cacheable_tokens(model)
        # Billing positions as the docs name them: A the highest hit, B the highest 1-hour
        # breakpoint after A, C the last breakpoint (here: the last one long enough to cache).
        pos_b = pos_c = a
        for bp in breakpoints:
            if totals[bp] < minimum:
                continue  # too short to cache: nothing written, tokens billed as plain input
            ttl = blocks[bp].ttl or "5m"
            key = (model, hashes[bp])
            if key not in self._entries:
                # A breakpoint inside the read prefix is written at no charge (already paid).
                self._entries[key] = _Entry(TTL_SECONDS[ttl], now + TTL_SECONDS[ttl])
            if bp > hit:
                pos_c = totals[bp]
                if ttl == "1h":
                    pos_b = totals[bp]
        total = totals[-1] if totals else 0
        return Usage(
            input_tokens=total - pos_c,
            cache_creation_input_tokens=pos_c - a,
            cache_read_input_tokens=a,
            ephemeral_5m_input_tokens=pos_c - pos_b,
            ephemeral_1h_input_tokens=pos_b - a,
        )

    def _expire(self, now: float) -> None:
        dead = [k for k, e in self._entries.items() if e.expires_at <= now]
        for k in dead:
            del self._entries[k]

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._entries)


@dataclass(frozen=True)
class PrefixBill:
    """What an automatic prefix cache bills: the whole prompt, how much of it was read, and how
    much of it this request newly wrote (the prompt beyond the longest stored prefix it found;
    tokens between ``cached_tokens`` and that prefix, lost to the rounding, are neither)."""

    prompt_tokens: int
    cached_tokens: int
    written_tokens: int = 0


class PrefixCache:
    """Automatic prefix caching, as OpenAI and Gemini bill it (no ``cache_control``).

    Every request writes its prompt's prefixes (at each block boundary) once the prompt has
    ``minimum`` tokens, at no charge; a later request of the same model reads the longest of
    them it starts with, counted in ``increment``-token steps (OpenAI: from 1,024 tokens in
    steps of 128). Entries live ``ttl`` seconds from their last use.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        minimum: int = 1024,
        increment: int = 128,
        ttl: float = 300.0,
    ) -> None:
        self._clock = clock
        self.minimum = minimum
        self.increment = max(1, increment)
        self.ttl = ttl
        self._entries: dict[tuple[str, bytes], float] = {}
        self._lock = threading.Lock()

    def bill(self, model: str, blocks: Sequence[Block]) -> PrefixBill:
        with self._lock:
            now = self._clock()
            for k in [k for k, t in self._entries.items() if t <= now]:
                del self._entries[k]
            digest, total, hit = b"", 0, 0
            keys: list[tuple[tuple[str, bytes], int]] = []
            for b in blocks:
                digest = hashlib.sha256(digest + b.key).digest()
                total += b.tokens
                keys.append(((model, digest), total))
            for key, tokens in keys:
                if key in self._entries:
                    hit = tokens  # prefixes nest: the last one found is the longest
                    self._entries[key] = now + self.ttl
            if total >= self.minimum:
                for key, tokens in keys:
                    if tokens >= self.minimum:
                        self._entries[key] = now + self.ttl
        cached = 0
        if hit >= self.minimum:
            cached = hit - (hit - self.minimum) % self.increment
        written = total - hit if total >= self.minimum else 0
        return PrefixBill(total, cached, written)

    def __len__(self) -> int:
        with self._lock:
            now = self._clock()
            return sum(1 for t in self._entries.values() if t > now)
