"""The file watcher's parts: ignore rules, the coalescer, the tree, the observers.

`filters`, `coalesce` and `scan`'s diff are pure and tested with strings;
`observers`, `intake` and `overflow` are the seams to watchdog and its threads.
"""

__all__: list[str] = []
