"""Routing by example with an embed command (burnless.routing.embed), against a real program."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from burnless.config import load_config_data
from burnless.routing.embed import EmbedError, parse_vectors
from burnless.routing.router import route
from burnless.settings import Config

FAKE = Path(__file__).parent.parent / "fakes" / "embed.py"
TIERS = ("bronze", "silver", "gold")


def command(mode: str = "ok", log: Path | None = None) -> str:
    argv = [sys.executable, str(FAKE), "--mode", mode] + (["--log", str(log)] if log else [])
    return shlex.join(argv)


EXAMPLES = {"bronze": ["fix the typo in the readme", "rename the variable in utils"],
            "gold": ["design the plugin architecture", "find the race condition in the scheduler"]}


def config(root: Path, embed: dict[str, Any], examples: dict[str, list[str]] = EXAMPLES,
           **extra: Any) -> Config:
    tiers: dict[str, Any] = {t: {"command": "x"} for t in TIERS}
    tiers["home"] = {"command": "x", "local": True}  # where sensitive work may go
    data = {"tiers": tiers,
            "routing": {"ladder": list(TIERS), "embed": embed, "min_similarity": 0.3,
                        "examples": examples}, **extra}
    return load_config_data(data, root / ".burnless" / "config.yaml")


def test_parse_vectors_accepts_json_spaces_and_commas() -> None:
    assert parse_vectors("[1, 2.5]\n3 4\n\n5,6\n", 3, "e") == [[1, 2.5], [3, 4], [5, 6]]
    for out, count, why in [("[1]\n", 2, "1 vector line"), ("[1, 2]\n[3]\n", 2, "line 2 has 1"),
                            ("one two\n", 1, "not a vector"), ("[]\n", 1, "empty"),
                            ("1 nan\n", 1, "non-finite"), ('["a"]\n', 1, "not a vector")]:
        with pytest.raises(EmbedError, match=why):
            parse_vectors(out, count, "e")


@pytest.mark.parametrize("mode", ["ok", "plain", "commas"])
def test_the_embed_command_routes_and_its_vectors_are_kept(tmp_path: Path, mode: str) -> None:
    log = tmp_path / "sent.txt"
    cfg = config(tmp_path, {"command": command(mode, log), "local": True})
    d = route(cfg, "fix the typo in the readme file")
    assert d.tier == "bronze", d.reasons
    assert d.examples[0].example.text == "fix the typo in the readme"
    assert d.examples[0].similarity > 0.8
    sent = log.read_text().splitlines()
    assert len(sent) == 5  # the four examples, then the task
    d = route(cfg, "design the plugin architecture again")
    assert d.tier == "gold"
    assert log.read_text().splitlines()[5:] == ["design the plugin architecture again"]


@pytest.mark.parametrize(("mode", "why"), [
    ("fail", "exited 2: model not found"),
    ("short", "vector line"),
    ("ragged", "has 63 numbers"),
    ("words", "not a vector"),
    ("nan", "not a vector"),
])
def test_a_broken_embed_command_is_reported_and_routing_goes_on(
        tmp_path: Path, mode: str, why: str) -> None:
    cfg = config(tmp_path, {"command": command(mode), "local": True})
    d = route(cfg, "fix the typo in the readme")
    assert d.tier == "silver"
    assert d.reasons[0].startswith("examples: not consulted: the embed command failed")
    assert why in d.reasons[0]
    assert d.reasons[1] == "default executor silver"


def test_a_missing_program_and_a_timeout(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"command": "no-such-embedder-xyz --model m", "local": True})
    d = route(cfg, "fix the typo in the readme")
    assert "cannot start 'no-such-embedder-xyz'" in d.reasons[0] and d.tier == "silver"
    cfg = config(tmp_path, {"command": command("slow"), "local": True, "timeout": 0.5})
    d = route(cfg, "fix the typo in the readme")
    assert "timed out after 0.5s" in d.reasons[0]


def test_a_program_that_is_not_local_never_sees_sensitive_work_and_sees_masks(
        tmp_path: Path) -> None:
    log = tmp_path / "sent.txt"
    secret = "sk-ant-api03-" + "Q" * 90
    cfg = config(tmp_path, {"command": command("ok", log), "local": False},
                 {"bronze": ["fix the typo in the readme", "update the salary table"],
                  "gold": [f"rotate the key {secret} everywhere"]},
                 policy={"sensitive_patterns": ["(?i)salary"]})
    d = route(cfg, "update the salary report", sensitive=("pattern salary",))
    assert d.reasons[0] == ("examples: not consulted: the task is sensitive and the embed "
                            "command (routing.embed) is not local")
    assert not log.exists()  # nothing was sent, not even the examples
    route(cfg, "fix the typo in the readme")
    sent = log.read_text()
    assert "salary" not in sent and secret not in sent and "[REDACTED:" in sent


def test_a_local_program_sees_sensitive_work(tmp_path: Path) -> None:
    log = tmp_path / "sent.txt"
    cfg = config(tmp_path, {"command": command("ok", log), "local": True})
    d = route(cfg, "fix the typo in the readme please", sensitive=("label sensitive",))
    assert d.natural == "bronze"
    assert "fix the typo in the readme please" in log.read_text()
