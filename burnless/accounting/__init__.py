"""Money: every token and dollar, from the call to the report.

- ``tokens``   the four billed token figures and the one estimator (bytes / 4)
- ``pricing``  the dated price table, a tier's override, and the cost of a call
- ``ledger``   the ledger record and its only writers, ``record_call`` and ``record_refusal``
- ``index``    the ledger's aggregates in SQLite, read incrementally; the one definition of a
               billed call; the spend budgets check
- ``budget``   reservations before a call and their settlement as the ledger records it
- ``usage``    reports (``burnless usage``)
- ``metrics``  Prometheus families (``/metrics``, ``/stats``, ``burnless metrics``)
"""
