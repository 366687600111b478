"""How burnless writes files: atomic replacement (``atomic``), append-only JSONL with torn-tail
repair (``jsonl``), and the ``flock`` lock both use (``locks``, in place of ``filelock``, whose
import alone cost about 18 ms of every run)."""
