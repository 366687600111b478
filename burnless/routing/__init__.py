"""Routing: which tier serves a turn (``router``), the cascade ladder and the rungs a turn
tries (``ladder``), and the circuit breaker that skips a failing tier (``breaker``)."""
