"""Sessions on disk: capsules instead of a transcript.

- ``store``       the session's files (capsules.jsonl, session.json, the lock)
- ``capsule``     one turn as a bounded record, and how it renders into a prompt
- ``context``     epochs: what the next prompt renders, derived from the capsule file alone
- ``compaction``  folding older capsules into a digest that opens a new epoch
- ``pins``        a session keeps the tiers (command, model) it started with
"""
