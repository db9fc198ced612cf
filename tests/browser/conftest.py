"""Browser tests of the storefront: one platform (`mercato up`) for the module, Debian's
Chromium driven by Playwright, and a guard on every page that fails the test on a console
error, an uncaught exception or a request to any host but the gateway.

Screenshots go to $MERCATO_ARTIFACTS_DIR (default build/screenshots/). Without Chromium at
/usr/bin/chromium ($MERCATO_CHROMIUM) the tests are skipped, before the platform starts, with a
line saying how to get it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from chassis import free_port

CHROMIUM = Path(os.environ.get("MERCATO_CHROMIUM", "/usr/bin/chromium"))  # Debian's
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-gpu", "--disable-quic",
]  # fmt: skip
REPO = Path(__file__).resolve().parents[2]
MERCATO = [sys.executable, "-m", "mercato_cli"]
PASSWORD = "correct horse battery staple"

NO_CHROMIUM = f"no Chromium at {CHROMIUM}: apt-get install chromium"


@dataclass
class Platform:
    base: str
    data_dir: Path

    def admin_headers(self) -> dict[str, str]:
        password = (self.data_dir / "secrets" / "admin_password").read_text().strip()
        tokens = httpx.post(f"{self.base}/api/v1/auth/token",
                            json={"email": "admin@mercato.local", "password": password})  # fmt: skip
        assert tokens.status_code == 200, tokens.text
        return {"Authorization": f"Bearer {tokens.json()['access_token']}"}

    def new_product(self, name: str, stock: int) -> dict[str, Any]:
        """A product of the test's own, with `stock` units (catalog publishes it; inventory
        creates its stock record from that event, so the first adjustments may 404)."""
        sku = f"T-{uuid.uuid4().hex[:8]}"
        body = {"sku": sku, "name": name, "category": "kitchen",
                "description": "A limited run, made for this test.",
                "price": {"amount": 2450, "currency": "EUR"}}  # fmt: skip
        created = httpx.post(
            f"{self.base}/api/v1/products", json=body, headers=self.admin_headers()
        )
        assert created.status_code == 201, created.text
        self.set_stock(sku, stock)
        product: dict[str, Any] = created.json()
        return product

    def set_stock(self, sku: str, available: int) -> None:
        headers = self.admin_headers()
        for _ in range(100):
            answer = httpx.put(f"{self.base}/api/v1/inventory/stock/{sku}",
                               json={"action": "adjust", "available": available, "reason": "test"},
                               headers=headers)  # fmt: skip
            if answer.status_code == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"no stock record for {sku}: {answer.text}")


def _status(data_dir: Path) -> list[dict[str, Any]]:
    result = subprocess.run([*MERCATO, "--data-dir", str(data_dir), "status", "--json"],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    rows: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return rows


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("storefront") / "data"
    port = free_port()
    # Every page load asks several things at once from one address: not what the limit is for.
    env = {**os.environ, "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
           "GATEWAY_RATE_LIMIT_BURST": "100000"}  # fmt: skip
    log = (data_dir.parent / "mercato-up.log").open("w")
    process = subprocess.Popen(
        [*MERCATO, "--data-dir", str(data_dir), "up", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    platform = Platform(f"http://127.0.0.1:{port}", data_dir)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = _status(data_dir)
            if len(rows) >= 8 and all(r["ready"] for r in rows):
                break
            assert process.poll() is None, "mercato up exited"
            time.sleep(0.3)
        else:
            raise AssertionError("platform not ready")
        for _ in range(200):
            listing = httpx.get(f"{platform.base}/api/v1/products", params={"limit": 100})
            if listing.status_code == 200 and len(listing.json()["items"]) >= 50:
                break
            time.sleep(0.2)
        # Inventory makes each product's stock from catalog's event, a moment later.
        skus = [product["sku"] for product in listing.json()["items"]]
        for _ in range(300):
            answer = httpx.get(f"{platform.base}/api/v1/inventory/availability",
                               params={"skus": ",".join(skus)})  # fmt: skip
            items = answer.json().get("items", []) if answer.status_code == 200 else []
            if len(items) == len(skus) and all(item["in_stock"] for item in items):
                break
            time.sleep(0.2)
        yield platform
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def throttled_gateway(platform: Platform) -> Iterator[str]:
    """A second gateway in front of the same services, with a rate limit a shopper hits at
    once: 3 API requests, then one per 100 s. Its storefront base URL."""
    state = json.loads((platform.data_dir / "run" / "state.json").read_text())
    nats = state["broker_url"]  # the registry lives in the same nats-server
    port = free_port()
    env = {
        **os.environ,
        "MERCATO_ENVIRONMENT": "dev",
        "MERCATO_DATA_DIR": str(platform.data_dir),
        "MERCATO_REGISTRY_URL": nats,
        "MERCATO_INSTANCE_ID": "gateway-throttled",
        "MERCATO_INTERNAL_SECRET": (platform.data_dir / "secrets" / "internal_secret")
        .read_text()
        .strip(),
        "GATEWAY_PORT": str(port),
        "GATEWAY_RATE_LIMIT_PER_SECOND": "0.01",
        "GATEWAY_RATE_LIMIT_BURST": "3",
    }
    log = (platform.data_dir.parent / "gateway-throttled.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "gateway"], stdout=log,
                               stderr=subprocess.STDOUT, env=env)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert process.poll() is None, "the throttled gateway exited"
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the throttled gateway did not get ready")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("MERCATO_ARTIFACTS_DIR", REPO / "build" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# The accessibility checks run on every page a journey looks at: labelled controls, named
# links and buttons, one h1, unique ids, and WCAG AA text contrast (4.5:1; 3:1 for large
# text) against the first opaque background behind the text.
AUDIT = """() => {
  const problems = [];
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || !shown(el)) continue;
    if (!el.labels?.length && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby")) {
      problems.push(`no label: ${el.outerHTML.slice(0, 80)}`);
    }
  }
  for (const el of document.querySelectorAll("a[href], button")) {
    const name = (el.getAttribute("aria-label") || el.textContent || "").trim();
    if (shown(el) && !name) problems.push(`no accessible name: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll("img:not([alt])")) problems.push(`no alt: ${el.src}`);
  const h1s = [...document.querySelectorAll("h1")].filter(shown);
  if (h1s.length !== 1) problems.push(`${h1s.length} visible h1 elements`);
  const ids = new Map();
  for (const el of document.querySelectorAll("[id]")) ids.set(el.id, (ids.get(el.id) || 0) + 1);
  for (const [id, count] of ids) if (count > 1) problems.push(`id used ${count} times: ${id}`);
  for (const el of document.querySelectorAll("[aria-describedby]")) {
    for (const id of el.getAttribute("aria-describedby").split(/\\s+/)) {
      if (!document.getElementById(id)) problems.push(`aria-describedby names no element: ${id}`);
    }
  }
  const rgb = (text) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(text);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[\\s,/]+/).filter(Boolean).map(Number);
    return { r, g, b, a };
  };
  const luminance = ({ r, g, b }) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const backdrop = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const style = getComputedStyle(e);
      if (style.backgroundImage !== "none") return null; // a gradient: judged by eye
      const colour = rgb(style.backgroundColor);
      if (colour && colour.a >= 1) return colour;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    const text = walker.currentNode.textContent.trim();
    if (!text || seen.has(el) || !shown(el) || el.closest(".visually-hidden, [hidden], noscript")) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    const fg = rgb(style.color);
    const bg = backdrop(el);
    if (!fg || !bg) continue;
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}:1 for "${text.slice(0, 40)}"`);
  }
  return problems;
}"""


@dataclass
class Shop:
    """One shopper's browser tab, watched."""

    page: Page
    context: BrowserContext
    base: str
    artifacts: Path
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def open(self, fragment: str = "/") -> None:
        self.page.goto(f"{self.base}/#{fragment}")

    def register(self, name: str) -> str:
        """Creates an account through the forms (and so signs in); returns its email."""
        email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        page = self.page
        page.get_by_role("link", name="Sign in", exact=True).click()
        page.get_by_role("link", name="Create an account").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Create an account")
        self.audit()
        page.get_by_label("Your name").fill(name)
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("link", name="Account")).to_be_visible()
        return email

    def sign_in(self, email: str) -> None:
        """Fills in the sign-in form on screen and sends it."""
        self.page.get_by_label("Email address").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("link", name="Account")).to_be_visible()

    def snap(self, name: str) -> None:
        """What the shopper sees now (the window, not the whole page), as <name>.png."""
        self.page.screenshot(path=self.artifacts / f"{name}.png")

    def audit(self) -> None:
        """Accessibility checks on the page as it is now, and no raw API answer on it."""
        problems = self.page.evaluate(AUDIT)
        assert problems == [], problems
        text = self.page.inner_text("body")
        assert "/problems/" not in text and '{"' not in text, text

    def no_horizontal_scroll(self) -> None:
        # Against the window we asked for: a mobile browser widens its layout viewport (and
        # zooms out) to fit a page that is too wide, so innerWidth would hide the problem.
        window = self.page.viewport_size
        assert window is not None
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= window["width"], (
            f"the page is {width}px wide in a {window['width']}px window"
        )

    def assert_clean(self, *, expected_statuses: tuple[int, ...] = ()) -> None:
        """No exception, no console error (but the browser's own line for an HTTP error the
        journey provoked on purpose), no request to another host."""
        unexpected = [
            message
            for message in self.console_errors
            if not (
                (found := re.search(r"status of (\d{3})", message))
                and int(found[1]) in expected_statuses
            )
        ]
        assert unexpected == [], unexpected
        assert self.page_errors == []
        assert self.foreign_requests == []


def _watch(shop: Shop) -> None:
    gateway = urlsplit(shop.base).netloc

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            shop.console_errors.append(message.text)

    def on_request(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme not in {"http", "data"} or (
            parts.scheme == "http" and parts.netloc != gateway
        ):
            shop.foreign_requests.append(request.url)

    shop.page.on("console", on_console)
    shop.page.on("pageerror", lambda error: shop.page_errors.append(str(error)))
    shop.page.on("request", on_request)


def new_shop(browser: Browser, base: str, artifacts: Path, **options: Any) -> Shop:
    context = browser.new_context(locale="en-US", timezone_id="Europe/Amsterdam", **options)
    context.set_default_timeout(20_000)
    page = context.new_page()
    shop = Shop(page, context, base, artifacts)
    _watch(shop)
    return shop


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


def _close(shop: Shop, request: pytest.FixtureRequest) -> None:
    """A failed journey leaves a picture of where it stopped (failed-<test>.png)."""
    try:
        if request.node.stash.get(_CALL_FAILED, False):
            name = re.sub(r"[^\w.-]+", "-", request.node.name)
            shop.page.screenshot(path=shop.artifacts / f"failed-{name}.png", full_page=True)
    finally:
        shop.context.close()


DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def throttled_shop(
    browser: Browser, throttled_gateway: str, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Shop]:
    """A desktop tab on the throttled gateway."""
    shop = new_shop(browser, throttled_gateway, artifacts, viewport=DESKTOP)
    try:
        yield shop
    finally:
        _close(shop, request)


@pytest.fixture
def shop(
    browser: Browser, platform: Platform, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Shop]:
    shop = new_shop(browser, platform.base, artifacts, viewport=DESKTOP)
    try:
        yield shop
    finally:
        _close(shop, request)


@pytest.fixture
def phone(
    browser: Browser, platform: Platform, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Shop]:
    shop = new_shop(
        browser, platform.base, artifacts,
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
        has_touch=True,
    )  # fmt: skip
    try:
        yield shop
    finally:
        _close(shop, request)
