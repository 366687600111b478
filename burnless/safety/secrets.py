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
  ``hf_...`` (huggingface), Twilio API keys ``SK<32 hex>`` (twilio; as a word of its own),
  SendGrid ``SG.<22>.<43>`` (sendgrid), JWTs ``eyJ...eyJ...`` (jwt), PEM private key blocks,
  multi-line (real newlines, or ``\\n`` / ``\\r\\n`` escapes as in JSON, also escaped twice as
  in JSON quoted inside JSON), also truncated ones with no END line (private-key);
* credentials in ``scheme://user:password@host`` URLs (password; the user may be empty, the
  password runs to the authority's last ``@``, the slashes may be JSON-escaped ``:\\/\\/``; only
  the password is masked, ``@host/path`` stays: ``https://x-access-token:<mask>@github.com/o/r``),
  ``Bearer <token>`` and ``Authorization: token <token>`` (secret), ``Basic <base64>`` when it
  decodes to ``user:password`` (password), ``curl -u user:password`` / ``--user`` (password);
* passwords on command lines (password), looked for in the arguments of the same command (up to
  a newline, ``|``, ``;`` or ``&``): ``mysql``/``mariadb`` (and ``mysqldump``...) ``-p<password>``
  glued to ``-p`` (``-p`` alone prompts; ``-p shop`` names a database), ``sshpass -p <password>``
  among sshpass's own options, ``docker``/``podman``/``nerdctl``/``buildah``/``skopeo``/``oras``
  ``login -p <password>`` (``--password <password>`` is an assignment, ``--password-stdin`` is
  not), ``redis-cli -a <password>`` / ``--pass``;
* assignments ``password=...``, ``passwd: ...``, ``secret: ...``, ``api_key = ...``,
  ``token: ...``, ``--token ...``: the value is masked, the name kept. The name must *end* with
  the keyword (``db_password``, ``GITHUB_TOKEN``, ``x-api-key``, ``MYSQL_PWD``; not
  ``max_output_tokens`` or ``token_count``; ``pwd`` only after a separator and not before a path,
  alone it is the shell's working directory). Kind ``password`` for password/passwd/passphrase/
  pwd names, ``secret`` otherwise.
  Values that are clearly not literals are left alone: placeholders (``$VAR``, ``${...}``,
  ``{{...}}``, ``<...>``, ``%VAR%``, an existing mask), calls and subscripts (``get_secret()``,
  ``os.environ["X"]``), dotted names (``self.token``), names that hold a keyword
  (``password=password``, ``token=user_token``, ``password=dbPassword``; with a digit only a
  keyword standing as a part of the name counts, so ``password=hunter2secret`` is masked),
  ``true/false/null/None``... After ``:`` (YAML, JSON, but also Python annotations and prose:
  ``token: str``, ``the password: see the vault``) an unquoted value of letters only is not
  masked when more words follow on its line. A YAML line ``password: correct horse battery
  staple`` (the name first on its line, after indentation and an optional ``- ``) has the rest
  of the line as its value, masked whole, unless it reads as a sentence (a final ".", a word
  such as "the", "for", "see", the keyword again, or code punctuation: a docstring's
  ``password: The password to use.``);
* prose that states a password (password): ``the password is X``, ``... was X``, ``... is now
  X`` (also passwd, passphrase). Precision matters most here, since masking English corrupts the
  task, so X must not read as English: it is quoted (``'swordfish'``), or one token of at least 6
  characters that holds a digit or a symbol (``hunter2secret``, ``P@ssw0rd!``), is not a
  hyphenated compound of words and numbers (``case-sensitive``, ``8-characters``, ``AES-256``)
  nor a path or URL. ``the password is correct``, ``... is stored in the vault``, ``... is
  required`` stay; a password of letters only, unquoted in a sentence, cannot be told from a
  word and is not masked;
* high-entropy values in ``.env``-style lines (``NAME=value`` alone on a line, optionally
  ``export``-ed and quoted) (high-entropy): value of at least 20 characters, no whitespace, not a
  path or URL, not digits only, Shannon entropy of at least 3.3 bits per character (3.0 when the
  value is hex), not a command-line flag (``--max-old-space-size=4096``) nor a digest reference
  (``app@sha256:...``), and *random-looking*: less than 70 % of its characters belong to letter
  runs of four or more (``my-wonderful-application`` and ``ClaudeCodeWorkerTier`` are words, a
  random token is not; measured: fewer than 1 % of random 20-character base64 tokens, and fewer
  than 0.1 % of 32-character ones, look like words). Names that say the value is a digest or an id
  (``..._SHA``, ``SHA256``, ``HASH``, ``DIGEST``, ``CHECKSUM``, ``COMMIT``, ``REV``, ``..._ID``,
  ``VERSION``, ``PATH``, ``DIR``) are skipped: a file hash is not a secret; so are lines of code
  (a value with brackets or a comma, ``x = self._next(y)``, or an attribute path of snake_case or
  UPPER_CASE names, ``x = entry.frame.co_filename``);
* literal values known to be secret (``Redactor(key, known=...)``: the policy passes the tiers'
  ``env`` and ``pass_env`` secrets), wherever they occur (secret).

Hex digests are never masked as such: there is no "any high-entropy string" rule, so the
``"sha256": "<64 hex>"`` fields of burnless envelopes and ledger records, commit ids and
checksums in prose stay as they are.

Why hand-written patterns rather than a library: Yelp's ``detect-secrets`` (the maintained Python
candidate) was measured at ~110 ms to import, pulls in ``requests``, scans line by line and
returns the secret value but no offsets to replace, reports English words such as ``and`` and
``export`` as high-entropy strings when used as a library, and (1.5.0) misses ``sk-proj-``
OpenAI keys. trufflehog is Go. gitleaks' rule set (``config/gitleaks.toml``, MIT, 222 rules,
the reference most tools use) was measured as data under Python's ``re``: 25 rules need
translating (a global ``(?i)`` mid-pattern, ``\\z``), compiling all 221 regexes takes ~55 ms,
scanning 1 MiB of code and prose takes ~0.9 s even with gitleaks' keyword pre-filter (15 s
without), and RE2 patterns that are linear in Go backtrack in Python: its ``cohere-api-token``
rule alone took 8 s on 100 kB of ``a-a-a-...``. So the rules below stay written for this module,
informed by gitleaks' rules (prefixes and lengths; Twilio and SendGrid come from there), use only
the standard library and import in ~3 ms; their ~4 ms of compiling is paid at first use.

Speed: redaction runs on every prompt and on every window (up to 1 MiB) of a worker's output.
Measured with ``benchmarks/redaction.py``: tens of milliseconds per MiB of code, prose or
JSON logs, and linear on adversarial windows (one huge token, a megabyte of ``=``, of
``password``, of ``mysql``, of ``eyJ.``...). What costs most is a window dense with candidates
(a keyword and a separator every few bytes), as each is looked at in Python: still linear.
"""

from __future__ import annotations

import base64
import bisect
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
class SecretMatch:
    """Where a secret of one kind was found in a text."""
    kind: str
    start: int  # span of the secret value in the text
    end: int


@dataclass(frozen=True)
class Redacted:
    """A text with its secrets masked: how many, of which kinds."""
    text: str
    count: int
    kinds: tuple[str, ...]


# -- rules ----------------------------------------------------------------------------------------
#
# Speed: the redactor runs on every prompt and on every window of a worker's output (up to 1 MiB),
# so every pattern here starts with a literal (sre then skips to its occurrences at C speed; a
# pattern that starts with a look-behind or a class is tried at every position, ~20 ms per MiB
# each). Word boundaries go in look-behinds *after* the literal. Case-insensitive rules are
# written in lower case and run on the lowercased text (``_fold``: same length, same offsets):
# sre's case-insensitive matching is ~10x slower than a literal search.


class _Rule(NamedTuple):
    kind: str
    regex: _Re
    group: int | tuple[int, ...] = 0  # the group(s) holding the secret: the first that matched
    check: Callable[[str], bool] | None = None  # may reject a candidate value
    folded: bool = False  # a lower-case pattern, run on the lowercased text
    # The literal every match starts with: when the text lacks it the rule is skipped, and its
    # pattern never compiled (compiling every rule costs ~10 ms, paid on each `burnless run`).
    needle: str = ""


def _fold(text: str) -> str:
    """``text`` lowercased, each character at its own offset."""
    low = text.lower()
    if len(low) != len(text):  # U+0130 is the one character that lowercases to two
        low = text.replace("\u0130", "i").lower()
    return low


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


def _digits_and_letters(value: str) -> bool:
    return _has_digit(value) and any(c.isalpha() for c in value)


def _decodes_to_credentials(value: str) -> bool:
    """``Basic <value>``: base64 of printable ``user:password`` (not the word "authentication")."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return False
    text = raw.decode("utf-8", errors="replace")
    return ":" in text and text.isprintable()


# an option's value: single-quoted, double-quoted, or up to the next blank (groups 1, 2, 3)
_OPT_VALUE = r"""(?:'([^'\n]{1,200})'|"([^"\n]{1,200})"|([^\s'"-][^\s'"]*))"""

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
        needle="-----BEGIN",
    ),
    _Rule("anthropic", _Re(r"sk-ant-[a-z]{2,8}\d{2}-[A-Za-z0-9_-]{20,}", _A), needle="sk-ant-"),
    _Rule("openai", _Re(r"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}", _A), needle="sk-"),
    _Rule(
        "openai",
        _Re(r"sk-[A-Za-z0-9]{32,}", _A),
        check=lambda v: _mixed(v[3:]),
        needle="sk-",
    ),
    _Rule("google", _Re(r"AIza[0-9A-Za-z_-]{35}", _A), needle="AIza"),
    _Rule("google", _Re(r"GOCSPX-[0-9A-Za-z_-]{24,}", _A), needle="GOCSPX-"),
    _Rule("google", _Re(r"ya29\.[0-9A-Za-z_-]{20,}", _A), needle="ya29."),
    _Rule("aws", _Re(r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}", _A)),
    _Rule(
        "aws",
        _Re(
            r"aws[a-z0-9_.-]{0,30}secret[a-z0-9_.-]{0,30}\\?[\"']?\s*(?:=>|:=|=|:)\s*"
            r"\\?[\"']?([a-z0-9/+=]{40})(?![a-z0-9/+=])",
            _A,
        ),
        group=1,
        folded=True,
        needle="aws",
    ),
    _Rule("github", _Re(r"gh[pousr]_[A-Za-z0-9]{36,}", _A), needle="gh"),
    _Rule("github", _Re(r"github_pat_[A-Za-z0-9_]{22,}", _A), needle="github_pat_"),
    _Rule("gitlab", _Re(r"gl(?:pat|dt|ptt|rt|soat|cbt)-[A-Za-z0-9_-]{20,}", _A), needle="gl"),
    _Rule("slack", _Re(r"xox[abeoprs](?:\.xox[bp])?-[A-Za-z0-9-]{10,}", _A), needle="xox"),
    _Rule("slack", _Re(r"xapp-\d-[A-Za-z0-9-]{10,}", _A), needle="xapp-"),
    _Rule(
        "slack",
        _Re(r"hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9/_-]{20,})", _A),
        group=1,
        needle="hooks.slack.com/",
    ),
    _Rule("stripe", _Re(r"sk_(?:live|test)_[A-Za-z0-9]{10,}", _A), needle="sk_"),
    _Rule("stripe", _Re(r"rk_(?:live|test)_[A-Za-z0-9]{10,}", _A), needle="rk_"),
    _Rule("stripe", _Re(r"whsec_[A-Za-z0-9]{20,}", _A), needle="whsec_"),
    _Rule("npm", _Re(r"npm_[A-Za-z0-9]{36}", _A), check=lambda v: _mixed(v[4:]), needle="npm_"),
    _Rule(
        "huggingface",
        _Re(r"hf_[A-Za-z]{34}", _A),
        check=lambda v: not v[3:].islower(),
        needle="hf_",
    ),
    _Rule(  # Twilio API key SIDs (gitleaks: twilio-api-key); not inside a longer word
        "twilio",
        _Re(r"SK(?<![A-Za-z0-9]SK)[0-9a-fA-F]{32}(?![A-Za-z0-9])", _A),
        check=_digits_and_letters,
        needle="SK",
    ),
    _Rule(  # SendGrid: SG.<22>.<43> (gitleaks: sendgrid-api-token)
        "sendgrid",
        _Re(r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])", _A),
        needle="SG.",
    ),
    _Rule(
        # scheme://user:password@host: the password runs to the last "@" before the path ("p@ss"
        # is common, if invalid); the user may be empty (redis://:pw@host) and "/" may be
        # JSON-escaped ("https:\/\/"). Only the password is masked: the host and path stay.
        "password",
        _Re(r":(?<=[A-Za-z0-9+.-]:)(?:\\?/){2}[^\s:/@'\"]*:([^\s/'\"]+)@", _A),
        group=1,
        check=lambda v: not _is_starred(v),  # https://***:***@host is already hidden
    ),
    _Rule(
        "secret",
        _Re(r"bearer(?<![a-z0-9_]bearer)\s+([a-z0-9._~+/-]{16,}=*)", _A),
        group=1,
        check=_has_digit,
        folded=True,
        needle="bearer",
    ),
    _Rule(  # GitHub's and Django REST framework's "Authorization: token <key>"
        "secret",
        _Re(
            r"authorization(?<![a-z0-9_]authorization)\\?[\"']?\s*[:=]\s*\\?[\"']?token\s+"
            r"([a-z0-9._~+/-]{16,}=*)",
            _A,
        ),
        group=1,
        folded=True,
        needle="authorization",
    ),
    _Rule(  # HTTP basic credentials: base64 of "user:password"
        "password",
        _Re(r"basic(?<![a-z0-9_]basic)\s+([a-z0-9+/]{8,}={0,2})(?![a-z0-9+/=])", _A),
        group=1,
        check=_decodes_to_credentials,
        folded=True,
        needle="basic",
    ),
    _Rule(  # curl -u user:password, --user user:password
        "password",
        _Re(
            r"(?:-u(?<![\w-]-u)|--user(?<![\w-]--user))(?:[ \t]+|=)?[\"']?[^\s:'\"$]+:"
            r"([^\s'\"]+)",
            _A,
        ),
        group=1,
        check=lambda v: len(v) >= 4 and not v.isdigit() and not _is_placeholder(v),
        needle="-u",
    ),
)


def _group_span(m: re.Match[str], group: int | tuple[int, ...]) -> tuple[int, int] | None:
    for g in (group,) if isinstance(group, int) else group:
        if m.start(g) >= 0:
            return m.span(g)
    return None


# -- passwords on command lines -------------------------------------------------------------------

# The command name's match runs to the end of its command (a newline, a pipe, ";" or "&"; quoted
# arguments may hold them), then the password option is looked for in its arguments. Matching
# "name ... -p" in one lazy regex rescanned the line from every occurrence of the name: a
# megabyte of "mysql mysql ..." took seconds.
_ARGS = r"(?P<args>(?:[^\n|;&'\"]+|'[^'\n]*'|\"[^\"\n]*\")*)"


class _Command(NamedTuple):
    head: _Re  # the command name, then its arguments (group "args")
    option: _Re  # the password option in the arguments; groups 1-3 hold the value
    first: bool  # only the command's own options: the first match at the start of args
    needle: str  # the command is skipped unless this is in the text


# mysql -p<password>: glued to -p (a blank after -p makes mysql prompt for it)
_MYSQL_OPTION = _Re(r"[ \t]-p(?:'([^'\n]{1,200})'|\"([^\"\n]{1,200})\"|([^\s'\"]+))", _A)
_REGISTRY_TOOLS = ("docker", "podman", "nerdctl", "buildah", "skopeo", "oras")

_COMMANDS: tuple[_Command, ...] = (
    _Command(
        _Re(r"mysql(?<![\w.-]mysql)[a-z-]*(?=[ \t])" + _ARGS, _A), _MYSQL_OPTION, False, "mysql"
    ),
    _Command(
        _Re(r"mariadb(?<![\w.-]mariadb)[a-z-]*(?=[ \t])" + _ARGS, _A), _MYSQL_OPTION, False,
        "mariadb",
    ),
    _Command(  # sshpass -p <password>, among sshpass's own options (before the command it runs)
        _Re(r"sshpass(?<![\w.-]sshpass)" + _ARGS, _A),
        _Re(r"(?:[ \t]+-[a-oq-zA-Z]\S*)*[ \t]+-p[ \t]*" + _OPT_VALUE, _A),
        True,
        "sshpass",
    ),
    _Command(  # registry logins: docker login -p <password> (--password is an assignment)
        _Re(
            "login(?:" + "|".join(f"(?<={tool}[ \\t]login)" for tool in _REGISTRY_TOOLS)
            + r")(?![\w-])" + _ARGS,
            _A,
        ),
        _Re(r"[ \t]-p(?:[ \t]+|=)?" + _OPT_VALUE, _A),
        False,
        "login",
    ),
    _Command(  # redis-cli -a <password>, --pass <password>
        _Re(r"redis-cli(?<![\w.-]redis-cli)" + _ARGS, _A),
        _Re(r"[ \t](?:-a|--pass)(?:[ \t]+|=)" + _OPT_VALUE, _A),
        False,
        "redis-cli",
    ),
)


def _command_findings(text: str) -> list[tuple[int, int, int, str]]:
    out: list[tuple[int, int, int, str]] = []
    for cmd in _COMMANDS:
        if cmd.needle not in text:
            continue
        for m in cmd.head.rx.finditer(text):
            start, end = m.span("args")
            if start == end:
                continue
            options = cmd.option.rx
            found = ([options.match(text, start, end)] if cmd.first
                     else options.finditer(text, start, end))
            for o in found:
                span = _group_span(o, (1, 2, 3)) if o is not None else None
                if span is not None and not _is_placeholder(text[span[0] : span[1]]):
                    out.append((m.start(), span[0], span[1], "password"))
    return out


# -- JWTs -----------------------------------------------------------------------------------------

# A JWT is header.payload.signature, both first parts base64url JSON objects (so "eyJ..."). One
# regex would backtrack quadratically over a long run of "eyJeyJ..."; instead each run holding
# "eyJ" is matched once (from its first "eyJ", which may be glued to other characters), and the
# two segments after it are checked by hand.
_JWT_HEAD = _Re(r"eyJ[A-Za-z0-9_-]{5}[A-Za-z0-9_-]*", _A)
_B64URL_RUN = _Re(r"[A-Za-z0-9_-]*", _A)


def _jwt_findings(text: str) -> list[tuple[int, int, int, str]]:
    out: list[tuple[int, int, int, str]] = []
    if "eyJ" not in text:
        return out
    run = _B64URL_RUN.rx
    for m in _JWT_HEAD.rx.finditer(text):
        head_end = m.end()
        if not text.startswith(".eyJ", head_end):
            continue
        payload_end = _match_end(run, text, head_end + 1)
        if payload_end - head_end - 1 < 8 or not text.startswith(".", payload_end):
            continue
        out.append((m.start(), m.start(), _match_end(run, text, payload_end + 1), "jwt"))
    return out


def _match_end(rx: re.Pattern[str], text: str, pos: int) -> int:
    m = rx.match(text, pos)
    return m.end() if m is not None else pos


# -- assignments ----------------------------------------------------------------------------------

_PASSWORD_WORDS = ("password", "passwd", "passphrase", "pwd")
_KEYWORDS = (
    # lower case: matched on the lowercased text. "pwd" only at the end of a longer name
    # (MYSQL_PWD, db.pwd): alone it is the shell's working directory
    r"password|passwd|passphrase|pwd(?<=[a-z0-9][_.-]pwd)|secret|token|api[_-]?key|apikey|"
    r"access[_-]?key|"
    r"private[_-]?key|secret[_-]?key|signing[_-]?key|encryption[_-]?key|master[_-]?key|"
    r"session[_-]?key|credentials?"
)
_VALUE = (
    r"(?:(?P<qv>\\?(?P<q>[\"'`]))(?P<quoted>[^\n]{0,1000}?)(?P=qv)"
    r"|(?P<bare>[^\s'\"`,;]+))"
)
# The same keywords, each starting with a literal: one regex per literal is 4x faster than
# the alternation above (whose first letters, p s t a c e m, are at every other position).
_KEYWORD_LITERALS = (  # (pattern, the literal it starts with)
    (r"pass(?:word|wd|phrase)", "pass"),
    (r"pwd(?<=[a-z0-9][_.-]pwd)", "pwd"),
    (r"secret", "secret"),
    (r"token", "token"),
    # api_key, apikey, access-key...: "key" and a look-behind per prefix (each fixed-width)
    (
        "key(?:"
        + "|".join(
            f"(?<={prefix}[_-]key)|(?<={prefix}key)"
            for prefix in ("api", "access", "private", "secret", "signing", "encryption",
                           "master", "session")
        )
        + ")",
        "key",
    ),
    (r"credentials?", "credential"),
)
# name = value, name: value, name => value... (the name ends with the keyword)
_ASSIGN_RES = tuple(
    (
        _Re(
            r"(?P<kw>" + keyword + r")(?![a-z0-9_])(?P<q1>\\?[\"'])?"
            r"[ \t]*(?P<sep>=>|:=|=(?!=)|:)[ \t]*"
            r"(?![0-9a-f]{8}\])"  # the "password:<hex>]" inside a mask is not an assignment
            + _VALUE,
            _A,
        ),
        literal,
    )
    for keyword, literal in _KEYWORD_LITERALS
)
# --name value: a command-line flag whose name ends with the keyword (--token abc, --db-password x)
_FLAG_RE = _Re(
    r"--(?<![a-z0-9_.-]--)(?=[a-z0-9])[a-z0-9_.-]{0,40}?(?P<kw>" + _KEYWORDS + r")(?![a-z0-9_-])"
    r"[ \t]+(?=[^\s-])" + _VALUE,
    _A,
)
_NOT_LITERALS = frozenset(
    "true false null none nil yes no on off undefined required optional str string int bytes "
    "bool float any object dict list secretstr".split()
)
_PLACEHOLDER_START = ("$", "{", "<", "%", "[", "(", "@", "*", "&", "#", "\\", "!", "?", "|")
_DOTTED_NAME = _Re(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+", _A)
_IDENT = _Re(r"[A-Za-z_][A-Za-z0-9_]*", _A)
# a keyword as a whole part of an identifier: DB_PASSWORD, dbPassword, user_token, apiKey; not
# a literal that merely contains one (hunter2secret, mytokenvalue)
_KEYWORD_PART = _Re(
    r"(?:^|(?<=_)|(?<=[a-z0-9])(?=[A-Z]))(?i:" + _KEYWORDS + r")(?=$|_|(?<=[a-z])[A-Z])", _A
)
_KEYWORD_IN = _Re(_KEYWORDS, re.I | _A)
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}
_TRAILERS = frozenset(".:!?)]}>")
MAX_NAME = 128  # a longer run of name characters before a keyword is not a setting's name
MAX_LINE_VALUE = 256  # a YAML value longer than this is not a passphrase
_BARE_RESCAN = 256  # a rejected value longer than this is skipped whole (see below)


def _trim_bare(value: str) -> str:
    """Drop sentence punctuation and unbalanced closers glued to an unquoted value."""
    if value[-1:] not in _TRAILERS:
        return value
    # the openers present are computed once: checking per dropped character was quadratic
    # on a value ending in a long run of ")"
    openers = {o for o in "([{<" if o in value}
    end = len(value)
    while end:
        last = value[end - 1]
        if last in ".:!?" or (last in _CLOSERS and _CLOSERS[last] not in openers):
            end -= 1
        else:
            break
    return value[:end]


class _Assign(NamedTuple):
    kw: str  # the keyword, lower case
    name_start: int
    sep: str  # "" for a --flag
    quoted: bool
    start: int  # the value's span in the text
    end: int


def _assignment_findings(text: str, low: str) -> list[tuple[int, int, int, str]]:
    out: list[tuple[int, int, int, str]] = []
    passes = [(r, True) for r, literal in _ASSIGN_RES if literal in low]
    if "--" in low:
        passes.append((_FLAG_RE, False))
    for regex, has_sep in passes:
        rx, pos = regex.rx, 0
        while (m := rx.search(low, pos)) is not None:
            quoted = m.start("quoted") >= 0
            vs, ve = m.span("quoted") if quoted else m.span("bare")
            kw_start, kw_end = m.span("kw")
            a = _Assign(low[kw_start:kw_end], _name_start(text, kw_start),
                        m.group("sep") if has_sep else "", quoted, vs, ve)
            found = _assignment_value(text, a)
            if found is not None:
                out.append(found)
                pos = max(kw_end, found[2])
            elif not quoted and ve - vs > _BARE_RESCAN:
                # A rejected long value (a placeholder, an expression) is skipped whole: a
                # keyword inside it would match again and rescan the same run to its end, which
                # is quadratic on a megabyte of "password=$password=$...".
                pos = ve
            else:
                # a rejected candidate must not swallow the text after its keyword: resume there
                pos = kw_end
    return out


def _assignment_value(text: str, a: _Assign) -> tuple[int, int, int, str] | None:
    # cheap rejections first: a megabyte may hold tens of thousands of candidates
    kind = "password" if a.kw in _PASSWORD_WORDS else "secret"
    if text.endswith("//", 0, a.name_start) or text.endswith("\\/", 0, a.name_start):
        return None  # https://x-access-token:<token>@host: URL credentials, a rule of their own
    if a.quoted:
        value = text[a.start : a.end]
        if not value.strip() or _is_placeholder(value):
            return None
    else:
        if kind == "password" and a.sep == ":":
            line = _line_value(text, a)
            if line is not None:
                return (a.name_start, a.start, a.start + len(line), kind)
        value = _trim_bare(text[a.start : a.end])
        if a.name_start and text[a.name_start - 1] in "?&" and a.sep == "=":
            value = re.split("[&#]", value, maxsplit=1)[0]  # ?token=abc&state=ok: one parameter
        if not value:
            return None
        if a.sep == ":" and value.isalpha() and _PROSE_AFTER.rx.match(text, a.end):
            # "the password: see below" (but "password: hunter" is a password). A trailing
            # comment (YAML, shell) is not prose: "password: hunter  # dev only".
            return None
        if kind == "secret" and (len(value) < MIN_SECRET_VALUE or value.isdigit()):
            return None  # see below
        if _is_placeholder(value) or _is_expression(value):
            return None
    if a.kw == "pwd" and value.startswith(("/", "~")):
        return None  # SOME_PWD=/srv/app: a working directory, not a password
    if kind == "secret" and (len(value) < MIN_SECRET_VALUE or value.isdigit()):
        # "token = 1", "auth_token = 42", "max_secret = 300": settings, not credentials.
        # (A password is masked whatever its length: short passwords are still passwords.)
        return None
    return (a.name_start, a.start, a.start + len(value), kind)


MIN_SECRET_VALUE = 8
_LINE_PREFIX = _Re(r"[ \t]*(?:-[ \t]+)?", _A)
_CODE_CHARS = frozenset("=()[]{}|<>,:;")
# words that make a line a sentence (a docstring's "password: The password for the login.")
# rather than a passphrase
_PROSE_WORDS = frozenset(
    "a an the of for to or and is are was be if in on at by with from as this that these your "
    "you it its not no see use used when which will should must may can do does default "
    "defaults optional required none null here there".split()
)


def _line_value(text: str, a: _Assign) -> str | None:
    """``password: correct horse battery staple``: a YAML line's value is the rest of the line.

    Only when the name starts its line (after indentation and a ``- `` list marker) and the
    value has several words that do not read as a sentence (no final ".", no English function
    word such as "the", "for" or "see", not the keyword again, no code punctuation): the whole
    rest of the line up to a `` #`` comment is masked, not just its first word. Otherwise
    (``the password: see the vault``, a docstring's ``password: The password to use.``) the
    one-word rules apply.
    """
    line_start = text.rfind("\n", max(0, a.name_start - 64), a.name_start) + 1
    if line_start == 0 and a.name_start > 64:
        return None
    if not _LINE_PREFIX.rx.fullmatch(text, line_start, a.name_start):
        return None
    end = text.find("\n", a.start, a.start + MAX_LINE_VALUE + 1)
    if end < 0:
        if len(text) - a.start > MAX_LINE_VALUE:
            return None
        end = len(text)
    line = text[a.start : end]
    comment = re.search(r"[ \t]#", line)
    if comment is not None:
        line = line[: comment.start()]
    line = line.rstrip()
    words = line.split()
    if len(words) < 2 or _CODE_CHARS.intersection(line):
        return None  # one word (the usual rules), or code: password: str = field(...)
    if line.endswith(".") or _KEYWORD_IN.rx.search(line):
        return None  # a sentence: "password: The password part of the URL."
    if any(w.lower() in _PROSE_WORDS for w in words):
        return None  # "password: see the vault"
    if _is_placeholder(words[0]) or _is_expression(words[0]):
        return None
    return _trim_bare(line)


# more words on the line after a value: a sentence ("see the vault"), not a setting. Only the
# next 200 characters are read (to the end of a megabyte-long line per match was quadratic).
_PROSE_AFTER = _Re(r"[^\n#]{0,200}?[A-Za-z]", _A)


_NAME_REVERSED = _Re(r"[A-Za-z0-9_.-]*", _A)
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _name_start(text: str, pos: int) -> int:
    """Start of the name that ends with the keyword at ``pos`` (``db_password``, ``--api-key``)."""
    if pos == 0 or text[pos - 1] not in _NAME_CHARS:
        return pos  # the keyword is the whole name: the usual case
    # matched on the reversed window before the keyword: sre cannot match backwards
    window = text[max(0, pos - MAX_NAME) : pos][::-1]
    m = _NAME_REVERSED.rx.match(window)
    return pos - (m.end() if m is not None else 0)


def _is_placeholder(value: str) -> bool:
    v = value.strip()
    if v.startswith(_PLACEHOLDER_START) or v.lower() in _NOT_LITERALS:
        return True
    if _MASK.rx.fullmatch(v):
        return True
    return _is_starred(v)


def _is_starred(value: str) -> bool:
    return len(value) >= 3 and not value.strip("*xX.-_")  # "****", "xxxx", "..."


def _is_expression(value: str) -> bool:
    if "(" in value or "[" in value:
        return True  # get_secret(), os.environ["X"]
    if _DOTTED_NAME.rx.fullmatch(value):
        return True  # self.token, settings.SECRET_KEY
    if not _IDENT.rx.fullmatch(value):
        return False
    # A name that holds a keyword: password=password, token=user_token, password=dbPassword,
    # key=SSHPrivateKey, get_token=tokenfunc. With a digit, only a keyword standing as a part
    # of the name counts (db_password2): hunter2secret and mytokenvalue42 are literals.
    if _KEYWORD_PART.rx.search(value):
        return True
    return not _has_digit(value) and bool(_KEYWORD_IN.rx.search(value))


# -- "the password is X" --------------------------------------------------------------------------

# Prose that states a password. Precision matters more here than anywhere: masking English
# corrupts the task. So the value must not read as English: quoted ('swordfish', "P@ss"), or one
# token of at least 6 characters holding a digit or a symbol (hunter2secret, P@ssw0rd!), not a
# hyphenated compound of words and numbers (case-sensitive, 8-characters, AES-256) nor a path or
# URL. "the password is correct", "... is stored in the vault", "... is required" stay as they
# are; a password made of letters only, unquoted in a sentence, is not told from a word.
_PROSE_RE = _Re(
    r"pass(?:word|wd|phrase)[ \t]+(?:is|was)[ \t]+(?:(?:now|still|just|set[ \t]+to)[ \t]+)?"
    # a bare value of letters only is English: rejected here, not one by one in Python
    r"(?:'([^'\n]{1,100})'|\"([^\"\n]{1,100})\"|`([^`\n]{1,100})`"
    r"|([^\s'\"`]*[^a-z\s'\"`][^\s'\"`]*))",
    _A,
)
_COMPOUND = _Re(r"(?:[A-Za-z]+|[0-9]+)(?:[-'\u2019](?:[A-Za-z]+|[0-9]+))*", _A)
_PROSE_MIN = 6


def _prose_findings(text: str, low: str) -> list[tuple[int, int, int, str]]:
    out: list[tuple[int, int, int, str]] = []
    if "pass" not in low:
        return out
    for m in _PROSE_RE.rx.finditer(low):
        if m.start(4) < 0:  # quoted: a literal
            span = _group_span(m, (1, 2, 3))
            if span is None or _is_placeholder(text[span[0] : span[1]]):
                continue
            out.append((m.start(), span[0], span[1], "password"))
            continue
        value = _trim_prose(text[m.start(4) : m.end(4)])
        if _reads_as_password(value):
            out.append((m.start(), m.start(4), m.start(4) + len(value), "password"))
    return out


def _trim_prose(value: str) -> str:
    # sentence punctuation after the value is the sentence's; "!" and "?" are kept (a password
    # ending in "!" is common, and masking one character too many leaks nothing)
    end = len(value)
    openers = {o for o in "([{<" if o in value}
    while end and (value[end - 1] in ".,;:" or (
            value[end - 1] in _CLOSERS and _CLOSERS[value[end - 1]] not in openers)):
        end -= 1
    return value[:end]


def _reads_as_password(value: str) -> bool:
    if len(value) < _PROSE_MIN or _is_placeholder(value) or _is_expression(value):
        return False
    if "://" in value or value.startswith(("/", "~", "./", "../")):
        return False
    if value.isdigit():
        return True  # 123456 is a (bad) password
    if _COMPOUND.rx.fullmatch(value):
        return False  # words and numbers: case-sensitive, 8-characters, AES-256
    return _has_digit(value) or any(not c.isalnum() and c not in "-.,'" for c in value)


# -- .env lines -----------------------------------------------------------------------------------

# run on "\n" + text: a literal first is much faster than "(?m)^" (tried at every position);
# values shorter than HIGH_ENTROPY_MIN_LEN are never random-looking, so the regex skips them
_ENV_RE = _Re(
    r"\n[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_.]*)[ \t]*=[ \t]*"
    r"(?P<q>[\"']?)(?P<value>[^\s'\"#]{20,})(?P=q)[ \t]*(?:#[^\n]*)?\r?(?=\n|\Z)",
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


_CODE_IN_VALUE = frozenset("()[]{},<>")
# an attribute path made of snake_case, __dunder__ or UPPER_CASE names (not of random parts:
# SG.Rk4mT8zQ2wX6vB9nL3pC7d.F1aS9dF3gH6jK2lZ5xC8vB is a token)
_CODE_NAME = r"(?:_*[a-z][a-z0-9]*(?:_+[a-z0-9]+)*_*|_*[A-Z][A-Z0-9]*(?:_+[A-Z0-9]+)*_*)"
_ATTRIBUTE_PATH = _Re(_CODE_NAME + r"(?:\." + _CODE_NAME + ")+", _A)


def _is_code(value: str) -> bool:
    """``x = self._next_rung(nxt)``, ``y = entry.frame.co_filename``: code, not a token.

    Tokens (base64, hex, base64url) never hold brackets or commas. Measured on 18,000 Python
    files (this package, its dependencies, the standard library): 28,000 lines of code were
    masked as high-entropy values before this test.
    """
    return bool(_CODE_IN_VALUE.intersection(value)) or bool(_ATTRIBUTE_PATH.rx.fullmatch(value))


def _env_findings(text: str) -> list[tuple[int, int, int, str]]:
    out: list[tuple[int, int, int, str]] = []
    if "=" not in text:
        return out
    for m in _ENV_RE.rx.finditer("\n" + text):  # offsets in text are one less
        if _DIGEST_NAME.rx.search(m.group("name")) or _is_code(m.group("value")):
            continue
        if looks_random(m.group("value")):
            out.append((m.start(), m.start("value") - 1, m.end("value") - 1, "high-entropy"))
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
    low = _fold(text)
    for prio, rule in enumerate(_TOKEN_RULES):
        hay = low if rule.folded else text
        if rule.needle not in hay:  # "" is in every text
            continue
        for m in rule.regex.rx.finditer(hay):
            span = _group_span(m, rule.group)
            if span is None or span[0] == span[1]:
                continue
            if rule.check is None or rule.check(text[span[0] : span[1]]):
                found.append(_Cand(m.start(), span[0], span[1], prio, rule.kind))
    base = len(_TOKEN_RULES)
    for extra, finder in enumerate((
        _command_findings,
        _jwt_findings,
        lambda t: _assignment_findings(t, low),
        lambda t: _prose_findings(t, low),
        _env_findings,
    )):
        found += [_Cand(o, s, e, base + extra, k) for o, s, e, k in finder(text)]
    for value in known:  # literal values known to be secret, in whatever text surrounds them
        at = text.find(value)
        while at >= 0:
            found.append(_Cand(at, at, at + len(value), base + 5, "secret"))
            at = text.find(value, at + 1)
    return found


def _clip(cands: list[_Cand], text: str) -> list[_Cand]:
    """Leave existing masks alone, so that redacting twice changes nothing.

    A candidate whose match starts inside a mask (``[REDACTED:password:...]`` reads like an
    assignment) is dropped; the others lose the parts that lie inside masks. The masks are
    sorted and disjoint, so each candidate finds its own by bisection (a scan of every mask per
    candidate was quadratic on a redacted megabyte).
    """
    masks = [m.span() for m in _MASK.rx.finditer(text)]
    if not masks:
        return cands
    starts = [ms for ms, _ in masks]
    ends = [me for _, me in masks]
    out: list[_Cand] = []
    for c in cands:
        i = bisect.bisect_right(starts, c.origin) - 1
        if i >= 0 and c.origin < ends[i]:
            continue
        pos = c.start
        i = bisect.bisect_right(ends, pos)  # the first mask that ends after the span starts
        if i == len(masks) or starts[i] >= c.end:
            out.append(c)  # no mask inside (the usual case)
            continue
        while i < len(masks) and starts[i] < c.end:
            ms, me = masks[i]
            if ms > pos:
                _keep(out, text, c._replace(start=pos, end=ms))
            pos = max(pos, me)
            i += 1
        if pos < c.end:
            _keep(out, text, c._replace(start=pos, end=c.end))
    return out


def _keep(out: list[_Cand], text: str, piece: _Cand) -> None:
    stripped = _strip_span(text, piece)
    if stripped is not None:
        out.append(stripped)


def _strip_span(text: str, c: _Cand) -> _Cand | None:
    """Whitespace left between two masks is not a secret."""
    start, end = c.start, c.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return c._replace(start=start, end=end) if start < end else None


def find_secrets(text: str, known: Sequence[str] = ()) -> list[SecretMatch]:
    """Secrets in ``text``: non-overlapping spans, sorted; overlapping candidates are merged.

    ``known`` are literal secrets (the values of a tier's ``env`` and ``pass_env``): each
    occurrence is a secret of kind ``secret`` whatever its shape.
    """
    spans = _clip(_candidates(text, known), text)
    spans.sort(key=lambda c: (c.start, c.prio))
    out: list[SecretMatch] = []
    for c in spans:
        if out and c.start < out[-1].end:
            last = out[-1]
            out[-1] = SecretMatch(last.kind, last.start, max(last.end, c.end))
        else:
            out.append(SecretMatch(c.kind, c.start, c.end))
    return out


def contains_secret(text: str) -> bool:
    return bool(find_secrets(text))


# -- masking --------------------------------------------------------------------------------------


class Redactor:
    """Replaces secrets with stable, keyed masks."""

    def __init__(self, key: bytes, known: Iterable[str] = ()) -> None:
        if len(key) < 16:
            raise ValueError("redaction key must be at least 16 bytes")
        self._hmac = hmac.new(key, digestmod=hashlib.sha256)  # keyed once, copied per mask
        # literal secrets; short values would mask ordinary words, so they are not taken
        self._known = tuple(sorted({k for k in known if len(k) >= MIN_SECRET_VALUE}))

    def __repr__(self) -> str:  # never show the key
        return "Redactor(<key>)"

    @classmethod
    def for_workspace(cls, state_dir: Path, known: Iterable[str] = ()) -> Redactor:
        """The workspace's redactor; ``state_dir`` is its ``.burnless`` directory."""
        return cls(load_or_create_key(Path(state_dir) / KEY_FILE), known)

    def mask(self, kind: str, secret: str) -> str:
        h = self._hmac.copy()
        h.update(secret.encode("utf-8"))
        digest = h.hexdigest()
        return f"[REDACTED:{kind}:{digest[:8]}]"

    def redact(self, text: str, originals: dict[str, str] | None = None) -> Redacted:
        """``text`` with its secrets masked. ``originals``, when given, receives each mask and
        the secret it stands for (the gateway puts a secret back where an answer echoes its
        mask); it lives in memory only."""
        findings = find_secrets(text, self._known)
        if not findings:
            return Redacted(text, 0, ())
        parts: list[str] = []
        masks: dict[tuple[str, str], str] = {}  # a secret repeated is keyed once
        pos = 0
        for f in findings:
            parts.append(text[pos : f.start])
            secret = (f.kind, text[f.start : f.end])
            mask = masks.get(secret)
            if mask is None:
                mask = masks[secret] = self.mask(*secret)
                if originals is not None:
                    originals[mask] = secret[1]
            parts.append(mask)
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
