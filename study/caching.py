"""Per-process caches for the participant hot path (see docs/study.md, Serving cost)."""

from __future__ import annotations


class BoundedCache(dict):
    """A dict that forgets everything when it grows past `limit` entries (keys are cheap to recompute).

    Reads and writes are single dict operations, atomic under the GIL, so request threads share one without a lock.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key, value):
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
