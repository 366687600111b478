"""Policy on request bodies, and masks put back in answers.

Before a request leaves for an upstream that is not ``local``, every string of its text
(system prompt, messages, tool inputs and results; not tool definitions, not signed thinking
blocks) is masked by the core's redactor: the same secret always becomes the same
``[REDACTED:<kind>:<hmac>]``, so prompts stay byte-stable for the provider's cache. Sensitivity
(``policy.sensitive_patterns`` / ``sensitive_paths``, the ``sensitive`` label) is read from the
same strings.

A model that saw a mask may write it back: in its answer text, or in a tool call's arguments
("write this key to .env"). The client must get the secret, not the mask, or a tool call writes
the mask into a file. ``Restorer`` replaces the masks of the request in a JSON answer, and in a
stream where a mask may arrive split across deltas: each text or tool-argument channel holds
back a tail that could still become a mask until the next delta (or the block's end) decides.
Inside JSON text (a tool call's ``partial_json`` / ``arguments``) the secret is put back
JSON-escaped. Thinking and reasoning blocks are left alone: they are signed.

A client sends the restored secret back with the next request, now perhaps without what made
it detectable (``password=`` before it). So every secret masked once is remembered (in memory
only, bounded) and masked by its literal value in later requests, with the same mask.

Redacting a 100 KB transcript takes tens of milliseconds, and clients resend the whole
transcript with every request: results are memoised per string (bounded by bytes), so a request
costs the redaction of what is new in it.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from burnless.gateway import core
from burnless.gateway.protocols import TEXT_FIELDS, Endpoint
from burnless.settings import Config

MASK = re.compile(r"\[REDACTED:[a-z0-9-]+:[0-9a-f]{8}\]")
# A tail that may still grow into a mask: "[", "[RED", "[REDACTED:pass", "[REDACTED:x:ab12".
_PARTIAL = re.compile(r"\[(?:REDACTED:[a-z0-9-]*(?::[0-9a-f]{0,8})?)?\Z")
_MAX_MASK = 64  # longer than any mask: a tail past this is text, not a mask in the making
SIGNED = frozenset({"thinking", "redacted_thinking", "reasoning"})
SKIP_KEYS = frozenset({"signature", "encrypted_content"})
JSON_TEXT_KEYS = frozenset({"arguments", "partial_json"})  # values that are JSON text


def _could_be_mask(tail: str) -> bool:
    return "[REDACTED:".startswith(tail) or _PARTIAL.match(tail) is not None


def _hold_from(text: str) -> int:
    """Where the tail of ``text`` that could still become a mask starts (len: nothing held)."""
    start = text.rfind("[", max(0, len(text) - _MAX_MASK))
    if start < 0 or not _could_be_mask(text[start:]):
        return len(text)
    return start


def _escape(secret: str) -> str:
    return orjson.dumps(secret).decode()[1:-1]


def _unescape(text: str) -> str:
    """A secret found inside JSON text, as the plain string it encodes."""
    try:
        value = orjson.loads('"' + text + '"')
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, str) else text


class _Memo:
    """A bounded LRU map from a string to what policy made of it."""

    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes

    def get(self, key: Any) -> Any:
        """The value stored for ``key``, or None."""
        entry = self._items.get(key)
        if entry is None:
            return None
        self._items.move_to_end(key)
        return entry[0]

    def put(self, key: Any, size: int, value: Any) -> None:
        if size > self._max // 4:
            return  # one huge string would flush everything else
        self._items[key] = (value, size)
        self._bytes += size
        while self._bytes > self._max and self._items:
            _, (_, old) = self._items.popitem(last=False)
            self._bytes -= old


@dataclass
class Masked:
    """A request body as it may leave: its masked copy, the masks made, what each stands for."""

    body: dict[str, Any]
    count: int = 0
    originals: dict[str, str] = field(default_factory=dict)


class Masker:
    """Policy applied to request bodies, with memoised results."""

    def __init__(self, cfg: Config, memo_bytes: int = 64 << 20) -> None:
        self.cfg = cfg
        self.policy = core.make_policy(cfg)
        self._masks = _Memo(memo_bytes)
        self._reasons = _Memo(memo_bytes // 4)
        self._known: OrderedDict[str, str] = OrderedDict()  # secret -> its mask
        self.max_known = 4096

    # -- sensitivity

    def sensitivity(self, endpoint: Endpoint, body: Mapping[str, Any],
                    labels: Sequence[str]) -> tuple[str, ...]:
        pol = self.cfg.policy
        reasons: list[str] = list(core.sensitivity(self.cfg, self.policy, "", labels))
        if not (pol.sensitive_patterns or pol.sensitive_paths or not pol.redact_secrets):
            return tuple(reasons)  # nothing in the text can make it sensitive
        for text, _ in strings(endpoint, body, signed=True):
            found: tuple[str, ...] | None = self._reasons.get(text)
            if found is None:
                found = core.sensitivity(self.cfg, self.policy, text, ())
                self._reasons.put(text, len(text), found)
            for r in found:
                if r not in reasons:
                    reasons.append(r)
        return tuple(reasons)

    # -- masks

    def mask(self, endpoint: Endpoint, body: dict[str, Any]) -> Masked:
        """``body`` with every secret masked (a copy where anything changed)."""
        out = Masked(body)
        if not self.cfg.policy.redact_secrets:
            return out

        def one(text: str, json_text: bool) -> str:
            hit = self._masks.get((text, json_text))
            if hit is None:
                found: dict[str, str] = {}
                masked, count = core.mask(self.policy, text, found)
                if json_text:
                    found = {m: _unescape(s) for m, s in found.items()}
                hit = (masked, count, tuple(found.items()))
                self._masks.put((text, json_text), len(text), hit)
            masked, count, pairs = hit
            out.count += count
            out.originals.update(pairs)
            if self._known:
                masked = self._literal(masked, out)
            return str(masked)

        out.body = _rewrite(endpoint, body, one)
        for m, secret in out.originals.items():
            if len(secret) >= core.MIN_SECRET:
                self._known[secret] = m
                self._known.move_to_end(secret)
        while len(self._known) > self.max_known:
            self._known.popitem(last=False)
        return out

    def _literal(self, text: str, out: Masked) -> str:
        for secret, m in self._known.items():
            if secret in text:
                n = text.count(secret)
                text = text.replace(secret, m)
                out.count += n
                out.originals[m] = secret
        return text


def strings(endpoint: Endpoint, body: Mapping[str, Any], *, signed: bool = False,
            ) -> Iterator[tuple[str, bool]]:
    """Every string of the request's text, and whether it is JSON text (tool arguments)."""
    for key in TEXT_FIELDS[endpoint.name]:
        yield from _walk(body.get(key), key, signed)


def _walk(value: object, key: str, signed: bool) -> Iterator[tuple[str, bool]]:
    if isinstance(value, str):
        yield value, key in JSON_TEXT_KEYS
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, key, signed)
    elif isinstance(value, Mapping):
        if not signed and value.get("type") in SIGNED:
            return
        for k, v in value.items():
            if k not in SKIP_KEYS and k != "type":
                yield from _walk(v, str(k), signed)


def _rewrite(endpoint: Endpoint, body: dict[str, Any],
             fn: Callable[[str, bool], str]) -> dict[str, Any]:
    out = body
    for key in TEXT_FIELDS[endpoint.name]:
        if key in body:
            new = _map(body[key], key, fn)
            if new is not body[key]:
                if out is body:
                    out = dict(body)
                out[key] = new
    return out


def _map(value: Any, key: str, fn: Callable[[str, bool], str]) -> Any:
    """``value`` with ``fn`` applied to its strings; the same object when nothing changed."""
    if isinstance(value, str):
        new = fn(value, key in JSON_TEXT_KEYS)
        return value if new == value else new
    if isinstance(value, list):
        items = [_map(v, key, fn) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        if value.get("type") in SIGNED:
            return value
        changed = {k: _map(v, str(k), fn) for k, v in value.items()
                   if k not in SKIP_KEYS and k != "type"}
        if all(changed[k] is value[k] for k in changed):
            return value
        return {**value, **changed}
    return value


# --------------------------------------------------------------------------- restoring


class Restorer:
    """Puts a request's secrets back where an answer repeats their masks."""

    def __init__(self, originals: Mapping[str, str]) -> None:
        self.originals = dict(originals)
        self._held: dict[Any, tuple[str, bool]] = {}  # channel -> (held tail, json text)

    def text(self, text: str, json_text: bool = False) -> str:
        """Every known mask in a whole text replaced."""
        if "[REDACTED:" not in text:
            return text

        def put_back(m: re.Match[str]) -> str:
            secret = self.originals.get(m.group(0))
            if secret is None:
                return m.group(0)
            return _escape(secret) if json_text else secret

        return MASK.sub(put_back, text)

    def obj(self, value: Any, key: str = "") -> Any:
        """A parsed JSON answer (or event) with its masks replaced; signed blocks untouched."""
        if isinstance(value, str):
            return self.text(value, key in JSON_TEXT_KEYS)
        if isinstance(value, list):
            return [self.obj(v, key) for v in value]
        if isinstance(value, dict):
            if value.get("type") in SIGNED:
                return value
            return {k: v if k in SKIP_KEYS else self.obj(v, str(k)) for k, v in value.items()}
        return value

    def delta(self, channel: Any, text: str, json_text: bool = False) -> str:
        """The part of a streamed delta that can be sent now, masks replaced; a tail that may
        still become a mask waits for the channel's next delta or its ``flush``."""
        held, _ = self._held.pop(channel, ("", json_text))
        buf = held + text
        cut = _hold_from(buf)
        if cut < len(buf):
            self._held[channel] = (buf[cut:], json_text)
        return self.text(buf[:cut], json_text)

    def flush(self, channel: Any) -> tuple[str, bool]:
        """What the channel still holds (masks replaced), and whether it is JSON text."""
        held, json_text = self._held.pop(channel, ("", False))
        return self.text(held, json_text), json_text

    def channels(self) -> list[Any]:
        return list(self._held)
