"""The site's configuration: who it is at Harbour ID and where the platform is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from libs.pdf_font import DEFAULT_PDF_FONT, pdf_font_from_env

DEFAULT_PORT = 8010
SCOPE = "openid formfill sign"
# The application form asks for these, pre-filled through form filling; email is optional.
FORM_FIELDS = (("name_en", True), ("address", True), ("phone", True), ("email", False))


@dataclass(frozen=True)
class SiteConfig:
    issuer: str  # the platform's issuer URL (the gateway)
    client_id: str
    private_key_pem: str  # for private_key_jwt client authentication
    key_id: str
    site_url: str  # where this site is reached, e.g. http://127.0.0.1:8010
    # Client-credentials of the site's agency account, for confirmation notifications.
    notify_client_id: str | None = None
    notify_client_secret: str | None = None
    # HARBOUR_PDF_FONT: the application PDF's font (Latin and Chinese); from_seed checks it, so the site does not start without it.
    pdf_font: str = DEFAULT_PDF_FONT

    @property
    def redirect_uri(self) -> str:
        return f"{self.site_url}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return f"{self.site_url}/"

    @property
    def port(self) -> int:
        return int(self.site_url.rsplit(":", 1)[1].split("/")[0])

    @classmethod
    def from_seed(cls, seed_file: Path, site_url: str) -> "SiteConfig":
        """The `utility` client `make seed` registered (see clients/seed.py)."""
        seed = json.loads(seed_file.read_text())
        client = seed["clients"]["utility"]
        return cls(
            issuer=seed["gateway"], client_id=client["client_id"],
            private_key_pem=Path(client["private_key_file"]).read_text(), key_id=client["key_id"], site_url=site_url,
            notify_client_id=client.get("notify_client_id"), notify_client_secret=client.get("notify_client_secret"),
            pdf_font=pdf_font_from_env(),
        )
