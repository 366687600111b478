"""Routing by example: a task goes to the tier that judged examples like it say it needs.

Examples are labelled tasks per tier: ``routing.examples`` in the config, the files
``.burnless/examples/<tier>.txt`` (one task per line) and, with ``routing.learn``, what the
ledger shows succeeded or failed on a tier (``learning``). A new task is compared with them;
when its nearest examples agree on a tier (a strict majority of the vote, each example above
``routing.min_similarity`` voting with the square of its similarity), that tier serves it.
Otherwise the router goes on as before (pin, executor). Answers are never reused by
similarity: a wrong guess costs a cascade step, not a wrong answer.

The built-in vectoriser needs no model and no network. A task becomes a hashed sparse vector:

- words (NFKC, case-folded; ``snake_case`` and ``camelCase`` identifiers also split into their
  parts), word pairs, and the first five letters of longer words (``migrations`` and
  ``migrating`` share ``migra``); runs of Chinese, Japanese or Korean characters become
  character pairs, since those scripts put no spaces between words;
- weighted TF-IDF (sublinear term frequency) over the example set, L2-normalised;
- a small *shape* block (15% of the weight): the task's length on a log scale, and whether it
  names a path or file, quotes text or code, holds a number or an identifier. How much a task
  says and how precisely it says it are signals of how hard it is, in any language.

Similarity is the cosine of two such vectors. A neighbour must share at least one word with the
task. Vectors live in a SQLite file under ``.burnless/cache/`` (an inverted index of the word
features), built once per example set and opened per task: a search reads only the posting lists
of the task's own words. Words too common to tell examples apart (past a budget of postings,
rarest words first) only re-rank the candidates the rarer words found, so a search at 100,000
examples stays within milliseconds. Everything is deterministic: same examples, same task, same
answer; ties go to the example listed first.

This module is imported only when examples exist (see ``router.route``).
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import re
import sqlite3
import stat
import threading
import time
import unicodedata
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import orjson

from burnless.errors import ConfigError
from burnless.settings import Config

Kind = Literal["example", "counter"]

VECTORISER = "burnless-hashed-tfidf-1"  # part of every index key: a change rebuilds the index
EXAMPLES_DIR = "examples"
K = 20  # neighbours that vote
SHAPE_WEIGHT = 0.15  # share of the cosine that comes from the task's shape
MAX_CHARS = 2000  # of a task that is vectorised (a pasted log says nothing more past that)
POSTINGS_BUDGET = 20_000  # postings read per search before common words only re-rank
CANDIDATES = 200  # re-ranked exactly per search
_SQL_CHUNK = 500  # host parameters per statement (old SQLite allows 999)


@dataclass(frozen=True)
class Example:
    """A judged task: ``example`` (the tier was enough) or ``counter`` (it was not)."""

    tier: str
    text: str
    kind: Kind = "example"
    source: str = ""  # where it comes from: a config key, file:line, or the learned run id

    def to_dict(self) -> dict[str, str]:
        return {"tier": self.tier, "text": self.text, "kind": self.kind, "source": self.source}


@dataclass(frozen=True)
class Neighbour:
    """A labelled example near the task, and the vote it casts."""
    example: Example
    similarity: float
    vote: str | None  # the tier it votes for (a counter-example votes for the next rung up)
    counted: bool  # at or above min_similarity: its vote counts

    def to_dict(self) -> dict[str, object]:
        return {**self.example.to_dict(), "similarity": round(self.similarity, 4),
                "vote": self.vote, "counted": self.counted}


@dataclass(frozen=True)
class Match:
    """What the examples say about a task: a tier, or None and why not."""

    tier: str | None
    reason: str
    neighbours: tuple[Neighbour, ...] = ()
    shares: tuple[tuple[str, float], ...] = ()  # each voted tier's share of the vote, largest first
    min_similarity: float = 0.0


# --------------------------------------------------------------------------- the vectoriser

_WORD = re.compile(r"\w+")
# Kana, CJK ideographs (and extension A, compatibility), Hangul syllables. Checked per character
# rather than by a regex class: compiling one with these ranges costs ~2.5 ms per process.
_CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
               (0xAC00, 0xD7AF))
_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[^\W_]+")
_PATH = re.compile(r"\w[\w.-]*/[\w./-]*\w|\b\w[\w-]*\.[A-Za-z]{1,5}\b(?!\.)")
_QUOTE = re.compile(r"[\"“”`'][^\"“”`']{1,80}[\"“”`']")
_IDENT = re.compile(r"\b[a-z]+_[a-z_]+\b|\b[a-z]+[A-Z]\w*\b|\w\(")
_PREFIX = 5


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in _CJK_RANGES)


def _tokens(text: str) -> Iterable[tuple[str, bool]]:
    """Words, and runs of CJK characters (``True``), in order."""
    for m in _WORD.finditer(text):
        token = m.group(0)
        if token.isascii():
            yield token, False
            continue
        for cjk, run in itertools.groupby(token, _is_cjk):
            yield "".join(run), cjk


def _hash(term: str) -> int:
    return zlib.crc32(term.encode("utf-8", "surrogatepass"))


def terms(text: str) -> tuple[Counter[str], dict[str, float]]:
    """The task's word features (counts) and shape features, before hashing and weighting."""
    norm = unicodedata.normalize("NFKC", text[:MAX_CHARS])
    tf: Counter[str] = Counter()
    prev: str | None = None
    units = 0.0
    for token, cjk in _tokens(norm):
        if cjk:
            units += len(token) / 2  # about two characters a word
            for i in range(max(1, len(token) - 1)):
                tf["c:" + token[i:i + 2]] += 1
            prev = None
            continue
        units += 1
        if token.isdigit():  # numbers name versions and ports, not kinds of work
            prev = None
            continue
        word = token.casefold()
        tf["w:" + word] += 1
        if len(word) > _PREFIX:
            tf["p:" + word[:_PREFIX]] += 1
        if "_" in token or not (token.islower() or token.isupper()):
            parts = [p.casefold() for p in _PARTS.findall(token) if not p.isdigit()]
            if len(parts) > 1:
                for part in parts:
                    tf["w:" + part] += 1
        if prev is not None:
            tf["b:" + prev + " " + word] += 1
        prev = word
    bucket = int(2 * math.log2(units + 1))
    shape = {f"len:{bucket}": 1.0, f"len:{bucket - 1}": 0.5, f"len:{bucket + 1}": 0.5}
    for name, rx in (("path", _PATH), ("quote", _QUOTE), ("ident", _IDENT)):
        if rx.search(norm):
            shape[name] = 1.0
    if any(c.isdigit() for c in norm):
        shape["number"] = 1.0
    return tf, shape


def _hashed(text: str) -> tuple[dict[int, int], dict[int, float]]:
    tf, shape = terms(text)
    words: dict[int, int] = {}
    for term, count in tf.items():
        h = _hash(term)
        words[h] = words.get(h, 0) + count
    return words, {_hash("s:" + k): v for k, v in shape.items()}


def _vector(
    words: dict[int, int], shape: dict[int, float], idf: dict[int, float]
) -> tuple[dict[int, float], dict[int, float]]:
    """(word part, shape part) of the unit vector: cosine = word dot + shape dot."""
    v = {t: (1.0 if c == 1 else 1.0 + math.log(c)) * idf[t]
         for t, c in words.items() if t in idf}
    norm = math.sqrt(sum(x * x for x in v.values()))
    if not norm:
        return {}, {}
    a = math.sqrt(1.0 - SHAPE_WEIGHT) / norm
    snorm = math.sqrt(sum(x * x for x in shape.values()))
    b = math.sqrt(SHAPE_WEIGHT) / snorm
    return {t: x * a for t, x in v.items()}, {t: x * b for t, x in shape.items()}


def _idf(n: int, df: int) -> float:
    return math.log((1 + n) / (1 + df)) + 1.0


# --------------------------------------------------------------------------- the index


if TYPE_CHECKING:
    from typing import Protocol

    class Searchable(Protocol):
        """An index of examples: this module's ``Index``, or ``embed.DenseIndex``."""

        def __len__(self) -> int: ...

        def search(self, text: str, k: int = K) -> list[tuple[Example, float]]: ...


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE example (id INTEGER PRIMARY KEY, tier TEXT NOT NULL, kind TEXT NOT NULL,
                      text TEXT NOT NULL, source TEXT NOT NULL, vec BLOB NOT NULL);
CREATE TABLE posting (term INTEGER PRIMARY KEY, df INTEGER NOT NULL, docs BLOB NOT NULL,
                      weights BLOB NOT NULL);
"""


def _pack(vec: dict[int, float]) -> bytes:
    ids = sorted(vec)
    return array("I", ids).tobytes() + array("f", [vec[t] for t in ids]).tobytes()


def _unpack(blob: bytes) -> tuple[array[int], array[float]]:
    half = len(blob) // 2
    ids, ws = array("I"), array("f")
    ids.frombytes(blob[:half])
    ws.frombytes(blob[half:])
    return ids, ws


def _chunks(items: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), _SQL_CHUNK):
        yield items[i:i + _SQL_CHUNK]


class Index:
    """Examples as TF-IDF vectors in SQLite, with an inverted index of their word features."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._lock = threading.Lock()  # one search at a time per connection (the gateway)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self.key = meta.get("key", "")
        self._n = int(meta.get("n", "0"))

    def __len__(self) -> int:
        return self._n

    @classmethod
    def build(cls, examples: Sequence[Example], path: Path | None = None, *,
              key: str = "") -> Index:
        """Vectorise ``examples`` into a new index: in memory, or written to ``path``
        (through a temporary file renamed over it, so a reader never sees half of one)."""
        tmp = None if path is None else path.with_name(f".{path.name}.{os.getpid()}.tmp")
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        db = sqlite3.connect(":memory:" if tmp is None else str(tmp), check_same_thread=False)
        try:
            _fill(db, examples, key)
            if tmp is not None and path is not None:
                db.close()
                os.replace(tmp, path)
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        except BaseException:
            db.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise
        return cls(db)

    @classmethod
    def open(cls, path: Path, key: str) -> Index | None:
        """The index stored at ``path`` if it was built for ``key``; None otherwise."""
        if not plain_file(path):
            return None
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error:
            return None
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'key'").fetchone()
            if row is not None and row[0] == key:
                return cls(db)
        except sqlite3.Error:
            pass  # missing, damaged, or not an index: rebuilt by the caller
        db.close()
        return None

    def close(self) -> None:
        self._db.close()

    def search(self, text: str, k: int = K, *, budget: int = POSTINGS_BUDGET,
               candidates: int = CANDIDATES) -> list[tuple[Example, float]]:
        """The ``k`` examples most similar to ``text`` that share a word with it, most similar
        first (ties: the example listed first), with their cosine similarity.

        Exact while the task's words have at most ``budget`` postings in all and at most
        ``candidates`` examples share one; past that, the commonest words only re-rank."""
        with self._lock:
            return self._search(text, k, budget, candidates)

    def _search(self, text: str, k: int, budget: int,
                candidates: int) -> list[tuple[Example, float]]:
        if not self._n or k < 1:
            return []
        words, shape = _hashed(text)
        df: dict[int, int] = {}
        for part in _chunks(sorted(words)):
            marks = ",".join("?" * len(part))
            df.update(self._db.execute(
                f"SELECT term, df FROM posting WHERE term IN ({marks})", part).fetchall())
        idf = {t: _idf(self._n, d) for t, d in df.items()}
        qwords, qshape = _vector(words, shape, idf)
        if not qwords:
            return []
        # Rarest words first: they tell examples apart, and their posting lists are short.
        chosen: list[int] = []
        read = 0
        for t in sorted(df, key=lambda t: (df[t], t)):
            if chosen and read + df[t] > budget:
                break
            chosen.append(t)
            read += df[t]
        acc: dict[int, float] = {}
        get = acc.get
        for part in _chunks(chosen):
            marks = ",".join("?" * len(part))
            for term, docs, weights in self._db.execute(
                    f"SELECT term, docs, weights FROM posting WHERE term IN ({marks})", part):
                q = qwords[term]
                ids, ws = array("I"), array("f")
                ids.frombytes(docs)
                ws.frombytes(weights)
                for d, w in zip(ids, ws, strict=True):
                    acc[d] = get(d, 0.0) + q * w
        best = heapq.nlargest(candidates, acc.items(), key=lambda kv: (kv[1], -kv[0]))
        query = {**qwords, **qshape}
        rows: dict[int, tuple[str, str, str, str, bytes]] = {}
        for part in _chunks(sorted(d for d, _ in best)):
            marks = ",".join("?" * len(part))
            for row in self._db.execute(
                    f"SELECT id, tier, kind, text, source, vec FROM example WHERE id IN ({marks})",
                    part):
                rows[row[0]] = row[1:]
        scored: list[tuple[float, int]] = []
        for d, _ in best:
            ids, ws = _unpack(rows[d][4])
            qget = query.get
            scored.append((sum(w * qget(t, 0.0) for t, w in zip(ids, ws, strict=True)), d))
        scored.sort(key=lambda sd: (-sd[0], sd[1]))
        out: list[tuple[Example, float]] = []
        for sim, d in scored[:k]:
            tier, kind, ex_text, source, _ = rows[d]
            out.append((Example(tier, ex_text, "counter" if kind == "counter" else "example",
                                source), min(1.0, max(0.0, sim))))
        return out


def plain_file(path: Path) -> bool:
    """A regular file, not a link (a cache file is ours: whatever else is there, planted or
    damaged, is rebuilt over; a FIFO would hang SQLite's open)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _fill(db: sqlite3.Connection, examples: Sequence[Example], key: str) -> None:
    db.executescript(_SCHEMA)
    hashed = [_hashed(e.text) for e in examples]
    df: Counter[int] = Counter()
    for words, _ in hashed:
        df.update(words.keys())
    n = len(examples)
    idf = {t: _idf(n, d) for t, d in df.items()}
    docs: dict[int, array[int]] = {}
    weights: dict[int, array[float]] = {}
    rows = []
    for i, (e, (words, shape)) in enumerate(zip(examples, hashed, strict=True)):
        vwords, vshape = _vector(words, shape, idf)
        for t, w in vwords.items():
            if t not in docs:
                docs[t], weights[t] = array("I"), array("f")
            docs[t].append(i)
            weights[t].append(w)
        rows.append((i, e.tier, e.kind, e.text, e.source, _pack({**vwords, **vshape})))
    db.executemany("INSERT INTO example VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO posting VALUES (?, ?, ?, ?)",
                   ((t, df[t], docs[t].tobytes(), weights[t].tobytes()) for t in sorted(docs)))
    db.executemany("INSERT INTO meta VALUES (?, ?)",
                   [("key", key), ("n", str(n)), ("vectoriser", VECTORISER)])
    db.commit()


# --------------------------------------------------------------------------- the vote


def vote(
    found: Sequence[tuple[Example, float]],
    *,
    min_similarity: float,
    ladder: Sequence[str],
    mask: Callable[[str], str] | None = None,
) -> Match:
    """What the nearest examples decide. Each example at or above ``min_similarity`` votes with
    the square of its similarity: an example for its tier, a counter-example for the next rung
    up ``ladder`` (the tier itself on the top rung; no vote off the ladder). A tier decides
    with a strict majority of the vote; a tie or no majority decides nothing.

    ``mask`` (``Policy.mask``) is applied to each example's text, whole, before it is quoted
    or returned (a secret cut short is no longer found)."""
    neighbours: list[Neighbour] = []
    weight: dict[str, float] = {}
    for example, sim in found:
        if mask is not None:
            example = replace(example, text=mask(example.text))
        target: str | None = example.tier
        if example.kind == "counter":
            if example.tier in ladder:
                i = ladder.index(example.tier)
                target = ladder[min(i + 1, len(ladder) - 1)]
            else:
                target = None
        counts = sim >= min_similarity and sim > 0.0
        neighbours.append(Neighbour(example, sim, target, counts))
        if counts and target is not None:
            weight[target] = weight.get(target, 0.0) + sim * sim
    total = sum(weight.values())
    order = sorted(weight.items(), key=lambda tw: (-tw[1], tw[0]))
    shares = tuple((t, w / total) for t, w in order) if total else ()
    kept = tuple(neighbours)
    if not found:
        return Match(None, "examples: no example shares a word with the task", kept, shares,
                     min_similarity)
    counted = [n for n in neighbours if n.counted]
    if not counted:
        return Match(None, f"examples: no decision (the nearest example is at "
                     f"{found[0][1]:.2f}, below min_similarity {min_similarity:g})", kept,
                     shares, min_similarity)
    pct = ", ".join(f"{t} {s:.0%}" for t, s in shares)
    if not shares:
        return Match(None, "examples: no decision (the nearest examples are counter-examples "
                     "of tiers off routing.ladder)", kept, shares, min_similarity)
    winner, share = shares[0]
    if share <= 0.5:
        why = "a tie" if len(shares) > 1 and shares[1][1] == share else "no majority"
        return Match(None, f"examples: no decision ({why} among the {len(counted)} nearest "
                     f"at or above {min_similarity:g}: {pct})", kept, shares, min_similarity)
    agree = sum(1 for n in counted if n.vote == winner)
    top = next(n for n in counted if n.vote == winner)
    return Match(
        winner,
        f"examples → {winner}: {agree} of the {len(counted)} examples at similarity >= "
        f"{min_similarity:g} vote {winner} ({pct} of the vote); nearest {top.similarity:.2f} "
        f"{_quote(top.example.text)} ({top.example.source})",
        kept, shares, min_similarity,
    )


def _quote(text: str, limit: int = 48) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…")


# --------------------------------------------------------------------------- the examples


def examples_dir(cfg: Config) -> Path:
    return cfg.state_dir / EXAMPLES_DIR


def example_files(cfg: Config) -> list[Path]:
    """``.burnless/examples/<tier>.txt``, sorted; a file for an undefined tier is an error."""
    folder = examples_dir(cfg)
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".txt"))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot read the examples: {exc.strerror or exc}") from None
    paths = []
    for name in names:
        tier = name[:-len(".txt")]
        if tier not in cfg.tiers:
            raise ConfigError(
                f"{folder / name}: names tier {tier!r}, which is not defined (tiers: "
                f"{', '.join(cfg.tiers)}); rename the file after a tier or remove it")
        paths.append(folder / name)
    return paths


def read_example_file(path: Path, tier: str, label: str) -> list[Example]:
    """One task per line; blank lines and lines starting with ``#`` are skipped."""
    from burnless.storage.atomic import open_regular

    try:
        with open_regular(path) as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the examples: {exc.strerror or exc}") from None
    out = []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"{path}:{lineno}: not UTF-8 text") from None
        if line and not line.startswith("#"):
            out.append(Example(tier, line, "example", f"{label}:{lineno}"))
    return out


def given_examples(cfg: Config) -> list[Example]:
    """The examples the user gave: the config's, then each tier file's, in order."""
    out = [Example(tier, task.strip(), "example", f"routing.examples.{tier}[{j}]")
           for tier, tasks in cfg.routing.examples.items() for j, task in enumerate(tasks)]
    for path in example_files(cfg):
        tier = path.name[:-len(".txt")]
        out += read_example_file(path, tier, f"{EXAMPLES_DIR}/{path.name}")
    return out


def _digest(blob: bytes) -> str:
    # Two C checksums and the length: an index key, not a defence against forgery (hashlib
    # would add its OpenSSL start-up to every routed run).
    return f"{len(blob)}-{zlib.crc32(blob):08x}-{zlib.adler32(blob):08x}"


def _file_key(path: Path) -> object:
    """What identifies a file's content: its metadata, or a digest of it while the metadata
    cannot prove the next edit differs (edited in the last two seconds)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):  # a FIFO would hang the read
        raise ConfigError(f"{path}: not a regular file; examples are read from plain text files")
    if time.time_ns() - st.st_mtime_ns < 2_000_000_000:
        from burnless.storage.atomic import open_regular

        with open_regular(path) as f:
            return _digest(f.read())
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def given_key(cfg: Config, backend: str) -> str:
    try:
        files = [[p.name, _file_key(p)] for p in example_files(cfg)]
    except OSError as exc:
        raise ConfigError(f"{examples_dir(cfg)}: cannot read the examples: "
                          f"{exc.strerror or exc}") from None
    blob = orjson.dumps([VECTORISER, backend, cfg.routing.examples, files],
                        option=orjson.OPT_SORT_KEYS)
    return _digest(blob)


def examples_key(examples: Sequence[Example], backend: str) -> str:
    blob = orjson.dumps([VECTORISER, backend, [e.to_dict() for e in examples]])
    return _digest(blob)


# Open indexes, kept for the life of the process (the gateway routes many requests).
_OPEN: dict[Path, Index] = {}
_OPEN_LOCK = threading.Lock()


def cached_index(
    cfg: Config, name: str, key: str, load: Callable[[], Sequence[Example]]
) -> Index:
    """The index ``name`` for ``key``: opened from ``.burnless/cache``, else built there from
    ``load()`` (in memory when the cache cannot be written)."""
    path = cfg.state_dir / "cache" / f"examples-{name}.sqlite"
    with _OPEN_LOCK:
        index = _OPEN.get(path)
        if index is not None and index.key == key:
            return index
        index = Index.open(path, key)
        if index is None:
            examples = load()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                index = Index.build(examples, path, key=key)
            except (OSError, sqlite3.Error):
                index = Index.build(examples, None, key=key)  # a read-only workspace
        # The one it replaces is not closed: another thread may be searching it (the gateway);
        # its connection closes when the last reference goes.
        _OPEN[path] = index
        return index


def match(cfg: Config, task: str, *, sensitive: Sequence[str] = (),
          mask: Callable[[str], str] | None = None) -> Match:
    """What the workspace's examples say about ``task`` (already masked by the caller);
    ``mask`` is applied to the examples' text shown in the result (see ``vote``)."""
    routing = cfg.routing
    if routing.embed is not None:
        from burnless.routing import embed

        return embed.match(cfg, task, sensitive=sensitive, mask=mask)
    indexes: list[Searchable] = []
    given = cached_index(cfg, "given", given_key(cfg, "builtin"), lambda: given_examples(cfg))
    if len(given):
        indexes.append(given)
    if routing.learn:
        from burnless.routing.learning import learned_examples

        learned = learned_examples(cfg)
        if learned:
            indexes.append(cached_index(cfg, "learned", examples_key(learned, "builtin"),
                                        lambda: learned))
    return decide(indexes, task, min_similarity=routing.min_similarity,
                  ladder=routing.ladder, mask=mask)


def decide(
    indexes: Sequence[Searchable],
    task: str,
    *,
    min_similarity: float,
    ladder: Sequence[str],
    k: int = K,
    mask: Callable[[str], str] | None = None,
) -> Match:
    """Search every index, merge the nearest ``k`` (by similarity, then index order) and vote."""
    if not any(len(ix) for ix in indexes):
        return Match(None, "examples: none yet (no example given, nothing learned)",
                     min_similarity=min_similarity)
    found: list[tuple[float, int, int, Example]] = []
    for i, ix in enumerate(indexes):
        for rank, (example, sim) in enumerate(ix.search(task, k)):
            found.append((sim, i, rank, example))
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    return vote([(e, s) for s, _, _, e in found[:k]], min_similarity=min_similarity,
                ladder=ladder, mask=mask)


__all__ = ["Example", "Index", "Match", "Neighbour", "decide", "match", "terms", "vote"]
