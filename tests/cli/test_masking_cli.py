"""The masking forms of issue 10 (finding 9) end to end: a worker echoes them, and nothing that
burnless writes (run log, capsule, ledger) or prints holds them; the parts of the text that are
not credentials survive."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import Workspace, quoted

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
