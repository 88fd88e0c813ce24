"""The ledger store: immutable journal entries with their postings, and closed months.

    LedgerStore(engine)
      .post(entries, booked_at)          insert atomically; refuses entries for closed months
      .posted() -> {obligation_key: Posted}
      .closed_months() -> frozenset[str]
      .close(months, at) -> [newly closed]
      .entries(months=None, party=None, limit=None, offset=0) -> [Entry]
      .balances(through_month=None, party=None) -> [(account, amount_micros)]

Nothing here updates or deletes an entry: corrections are new entries (see domain/ledger).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from firstright.adapters.db import UtcDateTime, storage_errors
from firstright.domain.ledger.entries import Entry, Kind, Line, Posting, Why
from firstright.domain.ledger.planning import Posted
from firstright.errors import ConflictError, StorageError

metadata = sa.MetaData()

ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("entry_id", sa.String(32), primary_key=True),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("about_period", sa.String(7), nullable=False),
    sa.Column("why", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("payer", sa.String(64), nullable=False),
    sa.Column("payee", sa.String(64), nullable=False),
    sa.Column("contract", sa.String(200)),
    sa.Column("clause_id", sa.String(128)),
    sa.Column("basis", sa.Text, nullable=False),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("rate", sa.Text, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("amount_micros", sa.BigInteger, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("obligation_key", sa.Text, nullable=False),
    sa.Column("obligation_sha256", sa.String(64), nullable=False),
    sa.Column("booked_at", UtcDateTime, nullable=False),
)
ledger_postings = sa.Table(
    "ledger_postings",
    metadata,
    sa.Column("entry_id", sa.String(32), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("account", sa.String(300), nullable=False),
    sa.Column("amount_micros", sa.BigInteger, nullable=False),
)
ledger_periods = sa.Table(
    "ledger_periods",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("closed_at", UtcDateTime, nullable=False),
)

_CHUNK = 5_000


@contextmanager
def _integrity_passes() -> Iterator[None]:
    """Like ``storage_errors`` but lets IntegrityError through for the caller to translate."""
    try:
        yield
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        raise StorageError(f"posting ledger entries: {exc}") from exc


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _line(row: sa.RowMapping) -> Line:
    return Line(
        kind=Kind(row["kind"]),
        about_period=row["about_period"],
        payer=row["payer"],
        payee=row["payee"],
        contract=row["contract"],
        clause_id=row["clause_id"],
        basis=row["basis"],
        unit=row["unit"],
        rate=row["rate"],
        currency=row["currency"],
    )


class LedgerStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def post(self, entries: Sequence[Entry], booked_at: datetime) -> int:
        """Insert every entry (and its postings) in one transaction; return how many."""
        if not entries:
            return 0
        for entry in entries:
            assert sum(p.amount_micros for p in entry.postings) == 0
        months = sorted({e.period for e in entries})
        try:
            with _integrity_passes(), self.engine.begin() as conn:
                closed = self._closed(conn, months)
                if closed:
                    raise ConflictError(
                        f"period {', '.join(sorted(closed))} is closed; a closed period never "
                        "changes"
                    )
                rows = [
                    {
                        "entry_id": e.entry_id,
                        "period": e.period,
                        "about_period": e.line.about_period,
                        "why": e.why.value,
                        "kind": e.line.kind.value,
                        "payer": e.line.payer,
                        "payee": e.line.payee,
                        "contract": e.line.contract,
                        "clause_id": e.line.clause_id,
                        "basis": e.line.basis,
                        "unit": e.line.unit,
                        "rate": e.line.rate,
                        "currency": e.line.currency,
                        "quantity": e.quantity,
                        "amount_micros": e.amount_micros,
                        "seq": e.seq,
                        "obligation_key": e.obligation_key,
                        "obligation_sha256": _sha(e.obligation_key),
                        "booked_at": booked_at,
                    }
                    for e in entries
                ]
                postings = [
                    {
                        "entry_id": e.entry_id,
                        "idx": i,
                        "account": p.account,
                        "amount_micros": p.amount_micros,
                    }
                    for e in entries
                    for i, p in enumerate(e.postings)
                ]
                for start in range(0, len(rows), _CHUNK):
                    conn.execute(ledger_entries.insert(), rows[start : start + _CHUNK])
                for start in range(0, len(postings), _CHUNK):
                    conn.execute(ledger_postings.insert(), postings[start : start + _CHUNK])
        except IntegrityError as exc:
            raise ConflictError(
                "another settlement booked the same obligations first; run settle again"
            ) from exc
        return len(entries)

    @staticmethod
    def _closed(conn: sa.Connection, months: Iterable[str]) -> set[str]:
        wanted = list(months)
        rows = conn.execute(
            sa.select(ledger_periods.c.month).where(ledger_periods.c.month.in_(wanted))
        )
        return {row[0] for row in rows}

    def posted(self) -> dict[str, Posted]:
        """Per obligation key: the quantity and amount booked so far and how many entries."""
        e = ledger_entries.c
        line_columns = (
            e.obligation_key,
            e.kind,
            e.about_period,
            e.payer,
            e.payee,
            e.contract,
            e.clause_id,
            e.basis,
            e.unit,
            e.rate,
            e.currency,
        )
        query = sa.select(
            *line_columns,
            sa.func.sum(e.quantity).label("quantity"),
            sa.func.sum(e.amount_micros).label("amount_micros"),
            sa.func.count().label("entries"),
        ).group_by(*line_columns)
        found: dict[str, Posted] = {}
        with storage_errors("reading posted totals"), self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                line = _line(row)
                assert line.key() == row["obligation_key"]
                found[row["obligation_key"]] = Posted(
                    line, int(row["quantity"]), int(row["amount_micros"]), int(row["entries"])
                )
        return found

    def closed_months(self) -> frozenset[str]:
        with storage_errors("reading closed periods"), self.engine.connect() as conn:
            return frozenset(row[0] for row in conn.execute(sa.select(ledger_periods.c.month)))

    def close(self, months: Iterable[str], at: datetime) -> list[str]:
        """Close months (idempotent); return the ones closed by this call."""
        wanted = sorted(set(months))
        with storage_errors("closing periods"), self.engine.begin() as conn:
            already = self._closed(conn, wanted)
            fresh = [m for m in wanted if m not in already]
            if fresh:
                conn.execute(
                    ledger_periods.insert(), [{"month": m, "closed_at": at} for m in fresh]
                )
        return fresh

    def entries(
        self,
        *,
        months: Iterable[str] | None = None,
        party: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Entry]:
        e = ledger_entries.c
        query = sa.select(ledger_entries).order_by(e.period, e.booked_at, e.entry_id)
        if months is not None:
            query = query.where(e.period.in_(sorted(set(months))))
        if party is not None:
            query = query.where(sa.or_(e.payer == party, e.payee == party))
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with storage_errors("reading ledger entries"), self.engine.connect() as conn:
            rows = list(conn.execute(query).mappings())
            postings: dict[str, list[tuple[int, Posting]]] = defaultdict(list)
            ids = [row["entry_id"] for row in rows]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for pid, idx, account, amount in conn.execute(
                    sa.select(
                        ledger_postings.c.entry_id,
                        ledger_postings.c.idx,
                        ledger_postings.c.account,
                        ledger_postings.c.amount_micros,
                    ).where(ledger_postings.c.entry_id.in_(chunk))
                ):
                    postings[pid].append((idx, Posting(account, int(amount))))
        return [
            Entry(
                entry_id=row["entry_id"],
                period=row["period"],
                why=Why(row["why"]),
                line=_line(row),
                quantity=int(row["quantity"]),
                amount_micros=int(row["amount_micros"]),
                seq=int(row["seq"]),
                postings=tuple(p for _, p in sorted(postings[row["entry_id"]])),
            )
            for row in rows
        ]

    def count_entries(
        self, *, months: Iterable[str] | None = None, party: str | None = None
    ) -> int:
        e = ledger_entries.c
        query = sa.select(sa.func.count()).select_from(ledger_entries)
        if months is not None:
            query = query.where(e.period.in_(sorted(set(months))))
        if party is not None:
            query = query.where(sa.or_(e.payer == party, e.payee == party))
        with storage_errors("counting ledger entries"), self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def balances(
        self,
        *,
        through_month: str | None = None,
        party: str | None = None,
        months: Iterable[str] | None = None,
    ) -> list[tuple[str, int]]:
        """Account balances from every entry booked up to ``through_month`` (inclusive)."""
        p, e = ledger_postings.c, ledger_entries.c
        query = (
            sa.select(p.account, sa.func.sum(p.amount_micros))
            .select_from(ledger_postings.join(ledger_entries, p.entry_id == e.entry_id))
            .group_by(p.account)
            .order_by(p.account)
        )
        if through_month is not None:
            query = query.where(e.period <= through_month)
        if months is not None:
            query = query.where(e.period.in_(sorted(set(months))))
        if party is not None:
            query = query.where(sa.or_(e.payer == party, e.payee == party))
        with storage_errors("reading balances"), self.engine.connect() as conn:
            return [(account, int(total)) for account, total in conn.execute(query)]
