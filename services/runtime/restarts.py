"""When to restart a crashed worker, and when to give up (OTP-style intensity).

Only a crash loop backs off. A worker that had been serving for at least
`stable_s` when it died is restarted at once, like the first crash after a
quiet period (a writer should not wait for a one-off `kill -9`; supervisord's
`startsecs`, Kubernetes' reset after a stable run). Crashes that follow each
other quickly back off exponentially. Whatever the cause, more than
`max_restarts` within `window_s` marks the worker failed, so a crash loop does
not eat the machine while the other workers keep serving.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocol.names import RestartRule

if TYPE_CHECKING:
    from config import SupervisorSettings

__all__ = ["RestartDecision", "RestartPolicy"]


@dataclass(frozen=True)
class RestartDecision:
    """What to do after a crash, and which rule said so."""

    delay_s: float | None
    """Seconds to wait before the restart; None: give up (the worker is failed)."""
    rule: RestartRule


class RestartPolicy:
    """Restart intensity and back-off of one worker."""

    def __init__(
        self,
        *,
        max_restarts: int,
        window_s: float,
        backoff_initial_s: float,
        backoff_max_s: float,
        stable_s: float = 1.0,
    ) -> None:
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stable_s = stable_s
        self._recent: deque[float] = deque()
        self._quick = 0
        """Crashes in a row, each after a run shorter than `stable_s` (the loop's length)."""
        self.total = 0

    @classmethod
    def from_settings(cls, supervisor: SupervisorSettings) -> RestartPolicy:
        """The policy `defaults.toml` (and `--config`) set for every worker."""
        return cls(
            max_restarts=supervisor.max_restarts,
            window_s=supervisor.restart_window_s,
            backoff_initial_s=supervisor.backoff_initial_s,
            backoff_max_s=supervisor.backoff_max_s,
            stable_s=supervisor.stable_s,
        )

    def on_exit(self, now: float, *, ran_s: float | None = None) -> RestartDecision:
        """Decide after a crash; `ran_s`: how long it had served (None: never ready)."""
        while self._recent and now - self._recent[0] > self.window_s:
            self._recent.popleft()
        if len(self._recent) >= self.max_restarts:
            return RestartDecision(None, RestartRule.INTENSITY)
        if not self._recent:
            self._quick = 0  # a quiet period: whatever came before is forgotten
        self._recent.append(now)
        self.total += 1
        if ran_s is not None and ran_s >= self.stable_s:
            self._quick = 0
            return RestartDecision(0.0, RestartRule.STABLE_RUN)
        self._quick += 1
        if self._quick == 1:
            return RestartDecision(0.0, RestartRule.FIRST_CRASH)
        delay = min(self.backoff_initial_s * 2 ** (self._quick - 2), self.backoff_max_s)
        return RestartDecision(float(delay), RestartRule.BACKOFF)

    def reset(self) -> None:
        """Forget recent crashes (`supervisor.restart` of a failed worker)."""
        self._recent.clear()
        self._quick = 0
