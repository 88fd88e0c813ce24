"""Gateway pieces without processes: breaker, load, routing compilation and picks, body splicing,
usage parsing, error mapping, configuration validation and the metering batcher."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firstright.adapters.db import migrate, open_engine
from firstright.adapters.usage_store import UsageStore
from firstright.domain.contracts.policy import Policy
from firstright.domain.usage import UsageRecord
from firstright.errors import AuthError, Forbidden, NoEligibleOffer, StorageError, ValidationFailed
from firstright.gateway.app import gateway_for_upstream
from firstright.gateway.asgi import ServeApp
from firstright.gateway.backends import Backend
from firstright.gateway.breaker import CircuitBreaker
from firstright.gateway.config import BreakerConfig, Timeouts, load_gateway_config
from firstright.gateway.contracts_view import ContractRules
from firstright.gateway.errors import BadRequest, UpstreamStatus, response_for
from firstright.gateway.handler import _drop_usage_events, _usage_of, _with_usage
from firstright.gateway.limits import BackendLoad
from firstright.gateway.metering import Meter, Outcome, canonical_line, store_sink
from firstright.gateway.metrics import GatewayMetrics
from firstright.gateway.routing import Profile, RouteTable
from firstright.services.contract_loader import load_contracts

FIXTURES = Path(__file__).parent / "fixtures" / "gateway"
AT = datetime(2025, 6, 1, tzinfo=UTC)


# -- breaker and load --------------------------------------------------------------------------


def state(breaker: CircuitBreaker) -> str:
    return breaker.state


def test_breaker_opens_probes_and_closes() -> None:
    breaker = CircuitBreaker(failures_max=2, open_s=10)
    assert breaker.refusal(0) is None
    breaker.failed(0)
    assert breaker.refusal(1) is None
    breaker.failed(1)
    assert state(breaker) == "open"
    assert breaker.refusal(5) == "circuit_open"
    assert breaker.refusal(11) is None, "after open_s one probe goes through"
    assert state(breaker) == "half_open"
    assert breaker.refusal(11) == "circuit_open", "only one probe at a time"
    breaker.failed(12)
    assert state(breaker) == "open" and breaker.refusal(13) == "circuit_open"
    assert breaker.refusal(23) is None
    breaker.succeeded()
    assert state(breaker) == "closed" and breaker.refusal(23) is None


def test_breaker_back_off_is_not_a_failure() -> None:
    breaker = CircuitBreaker(failures_max=1, open_s=10)
    breaker.back_off(5)
    assert breaker.refusal(1) == "rate_limited"
    assert state(breaker) == "closed"
    assert breaker.refusal(5) is None


def test_tokens_per_minute_bucket_refills() -> None:
    load = BackendLoad(in_flight_max=None, tokens_per_minute=600)
    assert not load.tokens_exhausted(0)
    load.spend_tokens(700, 0)
    assert load.tokens_exhausted(0)
    assert load.tokens_exhausted(5), "10 tokens/s: 50 back, still below zero"
    assert not load.tokens_exhausted(11)


# -- routing -----------------------------------------------------------------------------------


def backend(
    backend_id: str,
    provider: str,
    operator: str,
    vendor: str,
    models: Sequence[str],
    price: tuple[str, str] = ("1", "2"),
    region: str | None = None,
    in_flight_max: int | None = None,
) -> Backend:
    prices = {m: (Decimal(price[0]), Decimal(price[1])) for m in models}
    return Backend(
        backend_id=backend_id,
        operator=operator,
        vendor=vendor,
        provider=provider,
        region=region,
        models=frozenset(models),
        base_url="http://127.0.0.1:9/v1",
        api_key=None,
        forward_client_auth=False,
        in_flight_max=in_flight_max,
        tokens_per_minute=None,
        timeouts=Timeouts(),
        breaker=BreakerConfig(failures_max=1, open_s=10),
        prices=prices,
        expected_latency_ms=None,
    )


def contract_table(backends: Sequence[Backend], *profiles: Profile) -> RouteTable:
    policy = Policy.compile(load_contracts([FIXTURES / "contracts"]), AT)
    rules = ContractRules(policy, "api_serving")
    table = RouteTable(tuple(backends), rules.rules_for, rules.may_serve)
    table.compile(profiles)
    return table


API = Profile(name="api", party="openai", channel="openai-api")
CHATGPT = Profile(name="chatgpt", party="openai", channel="chatgpt")
COPILOT = Profile(name="copilot", party="microsoft", channel="copilot", regions=frozenset({"eu"}))


def test_exclusivity_and_license_decide_eligibility() -> None:
    backends = [
        backend("az-gpt", "azure", "microsoft", "openai", ["gpt-4o", "o3"], region="eu"),
        backend("oa", "openai", "openai", "openai", ["gpt-4o", "o3"], price=("0.5", "1")),
    ]
    table = contract_table(backends, API, CHATGPT, COPILOT)
    api = table.get(API, "gpt-4o")
    assert api is not None
    assert [b.id for b in api.order] == ["az-gpt"]
    assert ("oa", "exclusivity") in {(e.backend_id, e.reason) for e in api.exclusions}
    assert api.clause_ids[0] == "api-channel-azure"
    o3 = table.get(API, "o3")
    assert o3 is not None and o3.order == ()
    reasons = {(e.backend_id, e.reason) for e in o3.exclusions}
    assert reasons == {("az-gpt", "ip_license"), ("oa", "exclusivity")}, "o3 is not licensed"
    copilot = table.get(COPILOT, "gpt-4o")
    assert copilot is not None
    assert [b.id for b in copilot.order] == ["az-gpt"], "the region rule leaves oa out"


def test_holder_first_then_others_by_price() -> None:
    backends = [
        backend("oa-cheap", "openai", "openai", "openai", ["gpt-4o"], price=("0.5", "1")),
        backend("az", "azure", "microsoft", "openai", ["gpt-4o"], price=("3", "12")),
        backend("oa", "openai", "openai", "openai", ["gpt-4o"], price=("2", "8")),
    ]
    route = contract_table(backends, CHATGPT).get(CHATGPT, "gpt-4o")
    assert route is not None
    assert [b.id for b in route.order] == ["az", "oa-cheap", "oa"]
    assert route.holder_count == 1 and route.first_refusal_clause == "traffic-first-refusal"
    refusals: list[str] = []
    picked, _ = route.pick(0, 0.0, None, refusals)
    assert picked is not None and picked.id == "az" and refusals == []
    backends[1].load.in_flight_max = 1
    backends[1].load.in_flight = 1
    picked, _ = route.pick(0, 0.0, None, refusals)
    assert picked is not None and picked.id == "oa-cheap"
    assert refusals == ["az:in_flight_max"]
    assert not route.is_holder(picked)


def test_holder_over_the_price_cap_refuses() -> None:
    backends = [
        backend("az-dear", "azure", "microsoft", "openai", ["gpt-4o"], price=("6", "30")),
        backend("oa", "openai", "openai", "openai", ["gpt-4o"]),
    ]
    route = contract_table(backends, CHATGPT).get(CHATGPT, "gpt-4o")
    assert route is not None
    refusals: list[str] = []
    picked, _ = route.pick(0, 0.0, None, refusals)
    assert picked is not None and picked.id == "oa"
    assert refusals == ["az-dear:price_over_cap"]


def test_deadline_and_open_circuit_refuse() -> None:
    slow = backend("az", "azure", "microsoft", "openai", ["gpt-4o"])
    slow.latency_ms = 900
    other = backend("oa", "openai", "openai", "openai", ["gpt-4o"])
    route = contract_table([slow, other], CHATGPT).get(CHATGPT, "gpt-4o")
    assert route is not None
    refusals: list[str] = []
    picked, _ = route.pick(0, 0.0, 500, refusals)
    assert picked is other and refusals == ["az:deadline"]
    other.breaker.failed(0.0)
    refusals = []
    picked, _ = route.pick(0, 1.0, 500, refusals)
    assert picked is None
    assert refusals == ["az:deadline", "oa:circuit_open"]


def test_api_channel_never_gets_a_non_azure_backend_when_azure_is_down() -> None:
    azure = backend("az", "azure", "microsoft", "openai", ["gpt-4o"])
    direct = backend("oa", "openai", "openai", "openai", ["gpt-4o"])
    route = contract_table([azure, direct], API).get(API, "gpt-4o")
    assert route is not None
    azure.breaker.failed(0.0)
    refusals: list[str] = []
    picked, _ = route.pick(0, 1.0, None, refusals)
    assert picked is None and refusals == ["az:circuit_open"]


# -- bytes on the hot path -----------------------------------------------------------------------


def test_include_usage_is_spliced_into_the_original_bytes() -> None:
    body = b'  {"model":"m","stream":true,"x":{"deep":[1,2.50]}}'
    spliced, hide = _with_usage(body, orjson.loads(body))
    assert hide
    assert spliced.endswith(b'"model":"m","stream":true,"x":{"deep":[1,2.50]}}')
    assert orjson.loads(spliced)["stream_options"] == {"include_usage": True}
    asked = b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}'
    assert _with_usage(asked, orjson.loads(asked)) == (asked, False)
    partial = b'{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":false}}'
    rewritten, hide = _with_usage(partial, orjson.loads(partial))
    assert hide and orjson.loads(rewritten)["stream_options"] == {
        "continuous_usage_stats": False,
        "include_usage": True,
    }
    with pytest.raises(BadRequest):
        _with_usage(b'{"stream_options":3}', {"stream_options": 3})


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k != "stream_options"),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=5,
    )
)
def test_splice_keeps_every_field(request: dict[str, object]) -> None:
    body = orjson.dumps(request)
    spliced, _ = _with_usage(body, dict(request))
    assert orjson.loads(spliced) == {**request, "stream_options": {"include_usage": True}}


def test_usage_is_read_from_the_last_usage_object() -> None:
    stream = (
        b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens_details":{"cached_tokens":3},'
        b'"prompt_tokens":17,"completion_tokens":5,"total_tokens":22}}\n\n'
        b"data: [DONE]\n\n"
    )
    assert _usage_of(stream) == (17, 5)
    assert _usage_of(b'{"usage": {"prompt_tokens": 4, "total_tokens": 4}}') == (4, 0)
    assert _usage_of(b'{"choices":[],"usage":null}') == (0, 0)
    assert _usage_of(b"") == (0, 0)


def test_usage_only_events_are_hidden_and_partial_events_wait() -> None:
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n'
    content = b'data: {"choices":[{"delta":{"content":"usage"}}]}\n\n'
    out, rest = _drop_usage_events(content + usage + b"data: [DO")
    assert out == content and rest == b"data: [DO"
    out, rest = _drop_usage_events(rest + b"NE]\n\n")
    assert out == b"data: [DONE]\n\n" and rest == b""
    crlf = content.replace(b"\n", b"\r\n") + usage.replace(b"\n", b"\r\n")
    out, rest = _drop_usage_events(crlf + b"data: [DONE]\r\n\r\n")
    assert out == content.replace(b"\n", b"\r\n") + b"data: [DONE]\r\n\r\n" and rest == b""


# -- errors ------------------------------------------------------------------------------------


def test_errors_map_to_openai_json() -> None:
    status, body = response_for(BadRequest("bad max_tokens", "max_tokens"))
    assert status == 400
    assert orjson.loads(body) == {
        "error": {
            "message": "bad max_tokens",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "invalid_request",
        }
    }
    status, body = response_for(AuthError("invalid API key"))
    assert status == 401 and orjson.loads(body)["error"]["type"] == "authentication_error"
    status, body = response_for(NoEligibleOffer("nothing", ("api-channel-azure",)))
    assert status == 503
    assert "api-channel-azure" in orjson.loads(body)["error"]["message"]
    upstream = b'{"error":{"message":"slow down","type":"rate_limit_error"}}'
    assert response_for(UpstreamStatus(429, upstream, "az", 2.0)) == (429, upstream)
    status, body = response_for(UpstreamStatus(502, b"<html>bad gateway</html>", "az", None))
    assert status == 502 and orjson.loads(body)["error"]["type"] == "server_error"


# -- configuration -----------------------------------------------------------------------------


def test_config_problems_are_located(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "backends:\n"
        "  - id: a\n"
        "    operator: Microsoft\n"
        "    vendor: openai\n"
        "    provider: azure\n"
        "    models: [gpt-4o]\n"
        "    base_url: ftp://x\n"
        "    limits: {in_flight_max: 0}\n"
    )
    with pytest.raises(ValidationFailed) as failed:
        load_gateway_config(path)
    rendered = sorted(p.render() for p in failed.value.problems)
    assert any(r.startswith(f"{path}:3:15: ") for r in rendered), rendered
    assert any(r.startswith(f"{path}:7:15: ") for r in rendered), rendered
    assert any(r.startswith(f"{path}:8:29: ") for r in rendered), rendered


def test_config_refers_to_existing_contracts(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "contracts: [nowhere]\n"
        "backends:\n"
        "  - {id: a, operator: openai, vendor: openai, provider: openai, models: [m],"
        " base_url: 'http://127.0.0.1:1/v1'}\n"
    )
    with pytest.raises(ValidationFailed) as failed:
        load_gateway_config(path)
    assert (
        failed.value.problems[0].render()
        == f"{path}:1:13: contracts.0: no such file or directory: nowhere"
    )


def test_example_config_is_valid() -> None:
    example = Path(__file__).parent.parent / "examples" / "gateway" / "gateway.yaml"
    config = load_gateway_config(example)
    assert {b.provider for b in config.backends} >= {"azure", "openai"}


# -- metering ----------------------------------------------------------------------------------


def outcome(record_id: str, b: Backend | None, status: int = 200) -> Outcome:
    return Outcome(
        record_id=record_id,
        started_s=AT.timestamp(),
        endpoint="chat",
        tenant="chatgpt",
        party="openai",
        channel="chatgpt",
        product=None,
        backend=b,
        model="gpt-4o",
        stream=False,
        status=status,
        input_tokens=1000,
        output_tokens=500,
        latency_ms=12.5,
        upstream_ms=11.0,
        partial=False,
        attempts=1,
        spill=False,
        refusals=["az:in_flight_max"],
        clause_ids=("traffic-first-refusal",),
        error_code=None,
    )


def test_meter_writes_one_priced_record_per_outcome() -> None:
    written: list[UsageRecord] = []
    az = backend("az", "azure", "microsoft", "openai", ["gpt-4o"], price=("2.50", "10"))
    log = io.StringIO()
    meter = Meter(written.extend, GatewayMetrics(lambda: (az,)), log)
    meter.start()
    for i in range(3):
        meter.record(outcome(f"r{i}", az))
    meter.record(outcome("r3", None, status=401))
    meter.close()
    assert [r.record_id for r in written] == ["r0", "r1", "r2", "r3"]
    first = written[0]
    assert UsageRecord.model_validate(first.model_dump()) == first, "records are valid"
    assert first.amount_micros == 7_500, "1000 x $2.50/M + 500 x $10/M = $0.0075"
    assert (first.counterparty, first.provider, first.operator) == (
        "microsoft",
        "azure",
        "microsoft",
    )
    assert first.refusals == ["az:in_flight_max"]
    assert first.occurred_at == AT
    assert written[3].backend is None and written[3].amount_micros == 0
    lines = log.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[0] == canonical_line(outcome("r0", az)).rstrip("\n")
    assert "refusals=az:in_flight_max" in lines[0] and "backend=az" in lines[0]


def test_meter_keeps_records_while_the_store_fails() -> None:
    calls: list[int] = []
    written: list[UsageRecord] = []

    def flaky(records: Sequence[UsageRecord]) -> None:
        calls.append(len(records))
        if len(calls) == 1:
            raise StorageError("database is locked")
        written.extend(records)

    meter = Meter(flaky, GatewayMetrics(tuple), None)
    meter.record(outcome("a", None))
    meter.flush()
    assert written == [] and meter.stored == 0
    meter.record(outcome("b", None))
    meter.flush()
    assert [r.record_id for r in written] == ["a", "b"]
    assert calls == [1, 2] and meter.stored == 2


def test_meter_stores_through_the_usage_store(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        migrate(engine)
        az = backend("az", "azure", "microsoft", "openai", ["gpt-4o"], price=("2.50", "10"))
        meter = Meter(store_sink(engine), GatewayMetrics(lambda: (az,)), None)
        meter.start()
        for i in range(250):
            meter.record(outcome(f"gw-test-{i}", az if i % 2 else None))
        meter.close()
        store = UsageStore(engine)
        assert store.count() == 250 and meter.stored == 250
        stored = store.get("gw-test-1")
        assert stored is not None and stored.amount_micros == 7_500
        assert stored.backend == "az" and stored.refusals == ["az:in_flight_max"]
    finally:
        engine.dispose()


def _get(
    app: ServeApp, path: str, client: tuple[str, int], headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "client": client, "headers": headers}
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    status = sent[0]["status"]
    body = sent[1]["body"]
    assert isinstance(status, int) and isinstance(body, bytes)
    return status, body


def test_metrics_need_an_admin_key_off_loopback() -> None:
    gateway = gateway_for_upstream("http://127.0.0.1:9/v1", lambda records: None, None)
    keys = {"Bearer good": "admin", "Bearer party": "party"}

    def guard(authorization: str | None) -> None:
        role = keys.get(authorization or "")
        if role is None:
            raise AuthError("unknown API key")
        if role != "admin":
            raise Forbidden("metrics need an admin key")

    app = ServeApp(gateway, None, guard)
    status, body = _get(app, "/metrics", ("127.0.0.1", 5000), [])
    assert status == 200 and b"python_info" in body
    assert _get(app, "/metrics", ("10.1.2.3", 5000), [])[0] == 401
    assert (
        _get(app, "/metrics", ("10.1.2.3", 5000), [(b"authorization", b"Bearer party")])[0] == 403
    )
    assert _get(app, "/metrics", ("10.1.2.3", 5000), [(b"authorization", b"Bearer good")])[0] == 200
    assert _get(ServeApp(gateway, None), "/metrics", ("10.1.2.3", 5000), [])[0] == 403
    status, body = _get(app, "/nowhere", ("127.0.0.1", 5000), [])
    assert status == 404 and orjson.loads(body)["error"]["code"] == "not_found"
