"""Web UIs the gateway serves beside the API: the storefront at `/` (the operations console
joins it at `/console`), each a single-page app of plain files under `gateway/web/<name>/`.

No build step: the files are served as they are, from memory. Caching is made safe by a
content hash instead of hashed file names. Every asset lives under
`<mount>/assets/<version>/<path>`, where `<version>` hashes all of the site's files, so
relative ES-module imports keep working and any change moves every URL at once: assets are
cached for a year (`immutable`), while the index (which names the version) is revalidated on
each load (`no-cache` + ETag). An index asks for its assets through the `%ASSETS%`
placeholder, replaced at start-up by `<mount>/assets/<version>`.

Every answer carries a strict Content-Security-Policy: scripts, styles, images and
connections from this origin only, no inline script or style, no plugins, no framing, and
Trusted Types, so the DOM can only be built from nodes and text (never HTML strings).
"""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from aiohttp import web

from chassis import HTTP_REQUEST_DURATION, HTTP_REQUESTS, method_label

ASSETS_PLACEHOLDER = b"%ASSETS%"
INDEX = "index.html"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

# Explicit, so answers do not depend on the host's /etc/mime.types.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
_COMPRESSIBLE = (".html", ".js", ".mjs", ".css", ".json", ".svg", ".txt")


@dataclass(frozen=True)
class File:
    """One file as served: its bytes, a gzip copy when that is smaller, and an ETag."""

    body: bytes
    content_type: str
    etag: str
    gzipped: bytes | None = None

    @classmethod
    def of(cls, name: str, body: bytes) -> File:
        suffix = name[name.rfind(".") :] if "." in name else ""
        compressed = gzip.compress(body, mtime=0) if suffix in _COMPRESSIBLE else None
        return cls(
            body=body,
            content_type=CONTENT_TYPES.get(suffix, "application/octet-stream"),
            etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
            gzipped=compressed if compressed is not None and len(compressed) < len(body) else None,
        )


def _walk(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry, f"{prefix}{entry.name}/")
        else:
            yield prefix + entry.name, entry


class Site:
    """One single-page UI: its index at the mount point, its assets under it."""

    def __init__(self, name: str, *, mount: str, folder: Traversable) -> None:
        if mount and (not mount.startswith("/") or mount.endswith("/")):
            raise ValueError(f"a site mounts at '' (the root) or '/name', not {mount!r}")
        self.name = name
        self.mount = mount
        raw = dict(_walk(folder))
        if INDEX not in raw:
            raise FileNotFoundError(f"the {name} site has no {INDEX}")
        contents = {path: entry.read_bytes() for path, entry in raw.items()}
        digest = hashlib.sha256()
        for path, body in sorted(contents.items()):
            digest.update(path.encode() + b"\0" + body + b"\0")
        self.version = digest.hexdigest()[:12]
        self.assets_path = f"{mount}/assets/{self.version}"
        template = contents.pop(INDEX)
        self.index = File.of(INDEX, template.replace(ASSETS_PLACEHOLDER, self.assets_path.encode()))
        self.assets = {path: File.of(path, body) for path, body in contents.items()}

    @classmethod
    def from_package(cls, name: str, *, mount: str) -> Site:
        """The site shipped in the gateway package under `gateway/web/<name>/`."""
        return cls(name, mount=mount, folder=files("gateway") / "web" / name)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """The index at the mount point (with and without a trailing slash) and the
        assets; other methods on these paths fall through to the API edge (404/405)."""
        for path in ("/",) if not self.mount else (self.mount, self.mount + "/"):
            router.add_get(path, self._serve_index)
        router.add_get(self.mount + "/assets/{version}/{path:.+}", self._serve_asset)

    async def _serve_index(self, request: web.Request) -> web.Response:
        return self._answer(request, self.index, REVALIDATE, route=self.mount or "/")

    async def _serve_asset(self, request: web.Request) -> web.Response:
        route = f"{self.mount}/assets/{{version}}/{{path}}"
        found = self.assets.get(request.match_info["path"])
        # Only the current version: an old or made-up one must not be cached as this one.
        if found is None or request.match_info["version"] != self.version:
            return self._answer(request, None, "no-store", route=route)
        return self._answer(request, found, IMMUTABLE, route=route)

    def _answer(
        self, request: web.Request, file: File | None, cache: str, *, route: str
    ) -> web.Response:
        started = time.perf_counter()
        headers = {**SECURITY_HEADERS, "Cache-Control": cache}
        if file is None:
            response = web.Response(
                status=404, text="Not found\n", headers=headers, content_type="text/plain"
            )
        else:
            headers["Vary"] = "Accept-Encoding"
            use_gzip = file.gzipped is not None and "gzip" in request.headers.get(
                "accept-encoding", ""
            )
            # A compressed copy is another representation, so it gets another ETag.
            etag = file.etag[:-1] + '-gz"' if use_gzip else file.etag
            headers["ETag"] = etag
            if etag in request.headers.get("if-none-match", ""):
                response = web.Response(status=304, headers=headers)
            else:
                if use_gzip:
                    headers["Content-Encoding"] = "gzip"
                response = web.Response(
                    body=file.gzipped if use_gzip else file.body,
                    headers={**headers, "Content-Type": file.content_type},
                )
        method = method_label(request.method)
        HTTP_REQUESTS.labels(route, method, str(response.status)).inc()
        HTTP_REQUEST_DURATION.labels(route, method).observe(time.perf_counter() - started)
        return response
