"""Plain text (Ollama, local scripts, anything else): the whole output is the answer.

No usage is reported, so ``usage`` is None and the caller estimates from bytes.
"""

from __future__ import annotations

from burnless.formats.output import WorkerOutput, text_output


def parse_text(raw: str, findings: tuple[str, ...] = ()) -> WorkerOutput:
    notes = findings if raw.strip() else (*findings, "empty output")
    return text_output(raw, notes)
