"""Adversarial review of secret handling end to end: where secrets enter, where they may leak
(logs, capsules, ledger, CLI output, prompts of non-local tiers), and sensitive routing.

Every secret here is an obvious fake built at run time (``FAKE`` fillers), so nothing in this file
looks like a live key. Tests marked ``xfail(strict=True)`` are leaks found by the review whose fix
belongs to a file outside redact/sensitive/policy; each names the fix. They turn into failures
(XPASS) once fixed: then drop the marker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import sys
from pathlib import Path

import pytest

from burnless.config import load_config
from burnless.errors import ConfigError
from burnless.safety.policy import Policy
from burnless.safety.secrets import Redactor, find_secrets, looks_random
from burnless.safety.sensitivity import classify, path_matches, paths_in
from tests.conftest import Workspace, fake, quoted

KEY = b"r" * 32


def filler(n: int, alphabet: str = "Fake0Key1Not2Real3") -> str:
    """An obviously fake, random-enough run of ``n`` characters."""
    return (alphabet * (n // len(alphabet) + 1))[:n]


PEM_LINES = (filler(64, "FakePemLineOne0+/"), filler(64, "FakePemLineTwo1+/"))
PEM = ("-----BEGIN RSA " + "PRIVATE KEY-----\n" + "\n".join(PEM_LINES)
       + "\n-----END RSA " + "PRIVATE KEY-----")
BASIC_PASSWORD = "Fake0Basic1Pass"

# kind -> (text as it would appear, the secret value that must never survive)
SECRETS: dict[str, tuple[str, str]] = {
    "anthropic": ("sk-ant-" + "api03-" + filler(93) + "AA",) * 2,
    "openai": ("sk-" + "proj-" + filler(48),) * 2,
    "github": ("gh" + "p_" + filler(36),) * 2,
    "aws-id": ("AK" + "IA" + "FAKEKEY0NOTREAL1",) * 2,
    "aws-secret": ("aws_secret_access_key = " + filler(40, "Fake/Key+Not0Real"),
                   filler(40, "Fake/Key+Not0Real")),
    "slack": ("xo" + "xb-" + "1234567890-" + filler(24),) * 2,
    "stripe": ("sk" + "_live_" + filler(24),) * 2,
    "google": ("AI" + "za" + filler(35),) * 2,
    "jwt": ("ey" + "J" + filler(20) + ".eyJ" + filler(30) + "." + filler(40),) * 2,
    "url-password": ("postgres://app:" + "Fake0Url1Pass" + "@db:5432/app", "Fake0Url1Pass"),
    "bearer": ("Authorization: Bearer " + filler(32), filler(32)),
    "basic": ("Authorization: Basic " + base64.b64encode(
        f"admin:{BASIC_PASSWORD}".encode()).decode(), BASIC_PASSWORD),
    "password": ("password=" + "Fake0Hunter2", "Fake0Hunter2"),
}
NEEDLES = [secret for _, secret in SECRETS.values()] + list(PEM_LINES)
ALL_SECRETS_TEXT = "\n".join(text for text, _ in SECRETS.values()) + "\n" + PEM + "\n"


def leaks(ws: Workspace, *outputs: str, needles: list[str] | None = None) -> list[str]:
    """Where any needle survives: files under .burnless (but the user's own config.yaml and
    prefix.md, and cache/config.json, the parsed copy of config.yaml that a run makes once the
    file is 2 s old: whether it exists depends only on how busy the machine is) and CLI
    outputs."""
    found: list[str] = []
    for path in sorted(ws.state.rglob("*")):
        if path.relative_to(ws.state) == Path("cache", "config.json"):
            continue
        if path.is_file() and path.name not in ("config.yaml", "prefix.md"):
            data = path.read_bytes()
            found += [f"{path.relative_to(ws.state)}: {n[:16]}"
                      for n in needles or NEEDLES if n.encode() in data]
    for i, out in enumerate(outputs):
        found += [f"output {i}: {n[:16]}" for n in needles or NEEDLES if n in out]
    return found


def worker(tmp_path: Path, body: str, name: str = "worker.py") -> str:
    """A tier command running a tiny script (the prompt is read from stdin first)."""
    script = tmp_path / name
    script.write_text("import json, os, sys, time\nprompt = sys.stdin.read()\n" + body,
                      encoding="utf-8")
    return f"{sys.executable} {script}"


def envelope(summary: str, nxt: str = "", **extra: object) -> str:
    env = {"status": "ok", "kind": "thought", "summary": summary, "files": [],
           "commands": [], "next": nxt, **extra}
    return "Done.\n```json\n" + json.dumps(env) + "\n```\n"


# -- detection: the forms the review found leaking (fixed in redact.py) --------------------------


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
    out = Redactor(KEY).redact(text).text
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
    out = Redactor(KEY).redact(text).text
    assert secret not in out, out
    assert Redactor(KEY).redact(out).text == out  # idempotent


def test_basic_auth_needs_credentials_inside() -> None:
    r = Redactor(KEY)
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
    r = Redactor(KEY, known=[cred, "short"])
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


def test_damaged_key_file_stops_the_run_before_dispatch(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('echo', '--record', str(rec)))}}}\n"
              "planner: null\n")
    (ws.state / "redact.key").write_bytes(b"\0" * 31)
    p = ws.run("run", "hello")
    assert p.returncode == 2 and "redact.key" in p.stderr and "31 bytes" in p.stderr
    assert "Traceback" not in p.stderr and not rec.exists()


def test_masks_stable_across_runs_and_key_file_private(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('echo', '--record', str(rec)))}}}\n"
              "planner: null\n")
    secret = SECRETS["github"][0]
    for _ in range(2):
        assert ws.run("run", f"use {secret}").returncode == 0
    prompts = [(rec / f"prompt-{i}.txt").read_text() for i in (1, 2)]
    masks = [t[t.index("[REDACTED:github:"):][:len("[REDACTED:github:12345678]")] for t in prompts]
    assert masks[0] == masks[1] and secret not in prompts[0]
    assert stat.S_IMODE((ws.state / "redact.key").stat().st_mode) == 0o600
    assert not [p.name for p in ws.state.iterdir() if p.name.startswith(".redact.key")]


# -- where secrets enter: a real run, every format at once ---------------------------------------


def test_every_format_in_task_and_prefix_survives_nowhere(ws: Workspace, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('echo', '--record', str(rec)))}}}\n"
              "planner: null\n")
    (ws.state / "prefix.md").write_text("Project notes.\n" + ALL_SECRETS_TEXT, encoding="utf-8")
    task = "Fix the deploy. Context:\n" + ALL_SECRETS_TEXT
    code, res = ws.json("run", "-", input=task)
    assert code == 0, res
    human = ws.run("run", "-", input=task)
    log = ws.run("log", res["run_id"])
    dry = ws.run("run", "-", "--dry-run", input=task)
    prompt = ws.run("session", "prompt", "default", "--task", task)
    outputs = [json.dumps(res), human.stdout, human.stderr, log.stdout, dry.stdout, dry.stderr,
               prompt.stdout, prompt.stderr]
    assert leaks(ws, *outputs) == []
    sent = (rec / "prompt-1.txt").read_text()
    assert [n for n in NEEDLES if n in sent] == []  # the non-local tier saw masks only
    kinds = {k for k in ("anthropic", "openai", "github", "aws", "slack", "stripe", "google",
                         "jwt", "private-key", "password", "secret") if f"[REDACTED:{k}:" in sent}
    assert len(kinds) == 11
    assert ws.ledger()[0]["redactions"] == 2 * len(find_secrets(ALL_SECRETS_TEXT))


def test_worker_output_split_long_and_on_stderr_is_masked(ws: Workspace, tmp_path: Path) -> None:
    ant, gh, stripe = SECRETS["anthropic"][0], SECRETS["github"][0], SECRETS["stripe"][0]
    cmd = worker(tmp_path, f"""
half = {ant!r}
sys.stdout.write("key " + half[:25]); sys.stdout.flush(); time.sleep(0.05)
sys.stdout.write(half[25:] + " done\\n"); sys.stdout.flush()
sys.stdout.write("x" * 300000 + " " + {gh!r} + " " + "y" * 1000 + "\\n")
sys.stderr.write("debug: Authorization: Bearer {filler(32)}\\n")
sys.stderr.write("fatal: cannot charge with {stripe}\\n")
sys.exit(3)
""")
    ws.config(f"tiers:\n  silver: {{command: {quoted(cmd)}}}\nplanner: null\n")
    code, res = ws.json("run", "go")
    assert code == 1 and "[REDACTED:stripe:" in res["calls"][0]["reason"]
    assert ws.ledger()[0]["reason"].startswith("exit 3: fatal: cannot charge with [REDACTED:")
    assert leaks(ws, json.dumps(res), needles=[ant, gh, stripe, filler(32)]) == []
    log = next((ws.state / "logs").iterdir()).read_text()
    assert "[REDACTED:anthropic:" in log and "[REDACTED:github:" in log


def test_claude_json_result_and_envelope_fields_are_masked(ws: Workspace, tmp_path: Path) -> None:
    s = {k: v[0] for k, v in SECRETS.items()}
    answer = ("I read .env:\n" + s["openai"] + "\n" + PEM + "\ncaf\u00e9 \u2603 " + s["stripe"]
              + "\n" + envelope(f"rotated {s['github']}", nxt=f"revoke {s['slack']}",
                                commands=[{"cmd": f"deploy --token {filler(20)}", "exit": 0}]))
    out = {"type": "result", "subtype": "success", "is_error": False, "result": answer,
           "usage": {"input_tokens": 10, "output_tokens": 5}, "total_cost_usd": 0.001}
    cmd = worker(tmp_path, f"sys.stdout.write(json.dumps({out!r}, ensure_ascii=True))\n")
    ws.config(f"tiers:\n  silver: {{command: {quoted(cmd)}, format: claude-json}}\n"
              "planner: null\n")
    code, res = ws.json("run", "rotate the keys")
    human = ws.run("run", "rotate the keys")
    assert code == 0 and res["summary"].startswith("rotated [REDACTED:github:")
    assert res["next"].startswith("revoke [REDACTED:slack:")
    needles = [s["openai"], s["stripe"], s["github"], s["slack"], filler(20), *PEM_LINES]
    assert leaks(ws, json.dumps(res), human.stdout, human.stderr, needles=needles) == []


def test_private_key_streamed_line_by_line_is_masked_in_the_log(
    ws: Workspace, tmp_path: Path
) -> None:
    cmd = worker(tmp_path, f"""
for line in {PEM!r}.splitlines(True):
    sys.stdout.write(line); sys.stdout.flush(); time.sleep(0.03)
sys.stdout.write("\\n")
""")
    ws.config(f"tiers:\n  silver: {{command: {quoted(cmd)}}}\nplanner: null\n")
    p = ws.run("run", "show the key")
    assert leaks(ws, p.stdout, p.stderr, needles=list(PEM_LINES)) == []


def test_planner_steps_are_masked(ws: Workspace, tmp_path: Path) -> None:
    gh = SECRETS["github"][0]
    cmd = worker(tmp_path, f"""
if 'role="planner"' in prompt:
    print(json.dumps({{"status": "ok", "kind": "thought", "summary": "plan with {gh}",
                      "plan": ["export GITHUB_TOKEN from .env: {gh}", "deploy"]}}))
else:
    print(json.dumps({{"status": "ok", "kind": "thought", "summary": "done"}}))
""")
    ws.config(f"tiers:\n  gold: {{command: {quoted(cmd)}}}\n  silver: {{command: {quoted(cmd)}}}\n")
    p = ws.run("run", "deploy")
    assert p.returncode == 0
    assert leaks(ws, p.stdout, p.stderr, needles=[gh]) == []


def test_routing_reason_does_not_quote_a_secret(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('echo'))}}}\nplanner: null\n"
              "routing: {rules: [{regex: 'key \\S+', tier: silver}]}\n")
    secret = SECRETS["anthropic"][0]
    code, res = ws.json("run", f"use key {secret} now")
    assert code == 0
    assert leaks(ws, json.dumps(res), needles=[secret[:30]]) == []


# -- config-supplied secrets ---------------------------------------------------------------------


def test_tier_env_and_pass_env_values_are_masked_in_worker_output(
    ws: Workspace, tmp_path: Path
) -> None:
    cred = base64.b64encode(b"Fake0Env1Cred-not-real-at-all").decode()
    passed = filler(30, "Fake0Passed1Env")
    cmd = worker(tmp_path, """
for k in ("ANTHROPIC_API_KEY", "MY_CRED", "SERVICE_AUTH", "LANG_HINT"):
    print(f"{k}: {os.environ.get(k, '')}")
print(json.dumps({"status": "ok", "kind": "thought",
                  "summary": "creds " + os.environ["MY_CRED"] + " " + os.environ["SERVICE_AUTH"]}))
""")
    ant = SECRETS["anthropic"][0]
    ws.config(f"tiers:\n  silver:\n    command: {quoted(cmd)}\n"
              f"    env: {{ANTHROPIC_API_KEY: {ant}, MY_CRED: {quoted(cred)}, "
              "LANG_HINT: en_US.UTF-8-plain}\n"
              "    pass_env: [SERVICE_AUTH]\nplanner: null\n")
    p = ws.run("run", "go", env={"SERVICE_AUTH": passed})
    doctor = ws.run("doctor")
    assert p.returncode == 0, p.stderr
    assert leaks(ws, p.stdout, p.stderr, doctor.stdout, doctor.stderr,
                 needles=[ant, cred, passed]) == []
    log = next((ws.state / "logs").iterdir()).read_text()
    assert "LANG_HINT: en_US.UTF-8-plain" in log  # not a secret: left alone


def test_which_config_values_count_as_secrets(ws: Workspace) -> None:
    ws.config("tiers:\n  silver:\n    command: echo\n    env:\n"
              "      DB_PASS: hunter2-Fake\n      GH_TOKEN: abcdefgh\n"
              "      OPAQUE: Xk9fQ2mZ7pL4vB8nR1tY6wC3\n      LANG: en_US.UTF-8\n"
              "      SSH_KEY_PATH: /home/me/.ssh/id_ed25519\n      REGION: eu-west-1-prod\n"
              "      BASE_URL_TOKEN: https://example.com/x\n      MONKEY_NAME: george-the-monkey\n")
    known = set(Policy(load_config(cwd=ws.root)).known_secrets())
    assert known == {"hunter2-Fake", "abcdefgh", "Xk9fQ2mZ7pL4vB8nR1tY6wC3"}
    assert looks_random("Xk9fQ2mZ7pL4vB8nR1tY6wC3")


def test_secret_in_a_tier_command_is_not_copied(ws: Workspace) -> None:
    ant = SECRETS["anthropic"][0]
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('echo') + ' --x-api-key ' + ant)}}}\n"
              "planner: null\n")
    p = ws.run("run", "go")
    doctor = ws.run("doctor")
    assert leaks(ws, p.stdout, doctor.stdout, needles=[ant]) == []


def test_secret_in_prefix_with_redaction_off_makes_work_sensitive(
    ws: Workspace, tmp_path: Path
) -> None:
    rec = tmp_path / "rec"
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('echo', '--record', str(rec)))}}}\n"
              "planner: null\npolicy: {redact_secrets: false}\n")
    (ws.state / "prefix.md").write_text(f"deploy with {SECRETS['stripe'][0]}\n")
    p = ws.run("run", "an ordinary task")
    assert p.returncode == 5 and "prefix.md" in p.stderr, p.stderr
    assert not rec.exists()
    (ws.state / "prefix.md").write_text("no secrets here\n")
    assert ws.run("run", "an ordinary task").returncode == 0 and rec.exists()


# -- sensitive routing ---------------------------------------------------------------------------

SENSITIVE_CONFIG = """\
planner: gold
executor: silver
routing: {{ladder: [bronze, silver, gold], breaker: {{failures: 5, cooldown: 600}}}}
compaction: {{max_context_tokens: 40, keep_recent: 1, tier: gold}}
policy: {{sensitive_patterns: ['(?i)payroll'], sensitive_paths: ['secrets/**', '*.pem']}}
"""


def _non_local_tiers(ws: Workspace, tmp_path: Path) -> dict[str, Path]:
    recs = {name: tmp_path / name for name in ("bronze", "silver", "gold")}
    lines = ["tiers:"] + [f"  {n}: {{command: {quoted(fake('honest', '--record', str(d)))}}}"
                          for n, d in recs.items()]
    ws.config("\n".join(lines) + "\n" + SENSITIVE_CONFIG.format())
    return recs


def _seed_session(ws: Workspace) -> None:
    """Three capsules over max_context_tokens: a compaction by gold is due on the next turn."""
    capsules = ws.state / "sessions" / "default" / "capsules.jsonl"
    capsules.parent.mkdir(parents=True)
    capsules.write_text("".join(json.dumps(
        {"v": 1, "seq": i, "epoch": 1, "role": "exec", "tier": "silver", "task": f"task {i}",
         "status": "ok", "audit": "passed", "summary": "s" * 200, "files": [], "next": "",
         "run_id": "", "ts": ""}) + "\n" for i in (1, 2, 3)))


@pytest.mark.parametrize(
    "args",
    [
        ["run", "fix the payroll export"],
        ["run", "rotate **secrets/prod.env**", "--cascade"],
        ["run", "scp host:secrets/prod.env .", "--no-plan"],
        ["run", "read keys/server.pem:12 and explain", "--tier", "gold"],
        ["run", "write a.txt x", "--label", "urgent,sensitive", "--cascade"],
        ["run", "open file:///srv/app/secrets/db.env", "--dry-run"],
        ["session", "prompt", "default", "--task", "list secrets/ files"],
    ],
    ids=["pattern+planner+compaction", "markdown-path+cascade", "scp-path", "path-line+tier",
         "label-list+cascade", "file-url+dry-run", "session-prompt"],
)
def test_sensitive_work_with_only_non_local_tiers_is_refused_and_nothing_starts(
    ws: Workspace, tmp_path: Path, args: list[str]
) -> None:
    recs = _non_local_tiers(ws, tmp_path)
    _seed_session(ws)
    p = ws.run(*args)
    assert p.returncode == 5, (p.stdout, p.stderr)
    assert "local" in p.stderr and "nothing was sent" in p.stderr
    assert [name for name, d in recs.items() if d.exists()] == []
    assert len(ws.capsules()) == 3  # no compaction capsule either


def test_sensitive_turn_on_a_local_tier_keeps_planner_and_compactor_out(
    ws: Workspace, tmp_path: Path
) -> None:
    recs = _non_local_tiers(ws, tmp_path)
    mine = tmp_path / "mine"
    ws.config((ws.state / "config.yaml").read_text().replace(
        "planner: gold", f"  mine: {{command: {quoted(fake('honest', '--record', str(mine)))}, "
        "local: true}\nplanner: gold"))
    _seed_session(ws)
    p = ws.run("run", "write payroll.txt salaries", "--cascade")
    assert p.returncode == 0, p.stderr
    assert "planner skipped" in p.stderr
    assert "payroll" in (mine / "prompt-1.txt").read_text()
    assert [name for name in ("bronze", "silver") if recs[name].exists()] == []
    # gold summarised the older, non-sensitive capsules; the sensitive task never reached it
    gold = sorted(recs["gold"].glob("prompt-*.txt"))
    assert len(gold) == 1 and 'role="compactor"' in gold[0].read_text()
    assert "payroll" not in gold[0].read_text()


def test_open_breaker_never_sends_sensitive_work_to_a_non_local_rung(
    ws: Workspace, tmp_path: Path
) -> None:
    silver = tmp_path / "silver"
    ws.config(f"tiers:\n  mine: {{command: {quoted(fake('crasher'))}, local: true}}\n"
              f"  silver: {{command: {quoted(fake('honest', '--record', str(silver)))}}}\n"
              "planner: null\nexecutor: mine\n"
              "routing: {ladder: [mine, silver], breaker: {failures: 1, cooldown: 600}}\n"
              "policy: {sensitive_patterns: ['(?i)payroll']}\n")
    assert ws.run("run", "warm up").returncode == 1  # mine fails: its breaker opens
    p = ws.run("run", "fix the payroll export")
    assert p.returncode == 5 and not silver.exists()


def test_capsule_of_sensitive_work_never_reaches_a_non_local_tier(
    ws: Workspace, tmp_path: Path
) -> None:
    silver = tmp_path / "silver"
    ws.config(f"tiers:\n  mine: {{command: {quoted(fake('honest'))}, local: true}}\n"
              f"  silver: {{command: {quoted(fake('honest', '--record', str(silver)))}}}\n"
              "planner: null\nexecutor: silver\n"
              "policy: {sensitive_patterns: ['(?i)payroll']}\n")
    assert ws.run("run", "write p.txt payroll alice 123").returncode == 0
    # The session now holds sensitive work: every later turn of it stays local.
    code, res = ws.json("run", "write b.txt hello")
    assert code == 0 and res["tier"] == "mine", res
    assert any("session holds sensitive work" in r for r in res["route"]["reasons"])
    assert not silver.exists()
    code, res = ws.json("route", "write c.txt hello")  # `route` says the same
    assert res["tier"] == "mine", res
    # A compaction by a non-local tier never sees those capsules either: the digest inherits
    # the flag, so the session stays local after it (and the compactor is skipped).
    # Another session may use silver.
    code, res = ws.json("run", "write d.txt hello", "--session", "other")
    assert code == 0 and res["tier"] == "silver"
    assert "payroll" not in (silver / "prompt-1.txt").read_text()


# -- sensitivity: the task forms the review found slipping through (fixed in sensitive.py) -------


@pytest.mark.parametrize(
    ("task", "glob"),
    [
        ("rotate **secrets/prod.env** now", "secrets/**"),
        ("rotate *secrets/prod.env*", "secrets/**"),
        ("scp deploy@host:secrets/prod.env .", "secrets/**"),
        ("docker cp app:/srv/app/secrets/prod.env .", "secrets/**"),
        ("open file:///srv/app/secrets/prod.env", "secrets/**"),
        ("open file://localhost/srv/app/secrets/prod.env", "secrets/**"),
        ("the bug is at certs/server.pem:12:3", "*.pem"),
        ("list secrets/ and tell me what is there", "secrets/**"),
        ("list ./secrets", "secrets/**"),
    ],
)
def test_path_forms_are_sensitive(task: str, glob: str) -> None:
    res = classify(task, patterns=[], paths=[glob], labels=[], redact_secrets=True)
    assert res.sensitive, paths_in(task)


def test_directory_rule_for_double_star_stays_anchored() -> None:
    assert not path_matches("src/secrets", "secrets/**")
    assert path_matches("src/secrets", "**/secrets/**")
    assert not classify("at 12:30 fix a:b in 3.5s", patterns=[], paths=["*.pem", "secrets/**"],
                        labels=[], redact_secrets=True).sensitive


@pytest.mark.parametrize("label", ["sensitive", " Sensitive ", "urgent,sensitive",
                                   "sensitive; urgent"])
def test_sensitive_label_forms(label: str) -> None:
    assert classify("x", patterns=[], paths=[], labels=[label], redact_secrets=True).sensitive
    assert not classify("x", patterns=[], paths=[], labels=["insensitive", "sensitive-ish"],
                        redact_secrets=True).sensitive


def test_sensitivity_reasons_never_quote_a_secret(tmp_path: Path) -> None:
    root = tmp_path / "w"
    (root / ".burnless").mkdir(parents=True)
    (root / ".burnless" / "config.yaml").write_text(
        "tiers:\n  silver: {command: echo}\npolicy: {sensitive_paths: ['vault/**']}\n")
    pol = Policy(load_config(cwd=root))
    secret = SECRETS["github"][0]
    assert pol.sensitivity("read vault/plain.txt", ()) == ("path 'vault/plain.txt' matches "
                                                          "'vault/**'",)
    assert not (root / ".burnless" / "redact.key").exists()  # `route` writes nothing
    reasons = pol.sensitivity(f"read vault/{secret}.txt", ())
    assert reasons and secret not in " ".join(reasons) and "[REDACTED:github:" in reasons[0]


# -- text cut before it is masked ----------------------------------------------------------------


def test_a_secret_across_a_cut_does_not_leave_its_head(ws: Workspace, tmp_path: Path) -> None:
    gh = SECRETS["github"][0]
    cmd = worker(tmp_path, f"""
sys.stdout.write("x" * 300 + " " + {gh!r} + "\\n")
sys.stderr.write("fatal: " + "y" * 180 + " " + {gh!r} + "\\n")
sys.exit(1)
""")
    ws.config(f"tiers:\n  silver: {{command: {quoted(cmd)}}}\nplanner: null\n")
    code, res = ws.json("run", "go")
    assert code == 1
    assert leaks(ws, json.dumps(res), needles=[gh[:12]]) == []


def test_verify_output_is_masked_in_the_result(ws: Workspace) -> None:
    gh = SECRETS["github"][0]
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}}}\nplanner: null\n")
    verify = f"{sys.executable} -c \"import sys; sys.stderr.write('bad {gh}'); sys.exit(1)\""
    p = ws.run("run", "write a.txt x", "--verify", verify, "--json")
    assert p.returncode == 3
    assert leaks(ws, p.stdout, p.stderr, needles=[gh]) == []
