"""The UI's page and static files, read once from the package and served from memory.

`/ui` redirects to `/ui/` (the page's own links are relative, so the UI also works behind a reverse
proxy that mounts the gateway under a path); `/ui/` is the page, always revalidated (ETag, `no-cache`).
The other files live under `/ui/static/<version>/`, where the version is a hash of all of them: the
browser keeps them for good (`immutable`) and an upgrade changes the path, so a warm load of the UI
asks the server for the page alone. A request naming another version gets today's file, revalidated.
Text files are gzipped when the client accepts it. The page lists every module as `modulepreload`, so
a cold load fetches them in parallel instead of discovering them import by import.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import NotFoundError
from ..proxy.routing import ExtraRoute, Handler

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8",
          ".json": "application/json"}
# The page runs only its own scripts and talks only to its own origin.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_COMMON = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_FOREVER = {**_COMMON, "Cache-Control": "public, max-age=31536000, immutable"}
_PRELOAD_MARK = "<!--modulepreload-->"
_STATIC_MARK = "static/"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    etag: str
    media_type: str


class Assets:
    """Every file under static/, by its path there (`index.html`, `app.js`, `pages/keys.js`, ...)."""

    def __init__(self, root: Traversable | None = None) -> None:
        root = root or resources.files("respgate.ui") / "static"
        raw = dict(_walk(root, ""))
        page = raw.pop("index.html").decode()
        digest = hashlib.sha256()
        for path in sorted(raw):
            digest.update(path.encode() + b"\0" + raw[path])
        self.version = digest.hexdigest()[:16]
        prefix = f"{_STATIC_MARK}{self.version}/"
        modules = sorted(p for p in raw if p.endswith(".js") and p != "boot.js")  # boot.js: a classic script
        links = "\n".join(f'<link rel="modulepreload" href="{prefix}{p}">' for p in modules)
        page = page.replace(f'"{_STATIC_MARK}', f'"{prefix}').replace(_PRELOAD_MARK, links)
        self.page = _asset("index.html", page.encode())
        self.files = {path: _asset(path, body) for path, body in raw.items()}

    def response(self, path: str, request: Request, headers: dict[str, str] | None = None) -> Response:
        """`index.html`, or `<version>/<file>`."""
        if path == "index.html":
            asset: Asset | None = self.page
            cache = _COMMON
        else:
            version, _, path = path.partition("/")
            asset = self.files.get(path)
            cache = _FOREVER if version == self.version else _COMMON
        if asset is None:
            missing = NotFoundError(f"Invalid URL (GET {request.url.path})", code="unknown_url")
            return Response(missing.to_json(), status_code=404, media_type="application/json", headers=_COMMON)
        sent = {**cache, "ETag": asset.etag, "Vary": "Accept-Encoding", **(headers or {})}
        if asset.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=sent)
        body = asset.body
        if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body = asset.gzipped
            sent["Content-Encoding"] = "gzip"
        return Response(body, media_type=asset.media_type, headers=sent)


@functools.cache
def packaged() -> Assets:
    """The package's own files, read once per process."""
    return Assets()


def routes(assets: Assets | None = None) -> list[ExtraRoute]:
    """The page and its files: public (the login form is part of them; the data is behind /ui/api/)."""
    files = assets or packaged()

    async def slash(request: Request) -> Response:
        return RedirectResponse(request.url.path + "/", status_code=308)

    async def page(request: Request) -> Response:
        return files.response("index.html", request, {"Content-Security-Policy": _CSP, "X-Frame-Options": "DENY"})

    async def static(request: Request) -> Response:
        return files.response(request.path_params["path"], request)

    handlers: list[tuple[str, Handler]] = [("/ui", slash), ("/ui/", page), ("/ui/static/{path:path}", static)]
    for _, handler in handlers:
        handler.public = True  # type: ignore[attr-defined]
    return [(path, handler, ["GET", "HEAD"]) for path, handler in handlers]


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            found += _walk(entry, name + "/")
        elif not entry.name.startswith("."):
            found.append((name, entry.read_bytes()))
    return found


def _asset(path: str, body: bytes) -> Asset:
    suffix = path[path.rfind("."):] if "." in path else ""
    media_type = _TYPES.get(suffix, "application/octet-stream")
    packed = gzip.compress(body, 9, mtime=0) if len(body) > 1024 and media_type.startswith("text/") else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(body, packed if packed is not None and len(packed) < len(body) else None, etag, media_type)
