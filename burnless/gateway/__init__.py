"""The gateway: ``burnless serve`` answers the provider APIs (Anthropic Messages, OpenAI Chat
Completions and Responses) next to ``/metrics``, so an unchanged client is routed, pinned,
failed over, budgeted and metered by pointing one environment variable at it.

    app        the aiohttp server: routes, reading a request, routing it, serving
    attempts   one request through its candidate tiers: budget, send, failover, ledger, pins
    protocols  per-protocol details: request fields, usage, stream events, error shapes
    routing    which tier serves a request; sessions pinned to their tiers
    upstream   pooled upstream clients, one attempt, relaying JSON and streams
    masking    policy on request bodies; masks put back in answers
    recorder   the ledger records of the attempts, written in batches (one fsync for many)
    core       the one door into burnless's core (routing, policy, budget, ledger, breaker,
               pricing, response cache, metrics)

Nothing here is imported by ``burnless run``, ``route``, ``usage`` or ``--help``.
"""
