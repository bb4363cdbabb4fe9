"""The session writer's parts: state changes, journal, replay, idempotency, auto-save, recovery.

`services.session_writer.SessionWriter` is the worker that ties them
together; `services.session.recovery` is also read by the supervisor's CLI
(it only reads files, never writes them).
"""

__all__: list[str] = []
