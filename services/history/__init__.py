"""The history archiver's parts: the live entry, its journal, the files, the readers.

`read` and `render` are for anyone (read-only); `live`, `journal`, `store`,
`archive` and `ledger` serve the archiver, the one process that writes
history.json and `.session/archive/`.
"""

__all__: list[str] = []
