"""Settlement end to end on the store: idempotence, closed periods, late usage, bad input,
beancount as an independent checker, and the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from firstright.adapters.beancount_export import to_beancount, to_csv
from firstright.adapters.db import migrate, open_engine
from firstright.adapters.ledger_store import LedgerStore
from firstright.adapters.usage_store import UsageStore
from firstright.domain.ledger.periods import PeriodError
from firstright.domain.usage import UsageRecord
from firstright.errors import ConflictError, InputError, ValidationFailed
from firstright.services.contract_loader import load_contracts
from firstright.services.settlement import close_periods, settle, statements_for
from firstright.services.usage_import import import_usage_file

FIXTURES = Path(__file__).parent / "fixtures" / "ledger"
CONTRACTS = load_contracts([FIXTURES / "contracts"])
BEAN_CHECK = Path(sys.executable).parent / "bean-check"
T0 = datetime(2025, 2, 3, tzinfo=UTC)
NOW = datetime(2025, 4, 10, tzinfo=UTC)


def gateway(i: int, at: datetime = T0, **extra: object) -> UsageRecord:
    data: dict[str, object] = {
        "record_id": f"g-{at.date()}-{i}",
        "source": "gateway",
        "occurred_at": at + timedelta(minutes=i),
        "party": "lab",
        "provider": "azure",
        "model": "gpt-4o" if i % 3 else "gpt-4.1-mini",
        "input_tokens": 1_000 + 37 * i,
        "output_tokens": 100 + i,
    }
    data.update(extra)
    return UsageRecord.model_validate(data)


def seed(engine: Engine) -> None:
    store = UsageStore(engine)
    store.insert_many([gateway(i) for i in range(200)])
    store.insert_many(
        [
            UsageRecord(
                record_id="cap-1",
                source="capacity",
                occurred_at=T0,
                party="lab",
                provider="azure",
                gpu_type="H100",
                gpu_hours_micros=96_123_457,
            )
        ]
    )
    import_usage_file(engine, FIXTURES / "revenue.csv", known_parties={"lab", "bigcloud"})


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    created = open_engine(f"sqlite:///{tmp_path / 'l.db'}")
    migrate(created)
    seed(created)
    return created


def test_second_settlement_changes_nothing(engine: Engine) -> None:
    first = settle(engine, CONTRACTS, "2025-Q1", now=NOW)
    assert first.posted
    ledger = LedgerStore(engine)
    before = ledger.entries()
    second = settle(engine, CONTRACTS, "2025-Q1", now=NOW)
    assert second.posted == []
    assert ledger.entries() == before
    assert [s.to_json() for s in second.statements] == [s.to_json() for s in first.statements]
    for entry in before:
        assert sum(p.amount_micros for p in entry.postings) == 0


def test_statement_lines_and_net(engine: Engine) -> None:
    report = settle(engine, CONTRACTS, "2025-Q1", now=NOW)
    (statement,) = report.statements
    assert (statement.party_a, statement.party_b) == ("bigcloud", "lab")
    kinds = {line.kind for line in statement.lines}
    assert kinds == {"USAGE", "REV_SHARE", "COMMIT_DRAWDOWN", "TRUE_UP"}
    shares = {
        line.clause_id: line.amount_micros for line in statement.lines if line.kind == "REV_SHARE"
    }
    assert shares == {"api-rev-share": 246_912_000, "cloud-rev-share": 400_000_000}
    usage = sum(line.amount_micros for line in statement.lines if line.kind == "USAGE")
    drawn = sum(line.amount_micros for line in statement.lines if line.kind == "COMMIT_DRAWDOWN")
    true_up = sum(line.amount_micros for line in statement.lines if line.kind == "TRUE_UP")
    assert drawn == usage < 1_000_000_000
    assert true_up == 1_000_000_000 - usage
    lab_owes = usage + true_up + 246_912_000
    assert statement.net_micros == -(400_000_000 - lab_owes) or statement.net_micros == (
        400_000_000 - lab_owes
    )
    assert statement.net_payer == "lab"
    assert abs(statement.net_micros) == lab_owes - 400_000_000


def test_closed_period_is_immutable_and_late_usage_lands_later(engine: Engine) -> None:
    settle(engine, CONTRACTS, "2025-02", now=NOW)
    assert close_periods(engine, "2025-02", now=NOW) == ["2025-02"]
    ledger = LedgerStore(engine)
    february = ledger.entries(months=["2025-02"])
    UsageStore(engine).insert_many([gateway(i, at=T0 + timedelta(days=5)) for i in range(7)])
    again = settle(engine, CONTRACTS, "2025-02", now=NOW)
    assert again.already_closed and again.posted == []
    march = settle(engine, CONTRACTS, "2025-03", now=NOW)
    assert ledger.entries(months=["2025-02"]) == february
    late = [e for e in march.posted if e.line.about_period == "2025-02"]
    assert late and {e.why.value for e in late} == {"ADJUSTMENT"}
    assert all(e.period == "2025-03" for e in late)
    with pytest.raises(ConflictError):
        ledger.post(late, NOW)


def test_auto_close_after_days(engine: Engine) -> None:
    report = settle(
        engine, CONTRACTS, "2025-02", now=datetime(2025, 3, 4, tzinfo=UTC), close_after_days=5
    )
    assert report.closed_now == []
    report = settle(
        engine, CONTRACTS, "2025-02", now=datetime(2025, 3, 6, tzinfo=UTC), close_after_days=5
    )
    assert report.closed_now == ["2025-02"]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"party": "stranger"}, InputError),
        ({"currency": "EUR"}, InputError),
    ],
)
def test_bad_usage_posts_nothing(
    engine: Engine, bad: dict[str, object], error: type[Exception]
) -> None:
    UsageStore(engine).insert_many([gateway(999, **bad)])
    with pytest.raises(error) as caught:
        settle(engine, CONTRACTS, "2025-Q1", now=NOW)
    assert "stranger" in str(caught.value) or "currency mismatch" in str(caught.value)
    assert LedgerStore(engine).entries() == []


def test_bad_period_and_bad_import_change_nothing(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(PeriodError):
        settle(engine, CONTRACTS, "2025-13", now=NOW)
    with pytest.raises(PeriodError):
        settle(engine, CONTRACTS, "Q1-2025", now=NOW)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "period,party,product,channel,amount\n2025-03,lab,api,lab-api,10\n"
        "2025-03,lab,api,x,-5\n2025-99,lab,api,y,1\n2025-03,nobody,api,z,1\n"
    )
    with pytest.raises(ValidationFailed) as caught:
        import_usage_file(engine, bad, known_parties={"lab", "bigcloud"})
    lines = [p.render() for p in caught.value.problems]
    assert lines[0].startswith(f"{bad}:3:1: ") and "negative" in lines[0]
    assert "does not parse" in lines[1] and "unknown party" in lines[2]
    changed = tmp_path / "changed.csv"
    changed.write_text("period,party,product,channel,amount\n2025-02,lab,api,lab-api,1\n")
    with pytest.raises(ConflictError):
        import_usage_file(engine, changed, known_parties={"lab", "bigcloud"})
    assert UsageStore(engine).count() == 203
    assert LedgerStore(engine).entries() == []


@pytest.mark.skipif(not BEAN_CHECK.exists(), reason="bean-check is not installed in the venv")
def test_bean_check_accepts_export_and_catches_one_cent(engine: Engine, tmp_path: Path) -> None:
    settle(engine, CONTRACTS, "2025-Q1", now=NOW)
    ledger = LedgerStore(engine)
    months = ["2025-01", "2025-02", "2025-03"]
    journal = to_beancount(ledger.entries(months=months), ledger.balances(months=months), title="t")
    good = tmp_path / "good.beancount"
    good.write_text(journal)
    result = subprocess.run(
        [str(BEAN_CHECK), str(good)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " ~ 0.000000 USD" in journal
    # Move one cent between two postings of one entry: every entry still balances, but the
    # zero-tolerance balance assertions computed by the store must fail.
    lines = journal.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("  Assets:Receivable:"))
    account, amount, currency = lines[index].split()
    lines[index] = f"  {account}  {float(amount) + 0.01:.6f} {currency}"
    lines[index + 1] = lines[index + 1].replace(" USD", "") + " USD"
    expense = index + 2
    exp_account, exp_amount, _ = lines[expense].split()
    lines[expense] = f"  {exp_account}  {float(exp_amount) - 0.01:.6f} USD"
    bad = tmp_path / "bad.beancount"
    bad.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [str(BEAN_CHECK), str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "Balance failed" in result.stdout + result.stderr
    assert to_csv(ledger.entries()).count("\n") == 1 + sum(
        len(e.postings) for e in ledger.entries()
    )


def statements_json(statements: list[Any]) -> bytes:
    """The statements as the one canonical byte string (key order of ``to_json``)."""
    return (json.dumps([s.to_json() for s in statements], indent=2) + "\n").encode()


def test_same_statements_on_sqlite_and_postgres(database_url: str) -> None:
    """Byte for byte: the golden file is shared by the SQLite and the PostgreSQL run."""
    engine = open_engine(database_url)
    try:
        migrate(engine)
        seed(engine)
        report = settle(engine, CONTRACTS, "2025-Q1", now=NOW)
        again = settle(engine, CONTRACTS, "2025-Q1", now=NOW)
        from_store = statements_for(engine, "2025-Q1")
    finally:
        engine.dispose()
    expected = (FIXTURES / "expected_statements_2025_Q1.json").read_bytes()
    assert statements_json(report.statements) == expected
    assert statements_json(again.statements) == expected
    assert statements_json(from_store) == expected
