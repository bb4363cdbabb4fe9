"""The cost ledger's parts: prices, calendar windows, ledger files, budgets, views.

`services.cost_ledger.CostLedger` is the worker that puts them together; the
parts are plain modules so `supervisor inspect costs` (read-only) and the
benchmarks can use them without a running service.
"""

__all__: list[str] = []
