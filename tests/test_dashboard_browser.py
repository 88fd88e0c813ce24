"""The dashboard in a real browser: Debian's Chromium driven by Playwright, on the demo database.

Every page loads with the demo's data, one interaction per page (a filter, opening a trace), and
a screenshot of each page is saved under ``test-artifacts/dashboard/``. Skipped with the reason
when Chromium is not installed; a failure when FIRSTRIGHT_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from click.testing import CliRunner

from firstright.adapters.db import open_engine
from firstright.api.app import AdminSettings, create_admin_app
from firstright.cli.main import cli

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "dashboard"
SERVER_START_S_MAX = 20.0


def _require_chromium() -> None:
    if os.path.exists(CHROMIUM) and shutil.which(CHROMIUM):
        return
    reason = f"Debian's chromium is not installed at {CHROMIUM}"
    if os.environ.get("FIRSTRIGHT_REQUIRE_SERVICES") == "1":
        pytest.fail(reason + " and FIRSTRIGHT_REQUIRE_SERVICES=1")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'demo.db'}"
    result = CliRunner().invoke(cli, ["demo", "--no-serve", "--json", "--database", url])
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    app = create_admin_app(open_engine(url), settings=AdminSettings(scheduler_enabled=False))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_S_MAX
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard server did not start"
        time.sleep(0.05)
    try:
        yield {"base": f"http://127.0.0.1:{port}", "summary": summary}
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(site: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only with chromium

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.goto(site["base"] + "/")
        assert tab.url.endswith("/signin")  # not signed in: sent to the form
        tab.screenshot(path=str(ARTIFACTS / "signin.png"))
        tab.fill("#key", site["summary"]["admin_key"])
        tab.click("button[type=submit]")
        tab.wait_for_url(site["base"] + "/")
        yield tab
        context.close()
        browser.close()


def shot(tab: Any, name: str) -> None:
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_overview(page: Any, site: dict[str, Any]) -> None:
    capacity = site["summary"]["capacity"]
    text = page.inner_text("main")
    assert f"{capacity['total_gpus']:,}" in text
    assert "Capacity by cloud" in text
    shot(page, "overview")
    page.click("text=All placements →")
    page.wait_for_url("**/placements")


def test_contracts_timeline_and_filter(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/contracts?version=msft-openai@2025-01-21")
    assert "rofr-new-capacity" in page.inner_text("table.clauses")
    assert page.locator("svg.chart rect").count() >= 5  # one bar per version
    page.select_option("#kind", "first_refusal")
    page.wait_for_url("**kind=first_refusal")
    rows = page.inner_text("table.clauses")
    assert "rofr-new-capacity" in rows and "api-exclusive-azure" not in rows
    assert page.locator("table.clauses .tag.assumed").count() >= 1
    shot(page, "contracts")


def test_desk_opens_a_trace(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/desk")
    assert "demo-capacity-2025-03-coreweave" in page.inner_text("main")
    shot(page, "desk")
    page.click("text=demo-capacity-2025-03-coreweave")
    page.wait_for_url("**/desk/demo-capacity-2025-03-coreweave")
    first = page.locator("details.decision").nth(2)
    first.locator("summary").click()
    assert first.locator("ol.trace li").count() >= 1
    assert "standing-instruction" in page.inner_text("main") or "RELEASED" in page.inner_text(
        "main"
    )
    shot(page, "desk-request")


def test_placements_filter_and_trace(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/placements")
    page.select_option("#cloud", "coreweave")
    page.wait_for_url("**cloud=coreweave")
    rows = page.locator("table.requests tr")
    assert rows.count() == 2  # header + the CoreWeave deal
    shot(page, "placements")
    page.click("text=capacity-2025-03-coreweave")
    page.wait_for_url("**/placements/demo:capacity-2025-03-coreweave")
    body = page.inner_text("main")
    assert "rofr-new-capacity" in body and "first_refusal.applies" in body
    shot(page, "placement")


def test_traffic(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/traffic")
    main = page.inner_text("main")
    assert "Gateway traffic" in main
    traffic = site["summary"]["traffic"]
    assert traffic["requests"] > 0, "the demo sent no traffic through the gateway"
    assert f"{traffic['requests']:,} model requests" in main
    assert "price_over_cap" in main and "azure-mai" in main and "demo-openai-api" in main
    assert page.locator("svg").count() >= 3  # split, latency and refusal charts
    shot(page, "traffic")
    page.select_option("#tenant", "demo-copilot")
    page.wait_for_url("**tenant=demo-copilot")
    filtered = page.inner_text("main")
    assert "demo-openai-api" not in filtered.split("By tenant and backend")[-1]
    copilot = sum(r["requests"] for r in traffic["by_backend"] if r["tenant"] == "demo-copilot")
    assert f"{copilot:,} model requests" in filtered


def test_settlement(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/settlement")
    assert "Settlement" in page.inner_text("main")
    options = page.locator("#period option")
    if options.count() > 0:
        value = options.first.get_attribute("value")
        page.select_option("#period", value)
        page.wait_for_url(f"**period={value}")
    shot(page, "settlement")


def test_whatif(page: Any, site: dict[str, Any]) -> None:
    page.goto(site["base"] + "/whatif")
    page.select_option("#a", "msft-openai@2025-01-21")
    page.select_option("#b", "msft-openai@2025-10-28")
    page.click("text=Compare")
    page.wait_for_url("**/whatif?a=*")
    text = page.inner_text("table.differences")
    assert "rofr-new-capacity" in text and "us-gov-national-security" in text
    shot(page, "whatif")
