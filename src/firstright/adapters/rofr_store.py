"""Storage of the first-refusal desk (migration branch ``rofr``).

    rofr_requests      one row per capacity request: parties, the contract snapshot it is judged
                       by, and a projection (state, last event, next timer) rebuilt on every append
    rofr_events        append-only events per request: (request_id, seq) with the event's type,
                       canonical JSON body, instant ``t``, idempotency key (unique), body hash,
                       actor, and the answer given (so a retried command gets the same answer)
    rofr_instructions  holders' standing instructions (auto-response policies)
    rofr_alerts_sent   lead-time alerts already sent (key per request, timer, deadline and lead),
                       so a restarted scheduler does not send them again (migration rofr_0002)

The store decides nothing: the desk replays events through the machine. Appends are atomic with
the projection update; a concurrent append to the same request loses on the primary key and is
reported as ``AppendRace`` so the desk can replay and retry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from firstright.adapters.db import UtcDateTime, storage_errors
from firstright.errors import StorageError

metadata = sa.MetaData()

rofr_requests = sa.Table(
    "rofr_requests",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("contract", sa.Text, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False),
    sa.Column("last_t", UtcDateTime, nullable=False),
    sa.Column("next_timer_kind", sa.String(64), nullable=True),
    sa.Column("next_timer_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

rofr_events = sa.Table(
    "rofr_events",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("t", UtcDateTime, nullable=False),
    sa.Column("idempotency_key", sa.String(256), nullable=False, unique=True),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("response", sa.Text, nullable=False),
)

rofr_instructions = sa.Table(
    "rofr_instructions",
    metadata,
    sa.Column("instruction_id", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)

rofr_alerts_sent = sa.Table(
    "rofr_alerts_sent",
    metadata,
    sa.Column("alert_key", sa.String(400), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("deadline", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=False),
)


def canonical_json(value: Any) -> str:
    """The one JSON spelling of a value: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class AppendRace(Exception):
    """Another writer appended to the same request first (same seq); replay and retry."""


class DuplicateKey(Exception):
    """The idempotency key is already stored (a concurrent identical command won)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    request_id: str
    seq: int
    type: str
    body: dict[str, Any]
    t: datetime
    idempotency_key: str
    body_sha256: str
    actor: str
    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append; ``seq`` is assigned by the store."""

    type: str
    body: dict[str, Any]
    t: datetime
    idempotency_key: str
    body_sha256: str
    actor: str
    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RequestRow:
    request_id: str
    owner: str
    holder: str
    contract: dict[str, Any]
    state: str
    last_seq: int
    last_t: datetime
    next_timer_kind: str | None
    next_timer_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Projection:
    """What the desk derived after an append."""

    state: str
    next_timer_kind: str | None
    next_timer_at: datetime | None


@dataclass(frozen=True, slots=True)
class InstructionRow:
    instruction_id: str
    holder: str
    body: dict[str, Any]
    body_sha256: str
    created_at: datetime
    revoked_at: datetime | None


def _event(row: RowMapping) -> StoredEvent:
    return StoredEvent(
        request_id=row["request_id"],
        seq=row["seq"],
        type=row["type"],
        body=json.loads(row["body"]),
        t=row["t"],
        idempotency_key=row["idempotency_key"],
        body_sha256=row["body_sha256"],
        actor=row["actor"],
        response=json.loads(row["response"]),
    )


def _request(row: RowMapping) -> RequestRow:
    return RequestRow(
        request_id=row["request_id"],
        owner=row["owner"],
        holder=row["holder"],
        contract=json.loads(row["contract"]),
        state=row["state"],
        last_seq=row["last_seq"],
        last_t=row["last_t"],
        next_timer_kind=row["next_timer_kind"],
        next_timer_at=row["next_timer_at"],
        created_at=row["created_at"],
    )


def _instruction(row: RowMapping) -> InstructionRow:
    return InstructionRow(
        instruction_id=row["instruction_id"],
        holder=row["holder"],
        body=json.loads(row["body"]),
        body_sha256=row["body_sha256"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class RofrStore:
    """The desk's tables in one (migrated) database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reads ---------------------------------------------------------------------------------

    def request(self, request_id: str) -> RequestRow | None:
        query = sa.select(rofr_requests).where(rofr_requests.c.request_id == request_id)
        with storage_errors("reading a first-refusal request"), self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _request(row) if row is not None else None

    def events(self, request_id: str) -> list[StoredEvent]:
        query = (
            sa.select(rofr_events)
            .where(rofr_events.c.request_id == request_id)
            .order_by(rofr_events.c.seq)
        )
        with storage_errors("reading first-refusal events"), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_event(row) for row in rows]

    def event_by_key(self, idempotency_key: str) -> StoredEvent | None:
        query = sa.select(rofr_events).where(rofr_events.c.idempotency_key == idempotency_key)
        with storage_errors("reading first-refusal events"), self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _event(row) if row is not None else None

    def requests(
        self,
        *,
        party: str | None = None,
        states: Sequence[str] | None = None,
        limit: int,
        after: str | None = None,
    ) -> list[RequestRow]:
        """Requests ordered by id; ``party`` keeps those it owns or holds; ``after`` pages."""
        query = sa.select(rofr_requests).order_by(rofr_requests.c.request_id).limit(limit)
        if party is not None:
            query = query.where(
                sa.or_(rofr_requests.c.owner == party, rofr_requests.c.holder == party)
            )
        if states is not None:
            query = query.where(rofr_requests.c.state.in_(list(states)))
        if after is not None:
            query = query.where(rofr_requests.c.request_id > after)
        with storage_errors("listing first-refusal requests"), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_request(row) for row in rows]

    def due(self, now: datetime, *, limit: int) -> list[RequestRow]:
        """Requests whose next timer's deadline is before ``now`` (it fires just after)."""
        query = (
            sa.select(rofr_requests)
            .where(rofr_requests.c.next_timer_at.is_not(None))
            .where(rofr_requests.c.next_timer_at < now)
            .order_by(rofr_requests.c.next_timer_at, rofr_requests.c.request_id)
            .limit(limit)
        )
        with storage_errors("reading due first-refusal timers"), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_request(row) for row in rows]

    def upcoming(self, until: datetime, *, limit: int) -> list[RequestRow]:
        """Requests whose next timer falls before ``until`` (for lead-time alerts)."""
        query = (
            sa.select(rofr_requests)
            .where(rofr_requests.c.next_timer_at.is_not(None))
            .where(rofr_requests.c.next_timer_at <= until)
            .order_by(rofr_requests.c.next_timer_at)
            .limit(limit)
        )
        with storage_errors("reading first-refusal timers"), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_request(row) for row in rows]

    # -- writes --------------------------------------------------------------------------------

    def append(
        self,
        request_id: str,
        expected_last_seq: int,
        events: Sequence[NewEvent],
        projection: Projection,
        *,
        create: RequestRow | None = None,
    ) -> list[StoredEvent]:
        """Append ``events`` after ``expected_last_seq`` and update the projection, atomically.

        ``create`` inserts the request row first (for the opening command). Raises AppendRace
        when another writer got there first, DuplicateKey when an idempotency key exists.
        """
        assert events, "append needs at least one event"
        with storage_errors("appending first-refusal events"):
            try:
                return self._append(
                    request_id, expected_last_seq, events, projection, create=create
                )
            except IntegrityError as exc:
                if self._any_key_exists([e.idempotency_key for e in events]):
                    raise DuplicateKey(request_id) from exc
                raise AppendRace(request_id) from exc

    def _append(
        self,
        request_id: str,
        expected_last_seq: int,
        events: Sequence[NewEvent],
        projection: Projection,
        *,
        create: RequestRow | None,
    ) -> list[StoredEvent]:
        stored: list[StoredEvent] = []
        with self.engine.begin() as conn:
            if create is not None:
                self._insert_request(conn, create)
            else:
                self._check_seq(conn, request_id, expected_last_seq)
            for offset, new in enumerate(events, start=1):
                event = StoredEvent(
                    request_id=request_id,
                    seq=expected_last_seq + offset,
                    type=new.type,
                    body=new.body,
                    t=new.t,
                    idempotency_key=new.idempotency_key,
                    body_sha256=new.body_sha256,
                    actor=new.actor,
                    response=new.response,
                )
                conn.execute(
                    rofr_events.insert().values(
                        request_id=event.request_id,
                        seq=event.seq,
                        type=event.type,
                        body=canonical_json(event.body),
                        t=event.t,
                        idempotency_key=event.idempotency_key,
                        body_sha256=event.body_sha256,
                        actor=event.actor,
                        response=canonical_json(event.response),
                    )
                )
                stored.append(event)
            updated = conn.execute(
                rofr_requests.update()
                .where(rofr_requests.c.request_id == request_id)
                .where(rofr_requests.c.last_seq == expected_last_seq)
                .values(
                    state=projection.state,
                    last_seq=stored[-1].seq,
                    last_t=stored[-1].t,
                    next_timer_kind=projection.next_timer_kind,
                    next_timer_at=projection.next_timer_at,
                )
            )
            if updated.rowcount != 1:
                raise AppendRace(request_id)
        return stored

    def _check_seq(self, conn: Connection, request_id: str, expected_last_seq: int) -> None:
        current = conn.execute(
            sa.select(rofr_requests.c.last_seq).where(rofr_requests.c.request_id == request_id)
        ).scalar()
        if current != expected_last_seq:
            raise AppendRace(request_id)

    def _insert_request(self, conn: Connection, row: RequestRow) -> None:
        conn.execute(
            rofr_requests.insert().values(
                request_id=row.request_id,
                owner=row.owner,
                holder=row.holder,
                contract=canonical_json(row.contract),
                state=row.state,
                last_seq=0,
                last_t=row.last_t,
                next_timer_kind=None,
                next_timer_at=None,
                created_at=row.created_at,
            )
        )

    def _any_key_exists(self, keys: list[str]) -> bool:
        query = sa.select(sa.func.count()).where(rofr_events.c.idempotency_key.in_(keys))
        with storage_errors("reading first-refusal events"), self.engine.connect() as conn:
            return bool(conn.execute(query).scalar())

    # -- standing instructions -----------------------------------------------------------------

    def add_instruction(self, row: InstructionRow) -> InstructionRow:
        """Store an instruction; an existing id is returned as stored (the caller compares)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    rofr_instructions.insert().values(
                        instruction_id=row.instruction_id,
                        holder=row.holder,
                        body=canonical_json(row.body),
                        body_sha256=row.body_sha256,
                        created_at=row.created_at,
                        revoked_at=None,
                    )
                )
        except IntegrityError:
            existing = self.instruction(row.instruction_id)
            if existing is None:
                raise StorageError(
                    f"storing standing instruction {row.instruction_id} failed"
                ) from None
            return existing
        except SQLAlchemyError as exc:
            raise StorageError(f"storing a standing instruction: {exc}") from exc
        return row

    def instruction(self, instruction_id: str) -> InstructionRow | None:
        query = sa.select(rofr_instructions).where(
            rofr_instructions.c.instruction_id == instruction_id
        )
        with storage_errors("reading standing instructions"), self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _instruction(row) if row is not None else None

    def instructions(
        self, holder: str | None = None, *, active_at: datetime | None = None
    ) -> list[InstructionRow]:
        query = sa.select(rofr_instructions).order_by(
            rofr_instructions.c.created_at, rofr_instructions.c.instruction_id
        )
        if holder is not None:
            query = query.where(rofr_instructions.c.holder == holder)
        if active_at is not None:
            query = query.where(
                sa.or_(
                    rofr_instructions.c.revoked_at.is_(None),
                    rofr_instructions.c.revoked_at > active_at,
                )
            ).where(rofr_instructions.c.created_at <= active_at)
        with storage_errors("reading standing instructions"), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_instruction(row) for row in rows]

    def revoke_instruction(self, instruction_id: str, at: datetime) -> None:
        with storage_errors("revoking a standing instruction"), self.engine.begin() as conn:
            conn.execute(
                rofr_instructions.update()
                .where(rofr_instructions.c.instruction_id == instruction_id)
                .where(rofr_instructions.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    # -- lead-time alerts sent -----------------------------------------------------------------

    def claim_alerts(
        self, request_id: str, deadline: datetime, keys: Sequence[str], *, at: datetime
    ) -> bool:
        """Record lead-time alerts as sent; True when ``keys[0]`` was not sent before.

        The first key is the alert about to go out; the others are the longer leads it
        overtook, recorded too so they never go out later. Two schedulers claiming the same
        alert at once: one wins, the other gets False."""
        assert keys, "at least the alert to send"
        try:
            with self.engine.begin() as conn:
                known = set(
                    conn.execute(
                        sa.select(rofr_alerts_sent.c.alert_key).where(
                            rofr_alerts_sent.c.alert_key.in_(list(keys))
                        )
                    ).scalars()
                )
                if keys[0] in known:
                    return False
                conn.execute(
                    rofr_alerts_sent.insert(),
                    [
                        {
                            "alert_key": key,
                            "request_id": request_id,
                            "deadline": deadline,
                            "sent_at": at,
                        }
                        for key in dict.fromkeys(keys)
                        if key not in known
                    ],
                )
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            raise StorageError(f"recording a sent alert: {exc}") from exc
        return True

    def forget_alerts(self, before: datetime) -> int:
        """Drop the records of alerts about deadlines before ``before``; return how many."""
        with storage_errors("pruning sent alerts"), self.engine.begin() as conn:
            result = conn.execute(
                rofr_alerts_sent.delete().where(rofr_alerts_sent.c.deadline < before)
            )
        return int(result.rowcount or 0)
