"""When to restart a crashed worker, and when to give up (OTP-style intensity).

The first crash in a quiet period restarts at once (a writer should not wait
for a one-off `kill -9`); further crashes back off exponentially; more than
`max_restarts` within `window_s` marks the worker failed so a crash loop does
not eat the machine while the other workers keep serving.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RestartPolicy"]


class RestartPolicy:
    """Restart intensity and back-off of one worker."""

    def __init__(
        self, *, max_restarts: int, window_s: float, backoff_initial_s: float, backoff_max_s: float
    ) -> None:
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._recent: deque[float] = deque()
        self.total = 0

    def on_exit(self, now: float) -> float | None:
        """Seconds to wait before the restart, or None to give up (failed)."""
        while self._recent and now - self._recent[0] > self.window_s:
            self._recent.popleft()
        if len(self._recent) >= self.max_restarts:
            return None
        earlier = len(self._recent)
        self._recent.append(now)
        self.total += 1
        if earlier == 0:
            return 0.0
        return float(min(self.backoff_initial_s * 2 ** (earlier - 1), self.backoff_max_s))
