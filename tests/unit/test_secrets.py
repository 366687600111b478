"""Secret redaction: detection per kind (with the forms once found leaking: escaped PEM blocks,
credentials in URLs and headers), stable keyed masks, the key file, no false positives.

Every secret here is an obvious fake built at run time (``filler`` in ``tests/conftest.py``), so
nothing in this file looks like a live key."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burnless.errors import ConfigError
from burnless.safety.secrets import (
    MASK_PATTERN,
    Redactor,
    SecretMatch,
    contains_secret,
    find_secrets,
    looks_random,
    shannon_entropy,
)
from tests.conftest import PEM, PEM_LINES, filler

KEY = b"k" * 32
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# Realistic-looking (fake) secrets of each kind. Built by concatenation so that this file does
# not itself look like it holds live keys.
ANTHROPIC = "sk-ant-" + "api03-" + "Xq3_vR9-kT2mW8pL5nB1" * 4 + "zYx1cV7bN3mQ9" + "AA"
OPENAI_PROJ = "sk-" + "proj-" + "A1b2C3d4E5f6G7h8I9j0_kLmNoPqRsTuVwXyZ-aBcDeF"
OPENAI_LEGACY = "sk-" + "Zx8vQ2mN5pL1kJ7hG4fD" + "T3BlbkFJ" + "aS9dF3gH6jK2lZ5xC8vB"
GOOGLE = "AI" + "za" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
AWS_ID = "AK" + "IA" + "Z5Q7XN2RT4YBW6UP"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq3Tw8Lm2Q"
GITHUB = "gh" + "p_" + "R8aZkQ2mW5xT9vB3nL7pC1dF6gH0jK4sY2eU"
GITHUB_PAT = "github" + "_pat_" + "11ABCDEFG0abcdefghijkl_" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa"
GITLAB = "gl" + "pat-" + "xK3mZ9qR7vT2wB5nL8pC"
SLACK = "xo" + "xb-" + "2468013579-1357924680-Rk4mT8zQ2wX6vB9nL3pC7dF1"
SLACK_HOOK_PATH = "T0" + "1ABCDE2F/B03GHIJK4L/" + "aBcDeFgHiJkLmNoPqRsTuVwX"
STRIPE = "sk" + "_live_" + "51HqZ8kL2mN9pQ4rS7tV1wX3"
STRIPE_RK = "rk" + "_live_" + "51HqZ8kL2mN9pQ4rS7tV1wX3"
STRIPE_TEST = "sk" + "_test_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = (
    "ey" + "JhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PRIVATE_KEY = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA " + "PRIVATE KEY-----"
)


# -- each kind ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        (f"export ANTHROPIC_API_KEY={ANTHROPIC}\n", ANTHROPIC, "anthropic"),
        (f"use {OPENAI_PROJ} for the call", OPENAI_PROJ, "openai"),
        (f"old key: {OPENAI_LEGACY}", OPENAI_LEGACY, "openai"),
        (f"maps key {GOOGLE}.", GOOGLE, "google"),
        (f"id={AWS_ID}", AWS_ID, "aws"),
        (f"aws_secret_access_key = {AWS_SECRET}\n", AWS_SECRET, "aws"),
        (f'AWS_SECRET_ACCESS_KEY="{AWS_SECRET}"', AWS_SECRET, "aws"),
        (f"git clone https://{GITHUB}@github.com/o/r", GITHUB, "github"),
        (f"token {GITHUB_PAT}", GITHUB_PAT, "github"),
        (f"CI uses {GITLAB}", GITLAB, "gitlab"),
        (f"bot {SLACK} posts", SLACK, "slack"),
        (f"curl https://hooks.slack.com/services/{SLACK_HOOK_PATH}", SLACK_HOOK_PATH, "slack"),
        (f"charge with {STRIPE}", STRIPE, "stripe"),
        (f"restricted {STRIPE_RK}", STRIPE_RK, "stripe"),
        (f"test mode {STRIPE_TEST}", STRIPE_TEST, "stripe"),
        (f"Cookie: session={JWT}; Path=/", JWT, "jwt"),
        (f"key:\n{PRIVATE_KEY}\nend", PRIVATE_KEY, "private-key"),
        ("password=hunter2", "hunter2", "password"),
        ("db:\n  password: hunter\n", "hunter", "password"),
        ("db_password: swordfish  # dev only\n", "swordfish", "password"),
        ("My password: letmein.", "letmein", "password"),
        ("secret: correcthorsebattery", "correcthorsebattery", "secret"),
        ("db:\n  passwd: 'c0rrect horse'\n", "c0rrect horse", "password"),
        ('{"db_password": "s3cr3t!"}', "s3cr3t!", "password"),
        ("secret: abc123def", "abc123def", "secret"),
        ("api_key = 'zQ9-local-key'", "zQ9-local-key", "secret"),
        ("token: tok_8f2k1", "tok_8f2k1", "secret"),
        ("GITHUB_TOKEN=changeme123", "changeme123", "secret"),
        ("deploy --token abc123XYZ now", "abc123XYZ", "secret"),
        ("Authorization: Bearer 4f9a2c7e1b3d8f6a0c5e", "4f9a2c7e1b3d8f6a0c5e", "secret"),
        ("DATABASE_URL=postgres://app:Pa55w0rd@db:5432/app", "Pa55w0rd", "password"),
        ("SENDGRID=SG.Rk4mT8zQ2wX6vB9nL3pC7d.F1aS9dF3gH6jK2lZ5xC8vB", None, "high-entropy"),
    ],
)
def test_each_kind_is_detected_and_masked(text: str, secret: str | None, kind: str) -> None:
    findings = find_secrets(text)
    assert [f.kind for f in findings] == [kind]
    if secret is not None:
        f = findings[0]
        assert text[f.start : f.end] == secret  # the value only: the key name is kept
    out = Redactor(KEY).redact(text)
    assert out.count == 1 and out.kinds == (kind,)
    masked = text[findings[0].start : findings[0].end]
    assert masked not in out.text
    assert Redactor(KEY).mask(kind, masked) in out.text
    assert contains_secret(text)


def test_private_key_block_without_end_line_is_masked_to_its_last_line() -> None:
    truncated = PRIVATE_KEY.rsplit("\n", 1)[0]  # cut off mid-way, e.g. in a capsule
    text = f"here:\n{truncated}\n"
    out = Redactor(KEY).redact(text).text
    assert "MIIEowIBAAKCAQEA" not in out and "VTLw7onLRnrq0" not in out
    assert out.startswith("here:\n[REDACTED:private-key:")


def test_private_key_forms() -> None:
    r = Redactor(KEY)
    escaped = PRIVATE_KEY.replace("\n", "\\n") + "\\n"  # inside a JSON string, as in key files
    out = r.redact(f'{{"private_key": "{escaped}", "client_email": "x@y.example"}}').text
    # the key block and the private_key assignment overlap: the whole value goes, once
    assert (
        out
        == f'{{"private_key": "{r.mask("private-key", escaped)}", "client_email": "x@y.example"}}'
    )
    encrypted = (
        "-----BEGIN RSA " + "PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        "DEK-Info: AES-128-CBC,3F1A\n\nMIIEowIBAAKCAQEAu1SU1L\n-----END RSA " + "PRIVATE KEY-----"
    )
    assert r.redact(f"{encrypted}\nafter this, the end.").text == (
        f"{r.mask('private-key', encrypted)}\nafter this, the end."
    )


def test_assignment_keeps_the_name_and_quotes() -> None:
    r = Redactor(KEY)
    out = r.redact("PASSWORD=\"hunter2\" and token: 'tok_8f2k1'").text
    assert out == (
        f"PASSWORD=\"{r.mask('password', 'hunter2')}\" and token: '{r.mask('secret', 'tok_8f2k1')}'"
    )


def test_a_rejected_assignment_does_not_hide_the_next_one() -> None:
    # "token password=..." is not an assignment of "token" (no --flag), but what follows is
    assert Redactor(KEY).redact("the token password=hunter2").text == (
        f"the token password={Redactor(KEY).mask('password', 'hunter2')}"
    )


def test_adjacent_word_characters_do_not_protect_a_key() -> None:
    # Decision: a distinctive prefix counts even glued to other word characters.
    text = f"xyz{GITHUB}abc and prefix{STRIPE}"
    out = Redactor(KEY).redact(text).text
    assert GITHUB not in out and STRIPE not in out


def test_masks_are_the_documented_shape() -> None:
    m = Redactor(KEY).mask("github", GITHUB)
    assert re.fullmatch(MASK_PATTERN, m)
    assert m.startswith("[REDACTED:github:") and len(m) == len("[REDACTED:github:]") + 8


# -- stability and keys ---------------------------------------------------------------------------


def test_same_secret_same_mask_in_one_workspace_and_different_across(tmp_path: Path) -> None:
    ws1, ws2 = tmp_path / "a" / ".burnless", tmp_path / "b" / ".burnless"
    text = f"first {GITHUB} then {GITHUB} and {AWS_ID}"
    one = Redactor.for_workspace(ws1).redact(text).text
    again = Redactor.for_workspace(ws1).redact(text).text  # a second instance, same key file
    other = Redactor.for_workspace(ws2).redact(text).text
    assert one == again
    assert one.count(Redactor.for_workspace(ws1).mask("github", GITHUB)) == 2
    assert one != other
    assert GITHUB not in other


def test_key_file_is_32_bytes_mode_0600(tmp_path: Path) -> None:
    Redactor.for_workspace(tmp_path / ".burnless")
    key_file = tmp_path / ".burnless" / "redact.key"
    assert len(key_file.read_bytes()) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not [p for p in key_file.parent.iterdir() if p.name != "redact.key"]  # no temp left


def test_loose_key_file_is_tightened_and_kept(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    key = os.urandom(32)
    (state / "redact.key").write_bytes(key)
    os.chmod(state / "redact.key", 0o644)
    r = Redactor.for_workspace(state)
    assert stat.S_IMODE((state / "redact.key").stat().st_mode) == 0o600
    assert r.mask("github", GITHUB) == Redactor(key).mask("github", GITHUB)


def test_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    (state / "redact.key").write_bytes(b"short")
    with pytest.raises(ConfigError, match=r"redact\.key.*5 bytes, expected 32.*delete"):
        Redactor.for_workspace(state)


def test_concurrent_key_creation_yields_one_key(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    start_at = time.time() + 0.5  # all processes wake at the same moment
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from burnless.safety.secrets import load_or_create_key\n"
        f"time.sleep(max(0.0, {start_at} - time.time()))\n"
        "print(load_or_create_key(Path(sys.argv[1]) / 'redact.key').hex())\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(state)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    keys = {p.communicate(timeout=30)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(keys) == 1
    assert (state / "redact.key").read_bytes().hex() in keys


def test_repr_does_not_show_the_key() -> None:
    assert "kkkk" not in repr(Redactor(KEY))


# -- idempotence ----------------------------------------------------------------------------------

ALL_SAMPLES = (
    f"export ANTHROPIC_API_KEY={ANTHROPIC}\npassword=hunter2\n"
    f'"db_password": "s3cr3t!", {JWT}\n{PRIVATE_KEY}\n'
    "DATABASE_URL=postgres://app:Pa55w0rd@db/app\nSTRIPE_KEY2=Xk9fQ2mZ7pL4vB8nR1tY6wC3\n"
)


def test_redacting_a_redacted_text_changes_nothing() -> None:
    r = Redactor(KEY)
    once = r.redact(ALL_SAMPLES)
    assert once.count == 7
    twice = r.redact(once.text)
    assert twice.text == once.text and twice.count == 0 and twice.kinds == ()


FRAGMENTS = ["password", "PASSWORD", "=", ":", " ", '"', "token", "[REDACTED:password:1234abcd]"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(ALL_SAMPLES.splitlines() + FRAGMENTS) | st.text(max_size=40), max_size=10
    )
)
def test_redaction_is_idempotent_on_mixtures(parts: list[str]) -> None:
    r = Redactor(KEY)
    once = r.redact("".join(parts)).text
    assert r.redact(once).text == once


# -- no false positives ---------------------------------------------------------------------------

ENVELOPE = """Done.
```json
{"status": "ok", "kind": "execution", "summary": "Added token refresh to auth/session.py",
 "files": [{"path": "auth/session.py", "action": "modified", "bytes": 2048,
   "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}],
 "commands": [{"cmd": "pytest -q tests/test_auth.py", "exit": 0}],
 "next": "wire refresh into the CLI"}
```"""

LEDGER = (
    '{"v": 1, "ts": "2026-11-28T12:00:00Z", "run_id": "r-20261128-120000-5f3a9c", '
    '"session": "auth", "seq": 7, "role": "execution", "tier": "silver", '
    '"model": "claude-sonnet-4-6", "status": "ok", "audit": "passed", "exit": 0, '
    '"tokens": {"input": 812, "output": 240, "cache_read": 10240, "cache_write": 96}, '
    '"cost_usd": 0.0076, "cost_source": "reported", "duration_s": 12.4, '
    '"route": {"tier": "silver", "reasons": ["pinned"]}, "redactions": 0, "cached": false}'
)

CODE = """
from dataclasses import dataclass
import os

@dataclass(frozen=True)
class Credentials:
    token: str
    password: str | None = None
    api_key: Optional[str] = None

def login(user, password, token=None):
    password = password or os.environ["APP_PASSWORD"]
    token = self.token
    api_key = settings.API_KEY
    secret = get_secret("db")
    if password == "":
        raise ValueError("empty password")
    headers = {"Authorization": f"Bearer {token}"}
    return client.post(url, token=token, password=password, secret_key=secret_key)

max_output_tokens = 8192
input_tokens=812
token_count: 42
"""

PROSE = """
The password: see the team vault. Set the token: run `burnless init` first.
Rotate your secret keys every 90 days; never paste a token into a task.
The auth module stores the session token in a cookie (see auth/session.py).
Fixed in commit 3f9a2c7e1b3d8f6a0c5e4d2b1a09f8e7d6c5b4a3 and e3b0c442.
A risk-assessment-framework-description and task-management-system-for-the-team.
Disk usage: 42%, ask-anything mode, AKIA is a prefix, sk-ant-... is a placeholder.
See the risk-managementframeworksforlargeorganisations page and disk-Usagereportsforallclustersnow.
"""

CONFIG = """
tiers:
  gold:   {command: "claude --model opus-4.8"}
  bronze:
    command: "claude -p --output-format json --model claude-haiku-4-5 --max-turns 30"
    pass_env: [ANTHROPIC_API_KEY]
    price: {input: 1.0, output: 5.0, cache_write: 1.25, cache_read: 0.10}
policy:
  redact_secrets: true
  sensitive_patterns: []
  token: ${GITHUB_TOKEN}
  password: "{{ secrets.DB_PASSWORD }}"
  secret: <your-secret-here>
  api_key: "********"
"""

DOTENV = """
APP_NAME=my-wonderful-application
REGION=production-us-east-1-cluster
PYTHONPATH=src:tests:/usr/local/lib/python3.11/site-packages
EXTRA=src:tests:/usr/local/lib/python3.11/site-packages
GIT_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
BUILD_COMMIT=3f9a2c7e1b3d8f6a0c5e4d2b1a09f8e7d6c5b4a3
ARTIFACT_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
CLIENT_ID=0123456789abcdef0123456789abcdef
LOG_FORMAT=INFO,WARNING,ERROR,CRITICAL
STARTED=2026-11-28T12:00:00Z
ORDER_NUMBER=123456789012345678901234
WORKER=ClaudeCodeWorkerTierExecutor
"""

SHELL = """
$ git log --oneline
3f9a2c7 Add token refresh
$ pip install -e '.[dev]'
Successfully installed burnless-0.1.0 anthropic-0.40.0
$ sha256sum dist/burnless-0.1.0.tar.gz
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  dist/burnless-0.1.0.tar.gz
$ uuidgen
0f8fad5b-d9cb-469f-a165-70867728950e
"""


@pytest.mark.parametrize("text", [ENVELOPE, LEDGER, CODE, PROSE, CONFIG, DOTENV, SHELL])
def test_no_false_positives_on_ordinary_text(text: str) -> None:
    assert find_secrets(text) == []
    assert Redactor(KEY).redact(text).text == text


def test_envelope_sha256_survives_next_to_a_real_secret() -> None:
    text = ENVELOPE.replace("Done.", f"Done, used {GITHUB}.")
    out = Redactor(KEY).redact(text).text
    assert GITHUB not in out
    assert '"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"' in out


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000,
        "a-" * 50_000,
        "-----BEGIN PRIVATE KEY-----#" * 3_000,
        "password=" * 10_000,
        "password='" * 10_000,
        "eyJ" * 30_000,
        "eyJ." * 30_000,
        "http://" * 10_000,
        "--token " * 10_000,
        "X=" + "a" * 100_000,
    ],
    ids=lambda t: repr(t[:10]),
)
def test_adversarial_input_takes_linear_time(text: str) -> None:
    # quadratic backtracking would take minutes on 100 kB; linear takes milliseconds
    started = time.process_time()
    Redactor(KEY).redact(text)
    assert time.process_time() - started < 2.0


def test_query_string_token_is_masked() -> None:
    out = Redactor(KEY).redact("GET /cb?token=abc123XYZ&state=ok").text
    assert "abc123XYZ" not in out


def test_high_entropy_thresholds() -> None:
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
    assert looks_random("Xk9fQ2mZ7pL4vB8nR1tY6wC3")
    assert not looks_random("Xk9fQ2mZ7pL4vB8nR1t")  # 19 characters: too short
    assert not looks_random("my-wonderful-application")  # words
    assert not looks_random("/usr/local/bin/Xk9fQ2mZ7pL4vB8nR1tY6wC3")  # a path
    assert not looks_random("12345678901234567890123")  # digits only


def test_findings_are_sorted_and_disjoint() -> None:
    findings = find_secrets(ALL_SAMPLES)
    assert findings == sorted(findings, key=lambda f: f.start)
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:], strict=False))
    assert all(isinstance(f, SecretMatch) and f.start < f.end for f in findings)


# -- the property: no known-format key survives, whatever surrounds it -----------------------------


def _chars(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=n, max_size=n)


B64URL = ALNUM + "_-"
KEYS: dict[str, st.SearchStrategy[str]] = {
    "anthropic": st.builds(lambda b: f"sk-ant-api03-{b}AA", _chars(B64URL, 93)),
    "openai-proj": st.builds(
        lambda b: f"sk-proj-{b}", st.text(alphabet=B64URL, min_size=20, max_size=160)
    ),
    "openai-legacy": st.builds(
        lambda a, b: f"sk-{a}T3BlbkFJ{b}", _chars(ALNUM, 20), _chars(ALNUM, 20)
    ),
    "google": st.builds(lambda b: f"AIza{b}", _chars(B64URL, 35)),
    "aws": st.builds(
        lambda p, b: p + b,
        st.sampled_from(["AKIA", "ASIA"]),
        _chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
    ),
    "github": st.builds(lambda p, b: f"gh{p}_{b}", st.sampled_from("pousr"), _chars(ALNUM, 36)),
    "github-pat": st.builds(
        lambda a, b: f"github_pat_{a}_{b}", _chars(ALNUM, 22), _chars(ALNUM, 59)
    ),
    "gitlab": st.builds(lambda b: f"glpat-{b}", _chars(B64URL, 20)),
    "slack": st.builds(
        lambda p, b: f"xox{p}-{b}",
        st.sampled_from("baprs"),
        st.text(alphabet=ALNUM + "-", min_size=10, max_size=60),
    ),
    "stripe": st.builds(
        lambda p, b: p + b,
        st.sampled_from(["sk_live_", "rk_live_", "sk_test_"]),
        st.text(alphabet=ALNUM, min_size=10, max_size=99),
    ),
    "jwt": st.builds(
        lambda h, p, s: f"eyJ{h}.eyJ{p}.{s}",
        st.text(alphabet=B64URL, min_size=5, max_size=40),
        st.text(alphabet=B64URL, min_size=5, max_size=80),
        st.text(alphabet=B64URL, min_size=0, max_size=60),
    ),
    "private-key": st.builds(
        lambda t, lines: (
            f"-----BEGIN {t}PRIVATE KEY-----\n"
            + "\n".join(lines)
            + f"\n-----END {t}PRIVATE KEY-----"
        ),
        st.sampled_from(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "]),
        st.lists(st.text(alphabet=ALNUM + "+/=", min_size=1, max_size=64), min_size=1, max_size=4),
    ),
}

# arbitrary text, with a bias toward characters that could glue onto a key
SURROUNDING = st.text(max_size=30) | st.text(alphabet=ALNUM + "_-.=:'\" \n/+", max_size=30)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.one_of(*KEYS.values()), before=SURROUNDING, after=SURROUNDING)
def test_no_known_format_key_survives_in_any_surrounding_text(
    key: str, before: str, after: str
) -> None:
    out = Redactor(KEY).redact(before + key + after)
    assert key not in out.text
    assert out.count >= 1


MASK_KEY = b"r" * 32


# -- forms once found leaking: escaped PEM, credentials in URLs and headers ------------------------


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"result": "key:\n" + PEM.replace("\n", "\r\n") + "\r\n"}),  # \r\n escapes
        json.dumps(json.dumps({"pem": PEM + "\n"})),  # a JSON file quoted in a JSON result
        json.dumps({"type": "result", "result": f"caf\u00e9 {PEM}\n\u2603"}, ensure_ascii=True),
    ],
    ids=["crlf-escaped", "escaped-twice", "unicode-escapes-around"],
)
def test_private_key_in_json_escaped_output_is_masked_whole(text: str) -> None:
    out = Redactor(MASK_KEY).redact(text).text
    assert not [line for line in PEM_LINES if line in out]
    assert "[REDACTED:private-key:" in out


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("redis://:Fake0Redis1Pw@cache:6379/0", "Fake0Redis1Pw"),  # empty user
        ("https://bob:Fake@0Pass1@example.com/x", "0Pass1"),  # '@' in the password
        ('{"url": "postgres:\\/\\/app:Fake0Esc1Pw@db\\/app"}', "Fake0Esc1Pw"),  # PHP-style \/
        ("GET /x HTTP/1.1\r\nAuthorization: token " + filler(40), filler(40)),
        ('{"Authorization": "Token ' + filler(40) + '"}', filler(40)),
        ("curl -u admin:Fake0Curl1Pw https://api.example", "Fake0Curl1Pw"),
        ("curl --user=admin:Fake0Curl1Pw https://api.example", "Fake0Curl1Pw"),
        ("MYSQL_PWD=Fake0Mysql1 mysql -u root", "Fake0Mysql1"),
        ("npm_" + filler(36), filler(36)),
        ("hf_" + filler(34, "FakeHugKey"), filler(34, "FakeHugKey")),
    ],
    ids=["redis-empty-user", "at-in-password", "json-escaped-slashes", "authorization-token",
         "drf-token-json", "curl-u", "curl-user", "mysql-pwd", "npm", "huggingface"],
)
def test_credential_forms_found_leaking_are_masked(text: str, secret: str) -> None:
    out = Redactor(MASK_KEY).redact(text).text
    assert secret not in out, out
    assert Redactor(MASK_KEY).redact(out).text == out  # idempotent


def test_basic_auth_needs_credentials_inside() -> None:
    r = Redactor(MASK_KEY)
    for text in ("Use Basic authentication here", "Basic realm=\"api\"",
                 "the Basic usage of curl", "Basic dGhpcyBpcyBub3Q="):  # "this is not"
        assert r.redact(text).text == text
    creds = base64.b64encode(b"u:Fake0Pw").decode()
    assert "Fake0Pw" not in base64.b64decode(r.redact(f"Basic {creds}").text[6:] + "==",
                                             validate=False).decode(errors="replace")
    assert r.redact(f"Basic {creds}").text.startswith("Basic [REDACTED:password:")


@pytest.mark.parametrize(
    "text",
    [
        "uuid 0f8fad5b-d9cb-469f-a165-70867728950e and 550E8400-E29B-41D4-A716-446655440000",
        "commit 3f9a2c7e1b3d8f6a0c5e4d2b1a09f8e7d6c5b4a3 sha256=" + "e3b0c442" * 8,
        "integrity: sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kx",
        "export NODE_OPTIONS=--max-old-space-size=4096",
        "IMAGE=ghcr.io/org/app@sha256:" + "e3b0c442" * 8,
        "def test_refresh_token_rotation_with_exponential_backoff_and_jitter(): ...",
        'png = b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk")',
        "docker run -u 1000:1000 img && git add -u && sort -u a:b",
        "cd $(pwd) && WORK_PWD=/srv/app make && OLDPWD=/tmp",
        "see https://example.com/a?b=c and git@github.com:org/repo.git, mailto:a@b.example",
        "tokenizer = AutoTokenizer.from_pretrained('bert-base-uncased')",
    ],
)
def test_ordinary_coding_text_is_left_alone(text: str) -> None:
    assert find_secrets(text) == []


def test_known_false_positive_base64_fixture_alone_on_an_assignment_line() -> None:
    # Reported trade-off, not fixed: a base64 blob assigned alone on a line reads as a .env
    # secret. The worker gets a mask instead of the fixture; leaking a real one would be worse.
    line = "FIXTURE = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk'"
    assert [f.kind for f in find_secrets(line)] == ["high-entropy"]


def test_known_literal_secrets_are_masked_wherever_they_occur() -> None:
    cred = base64.b64encode(b"Fake0Literal1Cred-not-a-real-one").decode()
    r = Redactor(MASK_KEY, known=[cred, "short"])
    out = r.redact(f"MY_CRED: {cred}\nenv={{'MY_CRED': '{cred}'}} short").text
    assert cred not in out and out.count(r.mask("secret", cred)) == 2
    assert out.endswith(" short")  # values under 8 characters are not taken
    assert r.redact(out).text == out


# -- masks and the key file ----------------------------------------------------------------------


def test_masks_are_keyed_not_plain_hashes(tmp_path: Path) -> None:
    weak = "password=Fake0weak"
    one = Redactor.for_workspace(tmp_path / "a").redact(weak).text
    other = Redactor.for_workspace(tmp_path / "b").redact(weak).text
    assert one != other and "Fake0weak" not in one
    digest = one.rsplit(":", 1)[1].rstrip("]")
    assert digest not in {hashlib.sha256(b"Fake0weak").hexdigest()[:8],
                          hashlib.md5(b"Fake0weak").hexdigest()[:8]}
    assert Redactor.for_workspace(tmp_path / "a").redact(weak).text == one


def test_key_file_that_is_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "redact.key").mkdir()
    with pytest.raises(ConfigError, match=r"redact\.key: cannot read the redaction key.*delete"):
        Redactor.for_workspace(tmp_path)


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"redact\.key: cannot (read|create) the redaction key"):
        Redactor.for_workspace(blocker / ".burnless")
