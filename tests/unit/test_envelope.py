"""The envelope extractor: never raises, finds the envelope wherever the answer puts it, the last
one counts, and hostile text stays fast."""

from __future__ import annotations

import json
import os
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from burnless.envelope import extract

statuses = st.sampled_from(["ok", "partial", "failed", "escalate"])
paths = st.text(st.characters(whitelist_categories=("Ll", "Nd")), min_size=1, max_size=12)
claims = st.lists(
    st.fixed_dictionaries({
        "path": paths,
        "action": st.sampled_from(["created", "modified", "deleted"]),
        "bytes": st.integers(0, 10**9),
        "sha256": st.text("0123456789abcdef", min_size=64, max_size=64),
    }),
    max_size=4,
)
envelopes = st.fixed_dictionaries({
    "status": statuses,
    "kind": st.sampled_from(["execution", "thought"]),
    "summary": st.text(max_size=80),
    "files": claims,
    "next": st.text(max_size=40),
})
# Prose that cannot itself contain a JSON object with a status.
prose = st.text(alphabet=st.characters(blacklist_characters="{}`"), max_size=300)


@given(st.text(max_size=2000))
@settings(max_examples=400)
def test_never_raises_on_arbitrary_text(text: str) -> None:
    ex = extract(text)
    assert ex.envelope is None or ex.envelope.status in ("ok", "partial", "failed", "escalate")


@given(st.binary(max_size=500))
def test_never_raises_on_decoded_bytes(data: bytes) -> None:
    extract(data.decode("utf-8", errors="replace"))


@given(prose, envelopes, prose, st.booleans())
@settings(max_examples=300)
def test_round_trips_a_valid_envelope_embedded_in_text(
    before: str, env: dict, after: str, fenced: bool
) -> None:
    body = json.dumps(env)
    text = before + ("\n```json\n" + body + "\n```\n" if fenced else "\n" + body + "\n") + after
    ex = extract(text)
    assert ex.envelope is not None
    e = ex.envelope
    assert e.status == env["status"] and e.kind == env["kind"]
    assert e.summary == env["summary"].strip() and e.next == env["next"].strip()
    assert [(c.path, c.action, c.bytes, c.sha256) for c in e.files] == [
        (c["path"].strip(), c["action"], c["bytes"], c["sha256"]) for c in env["files"]
    ]


def test_last_envelope_wins_and_prose_is_kept() -> None:
    text = 'Example: {"status": "failed"}\nWork done.\n{"status": "ok", "summary": "real"}'
    ex = extract(text)
    assert ex.envelope is not None and ex.envelope.summary == "real"
    assert "Work done." in ex.prose


def test_status_and_action_synonyms() -> None:
    ex = extract('{"status": "DONE", "files": [{"path": "a", "action": "edited"}, "b.txt"]}')
    assert ex.envelope is not None
    assert ex.envelope.status == "ok" and ex.envelope.kind == "execution"
    assert [c.action for c in ex.envelope.files] == ["modified", "modified"]
    for raw, want in [("PART", "partial"), ("ERR", "failed"), ("esc", "escalate")]:
        env = extract(json.dumps({"status": raw})).envelope
        assert env is not None and env.status == want


def test_malformed_fenced_json_is_a_finding() -> None:
    ex = extract('answer\n```json\n{"status": "ok", "files": [\n```\n')
    assert ex.envelope is None
    assert any("malformed" in f for f in ex.findings)


def test_bad_field_types_are_findings_not_crashes() -> None:
    ex = extract(json.dumps({"status": "ok", "files": [{"path": 3}, {"path": "x", "bytes": -1}],
                             "plan": 7, "commands": "ls"}))
    assert ex.envelope is not None and [c.path for c in ex.envelope.files] == ["x"]
    assert ex.envelope.files[0].bytes is None
    assert len(ex.findings) >= 3


def test_unknown_status_is_failed() -> None:
    ex = extract('{"status": "maybe"}')
    assert ex.envelope is not None and ex.envelope.status == "failed"
    assert ex.findings


# --- fences, several envelopes, hostile text -----------------------------------------------------


ENV_OK = '{"status": "ok", "kind": "thought", "summary": "first"}'
ENV_FAILED = '{"status": "failed", "kind": "thought", "summary": "second"}'


def test_envelope_in_a_fence_followed_by_prose() -> None:
    ex = extract(f"Done.\n```json\n{ENV_OK}\n```\nThanks!")
    assert ex.envelope is not None and ex.envelope.status == "ok"
    assert ex.prose == "Done.\n\nThanks!"


def test_two_envelopes_the_last_counts() -> None:
    ex = extract(f"{ENV_OK}\nthen I changed my mind\n{ENV_FAILED}")
    assert ex.envelope is not None and ex.envelope.summary == "second"


def test_envelope_extraction_on_hostile_text_is_fast() -> None:
    for text in (
        "{" * 2_000_000,
        '{"status":' * 300_000,
        "```json\n{\n" * 200_000,
        os.urandom(4_000_000).decode("utf-8", "replace"),
    ):
        start = time.process_time()
        ex = extract(text)
        assert ex.envelope is None
        assert time.process_time() - start < 1.0
