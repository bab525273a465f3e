"""How long an idle environment is kept warm: a per-function policy that adapts to traffic.

Lambda keeps an idle environment for minutes and does not promise how long. Firebox starts
from ``settings.keepalive_s`` (FIREBOX_KEEPALIVE_S, 5 minutes by default) and adapts it per
function to the gaps it has seen between invokes:

- a function invoked once so far (a one-off, or the first call of a new function) is kept
  for half the base: most one-offs never come back, and memory is better spent elsewhere;
- a function invoked at a regular rhythm (the spread of its recent gaps is at most half
  their mean) is kept for 1.5 × its mean gap plus twice the spread, but at least the base
  and at most 4 × the base: a cron-like function called every 7 minutes stays warm
  although 7 minutes exceed the 5-minute base;
- anything else is kept for the base.

Gaps are smoothed with an exponentially weighted moving average (weight 0.3 on the newest
gap), so the policy follows a change of rhythm within a few invokes. With
``settings.keepalive_adaptive`` off, every environment is kept for the base.
Provisioned environments are exempt: they stay until their configuration goes.
"""

from __future__ import annotations

from dataclasses import dataclass

_ALPHA = 0.3


@dataclass(slots=True)
class _Rhythm:
    count: int = 0
    last: float = 0.0
    mean_gap: float = 0.0
    dev_gap: float = 0.0


class KeepAlivePolicy:
    def __init__(self, base_s: float, adaptive: bool = True) -> None:
        self.base_s = base_s
        self.adaptive = adaptive
        self._rhythm: dict[str, _Rhythm] = {}

    def observe(self, function: str, now: float) -> None:
        """Record that an invoke of ``function`` arrived at ``now`` (monotonic seconds)."""
        r = self._rhythm.setdefault(function, _Rhythm())
        if r.count:
            gap = now - r.last
            if r.count == 1:
                r.mean_gap, r.dev_gap = gap, 0.0
            else:
                r.dev_gap = (1 - _ALPHA) * r.dev_gap + _ALPHA * abs(gap - r.mean_gap)
                r.mean_gap = (1 - _ALPHA) * r.mean_gap + _ALPHA * gap
        r.count += 1
        r.last = now

    def keepalive_s(self, function: str) -> float:
        """How long an idle environment of ``function`` may stay idle."""
        if not self.adaptive:
            return self.base_s
        r = self._rhythm.get(function)
        if r is None or r.count <= 1:
            return self.base_s / 2
        if r.count >= 3 and r.dev_gap <= 0.5 * r.mean_gap:
            wanted = 1.5 * r.mean_gap + 2 * r.dev_gap
            return min(max(wanted, self.base_s), 4 * self.base_s)
        return self.base_s

    def forget(self, function: str) -> None:
        self._rhythm.pop(function, None)
