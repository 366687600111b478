#!/usr/bin/env python3
"""Tier 0 of burnless: a deterministic page audit that costs $0.

Reads the burnless prompt on stdin. The task is the text between the LAST line ``<task>`` and
the next line ``</task>`` (the whole of stdin when there are no such lines). Every HTML page the
task names (``*.html`` / ``*.htm``, relative to the working directory, which burnless sets to
the workspace) is audited, and the answer ends with a burnless envelope in a ```json fence.

Clear problems => "failed" (each one listed in the summary):
  - the title is longer than TITLE_MAX characters, or missing
  - the meta description is missing (or empty)
  - the page has more than one H1
  - the canonical link is missing
  - the page does not exist or cannot be read
Ambiguous cases => "escalate" (a cheap model should judge, with the reason in the summary):
  - the title is shorter than TITLE_MIN characters (too short, or just a short brand name?)
  - the meta description is shorter than DESCRIPTION_MIN characters
  - the task names no HTML page at all
No problem => "ok". Clear problems win over ambiguous ones. The exit code is 0 whatever the
verdict: the status says it. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

TITLE_MAX = 60  # characters; search engines cut longer titles
TITLE_MIN = 10  # characters; shorter may be a bare brand name: a model should judge
DESCRIPTION_MIN = 50  # characters; shorter is likely too thin, but a model should judge

PAGE_RE = re.compile(r"[^\s\"'`<>()\[\]{},;]+\.html?\b", re.IGNORECASE)


class PageFacts(HTMLParser):
    """The few facts the audit needs: title text, meta description, H1 count, canonical link."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self.description: str | None = None
        self.h1_count = 0
        self.canonical = False
        self._in_title = False
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "title" and self.title is None:
            self._in_title = True
        elif tag == "h1":
            self.h1_count += 1
        elif tag == "meta" and a.get("name", "").strip().lower() == "description":
            if self.description is None:
                self.description = " ".join(a.get("content", "").split())
        elif tag == "link" and "canonical" in a.get("rel", "").lower().split():
            self.canonical = self.canonical or bool(a.get("href", "").strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.title = " ".join("".join(self._title_parts).split())

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)


def task_of(prompt: str) -> str:
    lines = prompt.splitlines()
    opens = [i for i, line in enumerate(lines) if line.strip() == "<task>"]
    if not opens:
        return prompt
    start = opens[-1] + 1
    end = next((j for j in range(start, len(lines)) if lines[j].strip() == "</task>"), len(lines))
    return "\n".join(lines[start:end])


def pages_in(task: str) -> list[str]:
    """HTML paths named in the task, in order; URLs are not local pages."""
    found = (m.group() for m in PAGE_RE.finditer(task))
    return list(dict.fromkeys(p for p in found if "://" not in p))


def audit(path: str) -> tuple[list[str], list[str]]:
    """(clear problems, ambiguous points) of one page."""
    try:
        html = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [f"{path}: page not found"], []
    except OSError as exc:
        return [f"{path}: cannot read the page ({exc.strerror or exc})"], []
    facts = PageFacts()
    facts.feed(html)
    facts.close()
    problems: list[str] = []
    unsure: list[str] = []
    title = facts.title or ""
    if not title:
        problems.append(f"{path}: title missing")
    elif len(title) > TITLE_MAX:
        problems.append(f"{path}: title is {len(title)} characters (max {TITLE_MAX})")
    elif len(title) < TITLE_MIN:
        unsure.append(f"{path}: title {title!r} is only {len(title)} characters")
    if not facts.description:
        problems.append(f"{path}: meta description missing")
    elif len(facts.description) < DESCRIPTION_MIN:
        unsure.append(
            f"{path}: meta description is only {len(facts.description)} characters"
            f" (under {DESCRIPTION_MIN})"
        )
    if facts.h1_count > 1:
        problems.append(f"{path}: {facts.h1_count} H1 elements (max 1)")
    if not facts.canonical:
        problems.append(f"{path}: canonical link missing")
    return problems, unsure


def verdict(pages: list[str]) -> dict[str, object]:
    if not pages:
        return envelope(
            "escalate",
            "The task names no HTML page to audit.",
            "a model should handle this task: it is not a page audit",
        )
    problems: list[str] = []
    unsure: list[str] = []
    for page in pages:
        p, u = audit(page)
        problems += p
        unsure += u
    checked = ", ".join(pages)
    if problems:
        also = f" Also unsure: {'; '.join(unsure)}." if unsure else ""
        return envelope(
            "failed",
            f"Page audit found {len(problems)} problem(s): {'; '.join(problems)}.{also}",
            "fix the problems listed, then audit again",
        )
    if unsure:
        return envelope(
            "escalate",
            f"Page audit of {checked} needs judgement: {'; '.join(unsure)}.",
            "a cheap model should judge whether these are acceptable",
        )
    return envelope("ok", f"Page audit of {checked}: no problems found.", "")


def envelope(status: str, summary: str, next_step: str) -> dict[str, object]:
    return {
        "status": status,
        "kind": "thought",
        "summary": summary,
        "files": [],
        "commands": [],
        "next": next_step,
    }


def main() -> int:
    # bytes in and out: burnless speaks UTF-8 whatever the locale of the worker's environment
    prompt = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    result = verdict(pages_in(task_of(prompt)))
    text = (
        f"[page_audit] {result['status']}: {result['summary']}\n\n"
        f"```json\n{json.dumps(result, ensure_ascii=False)}\n```\n"
    )
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
