"""burnless sim: a deterministic stand-in model behind a real Anthropic-compatible HTTP server.

    billing   Anthropic's prompt-caching billing rules (pure)
    model     prompt -> deterministic reply and envelope (pure)
    dialogue  Messages API request -> the model's next turn (tool calls, final answer)
    server    the HTTP server (`burnless sim serve`, `sim_server()` for tests and the demo)
    agent     a tiny stand-in for `claude -p --output-format json` (`python -m burnless.sim.agent`)

Everything here is simulated and says so; see docs/simulator.md. Nothing is imported eagerly,
so `python -m burnless.sim.agent` starts fast.
"""
