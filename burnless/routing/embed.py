"""Routing by example with an embedding program instead of the built-in vectoriser.

``routing.embed.command`` names any program that turns texts into vectors: a wrapper around an
Ollama embedding model, a sentence-transformers script, a call to a provider's embedding API.
The protocol, for a program in any language:

- burnless runs the command (an argv, no shell) in the workspace with a scrubbed environment
  (as a tier's: PATH, HOME, LANG..., plus the section's ``env`` and ``pass_env``);
- it writes the texts to the program's stdin, one per line, UTF-8, each text's whitespace
  collapsed to single spaces so that a text is one line;
- the program prints one vector per input line, in order, on stdout: a JSON array of numbers,
  or numbers separated by spaces or commas; every vector has the same length; it exits 0.

Anything else (a non-zero exit, a timeout, a wrong count, a ragged or non-numeric vector) is an
error naming the command and what was wrong; the router then goes on without the examples and
its reason says why. Texts go in batches of ``BATCH``; the examples' vectors are kept in
``.burnless/cache`` (rebuilt when the examples or the command change), so a route embeds only
its own task. The search compares that vector with every example's (a plain scan: about 5 µs
per example at 384 dimensions, so a few thousand examples; a vector-search server is for later).

What the program sees follows the tier rule: a program that is not ``local: true`` never sees a
sensitive task or example, and sees every text masked (``Policy.mask``).
"""

from __future__ import annotations

import heapq
import math
import operator
import re
import sqlite3
import threading
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from burnless.routing.examples import (
    Example,
    K,
    Match,
    decide,
    examples_key,
    given_examples,
    given_key,
    plain_file,
)
from burnless.settings import Config, EmbedSettings, Tier

BATCH = 256
_SPLIT = re.compile(r"[\s,]+")


class EmbedError(Exception):
    """The embed command failed or broke the protocol."""


def parse_vectors(out: str, count: int, command: str) -> list[list[float]]:
    """The program's stdout as ``count`` vectors of one length, or ``EmbedError`` saying why."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if len(lines) != count:
        raise EmbedError(f"{command!r} printed {len(lines)} vector line(s) for {count} text(s)")
    vectors: list[list[float]] = []
    for i, line in enumerate(lines, 1):
        try:
            raw = orjson.loads(line) if line.lstrip().startswith("[") else [
                float(x) for x in _SPLIT.split(line.strip()) if x]
            vec = [float(x) for x in raw]
        except (orjson.JSONDecodeError, TypeError, ValueError):
            raise EmbedError(f"{command!r}: line {i} is not a vector of numbers: "
                             f"{line.strip()[:60]!r}") from None
        if not vec or not all(math.isfinite(x) for x in vec):
            raise EmbedError(f"{command!r}: line {i} is empty or holds a non-finite number")
        if vectors and len(vec) != len(vectors[0]):
            raise EmbedError(f"{command!r}: line {i} has {len(vec)} numbers, line 1 has "
                             f"{len(vectors[0])}")
        vectors.append(vec)
    return vectors


def embed_texts(settings: EmbedSettings, texts: Sequence[str], cwd: Path) -> list[list[float]]:
    """Vectors of ``texts`` from the embed command, in batches."""
    import shlex

    from burnless import process
    from burnless.safety.environment import scrubbed_env

    argv = shlex.split(settings.command)
    env = scrubbed_env(Tier(name="embed", command=settings.command, env=settings.env,
                            pass_env=settings.pass_env))
    out: list[list[float]] = []
    for i in range(0, len(texts), BATCH):
        batch = [" ".join(t.split()) for t in texts[i:i + BATCH]]
        data = "".join(t + "\n" for t in batch).encode("utf-8", "replace")
        res = process.run(argv, cwd=cwd, env=env, stdin=data, timeout=settings.timeout)
        if res.start_error:
            raise EmbedError(res.start_error)
        if res.timed_out:
            raise EmbedError(f"{settings.command!r} timed out after {settings.timeout:g}s "
                             "(routing.embed.timeout)")
        if res.interrupted:
            raise KeyboardInterrupt
        if res.exit_code != 0:
            tail = res.stderr_tail.strip().splitlines()[-1:] or [""]
            raise EmbedError(f"{settings.command!r} exited {res.exit_code}"
                             + (f": {tail[0][:160]}" if tail[0] else ""))
        out += parse_vectors(res.stdout, len(batch), settings.command)
    if out and any(len(v) != len(out[0]) for v in out):
        raise EmbedError(f"{settings.command!r} gave vectors of different lengths in "
                         "different batches")
    return out


def _unit(vec: Sequence[float]) -> array[float]:
    norm = math.sqrt(sum(x * x for x in vec))
    return array("d", [x / norm for x in vec] if norm else vec)


class DenseIndex:
    """Examples with their embedding vectors; a search scans them all."""

    def __init__(self, examples: Sequence[Example], vectors: Sequence[array[float]],
                 embed_one: EmbedFn, key: str = "") -> None:
        self.examples = list(examples)
        self.vectors = list(vectors)
        self.key = key
        self._embed_one = embed_one
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.examples)

    def search(self, text: str, k: int = K) -> list[tuple[Example, float]]:
        if not self.examples or k < 1:
            return []
        query = _unit(self._embed_one(text))
        if self.vectors and len(query) != len(self.vectors[0]):
            raise EmbedError(f"the task's vector has {len(query)} numbers, the examples' "
                             f"{len(self.vectors[0])}: did the embed command change models?")
        mul = operator.mul
        with self._lock:
            scored = ((sum(map(mul, query, v)), -i) for i, v in enumerate(self.vectors))
            best = heapq.nlargest(k, scored)
        return [(self.examples[-i], min(1.0, max(0.0, s))) for s, i in best]

    # -- stored in .burnless/cache as SQLite, like the built-in index

    def save(self, path: Path) -> None:
        import os

        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(str(tmp))
        try:
            db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                             "CREATE TABLE example (id INTEGER PRIMARY KEY, tier TEXT, kind TEXT,"
                             " text TEXT, source TEXT, vec BLOB);")
            db.executemany("INSERT INTO example VALUES (?, ?, ?, ?, ?, ?)", [
                (i, e.tier, e.kind, e.text, e.source, v.tobytes())
                for i, (e, v) in enumerate(zip(self.examples, self.vectors, strict=True))])
            db.execute("INSERT INTO meta VALUES ('key', ?)", (self.key,))
            db.commit()
        finally:
            db.close()
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, key: str, embed_one: EmbedFn) -> DenseIndex | None:
        if not plain_file(path):
            return None
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error:
            return None
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'key'").fetchone()
            if row is None or row[0] != key:
                return None
            examples, vectors = [], []
            for tier, kind, text, source, blob in db.execute(
                    "SELECT tier, kind, text, source, vec FROM example ORDER BY id"):
                examples.append(Example(tier, text, "counter" if kind == "counter"
                                        else "example", source))
                vec = array("d")
                vec.frombytes(blob)
                vectors.append(vec)
            return cls(examples, vectors, embed_one, key)
        except sqlite3.Error:
            return None
        finally:
            db.close()


class EmbedFn:
    """One text's vector from the command (masked first when the program is not local)."""

    def __init__(self, cfg: Config, mask: MaskFn) -> None:
        assert cfg.routing.embed is not None
        self.settings = cfg.routing.embed
        self.cwd = cfg.workspace
        self.mask = mask

    def __call__(self, text: str) -> list[float]:
        return embed_texts(self.settings, [self.mask(text)], self.cwd)[0]


class MaskFn:
    def __init__(self, cfg: Config) -> None:
        from burnless.safety.policy import Policy

        self.policy = Policy(cfg)
        self.local = cfg.routing.embed is not None and cfg.routing.embed.local

    def __call__(self, text: str) -> str:
        return text if self.local else self.policy.mask(text)

    def sendable(self, example: Example) -> bool:
        """A program that is not local never sees a sensitive example."""
        return self.local or not self.policy.sensitivity(example.text, ())


def _index(cfg: Config, name: str, key: str, examples: Sequence[Example],
           embed_one: EmbedFn, mask: MaskFn) -> DenseIndex:
    path = cfg.state_dir / "cache" / f"examples-embed-{name}.sqlite"
    index = DenseIndex.load(path, key, embed_one)
    if index is not None:
        return index
    kept = [e for e in examples if mask.sendable(e)]
    vectors = [_unit(v) for v in embed_texts(embed_one.settings, [mask(e.text) for e in kept],
                                             cfg.workspace)] if kept else []
    index = DenseIndex(kept, vectors, embed_one, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(path)
    except (OSError, sqlite3.Error):
        pass  # a read-only workspace: embedded again next time
    return index


def match(cfg: Config, task: str, *, sensitive: Sequence[str] = (),
          mask: Callable[[str], str] | None = None) -> Match:
    """``examples.match`` with the embed command's vectors."""
    settings = cfg.routing.embed
    assert settings is not None
    routing = cfg.routing
    if sensitive and not settings.local:
        return Match(None, "examples: not consulted: the task is sensitive and the embed "
                     "command (routing.embed) is not local", min_similarity=routing.min_similarity)
    sending = MaskFn(cfg)
    embed_one = EmbedFn(cfg, sending)
    # What decides the vectors: the program, and (when it is not local) what it may be sent.
    pol = cfg.policy
    backend = orjson.dumps(["embed", settings.command, settings.local, sorted(settings.env),
                            list(settings.pass_env), [] if settings.local else [
                                pol.redact_secrets, pol.sensitive_patterns,
                                pol.sensitive_paths]]).decode()
    try:
        indexes = [_index(cfg, "given", given_key(cfg, backend), given_examples(cfg),
                          embed_one, sending)]
        if routing.learn:
            from burnless.routing.learning import learned_examples

            learned = learned_examples(cfg)
            if learned:
                indexes.append(_index(cfg, "learned", examples_key(learned, backend), learned,
                                      embed_one, sending))
        return decide(indexes, task, min_similarity=routing.min_similarity,
                      ladder=routing.ladder, mask=mask)
    except EmbedError as exc:
        return Match(None, f"examples: not consulted: the embed command failed: {exc}",
                     min_similarity=routing.min_similarity)


__all__ = ["DenseIndex", "EmbedError", "embed_texts", "match", "parse_vectors"]
