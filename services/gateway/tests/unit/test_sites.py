"""The web UIs the gateway serves: caching by content hash, security headers, fall-through to
the API edge, and the storefront's files obeying the Content-Security-Policy."""

import gzip
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from chassis.discovery import InMemoryRegistry
from gateway.bootstrap import build_app
from gateway.ratelimit import InProcessRateLimiter
from gateway.settings import GatewaySettings
from gateway.sites import IMMUTABLE, Site

STOREFRONT = Path(__file__).parents[2] / "src" / "gateway" / "web" / "storefront"


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[str, ClientSession]]:
    app = build_app(
        GatewaySettings(internal_secret="sites-test-secret"),
        registry=InMemoryRegistry(), configure_logs=False,
        limiter=InProcessRateLimiter(rate=1000, burst=1000),
    )  # fmt: skip
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession(auto_decompress=False) as http:
            yield f"http://127.0.0.1:{server.port}", http
    finally:
        await server.close()


def asset_paths(index: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', index)


async def test_the_index_names_versioned_assets_and_is_revalidated(
    gateway: tuple[str, ClientSession],
) -> None:
    base, http = gateway
    async with http.get(base + "/", headers={"Accept-Encoding": "identity"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-cache"
        etag = response.headers["ETag"]
        index = await response.text()
    assert "%ASSETS%" not in index
    paths = asset_paths(index)
    assert {p.rsplit("/", 1)[1] for p in paths} >= {"app.js", "styles.css", "favicon.svg"}
    assert len({p.split("/")[2] for p in paths}) == 1  # one version for all
    async with http.get(
        base + "/", headers={"If-None-Match": etag, "Accept-Encoding": "identity"}
    ) as again:
        assert again.status == 304
        assert await again.read() == b""


async def test_assets_are_cached_for_good_under_their_version(
    gateway: tuple[str, ClientSession],
) -> None:
    base, http = gateway
    async with http.get(base + "/") as response:
        paths = asset_paths(gzip.decompress(await response.read()).decode())
    app_js = next(p for p in paths if p.endswith("/app.js"))
    async with http.get(base + app_js, headers={"Accept-Encoding": "identity"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert response.headers["Cache-Control"] == IMMUTABLE
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Encoding" not in response.headers
        plain = await response.read()
    assert plain == (STOREFRONT / "app.js").read_bytes()
    async with http.get(base + app_js, headers={"Accept-Encoding": "gzip, br"}) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Vary"] == "Accept-Encoding"
        assert gzip.decompress(await response.read()) == plain
    nested = app_js.replace("/app.js", "/pages/catalog.js")
    async with http.get(base + nested) as response:
        assert response.status == 200
    css = app_js.replace("/app.js", "/styles.css")
    async with http.get(base + css) as response:
        assert response.headers["Content-Type"] == "text/css; charset=utf-8"


async def test_other_versions_and_unknown_files_are_not_found_and_not_cached(
    gateway: tuple[str, ClientSession],
) -> None:
    base, http = gateway
    for path in ["/assets/0123456789ab/app.js", "/assets/x/app.js"]:
        async with http.get(base + path) as response:
            assert response.status == 404
            assert response.headers["Cache-Control"] == "no-store"
    async with http.get(base + "/") as response:
        version = asset_paths(gzip.decompress(await response.read()).decode())[0].split("/")[2]
    for path in [f"/assets/{version}/nope.js", f"/assets/{version}/index.html"]:
        async with http.get(base + path) as response:
            assert response.status == 404, path


async def test_no_path_leaves_the_site_folder(gateway: tuple[str, ClientSession]) -> None:
    base, http = gateway
    async with http.get(base + "/") as response:
        version = asset_paths(gzip.decompress(await response.read()).decode())[0].split("/")[2]
    for path in [
        f"/assets/{version}/../../bootstrap.py",
        f"/assets/{version}/%2e%2e/%2e%2e/bootstrap.py",
        f"/assets/{version}/..%2f..%2fbootstrap.py",
        f"/assets/{version}//etc/passwd",
    ]:
        async with http.get(base + path) as response:
            body = await response.read()
            assert response.status == 404, path
            assert b"build_app" not in body and b"root:" not in body


async def test_every_answer_carries_a_strict_policy(gateway: tuple[str, ClientSession]) -> None:
    base, http = gateway
    async with http.get(base + "/") as response:
        policy = response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert "unsafe" not in policy


async def test_other_methods_and_paths_still_reach_the_api_edge(
    gateway: tuple[str, ClientSession],
) -> None:
    base, http = gateway
    async with http.post(base + "/") as response:
        assert response.status == 404
        assert response.headers["Content-Type"] == "application/problem+json"
    async with http.get(base + "/api/v1/products") as response:
        assert response.status == 503  # catalog is not registered: the edge answered
    async with http.head(base + "/") as response:
        assert response.status == 200


def test_a_site_mounts_beside_the_storefront_with_its_own_version(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script type="module" src="%ASSETS%/main.js"></script>')
    (tmp_path / "main.js").write_text("export {};\n")
    console = Site("console", mount="/console", folder=tmp_path)
    assert (
        console.index.body
        == f'<script type="module" src="/console/assets/{console.version}/main.js"></script>'.encode()
    )
    assert set(console.assets) == {"main.js"}
    router = web.UrlDispatcher()
    console.add_routes(router)
    paths = {r.get_info().get("path") or r.get_info().get("formatter") for r in router.resources()}
    assert paths == {"/console", "/console/", "/console/assets/{version}/{path}"}

    (tmp_path / "main.js").write_text("export const changed = true;\n")
    assert Site("console", mount="/console", folder=tmp_path).version != console.version
    with pytest.raises(ValueError, match="mounts at"):
        Site("console", mount="/console/", folder=tmp_path)


def test_a_site_without_an_index_is_refused(tmp_path: Path) -> None:
    (tmp_path / "main.js").write_text("")
    with pytest.raises(FileNotFoundError, match=r"no index\.html"):
        Site("empty", mount="/empty", folder=tmp_path)


# -- the storefront's own files --------------------------------------------------------------


def test_the_storefront_has_no_inline_script_or_style() -> None:
    """What the Content-Security-Policy would block must not be in the files at all."""
    index = (STOREFRONT / "index.html").read_text()
    for script in re.findall(r"<script\b[^>]*>", index):
        assert "src=" in script, script
    assert not re.search(r"\son[a-z]+\s*=", index)
    assert "style=" not in index and "<style" not in index
    for source in STOREFRONT.rglob("*.js"):
        text = re.sub(r"^\s*//.*$", "", source.read_text(), flags=re.MULTILINE)  # comments
        for sink in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ):
            assert sink not in text, f"{source.name} uses {sink}"
        assert "http://" not in text and "https://" not in text, f"{source.name} names another host"


def test_every_module_the_storefront_imports_exists() -> None:
    for source in STOREFRONT.rglob("*.js"):
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', source.read_text()):
            assert (source.parent / target).resolve().is_file(), f"{source.name} imports {target}"
