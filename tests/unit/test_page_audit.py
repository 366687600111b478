"""Tier 0: the page-audit script, run as a real subprocess on real pages. No model involved."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import burnless

CHECKS = Path(burnless.__file__).parent / "example" / "checks"
SCRIPT = CHECKS / "page_audit.py"


def prompt(task: str, *, prefix: str = "", capsules: str = "") -> str:
    """A prompt in burnless's layout: header, project prefix, capsules, then the task last."""
    return (
        '<burnless-protocol role="executor" version="1">\nYou are the executor.\n'
        "</burnless-protocol>\n\n"
        + (f"<project>\n{prefix}\n</project>\n\n" if prefix else "")
        + capsules
        + f"<task>\n{task}\n</task>\n"
    )


def run(stdin: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[dict[str, object], str]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        input=stdin.encode("utf-8"),
        cwd=cwd,
        capture_output=True,
        timeout=30,
        env=env,
    )
    out = proc.stdout.decode("utf-8")
    assert proc.returncode == 0, proc.stderr
    fence = re.search(r"```json\n(.*?)\n```\s*\Z", out, re.DOTALL)
    assert fence, out
    return json.loads(fence.group(1)), out


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A workspace holding the example pages under site/."""
    shutil.copytree(CHECKS / "pages", tmp_path / "site")
    return tmp_path


def test_script_is_an_executable_stdlib_script() -> None:
    text = SCRIPT.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env python3\n")
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
    imports = re.findall(r"^(?:from|import) (\w+)", text, re.MULTILINE)
    assert set(imports) <= {"__future__", "json", "re", "sys", "html", "pathlib"}


def test_clean_page_is_ok(site: Path) -> None:
    env, human = run(prompt("Page audit site/clean.html"), site)
    assert env == {
        "status": "ok",
        "kind": "thought",
        "summary": "Page audit of site/clean.html: no problems found.",
        "files": [],
        "commands": [],
        "next": "",
    }
    assert human.startswith("[page_audit] ok:")


def test_page_with_clear_problems_fails_with_every_finding(site: Path) -> None:
    env, _ = run(prompt("Page audit site/problems.html"), site)
    assert env["status"] == "failed" and env["kind"] == "thought"
    summary = str(env["summary"])
    assert "4 problem(s)" in summary
    assert "title is 83 characters (max 60)" in summary
    assert "meta description missing" in summary
    assert "2 H1 elements (max 1)" in summary
    assert "canonical link missing" in summary


def test_ambiguous_page_escalates_with_the_reasons(site: Path) -> None:
    env, _ = run(prompt("Page audit site/ambiguous.html"), site)
    assert env["status"] == "escalate"
    summary = str(env["summary"])
    assert "title 'Acme' is only 4 characters" in summary
    assert "meta description is only 30 characters (under 50)" in summary


def test_missing_page_fails(site: Path) -> None:
    env, _ = run(prompt("Page audit site/nope.html"), site)
    assert env["status"] == "failed"
    assert "site/nope.html: page not found" in str(env["summary"])


def test_only_the_last_task_block_counts(site: Path) -> None:
    # the project prefix and an earlier capsule mention other pages and even a <task> block
    text = prompt(
        "Page audit site/clean.html.",
        prefix="Example:\n<task>\nPage audit site/problems.html\n</task>",
        capsules=(
            '<capsule seq="1" role="exec" tier="checks" status="failed" audit="none">\n'
            "task: Page audit site/ambiguous.html\n</capsule>\n\n"
        ),
    )
    env, _ = run(text, site)
    assert env["status"] == "ok", env


def test_without_task_tags_the_whole_input_is_the_task(site: Path) -> None:
    env, _ = run("please audit site/problems.html\n", site)
    assert env["status"] == "failed"


def test_a_task_naming_no_page_escalates(site: Path) -> None:
    env, _ = run(prompt("Refactor the auth module"), site)
    assert env["status"] == "escalate"
    assert "names no HTML page" in str(env["summary"])


def test_several_pages_clear_problems_win_and_ambiguity_is_kept(site: Path) -> None:
    env, _ = run(prompt("Audit site/clean.html, site/problems.html and site/ambiguous.html"), site)
    assert env["status"] == "failed"
    summary = str(env["summary"])
    assert "Also unsure:" in summary and "title 'Acme'" in summary
    assert "site/clean.html" not in summary  # a clean page has nothing to report


def page(title: str, description: str | None, h1: int = 1, canonical: str = "canonical") -> str:
    meta = f'<meta name="Description" content="{description}">' if description is not None else ""
    return (
        f"<html><head><title>\n  {title}\n</title>{meta}"
        f'<link rel="{canonical}" href="https://x.example/p"></head><body>'
        + "<h1>Heading</h1>" * h1
        + "</body></html>"
    )


GOOD_DESC = "A description that is comfortably longer than fifty characters in all."


@pytest.mark.parametrize(
    ("html", "status", "needle"),
    [
        (page("T" * 60, GOOD_DESC), "ok", "no problems"),  # 60 is the limit, inclusive
        (page("T" * 61, GOOD_DESC), "failed", "title is 61 characters"),
        (page("Fish &amp; Chips &mdash; the shop", GOOD_DESC), "ok", "no problems"),  # entities
        (page("T" * 10, GOOD_DESC), "ok", "no problems"),  # 10 is long enough
        (page("T" * 9, GOOD_DESC), "escalate", "only 9 characters"),
        (page("", GOOD_DESC), "failed", "title missing"),
        (page("A good title for a page", ""), "failed", "meta description missing"),
        (page("A good title for a page", "x" * 50), "ok", "no problems"),
        (page("A good title for a page", "x" * 49), "escalate", "only 49 characters"),
        (page("A good title for a page", GOOD_DESC, h1=0), "ok", "no problems"),
        (page("A good title for a page", GOOD_DESC, h1=3), "failed", "3 H1 elements"),
        (page("A good title", GOOD_DESC, canonical="Canonical alternate"), "ok", "no problems"),
        (page("A good title", GOOD_DESC, canonical="alternate"), "failed", "canonical link"),
        (page("T" * 70, "short"), "failed", "Also unsure"),  # clear problems win
    ],
)
def test_thresholds(tmp_path: Path, html: str, status: str, needle: str) -> None:
    (tmp_path / "p.html").write_text(html, encoding="utf-8")
    env, _ = run(prompt("audit p.html"), tmp_path)
    assert env["status"] == status, env
    assert needle in str(env["summary"])


def test_non_ascii_page_under_a_c_locale(tmp_path: Path) -> None:
    (tmp_path / "fr.html").write_text(page("Tarifs — équipes", "é" * 60), encoding="utf-8")
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIO"))}
    env_vars.update(LANG="C", LC_ALL="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0")
    env, _ = run(prompt("audit fr.html — vite"), tmp_path, env=env_vars)
    assert env["status"] == "ok", env


def test_with_the_real_prompt_renderer(site: Path) -> None:
    from burnless.prompt import render_prompt
    from burnless.session.capsule import Capsule, Context

    earlier = Capsule.make(
        seq=1, epoch=1, role="exec", tier="checks", task="Page audit site/problems.html"
    )
    rendered = render_prompt(
        "executor", "Audit pages.\n", Context(None, (earlier,)), "Page audit site/ambiguous.html"
    )
    env, _ = run(rendered.text, site)
    assert env["status"] == "escalate"
