"""Read-only views of what one process owns, for any other.

Workers talk by messages and never import each other's packages
(`tests/test_import_rules.py` fails if one does). What several of them need
to *read* lives here, and this package imports no worker's package:

- `history` - history.json and the yearly archive, as the archiver wrote them;
- `tree` and `filters` - the watched folders walked as the file watcher walks them;
- `liveness` - whether a recorded pid still names a live process.

The formats themselves are `protocol/`'s models; nothing here writes a file.
"""

__all__: list[str] = []
