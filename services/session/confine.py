"""Keep every stored path inside the project, symbolic links included.

`protocol.base.ProjectPath` already refuses `..`, absolute paths and
backslashes by their spelling. What only the disk can tell is whether an
existing component is a symbolic link that leads elsewhere
(`manuscript/notes -> /etc`): that check lives here and runs before a change
is journaled, never during replay.
"""

from __future__ import annotations

from pathlib import Path

from protocol.base import SESSION_DIR_NAME
from protocol.errors import ErrorCode, ProtocolError

__all__ = ["confine"]


def confine(project: Path, path: str) -> str:
    """Return `path` relative to `project` if it resolves inside it, else `invalid_args`.

    A relative path comes back unchanged; an absolute one inside the project
    comes back relative (what is stored is always relative). Symbolic links
    of existing components are followed (a file that does not exist yet is
    judged by its existing parent folders); a link loop is refused.
    """
    root = project.resolve()
    if path.startswith("/"):
        absolute = Path(path)
        inside = next((base for base in (project, root) if absolute.is_relative_to(base)), None)
        if inside is None:
            raise ProtocolError(
                ErrorCode.INVALID_ARGS,
                f"path {path!r} is outside the project root {root}",
            )
        relative = absolute.relative_to(inside).as_posix()
        if relative in {"", "."}:
            raise ProtocolError(ErrorCode.INVALID_ARGS, "path must name a file inside the project")
        if relative.split("/", 1)[0] == SESSION_DIR_NAME:
            raise ProtocolError(
                ErrorCode.INVALID_ARGS,
                f"path {path!r} is under .session/, the service's own files, not a writer's",
            )
        confine(project, relative)
        return relative
    try:
        resolved = (root / path).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop
        raise ProtocolError(
            ErrorCode.INVALID_ARGS, f"path {path!r} cannot be resolved: {exc}"
        ) from None
    if not resolved.is_relative_to(root):
        raise ProtocolError(
            ErrorCode.INVALID_ARGS,
            f"path {path!r} leads outside the project root through a symbolic link "
            f"(it resolves to {resolved})",
        )
    if resolved.is_relative_to(root / SESSION_DIR_NAME):
        raise ProtocolError(
            ErrorCode.INVALID_ARGS,
            f"path {path!r} leads into .session/, the service's own files, not a writer's",
        )
    return path
