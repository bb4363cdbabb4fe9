"""The `supervisor` command's subcommands, imported only when used."""

__all__: list[str] = []
