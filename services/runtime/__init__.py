"""The supervisor and worker runtime: processes, sockets, supervision, the CLI's engine.

Modules are imported where used (nothing here), so a process pays only for
what its path needs.
"""

__all__: list[str] = []
