"""The HTML pages of "Log in with Harbour ID": the authorization endpoint's screens.

Pure rendering: each function takes already-decided values and returns a
complete HTML5 document as a string. No request objects, no aiohttp, no
store access, so the pages can be tested (and looked at) on their own.

Why it is built the way it is:

- **Sandboxed, autoescaped Jinja with StrictUndefined.** Client names,
  purposes, redirect URIs and form-post parameters come from relying parties
  and requests; autoescaping makes them inert wherever they land, the
  sandbox keeps templates from reaching Python internals, and StrictUndefined
  turns a typo or a missing translation into an exception rather than a
  silently empty page.
- **Nothing external and everything nonce'd.** The pages are served under a
  strict Content-Security-Policy (``script-src 'nonce-…'; style-src
  'nonce-…'``), so every ``<script>`` and ``<style>`` carries the caller's
  nonce and there are no style attributes, fonts, CDNs or images to fetch.
  The QR code is drawn by the page's own script (templates/qr_code.js, inlined
  under the nonce) as inline SVG with presentation attributes only.
- **Data enters scripts as JSON** (``|tojson``, which also escapes ``<``,
  ``>``, ``&`` and ``'``), never by string concatenation.
- **URLs we put in ``href`` / ``action`` are scheme-checked** although they
  are generated or registered server-side: autoescaping stops markup
  injection but not a ``javascript:`` URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

from markupsafe import Markup

from services.auth.oidc.messages import MESSAGES

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "LANGUAGES",
    "pick_language",
    "render_error_page",
    "render_form_post",
    "render_logged_out",
    "render_login_page",
]

LANGUAGES: Final = ("en", "zh-HK")
_DEFAULT_LANGUAGE: Final = "en"

# Preference lists are short in practice; capping the work keeps a hostile
# multi-kilobyte header from costing more than a glance.
_MAX_PREFERENCES: Final = 32

# A CSP nonce is a base64(url) value (CSP3 "base64-value"); anything else
# could never match the header, so it is a caller bug worth failing on.
_NONCE: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")

# The app link is ours: the custom scheme, or an https app link under the
# issuer (qr_links.py). Form posts can only go to web origins.
_APP_LINK_SCHEMES: Final = frozenset({"harbourid", "https"})
_FORM_POST_SCHEMES: Final = frozenset({"https", "http"})
_ISSUER_SCHEMES: Final = frozenset({"https", "http"})

# Seconds between status polls; the script backs off to the maximum on errors.
_POLL_INTERVAL_MS: Final = 1000
_POLL_MAX_INTERVAL_MS: Final = 5000

_TEMPLATES: Final = Path(__file__).with_name("templates")



@cache
def _env() -> SandboxedEnvironment:
    """The pages' Jinja environment, made (and Jinja loaded) by the first page rendered, not at start."""
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


# --- language ---------------------------------------------------------------


def _supported(tag: str) -> str | None:
    """Map one BCP 47 tag to a language we serve, or None.

    Every Chinese tag goes to zh-HK, Simplified ones included: Traditional
    Chinese is the only Chinese we have, and it is far more readable to a
    zh-CN reader than English is. Cantonese (yue) reads Traditional too.
    """
    primary = tag.strip().split("-", 1)[0].split("_", 1)[0].lower()
    if primary in ("zh", "yue"):
        return "zh-HK"
    if primary == "en":
        return "en"
    return None


def _accept_language_order(header: str) -> list[str]:
    """Tags of an Accept-Language header, most preferred first (RFC 9110 §12.5.4).

    Equal q-values keep header order; q=0 means "not acceptable" and drops
    the tag; an unparsable q counts as 0 rather than guessing.
    """
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:_MAX_PREFERENCES]):
        tag, *params = (part.strip() for part in item.split(";"))
        if not tag or tag == "*":
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def pick_language(ui_locales: str | None, accept_language: str | None) -> str:
    """The page language: OIDC ``ui_locales`` first, then Accept-Language, else English.

    ``ui_locales`` is the relying party's explicit, ordered choice
    (space-separated), so it wins over the browser's header; the first tag
    in it that we serve decides. Only when it names nothing we serve does the
    header get a say, so ``ui_locales=fr`` still lets a Chinese browser get
    Chinese.
    """
    if ui_locales:
        for tag in ui_locales.split()[:_MAX_PREFERENCES]:
            if language := _supported(tag):
                return language
    if accept_language:
        for tag in _accept_language_order(accept_language):
            if language := _supported(tag):
                return language
    return _DEFAULT_LANGUAGE


# --- checks on what callers pass in -----------------------------------------


def _messages(language: str) -> Mapping[str, str]:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; use pick_language()")
    return MESSAGES[language]


def _other_language(language: str) -> str:
    return LANGUAGES[1 - LANGUAGES.index(language)]


def _check_nonce(csp_nonce: str) -> str:
    if not _NONCE.fullmatch(csp_nonce):
        raise ValueError("csp_nonce must be a non-empty base64 value")
    return csp_nonce


def _check_scheme(url: str, allowed: frozenset[str], what: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in allowed:
        raise ValueError(f"{what} must use one of the schemes {sorted(allowed)}")
    return url


def _render(template: str, **context: Any) -> str:
    return _env().get_template(template).render(**context)


# --- pages ------------------------------------------------------------------


# A fixed mask pattern (ISO/IEC 18004 §7.8; any of the eight is a valid code): choosing it automatically scores all
# eight masks (6 ms of the 8 ms a code cost when auth drew it); the page's script draws with this one.
QR_MASK = 0


@cache
def qr_script() -> Markup:
    """The QR code encoder the login page's script draws with (templates/qr_code.js), read once.

    Drawn by auth, each second's code cost 1.3 ms of auth's CPU for every page shown; the page now gets the link
    and draws it (module for module segno's code with error level M and ``QR_MASK``: tests/unit/test_qr_code_js.py).
    Inlined in the page's nonce'd script: nothing more to fetch, nothing outside the CSP.
    """
    return Markup((_TEMPLATES / "qr_code.js").read_text(encoding="utf-8"))


def describe_scopes(language: str, scopes: list[str]) -> list[str]:
    """What a login lets the client do, in the citizen's language (`openid` itself is the login)."""
    messages = _messages(language)
    return [messages.get(f"scope_{scope}", scope) for scope in scopes if scope != "openid"]


def render_login_page(
    *,
    language: str,
    client_name: str,
    purpose_lines: list[str],
    matching_code: str,
    app_link: str,
    status_url: str,
    expires_at: datetime,
    now: datetime,
    csp_nonce: str,
    sent_to_phone: bool = False,
    https_link: str | None = None,
    qr_link: str | None = None,
) -> str:
    """The page that waits while the citizen approves the login on their phone.

    It shows who asks and for what, the QR code and the "open the app" link
    (both exactly ``app_link``), the matching code, and polls ``status_url``
    until the server answers with ``redirect_to`` or a final status.

    ``expires_at`` must carry a time zone (like approval requests do). The
    countdown runs on the seconds left at ``now`` (the time of rendering, by
    auth's clock) rather than on the browser's clock, which may be minutes off.

    ``sent_to_phone``: the client named the citizen (login_hint, id_token_hint),
    whose app has the prompt already; the page says so above the two ways.

    ``https_link``: the same login as an https app link under the issuer (the
    button; ``app_link`` then stays as the custom-scheme fallback link).
    ``qr_link``: what the QR code says at first (the https link with this
    second's time code, qr_links.py); the page's script draws it, then asks
    each status poll for the link of its second (``qr=1``) and draws that.
    """
    t = _messages(language)
    _check_nonce(csp_nonce)
    _check_scheme(app_link, _APP_LINK_SCHEMES, "app_link")
    for link, what in ((https_link, "https_link"), (qr_link, "qr_link")):
        if link is not None:  # under the issuer, which is http on a developer's machine
            _check_scheme(link, _ISSUER_SCHEMES, what)
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must carry a time zone")
    expires_at = expires_at.astimezone(UTC).replace(microsecond=0)
    expires_in = max(0, int((expires_at - now).total_seconds()))
    script_config = {
        "statusUrl": status_url,
        # Ask each poll for this second's QR link (the status answer's `qr`) when the page shows a dynamic one.
        "refreshQr": qr_link is not None,
        "qrMask": QR_MASK,
        "qrTitle": t["qr_title"],
        "pollMs": _POLL_INTERVAL_MS,
        "maxPollMs": _POLL_MAX_INTERVAL_MS,
        "messages": {
            key: t[key]
            for key in ("waiting", "approved", "denied", "expired", "reconnecting", "expires_in", "expired_local")
        },
    }
    return _render(
        "login.html",
        t=t,
        lang=language,
        other_lang=_other_language(language),
        csp_nonce=csp_nonce,
        client_name=client_name,
        purpose_lines=list(purpose_lines),
        matching_code=matching_code,
        app_link=app_link,
        qr_script=qr_script(),
        qr_link=qr_link or app_link,
        qr_t=parse_qs(urlsplit(qr_link).query).get("t", [""])[0] if qr_link else "",
        https_link=https_link or app_link,
        expires_at_iso=expires_at.isoformat().replace("+00:00", "Z"),
        expires_in=expires_in,
        script_config=script_config,
        sent_to_phone=sent_to_phone,
    )


def render_error_page(*, language: str, title: str, detail: str, csp_nonce: str) -> str:
    """An error we must not redirect to the client, shown to the citizen instead.

    Used when the redirect_uri itself is unknown or invalid (RFC 6749 §4.1.2.1):
    sending the error there would make us an open redirector. ``title`` and
    ``detail`` are the caller's (localised) words; they are escaped.
    """
    t = _messages(language)
    return _render(
        "error.html",
        t=t,
        lang=language,
        csp_nonce=_check_nonce(csp_nonce),
        title=title,
        detail=detail,
    )


def render_form_post(*, redirect_uri: str, params: dict[str, str], csp_nonce: str) -> str:
    """OAuth 2.0 Form Post Response Mode: deliver ``params`` to ``redirect_uri`` by POST.

    The browser submits the form as soon as it is parsed; without JavaScript
    a button does the same. The page is bilingual because it is shown for a
    moment at most and is rendered before any language is known to matter.
    Only http(s) redirect URIs can receive a form post, so anything else is
    refused here rather than producing a ``javascript:`` form action.
    """
    return _render(
        "form_post.html",
        t=MESSAGES["en"],
        lang="en",
        csp_nonce=_check_nonce(csp_nonce),
        redirect_uri=_check_scheme(redirect_uri, _FORM_POST_SCHEMES, "redirect_uri"),
        params=dict(params),
    )


def render_logged_out(*, language: str, csp_nonce: str) -> str:
    """Shown after RP-initiated logout when there is no valid post_logout_redirect_uri."""
    t = _messages(language)
    return _render("logged_out.html", t=t, lang=language, csp_nonce=_check_nonce(csp_nonce))
