"""The history archiver's parts: the live entry, its journal, the files, the readers.

`render` is for anyone (read-only; the readers themselves are in the neutral
`services.readonly.history`, named again in `read`); `live`, `journal`,
`store`, `archive` and `ledger` serve the archiver, the one process that
writes history.json and `.session/archive/`.
"""

__all__: list[str] = []
