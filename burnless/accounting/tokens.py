"""Token counts: the four figures a call is billed on, and the one estimator.

``input`` counts input billed at the full rate only; ``cache_read`` and ``cache_write`` are
separate (Anthropic's convention), so the four numbers never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass


def estimate_tokens(text: str | bytes) -> int:
    """The one estimator, wherever burnless has no reported figure: UTF-8 bytes / 4, rounded up."""
    if isinstance(text, bytes):
        n = len(text)
    else:  # ASCII is one byte a character: no need to encode a copy of a large answer
        n = len(text) if text.isascii() else len(text.encode("utf-8"))
    return estimate_bytes(n)


def estimate_bytes(n: int) -> int:
    """``estimate_tokens`` of a text known only by its size in UTF-8 bytes (a stream counted as
    it passed, not kept)."""
    return -(-n // 4)


@dataclass(frozen=True)
class Tokens:
    """A call's token counts: fresh input, output, cache reads and cache writes."""
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def total_input(self) -> int:
        return self.input + self.cache_read + self.cache_write

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Tokens:
        def num(key: str) -> int:
            v = d.get(key, 0)
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0

        return cls(num("input"), num("output"), num("cache_read"), num("cache_write"))
