"""End to end: the official ``openai`` SDK against a running ``firstright serve`` subprocess, in
front of ``firstright sim-upstream`` subprocesses; usage records read back from the store."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest
import sqlalchemy as sa

from firstright.adapters.db import open_engine
from firstright.adapters.usage_store import usage_records
from firstright.services.auth import create_key

FIXTURES = Path(__file__).parent / "fixtures" / "gateway"
FIRSTRIGHT = [sys.executable, "-m", "firstright.cli.main"]
READY_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready:\n{log.read_text()[-3000:]}")


class Procs:
    """Subprocesses started by a test; stopped by PID at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, args: list[str], ready_path: str, port: int
    ) -> subprocess.Popen[bytes]:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*FIRSTRIGHT, *args], stdout=out, stderr=subprocess.STDOUT, cwd=self.folder
            )
        self.started.append(process)
        wait_ready(f"http://127.0.0.1:{port}{ready_path}", process, log)
        return process

    def sim(self, name: str, *options: str) -> str:
        port = free_port()
        self.start(
            name,
            ["sim-upstream", "--port", str(port), "--name", name, *options],
            "/sim/stats",
            port,
        )
        return f"http://127.0.0.1:{port}/v1"

    def serve(self, name: str, database: str, *options: str) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        args = ["serve", "--port", str(port), "--database", database, *options]
        process = self.start(name, args, "/metrics", port)
        return f"http://127.0.0.1:{port}/v1", process

    def stop(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/sim/stats", timeout=5) as reply:
        data: dict[str, Any] = json.load(reply)
        return data


def stored(database: str, expected: int | None = None) -> list[dict[str, Any]]:
    """Usage records in the store (waits for the batcher when ``expected`` is given)."""
    engine = open_engine(database)
    try:
        deadline = time.monotonic() + 10
        while True:
            with engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(sa.select(usage_records))]
            if expected is None or len(rows) >= expected or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def upstream_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``firstright serve --upstream`` in front of one simulator; (gateway URL, database)."""
    folder = tmp_path_factory.mktemp("upstream-mode")
    procs = Procs(folder)
    database = f"sqlite:///{folder / 'firstright.db'}"
    try:
        sim = procs.sim("sim", "--model", "sim-gpt", "--output-tokens", "5")
        url, _ = procs.serve("serve", database, "--upstream", sim)
        yield url, database
    finally:
        procs.stop()


def client(url: str, key: str = "sk-anything") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=20)


# -- upstream mode ------------------------------------------------------------------------------


def test_sdk_chat_and_usage_record(upstream_gateway: tuple[str, str]) -> None:
    url, database = upstream_gateway
    before = len(stored(database))
    reply = client(url).chat.completions.create(
        model="sim-gpt", messages=[{"role": "user", "content": "hello"}], max_tokens=3
    )
    assert reply.choices[0].message.content == "the gateway routes"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    rows = stored(database, before + 1)
    assert len(rows) == before + 1
    record = max(rows, key=lambda r: r["occurred_us"])
    assert record["source"] == "gateway"
    assert record["model"] == "sim-gpt"
    assert record["backend"] == "upstream"
    assert record["status"] == 200
    assert (record["input_tokens"], record["output_tokens"]) == (reply.usage.prompt_tokens, 3)


def test_sdk_streaming_hides_injected_usage(upstream_gateway: tuple[str, str]) -> None:
    url, database = upstream_gateway
    before = len(stored(database))
    chunks = list(
        client(url).chat.completions.create(
            model="sim-gpt", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "the gateway routes every request"
    assert all(c.usage is None for c in chunks), "the client did not ask for usage"
    rows = stored(database, before + 1)
    record = max(rows, key=lambda r: r["occurred_us"])
    assert record["output_tokens"] == 5, "usage is metered from the injected include_usage"
    assert record["partial"] is False or record["partial"] == 0


def test_sdk_streaming_with_usage_asked(upstream_gateway: tuple[str, str]) -> None:
    url, _ = upstream_gateway
    chunks = list(
        client(url).chat.completions.create(
            model="sim-gpt",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_sdk_errors_are_openai_errors(upstream_gateway: tuple[str, str]) -> None:
    url, _ = upstream_gateway
    sdk = client(url)
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="no-such-model", messages=[])
    assert "does not exist" in str(missing.value)
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="sim-gpt", messages=[], max_tokens=10**9)
    assert bad.value.body is not None and "max_tokens" in str(bad.value.body)
    request = urllib.request.Request(url + "/chat/completions", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(request, timeout=5)
    body = json.loads(raw.value.read())
    assert raw.value.code == 400
    assert body["error"]["type"] == "invalid_request_error"


def test_sdk_embeddings_and_models(upstream_gateway: tuple[str, str]) -> None:
    url, _ = upstream_gateway
    sdk = client(url)
    vectors = sdk.embeddings.create(model="sim-gpt", input=["a", "b"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 8
    assert [m.id for m in sdk.models.list()] == ["sim-gpt"]


def test_unknown_fields_pass_through_untouched(tmp_path: Path) -> None:
    """The upstream receives the client's bytes (unknown fields included)."""
    seen: list[bytes] = []
    server = _recording_upstream(seen)
    procs = Procs(tmp_path)
    try:
        url, _ = procs.serve("serve", f"sqlite:///{tmp_path / 'fr.db'}", "--upstream", server.url)
        body = b'{"model":"m","messages":[],"x_vendor_field":{"a":[1,2.50]},"seed":7}'
        request = urllib.request.Request(
            url + "/chat/completions",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 200
        assert seen == [body]
    finally:
        procs.stop()
        server.close()


class _Recorder:
    def __init__(self, url: str, close: Any) -> None:
        self.url = url
        self.close = close


def _recording_upstream(seen: list[bytes]) -> _Recorder:
    """A tiny upstream that records request bodies (a thread with http.server)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            payload = json.dumps(
                {"object": "chat.completion", "choices": [], "usage": {"prompt_tokens": 1}}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def close() -> None:
        server.shutdown()
        server.server_close()

    return _Recorder(f"http://127.0.0.1:{server.server_address[1]}/v1", close)


def test_stream_cut_ends_with_error_event_and_partial_record(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    database = f"sqlite:///{tmp_path / 'fr.db'}"
    try:
        sim = procs.sim("cutter", "--cut-stream-after", "3")
        url, _ = procs.serve("serve", database, "--upstream", sim)
        received: list[str] = []
        with pytest.raises(openai.APIError) as cut:
            for chunk in client(url).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                received.extend(c.delta.content or "" for c in chunk.choices)
        assert "cut" in str(cut.value)
        assert received == ["", "the", " gateway"]
        rows = stored(database, 1)
        assert len(rows) == 1
        assert rows[0]["partial"] in (True, 1)
        assert rows[0]["status"] == 200
    finally:
        procs.stop()


# -- SIGTERM under load -------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_under_load_stores_one_record_per_answered_request(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    database = f"sqlite:///{tmp_path / 'fr.db'}"
    try:
        sim = procs.sim("slowish", "--latency-ms", "20")
        url, gateway = procs.serve("serve", database, "--upstream", sim)
        answered = 0
        failed = 0
        lock = threading.Lock()
        stop = threading.Event()

        def worker() -> None:
            nonlocal answered, failed
            sdk = client(url)
            while not stop.is_set():
                try:
                    sdk.chat.completions.create(model="m", messages=[])
                except (openai.APIConnectionError, openai.APIStatusError):
                    with lock:
                        failed += 1
                    return
                with lock:
                    answered += 1

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(worker) for _ in range(8)]
            time.sleep(1.5)
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(60)
            stop.set()
            for future in futures:
                future.result()
        assert gateway.returncode in (0, -signal.SIGTERM)
        assert answered > 20
        rows = stored(database)
        ok = [r for r in rows if r["status"] == 200]
        assert len(ok) == answered, (len(ok), answered, failed)
        assert len({r["record_id"] for r in rows}) == len(rows)
    finally:
        procs.stop()


# -- configuration mode: contracts decide the route ---------------------------------------------


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _config(
    folder: Path, azure: str, openai_url: str, mai: str, azure_limits: str = "{in_flight_max: 1}"
) -> Path:
    text = f"""
contracts: [{FIXTURES / "contracts"}]
backends:
  - id: azure-east
    operator: microsoft
    vendor: openai
    provider: azure
    region: eastus
    models: [gpt-4o]
    base_url: {azure}
    price: {{input_usd_per_mtok: "2.50", output_usd_per_mtok: "10"}}
    limits: {azure_limits}
  - id: openai-direct
    operator: openai
    vendor: openai
    provider: openai
    models: [gpt-4o, o3]
    base_url: {openai_url}
    price: {{input_usd_per_mtok: "2.00", output_usd_per_mtok: "8"}}
  - id: azure-mai
    operator: microsoft
    vendor: microsoft
    provider: azure
    models: [mai-1]
    base_url: {mai}
    price: {{input_usd_per_mtok: "1", output_usd_per_mtok: "4"}}
tenants:
  - id: api
    party: openai
    channel: openai-api
    key_sha256: {_key_hash("sk-api")}
  - id: chatgpt
    party: openai
    channel: chatgpt
    key_sha256: {_key_hash("sk-chatgpt")}
  - id: copilot
    party: microsoft
    channel: copilot
    product: m365-copilot
    key_sha256: {_key_hash("sk-copilot")}
breaker: {{failures_max: 2, open_s: 30}}
"""
    path = folder / "gateway.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def contract_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("config-mode")
    procs = Procs(folder)
    database = f"sqlite:///{folder / 'firstright.db'}"
    try:
        azure = procs.sim("azure", "--latency-ms", "300", "--error-rate", "0")
        direct = procs.sim("openai", "--latency-ms", "1")
        mai = procs.sim("mai", "--model", "mai-1")
        config = _config(folder, azure, direct, mai)
        url, _ = procs.serve("serve", database, "--config", str(config))
        yield {"url": url, "database": database, "azure": azure, "openai": direct, "mai": mai}
    finally:
        procs.stop()


def _records_for(database: str, tenant: str) -> list[dict[str, Any]]:
    return [r for r in stored(database) if r["tenant"] == tenant]


def test_holder_first_then_spill_on_saturation(contract_gateway: dict[str, str]) -> None:
    url, database = contract_gateway["url"], contract_gateway["database"]
    sdk = client(url, "sk-chatgpt")
    single = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=[])
    assert single.headers["x-firstright-backend"] == "azure-east", "the holder is offered first"
    with ThreadPoolExecutor(2) as pool:
        replies = list(
            pool.map(
                lambda _: sdk.chat.completions.with_raw_response.create(
                    model="gpt-4o", messages=[]
                ),
                range(2),
            )
        )
    served = sorted(r.headers["x-firstright-backend"] for r in replies)
    assert served == ["azure-east", "openai-direct"], "the second request spills"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = _records_for(database, "chatgpt")
        if len(rows) >= 3:
            break
        time.sleep(0.05)
    spilled = [r for r in rows if r["backend"] == "openai-direct"]
    assert len(spilled) == 1
    assert json.loads(spilled[0]["refusals"]) == ["azure-east:in_flight_max"]
    assert "traffic-first-refusal" in json.loads(spilled[0]["clause_ids"])


def test_deadline_header_makes_the_holder_refuse(contract_gateway: dict[str, str]) -> None:
    url, database = contract_gateway["url"], contract_gateway["database"]
    reply = client(url, "sk-chatgpt").chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[], extra_headers={"x-firstright-deadline-ms": "50"}
    )
    assert reply.headers["x-firstright-backend"] == "openai-direct"
    time.sleep(0.3)
    rows = [r for r in _records_for(database, "chatgpt") if "deadline" in r["refusals"]]
    assert json.loads(rows[-1]["refusals"]) == ["azure-east:deadline"]


def test_openai_api_never_leaves_azure(contract_gateway: dict[str, str]) -> None:
    url = contract_gateway["url"]
    before = stats(contract_gateway["openai"])["requests"]
    reply = client(url, "sk-api").chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[]
    )
    assert reply.headers["x-firstright-backend"] == "azure-east"
    # o3 is only on the OpenAI-operated backend: the API channel may not use it at all
    with pytest.raises(openai.InternalServerError) as refused:
        client(url, "sk-api").chat.completions.create(model="o3", messages=[])
    assert refused.value.status_code == 503
    assert "api-channel-azure" in str(refused.value)
    assert stats(contract_gateway["openai"])["requests"] == before


def test_copilot_gets_mai_and_licensed_openai_models(contract_gateway: dict[str, str]) -> None:
    url = contract_gateway["url"]
    sdk = client(url, "sk-copilot")
    assert sorted(m.id for m in sdk.models.list()) == ["gpt-4o", "mai-1", "o3"]
    mai = sdk.chat.completions.with_raw_response.create(model="mai-1", messages=[])
    assert mai.headers["x-firstright-backend"] == "azure-mai"


def test_tenant_keys_from_the_key_store(contract_gateway: dict[str, str]) -> None:
    engine = open_engine(contract_gateway["database"])
    try:
        new = create_key(
            engine,
            party="openai",
            role="tenant",
            channel="openai-api",
            created_at=datetime.now(UTC),
        )
        admin = create_key(engine, party="openai", role="admin", created_at=datetime.now(UTC))
    finally:
        engine.dispose()
    sdk = client(contract_gateway["url"], new.secret)
    reply = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=[])
    assert reply.headers["x-firstright-backend"] == "azure-east"
    with pytest.raises(openai.InternalServerError) as refused:
        sdk.chat.completions.create(model="o3", messages=[])
    assert "api-channel-azure" in str(refused.value), "the key's channel is bound by the clause"
    with pytest.raises(openai.AuthenticationError):
        client(contract_gateway["url"], admin.secret).chat.completions.create(
            model="gpt-4o", messages=[]
        )
    deadline = time.monotonic() + 5
    rows = _records_for(contract_gateway["database"], f"key:{new.record.key_id}")
    while len(rows) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = _records_for(contract_gateway["database"], f"key:{new.record.key_id}")
    assert sorted(r["status"] for r in rows) == [200, 503]


def test_unknown_key_is_an_authentication_error(contract_gateway: dict[str, str]) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(contract_gateway["url"], "sk-wrong").chat.completions.create(
            model="gpt-4o", messages=[]
        )


@pytest.mark.slow
def test_openai_api_when_every_azure_backend_fails(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    database = f"sqlite:///{tmp_path / 'fr.db'}"
    try:
        azure = procs.sim("azure-down", "--error-rate", "1")
        direct = procs.sim("openai")
        mai = procs.sim("mai", "--model", "mai-1")
        url, _ = procs.serve(
            "serve", database, "--config", str(_config(tmp_path, azure, direct, mai))
        )
        sdk = client(url, "sk-api")
        statuses = []
        for _ in range(4):
            with pytest.raises(openai.APIStatusError) as failed:
                sdk.chat.completions.create(model="gpt-4o", messages=[])
            statuses.append(failed.value.status_code)
        assert statuses[:2] == [503, 503], "the upstream's 503 is passed on"
        assert "api-channel-azure" in str(failed.value), "with the circuit open: names the clause"
        assert stats(direct)["requests"] == 0, "never the OpenAI-operated backend"
        rows = stored(database, 4)
        assert all(r["backend"] in (None, "azure-east") for r in rows)
    finally:
        procs.stop()


def test_429_from_the_holder_spills_and_backs_off(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    database = f"sqlite:///{tmp_path / 'fr.db'}"
    try:
        azure = procs.sim(
            "azure-busy", "--capacity", "1", "--latency-ms", "400", "--retry-after-s", "30"
        )
        direct = procs.sim("openai")
        mai = procs.sim("mai", "--model", "mai-1")
        config = _config(tmp_path, azure, direct, mai, azure_limits="{}")
        url, _ = procs.serve("serve", database, "--config", str(config))
        sdk = client(url, "sk-chatgpt")
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(
                sdk.chat.completions.with_raw_response.create, model="gpt-4o", messages=[]
            )
            time.sleep(0.2)  # the holder is busy with the first request now
            second = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=[])
            assert first.result().headers["x-firstright-backend"] == "azure-east"
        assert second.headers["x-firstright-backend"] == "openai-direct"
        third = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=[])
        assert third.headers["x-firstright-backend"] == "openai-direct"
        rows = sorted(stored(database, 3), key=lambda r: r["occurred_us"])
        assert [json.loads(r["refusals"]) for r in rows] == [
            [],
            ["azure-east:upstream_429"],
            ["azure-east:rate_limited"],
        ], "the 429's Retry-After keeps the holder out until it passes"
    finally:
        procs.stop()
