"""The file watcher's parts: the coalescer, the tree's diff, the observers.

The ignore rules and the tree walk are shared with recovery, so they live in
the neutral `services.readonly` (`filters`, `tree`). `coalesce` and `scan`'s
diff are pure and tested with strings; `observers`, `intake` and `overflow`
are the seams to watchdog and its threads.
"""

__all__: list[str] = []
