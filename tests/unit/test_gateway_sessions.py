"""The session a gateway request belongs to, from what real clients send on their own."""

from __future__ import annotations

from typing import Any

import openai

from tests.conftest import Workspace, records
from tests.unit.test_gateway import (  # noqa: F401  (fixtures)
    Start,
    _clients,
    _close_clients,
    gateway,
    tiers_on,
)


def test_codex_session_id_header_is_the_session(ws: Workspace, gateway: Start,  # noqa: F811
                                                fakes: Any) -> None:  # noqa: F811
    """Codex (0.171) sends its thread id as a ``session-id`` header on every Responses request
    (``codex exec resume`` keeps it); an explicit X-Burnless-Session still wins."""
    fake = fakes()
    srv = gateway(tiers_on(fake, api="openai"))
    codex_like = openai.OpenAI(base_url=srv.url + "/v1", api_key="k", max_retries=0,
                               default_headers={"session-id": "019a2349-5b0b-77c1-a3d1",
                                                "thread-id": "019a2349-5b0b-77c1-a3d1"})
    _clients.append(codex_like)
    codex_like.responses.create(model="silver", input="first")
    codex_like.responses.create(model="silver", input="second",
                                extra_headers={"x-burnless-session": "mine"})
    first, second = records(ws, 2)
    assert first["session"] == "019a2349-5b0b-77c1-a3d1"
    assert second["session"] == "mine"
