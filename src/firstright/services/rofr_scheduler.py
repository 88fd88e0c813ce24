"""The first-refusal timer scheduler: the one place that reads the wall clock for the desk.

Every ``poll_s`` it asks the desk to fire the timers whose deadline has passed
(``RofrDesk.fire_due(now)``) and emits ``deadline_approaching`` alerts ``lead_s`` seconds before
each pending deadline. Firing is idempotent in the store (``timer:<request>:<kind>:<deadline>``),
so several schedulers, a crash between firing and acknowledging, or a restart long after a
deadline all end with each deadline fired exactly once. Lead-time alerts are recorded in the
store before they are queued (``rofr_alerts_sent``, key ``<request>:<timer>:<deadline>:<lead>``),
so a restart or a second scheduler does not send them again; the record is pruned a day after
its deadline. The clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from firstright.errors import FirstrightError
from firstright.services.alerts import Alerter
from firstright.services.rofr_desk import RofrDesk
from firstright.services.rofr_wire import iso

log = logging.getLogger("firstright.rofr.scheduler")

LEAD_ALERTS_REMEMBERED_MAX = 100_000
"""In-memory shortcut over the store's record (cleared when full; the store still decides)."""
SENT_ALERTS_KEPT = timedelta(days=1)
PRUNE_EVERY = timedelta(hours=1)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class RofrScheduler:
    def __init__(
        self,
        desk: RofrDesk,
        *,
        clock: Callable[[], datetime] = wall_clock,
        poll_s: float = 1.0,
        lead_s: tuple[int, ...] = (),
        alerter: Alerter | None = None,
    ) -> None:
        assert poll_s > 0
        self.desk = desk
        self.clock = clock
        self.poll_s = poll_s
        self.lead_s = tuple(sorted(set(lead_s), reverse=True))
        self.alerter = alerter or desk.alerter
        self._lead_sent: set[str] = set()
        self._pruned_at: datetime | None = None

    def tick(self) -> list[dict[str, Any]]:
        """Fire what is due now and send lead-time alerts; return the timer decisions."""
        now = self.clock()
        fired = self.desk.fire_due(now)
        if self.lead_s:
            self._lead_alerts(now)
        return fired

    def _lead_alerts(self, now: datetime) -> None:
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self.desk.store.forget_alerts(now - SENT_ALERTS_KEPT)
            self._pruned_at = now
        horizon = now + timedelta(seconds=max(self.lead_s))
        for row in self.desk.upcoming(horizon):
            if row.next_timer_at is None or row.next_timer_at < now:
                continue
            reached = [
                lead for lead in self.lead_s if row.next_timer_at - timedelta(seconds=lead) <= now
            ]
            if not reached:
                continue
            # Only the most urgent lead reached is sent; the longer ones it overtook count as sent.
            lead = min(reached)
            deadline = iso(row.next_timer_at)
            prefix = f"{row.request_id}:{row.next_timer_kind or ''}:{deadline}"
            key = f"{prefix}:{lead}"
            if key in self._lead_sent:
                continue
            if len(self._lead_sent) >= LEAD_ALERTS_REMEMBERED_MAX:
                self._lead_sent.clear()
            keys = [key, *(f"{prefix}:{other}" for other in reached if other != lead)]
            self._lead_sent.update(keys)
            if not self.desk.store.claim_alerts(row.request_id, row.next_timer_at, keys, at=now):
                continue
            self.alerter.emit(
                "deadline_approaching",
                {
                    "request_id": row.request_id,
                    "owner": row.owner,
                    "holder": row.holder,
                    "state": row.state,
                    "timer": row.next_timer_kind,
                    "deadline": iso(row.next_timer_at),
                    "lead_s": lead,
                },
            )

    async def run(self) -> None:
        """Tick forever (until cancelled); errors are logged and retried next poll."""
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except FirstrightError as error:
                log.warning("scheduler tick failed: %s", error.message)
            except Exception:  # keep the scheduler alive; the next poll retries
                log.exception("scheduler tick crashed")
            await asyncio.sleep(self.poll_s)
