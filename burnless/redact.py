"""Secret redaction: mask secrets before any non-local tier sees them.

A secret found in a text is replaced by ``[REDACTED:<kind>:<8 hex>]``. The hex is an
HMAC-SHA256 of the secret under a per-workspace key (``.burnless/redact.key``, 32 random bytes,
mode 0600), so the same secret always gets the same mask within a workspace (prompts stay
byte-stable and cache-friendly) while a mask cannot be brute-forced back into a weak password by
anyone who lacks the key. Redacting a redacted text changes nothing.

What is detected (``kind`` in brackets):

* provider tokens with a distinctive prefix, matched wherever they occur, even glued to other
  word characters (``xyzghp_...`` still loses its token: masking too much is cheaper than leaking):
  Anthropic ``sk-ant-api03-...`` (anthropic), OpenAI ``sk-proj-/sk-svcacct-/sk-admin-...`` and
  legacy ``sk-<32+ alnum>`` (openai), Google ``AIza...``, ``GOCSPX-...``, ``ya29....`` (google),
  AWS access key ids ``AKIA/ASIA/ABIA/ACCA...`` and secret keys assigned to an ``aws...secret...``
  name (aws), GitHub ``ghp_/gho_/ghu_/ghs_/ghr_/github_pat_`` (github), GitLab ``glpat-...``
  (gitlab), Slack ``xox[abeoprs]-...``, ``xapp-...`` and webhook URLs (slack), Stripe
  ``sk_live_/rk_live_/sk_test_/rk_test_/whsec_`` (stripe), npm ``npm_...`` (npm), Hugging Face
  ``hf_...`` (huggingface), JWTs ``eyJ...eyJ...`` (jwt), PEM private key blocks, multi-line
  (real newlines, or ``\\n`` / ``\\r\\n`` escapes as in JSON, also escaped twice as in JSON
  quoted inside JSON), also truncated ones with no END line (private-key);
* credentials in ``scheme://user:password@host`` URLs (password; the user may be empty, the
  password runs to the authority's last ``@``, the slashes may be JSON-escaped ``:\\/\\/``),
  ``Bearer <token>`` and ``Authorization: token <token>`` (secret), ``Basic <base64>`` when it
  decodes to ``user:password`` (password), ``curl -u user:password`` / ``--user`` (password);
* assignments ``password=...``, ``passwd: ...``, ``secret: ...``, ``api_key = ...``,
  ``token: ...``, ``--token ...``: the value is masked, the name kept. The name must *end* with
  the keyword (``db_password``, ``GITHUB_TOKEN``, ``x-api-key``, ``MYSQL_PWD``; not
  ``max_output_tokens`` or ``token_count``; ``pwd`` only after a separator and not before a path,
  alone it is the shell's working directory). Kind ``password`` for password/passwd/passphrase/
  pwd names, ``secret`` otherwise.
  Values that are clearly not literals are left alone: placeholders (``$VAR``, ``${...}``,
  ``{{...}}``, ``<...>``, ``%VAR%``, an existing mask), calls and subscripts (``get_secret()``,
  ``os.environ["X"]``), dotted names (``self.token``), names that repeat a keyword
  (``password=password``), ``true/false/null/None``... After ``:`` (YAML, JSON, but also Python
  annotations and prose: ``token: str``, ``the password: see the vault``) an unquoted value made
  of letters only is masked only when it is 16 characters or longer;
* high-entropy values in ``.env``-style lines (``NAME=value`` alone on a line, optionally
  ``export``-ed and quoted) (high-entropy): value of at least 20 characters, no whitespace, not a
  path or URL, not digits only, Shannon entropy of at least 3.3 bits per character (3.0 when the
  value is hex), not a command-line flag (``--max-old-space-size=4096``) nor a digest reference
  (``app@sha256:...``), and *random-looking*: less than 70 % of its characters belong to letter
  runs of four or more (``my-wonderful-application`` and ``ClaudeCodeWorkerTier`` are words, a
  random token is not; measured: fewer than 1 % of random 20-character base64 tokens, and fewer
  than 0.1 % of 32-character ones, look like words). Names that say the value is a digest or an id
  (``..._SHA``, ``SHA256``, ``HASH``, ``DIGEST``, ``CHECKSUM``, ``COMMIT``, ``REV``, ``..._ID``,
  ``VERSION``, ``PATH``, ``DIR``) are skipped: a file hash is not a secret;
* literal values known to be secret (``Redactor(key, known=...)``: the policy passes the tiers'
  ``env`` and ``pass_env`` secrets), wherever they occur (secret).

Hex digests are never masked as such: there is no "any high-entropy string" rule, so the
``"sha256": "<64 hex>"`` fields of burnless envelopes and ledger records, commit ids and
checksums in prose stay as they are.

Why hand-written patterns rather than a library: Yelp's ``detect-secrets`` (the maintained Python
candidate) was measured at ~110 ms to import, pulls in ``requests``, scans line by line and
returns the secret value but no offsets to replace, reports English words such as ``and`` and
``export`` as high-entropy strings when used as a library, and (1.5.0) misses ``sk-proj-``
OpenAI keys. trufflehog is Go; gitleaks is Go with a large TOML rule set whose Go-regex rules
would need translation and whose keyword pre-filter is its own engine. The rules below are
written for this module, informed by gitleaks' rule set (prefixes and lengths), use only the
standard library and import in a few milliseconds (redaction runs on every dispatch).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from burnless.errors import ConfigError

KEY_FILE = "redact.key"
KEY_BYTES = 32

_A = re.ASCII


class _Re:
    """A regex compiled on first use: the rules take ~4 ms to compile, paid at first redaction."""

    __slots__ = ("_pattern", "_flags", "_compiled")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._pattern, self._flags = pattern, flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def rx(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self._pattern, self._flags)
        return self._compiled


MASK_PATTERN = r"\[REDACTED:[a-z0-9-]+:[0-9a-f]{8}\]"
_MASK = _Re(MASK_PATTERN, _A)


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int  # span of the secret value in the text
    end: int


@dataclass(frozen=True)
class Redacted:
    text: str
    count: int
    kinds: tuple[str, ...]


# -- rules ----------------------------------------------------------------------------------------


class _Rule(NamedTuple):
    kind: str
    regex: _Re
    group: int = 0  # the group that holds the secret
    check: Callable[[str], bool] | None = None  # may reject a candidate value


def _mixed(value: str) -> bool:
    """Legacy ``sk-`` keys are random alphanumerics: digits, upper and lower case together."""
    if "T3BlbkFJ" in value:  # base64 of "OpenAI", embedded in every legacy key
        return True
    return (
        any(c.isdigit() for c in value)
        and any(c.isupper() for c in value)
        and any(c.islower() for c in value)
    )


def _has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


def _decodes_to_credentials(value: str) -> bool:
    """``Basic <value>``: base64 of printable ``user:password`` (not the word "authentication")."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return False
    text = raw.decode("utf-8", errors="replace")
    return ":" in text and text.isprintable()


_TOKEN_RULES: tuple[_Rule, ...] = (
    _Rule(
        "private-key",
        # header, then lines of base64 or "Proc-Type: ..." (split by newlines, escaped "\n" as in
        # JSON, or spaces), then the END line if there is one: a truncated block is masked too
        _Re(
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:(?:\r?\n|(?:\\+r)?\\+n|[ \t]+)(?:[A-Za-z][A-Za-z-]*:[^\n\\]*|[A-Za-z0-9+/=]+)?)*"
            r"(?:(?:\r?\n|(?:\\+r)?\\+n|[ \t]+)?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----)?",
            _A,
        ),
    ),
    _Rule("anthropic", _Re(r"sk-ant-[a-z]{2,8}\d{2}-[A-Za-z0-9_-]{20,}", _A)),
    _Rule("openai", _Re(r"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}", _A)),
    _Rule(
        "openai",
        _Re(r"sk-[A-Za-z0-9]{32,}", _A),
        check=lambda v: _mixed(v[3:]),
    ),
    _Rule("google", _Re(r"AIza[0-9A-Za-z_-]{35}", _A)),
    _Rule("google", _Re(r"GOCSPX-[0-9A-Za-z_-]{24,}", _A)),
    _Rule("google", _Re(r"ya29\.[0-9A-Za-z_-]{20,}", _A)),
    _Rule("aws", _Re(r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}", _A)),
    _Rule(
        "aws",
        _Re(
            r"(?i)aws[A-Za-z0-9_.-]{0,30}secret[A-Za-z0-9_.-]{0,30}\\?[\"']?\s*(?:=>|:=|=|:)\s*"
            r"\\?[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
            _A,
        ),
        group=1,
    ),
    _Rule("github", _Re(r"gh[pousr]_[A-Za-z0-9]{36,}", _A)),
    _Rule("github", _Re(r"github_pat_[A-Za-z0-9_]{22,}", _A)),
    _Rule("gitlab", _Re(r"gl(?:pat|dt|ptt|rt|soat|cbt)-[A-Za-z0-9_-]{20,}", _A)),
    _Rule("slack", _Re(r"xox[abeoprs](?:\.xox[bp])?-[A-Za-z0-9-]{10,}", _A)),
    _Rule("slack", _Re(r"xapp-\d-[A-Za-z0-9-]{10,}", _A)),
    _Rule(
        "slack",
        _Re(r"hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9/_-]{20,})", _A),
        group=1,
    ),
    _Rule("stripe", _Re(r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}", _A)),
    _Rule("stripe", _Re(r"whsec_[A-Za-z0-9]{20,}", _A)),
    _Rule("npm", _Re(r"npm_[A-Za-z0-9]{36}", _A), check=lambda v: _mixed(v[4:])),
    _Rule("huggingface", _Re(r"hf_[A-Za-z]{34}", _A), check=lambda v: not v[3:].islower()),
    _Rule(
        # the password runs to the last "@" before the path ("p@ss" is common, if invalid);
        # the user may be empty (redis://:pw@host) and "/" may be JSON-escaped ("https:\/\/")
        "password",
        _Re(
            r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*:(?:\\?/){2}[^\s:/@'\"]*:([^\s/'\"]+)@",
            _A,
        ),
        group=1,
    ),
    _Rule(
        "secret",
        _Re(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{16,}=*)", _A),
        group=1,
        check=_has_digit,
    ),
    _Rule(  # GitHub's and Django REST framework's "Authorization: token <key>"
        "secret",
        _Re(
            r"(?i)\bauthorization\\?[\"']?\s*[:=]\s*\\?[\"']?token\s+"
            r"([A-Za-z0-9._~+/-]{16,}=*)",
            _A,
        ),
        group=1,
    ),
    _Rule(  # HTTP basic credentials: base64 of "user:password"
        "password",
        _Re(r"(?i)\bbasic\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])", _A),
        group=1,
        check=_decodes_to_credentials,
    ),
    _Rule(  # curl -u user:password, --user user:password
        "password",
        _Re(r"(?<![\w-])(?:-u|--user)(?:[ \t]+|=)?[\"']?[^\s:'\"$]+:([^\s'\"]+)", _A),
        group=1,
        check=lambda v: len(v) >= 4 and not v.isdigit() and not _is_placeholder(v),
    ),
)

# -- JWTs -----------------------------------------------------------------------------------------

# A JWT is header.payload.signature, both first parts base64url JSON objects (so "eyJ..."). A
# single regex would backtrack quadratically over long base64 runs; instead each dotted run is
# matched once (it may only start where a run starts) and searched for the shape.
_DOTTED_RUN = _Re(r"(?<![A-Za-z0-9_.-])[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*", _A)


def _jwt_findings(text: str) -> list[tuple[int, int, int, str]]:
    out: list[tuple[int, int, int, str]] = []
    for m in _DOTTED_RUN.rx.finditer(text):
        starts, pos = [], m.start()
        segments = m.group().split(".")
        for seg in segments:
            starts.append(pos)
            pos += len(seg) + 1
        for i in range(len(segments) - 2):
            head, payload = segments[i], segments[i + 1]
            at = head.find("eyJ")
            if 0 <= at <= len(head) - 8 and payload.startswith("eyJ") and len(payload) >= 8:
                end = starts[i + 2] + len(segments[i + 2])
                out.append((starts[i] + at, starts[i] + at, end, "jwt"))
    return out


# -- assignments ----------------------------------------------------------------------------------

_PASSWORD_WORDS = ("password", "passwd", "passphrase", "pwd")
_KEYWORDS = (
    # "pwd" only at the end of a longer name (MYSQL_PWD, db.pwd): alone it is the shell's cwd
    r"password|passwd|passphrase|(?<=[A-Za-z0-9][_.-])pwd|secret|token|api[_-]?key|apikey|"
    r"access[_-]?key|"
    r"private[_-]?key|secret[_-]?key|signing[_-]?key|encryption[_-]?key|master[_-]?key|"
    r"session[_-]?key|credentials?"
)
_ASSIGN_RE = _Re(
    r"(?i)(?P<kw>" + _KEYWORDS + r")(?![A-Za-z0-9_])"
    r"(?P<q1>\\?[\"'])?"
    r"(?:[ \t]*(?P<sep>=>|:=|=(?!=)|:)[ \t]*|(?<=[A-Za-z])(?P<flag>[ \t]+)(?=\S))"
    r"(?:(?P<qv>\\?(?P<q>[\"'`]))(?P<quoted>[^\n]{0,1000}?)(?P=qv)|(?P<bare>[^\s'\"`,;]+))",
    _A,
)
_NOT_LITERALS = frozenset(
    "true false null none nil yes no on off undefined required optional str string int bytes "
    "bool float any object dict list secretstr".split()
)
_PLACEHOLDER_START = ("$", "{", "<", "%", "[", "(", "@", "*", "&", "#", "\\", "!", "?", "|")
_DOTTED_NAME = _Re(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+", _A)
_IDENT = _Re(r"[A-Za-z_][A-Za-z0-9_]*", _A)
_KEYWORD_IN = _Re(_KEYWORDS, re.I | _A)
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}


def _trim_bare(value: str) -> str:
    """Drop sentence punctuation and unbalanced closers glued to an unquoted value."""
    while value:
        last = value[-1]
        if last in ".:!?" or (last in _CLOSERS and _CLOSERS[last] not in value):
            value = value[:-1]
        else:
            break
    return value


def _assignment_findings(text: str) -> list[tuple[int, int, int, str]]:
    out: list[tuple[int, int, int, str]] = []
    rx, pos = _ASSIGN_RE.rx, 0
    while (m := rx.search(text, pos)) is not None:
        # a rejected candidate must not swallow the text after its keyword: resume there
        pos = m.end("kw")
        found = _assignment_value(text, m)
        if found is not None:
            out.append(found)
            pos = max(pos, found[2])
    return out


def _assignment_value(text: str, m: re.Match[str]) -> tuple[int, int, int, str] | None:
    kind = "password" if m.group("kw").lower() in _PASSWORD_WORDS else "secret"
    name_start = _name_start(text, m.start())
    if m.group("flag") is not None and not text.startswith("--", name_start):
        return None  # "name value" only counts for command-line flags: --token abc
    if m.group("quoted") is not None:
        value, start = m.group("quoted"), m.start("quoted")
        if not value.strip() or _is_placeholder(value):
            return None
    else:
        value, start = _trim_bare(m.group("bare")), m.start("bare")
        if not value or _is_placeholder(value) or _is_expression(value):
            return None
        if m.group("sep") == ":" and value.isalpha() and _prose_follows(text, m.end("bare")):
            return None  # "the password: see below" (but "password: hunter" is a password)
    if m.group("kw").lower() == "pwd" and value.startswith(("/", "~")):
        return None  # SOME_PWD=/srv/app: a working directory, not a password
    if kind == "secret" and (len(value) < MIN_SECRET_VALUE or value.isdigit()):
        # "token = 1", "auth_token = 42", "max_secret = 300": settings, not credentials.
        # (A password is masked whatever its length: short passwords are still passwords.)
        return None
    return (name_start, start, start + len(value), kind)


MIN_SECRET_VALUE = 8


def _prose_follows(text: str, end: int) -> bool:
    """More words on the line after a value: a sentence ("see the vault"), not a setting.

    A trailing comment (YAML, shell) does not count: ``password: hunter  # dev only``.
    """
    newline = text.find("\n", end)
    rest = text[end : newline if newline >= 0 else len(text)].split("#", 1)[0]
    return any(c.isalpha() for c in rest)


_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _name_start(text: str, pos: int) -> int:
    """Start of the name that ends with the keyword at ``pos`` (``db_password``, ``--api-key``)."""
    while pos > 0 and (
        text[pos - 1].isascii() and (text[pos - 1].isalnum() or text[pos - 1] in "_.-")
    ):
        pos -= 1
    return pos


def _is_placeholder(value: str) -> bool:
    v = value.strip()
    if v.startswith(_PLACEHOLDER_START) or v.lower() in _NOT_LITERALS:
        return True
    if _MASK.rx.fullmatch(v):
        return True
    return set(v) <= set("*xX.-_") and len(v) >= 3  # "****", "xxxx", "..."


def _is_expression(value: str) -> bool:
    if "(" in value or "[" in value:
        return True  # get_secret(), os.environ["X"]
    if _DOTTED_NAME.rx.fullmatch(value):
        return True  # self.token, settings.SECRET_KEY
    return bool(_IDENT.rx.fullmatch(value) and _KEYWORD_IN.rx.search(value))  # password=password


# -- .env lines -----------------------------------------------------------------------------------

_ENV_RE = _Re(
    r"(?m)^[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_.]*)[ \t]*=[ \t]*"
    r"(?P<q>[\"']?)(?P<value>[^\s'\"#]+)(?P=q)[ \t]*(?:#.*)?\r?$",
    _A,
)
_DIGEST_NAME = _Re(
    r"(?i)(?:path|dirs?|(?:^|[_.])(?:sha\d*|hash|digest|checksum|commit|rev|revision|id|version))$"
)
_HEX = _Re(r"[0-9a-fA-F]+", _A)
_DIGEST_REF = _Re(r"(?i)(?:^|[@:/=-])sha(?:1|224|256|384|512)[:-][0-9a-z+/]{16}", _A)
_WORD_RUNS = _Re(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", _A)
ENTROPY_MIN = 3.3  # bits per character, for values of 20+ characters
ENTROPY_MIN_HEX = 3.0  # hex has 4 bits at most; random hex of 20+ chars is above 2.9
HIGH_ENTROPY_MIN_LEN = 20
WORDLIKE_MAX = 0.7


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s own character distribution."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _word_fraction(value: str) -> float:
    runs = (r for r in _WORD_RUNS.rx.findall(value) if len(r) >= 4)
    return sum(len(r) for r in runs) / len(value)


def looks_random(value: str) -> bool:
    """The high-entropy test applied to ``.env`` values (see the module docstring)."""
    if len(value) < HIGH_ENTROPY_MIN_LEN or value.isdigit():
        return False
    if "://" in value or "[REDACTED:" in value:
        return False
    if value.startswith("--") or _DIGEST_REF.rx.search(value):
        return False  # NODE_OPTIONS=--max-old-space-size=4096, IMAGE=app@sha256:<hex>
    if any(part.startswith(("/", "./", "../", "~")) for part in re.split("[:;,]", value)):
        return False  # a path, or a list of them
    threshold = ENTROPY_MIN_HEX if _HEX.rx.fullmatch(value) else ENTROPY_MIN
    if shannon_entropy(value) < threshold:
        return False
    return _word_fraction(value) < WORDLIKE_MAX


def _env_findings(text: str) -> list[tuple[int, int, int, str]]:
    out: list[tuple[int, int, int, str]] = []
    for m in _ENV_RE.rx.finditer(text):
        if _DIGEST_NAME.rx.search(m.group("name")):
            continue
        if looks_random(m.group("value")):
            out.append((m.start(), m.start("value"), m.end("value"), "high-entropy"))
    return out


# -- finding --------------------------------------------------------------------------------------


class _Cand(NamedTuple):
    origin: int  # where the rule's match starts (the name of an assignment, say)
    start: int  # the secret's span
    end: int
    prio: int  # lower wins a tie on start
    kind: str


def _candidates(text: str, known: Sequence[str] = ()) -> list[_Cand]:
    found: list[_Cand] = []
    for prio, rule in enumerate(_TOKEN_RULES):
        for m in rule.regex.rx.finditer(text):
            value = m.group(rule.group)
            if value and (rule.check is None or rule.check(value)):
                found.append(
                    _Cand(m.start(), m.start(rule.group), m.end(rule.group), prio, rule.kind)
                )
    base = len(_TOKEN_RULES)
    found += [_Cand(o, s, e, base, k) for o, s, e, k in _jwt_findings(text)]
    found += [_Cand(o, s, e, base + 1, k) for o, s, e, k in _assignment_findings(text)]
    found += [_Cand(o, s, e, base + 2, k) for o, s, e, k in _env_findings(text)]
    for value in known:  # literal values known to be secret, in whatever text surrounds them
        at = text.find(value)
        while at >= 0:
            found.append(_Cand(at, at, at + len(value), base + 3, "secret"))
            at = text.find(value, at + 1)
    return found


def _clip(cands: list[_Cand], text: str) -> list[_Cand]:
    """Leave existing masks alone, so that redacting twice changes nothing.

    A candidate whose match starts inside a mask (``[REDACTED:password:...]`` reads like an
    assignment) is dropped; the others lose the parts that lie inside masks.
    """
    masks = [m.span() for m in _MASK.rx.finditer(text)]
    if not masks:
        return cands
    out: list[_Cand] = []
    for c in cands:
        if any(ms <= c.origin < me for ms, me in masks):
            continue
        pos = c.start
        for ms, me in masks:
            if me <= pos or ms >= c.end:
                continue
            if ms > pos:
                out.append(c._replace(start=pos, end=ms))
            pos = max(pos, me)
        if pos < c.end:
            out.append(c._replace(start=pos, end=c.end))
    return [span for span in (_strip_span(text, c) for c in out) if span is not None]


def _strip_span(text: str, c: _Cand) -> _Cand | None:
    """Whitespace left between two masks is not a secret."""
    start, end = c.start, c.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return c._replace(start=start, end=end) if start < end else None


def find_secrets(text: str, known: Sequence[str] = ()) -> list[Finding]:
    """Secrets in ``text``: non-overlapping spans, sorted; overlapping candidates are merged.

    ``known`` are literal secrets (the values of a tier's ``env`` and ``pass_env``): each
    occurrence is a secret of kind ``secret`` whatever its shape.
    """
    spans = _clip(_candidates(text, known), text)
    spans.sort(key=lambda c: (c.start, c.prio))
    out: list[Finding] = []
    for c in spans:
        if out and c.start < out[-1].end:
            last = out[-1]
            out[-1] = Finding(last.kind, last.start, max(last.end, c.end))
        else:
            out.append(Finding(c.kind, c.start, c.end))
    return out


def contains_secret(text: str) -> bool:
    return bool(find_secrets(text))


# -- masking --------------------------------------------------------------------------------------


class Redactor:
    """Replaces secrets with stable, keyed masks."""

    def __init__(self, key: bytes, known: Iterable[str] = ()) -> None:
        if len(key) < 16:
            raise ValueError("redaction key must be at least 16 bytes")
        self._key = key
        # literal secrets; short values would mask ordinary words, so they are not taken
        self._known = tuple(sorted({k for k in known if len(k) >= MIN_SECRET_VALUE}))

    def __repr__(self) -> str:  # never show the key
        return "Redactor(<key>)"

    @classmethod
    def for_workspace(cls, state_dir: Path, known: Iterable[str] = ()) -> Redactor:
        """The workspace's redactor; ``state_dir`` is its ``.burnless`` directory."""
        return cls(load_or_create_key(Path(state_dir) / KEY_FILE), known)

    def mask(self, kind: str, secret: str) -> str:
        digest = hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"[REDACTED:{kind}:{digest[:8]}]"

    def redact(self, text: str, originals: dict[str, str] | None = None) -> Redacted:
        """``text`` with its secrets masked. ``originals``, when given, receives each mask and
        the secret it stands for (the gateway puts a secret back where an answer echoes its
        mask); it lives in memory only."""
        findings = find_secrets(text, self._known)
        if not findings:
            return Redacted(text, 0, ())
        parts: list[str] = []
        pos = 0
        for f in findings:
            parts.append(text[pos : f.start])
            secret = text[f.start : f.end]
            mask = self.mask(f.kind, secret)
            parts.append(mask)
            if originals is not None:
                originals[mask] = secret
            pos = f.end
        parts.append(text[pos:])
        kinds = tuple(sorted({f.kind for f in findings}))
        return Redacted("".join(parts), len(findings), kinds)


# -- the key file ---------------------------------------------------------------------------------


def load_or_create_key(path: Path) -> bytes:
    """Read the key at ``path``, creating it once (32 random bytes, mode 0600) if absent.

    Creation is race-safe: the key is written in full to a private temporary file, then
    hard-linked into place, which fails if another process won; the loser discards its key and
    reads the winner's. A key file found with looser permissions is tightened to 0600 rather
    than refused: a copied or checked-out ``.burnless`` should keep working, and the key only
    guards masks against brute force. A key file of the wrong size, or one that cannot be read
    or created, is a ``ConfigError`` naming the file (deleting it makes new masks; nothing else
    depends on it).
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    try:
        _create_key(path)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot create the redaction key: {exc.strerror or exc}"
        ) from None
    return _read_key(path)


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError:
            _create_in_place(path, key)  # no hard links on this filesystem
    finally:
        tmp.unlink(missing_ok=True)


def _create_in_place(path: Path, key: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)


def _read_key(path: Path) -> bytes:
    # a concurrent in-place creator may not have written yet: wait briefly for the 32 bytes
    deadline = time.monotonic() + 2.0
    while True:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:  # a directory, no permission...
            raise ConfigError(
                f"{path}: cannot read the redaction key: {exc.strerror or exc}; "
                "delete it to make a new key (secrets will get new masks)"
            ) from None
        if len(data) == KEY_BYTES or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if len(data) != KEY_BYTES:
        raise ConfigError(
            f"{path}: redaction key is {len(data)} bytes, expected {KEY_BYTES}; "
            "delete the file to make a new key (secrets will get new masks)"
        )
    if sys.platform != "win32" and path.stat().st_mode & 0o077:
        try:
            os.chmod(path, 0o600)
        except OSError:
            pass  # not ours to change (a shared checkout): the key still works
    return data
