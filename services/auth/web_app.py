"""The citizen's web app (clients/citizen_web): its files, read once at start, and its one origin.

auth serves the app's static files under `/app/` (endpoints/web_app.py). They are read once from
`HARBOUR_AUTH_WEB_APP_DIR` (default: the clients/citizen_web the package carries) into memory, each with its media
type and a strong ETag. A folder that is missing or empty at start does not stop auth: the app's paths answer 404
and one warning is logged (the rest of auth does not need the app).

The app has one origin (`HARBOUR_AUTH_WEB_APP_ORIGIN`), which is also the WebAuthn relying party of its passkeys:
WebAuthn refuses IP addresses as RP IDs, so by default it is the issuer's origin with a loopback IP host written
`localhost` (the dev issuer `http://127.0.0.1:8000` gives `http://localhost:8000`); in production, the issuer's own
https origin. A request for the app under another host is sent there (308).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from libs import base64url
from libs.service.settings import SettingsError

# The app's own files, in the package (clients/citizen_web next to clients/__init__.py).
PACKAGED_DIR = Path(__file__).resolve().parents[2] / "clients" / "citizen_web"
INDEX = "index.html"
LANGUAGES = ("en", "zh-HK", "zh-CN")
# Media types the platform's mimetypes table may lack or get wrong.
_TYPES = {
    ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json", ".css": "text/css",
    ".html": "text/html", ".svg": "image/svg+xml", ".png": "image/png", ".webmanifest": "application/manifest+json",
    ".ico": "image/x-icon", ".woff2": "font/woff2", ".txt": "text/plain",
}
_TEXT = ("text/", "application/json", "application/manifest+json", "image/svg+xml")
MAX_FILE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class AppFile:
    body: bytes
    content_type: str
    etag: str


def media_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    kind = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith(_TEXT) else kind


def etag(body: bytes) -> str:
    """A strong ETag: 144 bits of the body's SHA-256."""
    return '"' + base64url.encode(hashlib.sha256(body).digest()[:18]) + '"'


def load_files(folder: Path) -> dict[str, AppFile]:
    """Every regular file under `folder` by its path relative to it (`i18n/en.json`); dot files and folders are left
    out, and so are links leading outside the folder. A missing folder is no files."""
    if not folder.is_dir():
        return {}
    root = folder.resolve()
    files: dict[str, AppFile] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if not path.resolve().is_relative_to(root) or path.stat().st_size > MAX_FILE_BYTES:
            continue
        body = path.read_bytes()
        files[relative.as_posix()] = AppFile(body, media_type(path.name), etag(body))
    return files


def app_dir(configured: str) -> Path:
    return Path(configured) if configured else PACKAGED_DIR


def canonical_origin(issuer: str, configured: str = "") -> str:
    """The app's origin: `configured` (an origin: scheme, host, optional port, nothing else), else the issuer's origin
    with a loopback IP host written `localhost`."""
    if configured:
        parts = urlsplit(configured)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment \
                or parts.username or parts.password:
            raise SettingsError(f"HARBOUR_AUTH_WEB_APP_ORIGIN: not an origin (scheme://host[:port]): {configured!r}")
        _check_rp_host(parts.hostname)
        return f"{parts.scheme}://{parts.netloc.lower()}"
    parts = urlsplit(issuer)
    host = parts.hostname or "localhost"
    if _loopback_ip(host):
        host = "localhost"
    else:
        _check_rp_host(host)
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def rp_id(origin: str) -> str:
    """The WebAuthn relying party id of the app's passkeys: its origin's host."""
    return urlsplit(origin).hostname or ""


def host_of(origin: str) -> str:
    """What a request's Host says when it reached the app's origin (`localhost:8000`)."""
    return urlsplit(origin).netloc.lower()


def _loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_rp_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    raise SettingsError(f"the web app's origin needs a host name, not an IP address (WebAuthn refuses them): {host!r}; "
                        "set HARBOUR_AUTH_WEB_APP_ORIGIN")


@dataclass(frozen=True)
class WebApp:
    """What auth serves under /app/, and the relying party its passkeys are verified against."""

    files: dict[str, AppFile]
    origin: str
    issuer: str

    @property
    def rp_id(self) -> str:
        return rp_id(self.origin)

    @property
    def host(self) -> str:
        return host_of(self.origin)

    def config(self) -> dict:
        """GET /app/config.json: what the app needs to call WebAuthn and find the issuer."""
        return {"issuer": self.issuer, "rp_id": self.rp_id, "origin": self.origin, "languages": list(LANGUAGES)}

    @functools.cached_property
    def config_file(self) -> AppFile:
        body = json.dumps(self.config(), separators=(",", ":")).encode()
        return AppFile(body, media_type("config.json"), etag(body))

    def file_for(self, tail: str) -> AppFile | None:
        """The file a path under /app/ names: index.html for the app itself and its screens (a last segment without
        a dot), else the file of that name; None when there is none."""
        last = tail.rsplit("/", 1)[-1]
        if "." not in last:
            return self.files.get(INDEX)
        if any(part in ("", ".", "..") or part.startswith(".") for part in tail.split("/")):
            return None
        return self.files.get(tail)


def web_app(issuer: str, configured_dir: str, configured_origin: str) -> WebApp:
    return WebApp(load_files(app_dir(configured_dir)), canonical_origin(issuer, configured_origin), issuer)
