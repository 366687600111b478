"""Secret masking end to end through the real CLI: where secrets enter (task, prefix, worker
output, tier env, config values) and where they may leak (run log, capsule, ledger, CLI output,
prompts); the masking forms of issue 10 (finding 9): a worker echoes them, and nothing that
burnless writes or prints holds them; the parts of the text that are not credentials survive.

Every secret here is an obvious fake built at run time (``FAKE_SECRETS`` in
``tests/conftest.py``)."""

from __future__ import annotations

import base64
import json
import stat
import sys
from pathlib import Path

from burnless.config import load_config
from burnless.safety.policy import Policy
from burnless.safety.secrets import find_secrets, looks_random
from tests.conftest import FAKE_SECRETS, PEM, PEM_LINES, Workspace, fake, filler, quoted

GHS = "gh" + "s_" + "Fake0Installation1Token2Not3Real4567"
TWILIO = "S" + "K" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SENDGRID_SECRET = "Fake0SendGrid1Secret2Part3Not4Real5Value678"
SECRETS = {
    "passphrase": ("db:\n  password: correct horse battery staple\n",
                   "correct horse battery staple"),
    "mysql": ("mysql -u root -phunter2secret shop\n", "hunter2secret"),
    "sshpass": ("sshpass -p 'Tr0ub4dor&3' ssh deploy@host\n", "Tr0ub4dor&3"),
    "docker": ("docker login -u me -p Dock3rSecretPass registry.example.com\n",
               "Dock3rSecretPass"),
    "prose": ("the root password is s3cr3tR00t\n", "s3cr3tR00t"),
    "twilio": (TWILIO + "\n", TWILIO),
    "sendgrid": (f"SG.Fake0SendGrid1Key2Id3x.{SENDGRID_SECRET}\n", SENDGRID_SECRET),
    "url": (f"git clone https://x-access-token:{GHS}@github.com/o/r\n", GHS),
}


def test_a_worker_echoing_the_issue_forms_leaves_no_secret_behind(
    ws: Workspace, tmp_path: Path
) -> None:
    echoed = "".join(text for text, _ in SECRETS.values())
    summary = "ran: the root password is s3cr3tR00t and mysql -u root -phunter2secret"
    script = tmp_path / "worker.py"
    script.write_text(
        "import json, sys\nsys.stdin.read()\n"
        f"sys.stdout.write({echoed!r})\n"
        f"print(json.dumps({{'status': 'ok', 'kind': 'thought', 'summary': {summary!r}}}))\n",
        encoding="utf-8",
    )
    ws.config(f"tiers:\n  silver: {{command: {quoted(f'{sys.executable} {script}')}}}\n"
              "planner: null\n")
    p = ws.run("run", "go", "--json")
    assert p.returncode == 0, p.stderr
    written = [f for f in ws.state.rglob("*") if f.is_file() and f.name != "config.yaml"
               and "cache" not in f.parts]
    for name, (_, secret) in SECRETS.items():
        for f in written:
            assert secret.encode() not in f.read_bytes(), (name, f)
        assert secret not in p.stdout and secret not in p.stderr, name
    log = next((ws.state / "logs").iterdir()).read_text(encoding="utf-8")
    assert "@github.com/o/r" in log and "deploy@host" in log and "registry.example.com" in log
    assert json.loads(p.stdout)["summary"].startswith("ran: the root password is [REDACTED:")


NEEDLES = [secret for _, secret in FAKE_SECRETS.values()] + list(PEM_LINES)
ALL_SECRETS_TEXT = "\n".join(text for text, _ in FAKE_SECRETS.values()) + "\n" + PEM + "\n"


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




# -- the key file through a run --------------------------------------------------------------------


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
    secret = FAKE_SECRETS["github"][0]
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
    ant, gh, stripe = (FAKE_SECRETS["anthropic"][0], FAKE_SECRETS["github"][0],
                       FAKE_SECRETS["stripe"][0])
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
    s = {k: v[0] for k, v in FAKE_SECRETS.items()}
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
    gh = FAKE_SECRETS["github"][0]
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
    secret = FAKE_SECRETS["anthropic"][0]
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
    ant = FAKE_SECRETS["anthropic"][0]
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
    ant = FAKE_SECRETS["anthropic"][0]
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
    (ws.state / "prefix.md").write_text(f"deploy with {FAKE_SECRETS['stripe'][0]}\n")
    p = ws.run("run", "an ordinary task")
    assert p.returncode == 5 and "prefix.md" in p.stderr, p.stderr
    assert not rec.exists()
    (ws.state / "prefix.md").write_text("no secrets here\n")
    assert ws.run("run", "an ordinary task").returncode == 0 and rec.exists()




# -- text cut before it is masked ----------------------------------------------------------------


def test_a_secret_across_a_cut_does_not_leave_its_head(ws: Workspace, tmp_path: Path) -> None:
    gh = FAKE_SECRETS["github"][0]
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
    gh = FAKE_SECRETS["github"][0]
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}}}\nplanner: null\n")
    verify = f"{sys.executable} -c \"import sys; sys.stderr.write('bad {gh}'); sys.exit(1)\""
    p = ws.run("run", "write a.txt x", "--verify", verify, "--json")
    assert p.returncode == 3
    assert leaks(ws, p.stdout, p.stderr, needles=[gh]) == []
