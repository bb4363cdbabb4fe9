"""The worker processes of the session service, their runtime and the store."""

__all__: list[str] = []
