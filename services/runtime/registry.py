"""Which class implements which worker; imported lazily by the host.

Strings, not imports: a worker process imports only its own module, so the
file watcher never pays for the price tables and the ledger never loads
watchdog.
"""

from __future__ import annotations

import importlib

from protocol.names import WorkerName
from services.runtime.worker import Worker

__all__ = ["WORKER_CLASSES", "load_worker_class"]

WORKER_CLASSES: dict[WorkerName, str] = {
    WorkerName.SESSION_WRITER: "services.session_writer:SessionWriter",
    WorkerName.COST_LEDGER: "services.cost_ledger:CostLedger",
    WorkerName.FILE_WATCHER: "services.file_watcher:FileWatcher",
    WorkerName.HISTORY_ARCHIVER: "services.history_archiver:HistoryArchiver",
}


def load_worker_class(name: WorkerName) -> type[Worker]:
    """Import and return the class of worker `name`."""
    module_name, _, attribute = WORKER_CLASSES[name].partition(":")
    cls = getattr(importlib.import_module(module_name), attribute)
    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        raise TypeError(f"{WORKER_CLASSES[name]} is not a Worker")
    return cls
