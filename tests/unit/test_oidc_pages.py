"""The login pages: language choice, escaping, the QR code and the strict-CSP rules.

The pages are parsed with the standard library's HTMLParser rather than
searched as text where it matters (attributes, tags), so the assertions are
about what a browser would see: an escaped ``&amp;`` in an href is the same
URL, and a ``<script>`` that only exists as text is not a script.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from services.auth.oidc.messages import MESSAGES
from services.auth.oidc.pages import (
    LANGUAGES,
    QR_MASK,
    pick_language,
    qr_script,
    render_error_page,
    render_form_post,
    render_logged_out,
    render_login_page,
)

NONCE = "r4nd0m-N0nce_value+/="
APP_LINK = "harbourid://authorize?ticket=T0k3n-abc&client=gov.example&x=%3Cy%3E"
STATUS_URL = "/oidc/authorize/T0k3n-abc/status?lang=en&a=</script>"
EVIL = '<script>alert("x")</script>'


class Page(HTMLParser):
    """Every start tag with its decoded attributes, and the text outside tags."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._raw: list[str] = []  # text inside <script>/<style>
        self._in_raw = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_raw = tag in ("script", "style")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self._in_raw = False

    def handle_data(self, data: str) -> None:
        (self._raw if self._in_raw else self.text).append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def by_id(self, element_id: str) -> dict[str, str | None]:
        [attrs] = [attrs for _, attrs in self.tags if attrs.get("id") == element_id]
        return attrs

    @property
    def visible_text(self) -> str:
        return "".join(self.text)

    @property
    def scripts(self) -> str:
        return "".join(self._raw)


def login(**overrides) -> str:
    values = dict(
        language="en",
        client_name="Inland Revenue Department",
        purpose_lines=["Your identity", "Your e-mail address"],
        matching_code="K7Q4",
        app_link=APP_LINK,
        status_url=STATUS_URL,
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
        now=datetime.now(UTC),
        csp_nonce=NONCE,
    )
    values.update(overrides)
    return render_login_page(**values)


def assert_strict_csp_ready(html: str, allowed_urls: tuple[str, ...] = ()) -> None:
    """Every script and style carries the nonce; nothing is loaded from elsewhere."""
    page = Page(html)
    scripts, styles = page.all("script"), page.all("style")
    assert styles, "the page has its styles inline"
    for attrs in scripts + styles:
        assert attrs.get("nonce") == NONCE
        assert "src" not in attrs
    assert len(re.findall(r"<script\b", html)) == len(scripts)
    assert len(re.findall(r"<style\b", html)) == len(styles)
    assert not page.all("link") and not page.all("img") and not page.all("iframe")
    assert all("style" not in attrs for _, attrs in page.tags), "CSP nonces do not cover style attributes"
    assert "@import" not in html and "url(" not in html
    stripped = html
    # The SVG namespace the QR code script creates its elements in is a name, never fetched.
    for url in (*allowed_urls, '"http://www.w3.org/2000/svg"'):
        stripped = stripped.replace(url, "")
    assert "http://" not in stripped and "https://" not in stripped


# --- pick_language ----------------------------------------------------------


@pytest.mark.parametrize(
    ("ui_locales", "accept_language", "expected"),
    [
        (None, None, "en"),
        ("", "", "en"),
        ("zh-HK", None, "zh-HK"),
        ("zh-hk", "en", "zh-HK"),
        ("en", "zh-HK,zh;q=0.9", "en"),  # the relying party's explicit choice wins
        ("zh-CN", None, "zh-HK"),  # Traditional is the only Chinese we have
        ("zh-Hant-TW", None, "zh-HK"),
        ("zh", None, "zh-HK"),
        ("fr-CA zh-TW en", None, "zh-HK"),  # first language we serve, in preference order
        ("fr", "zh-HK", "zh-HK"),  # nothing served in ui_locales: the browser decides
        ("fr de", None, "en"),
        (None, "zh-HK,zh;q=0.9,en;q=0.8", "zh-HK"),
        (None, "en-GB,en;q=0.9,zh-HK;q=0.8", "en"),
        (None, "en;q=0.5, zh-TW;q=0.9", "zh-HK"),  # q-values, not order
        (None, "zh-HK;q=0, en;q=0.1", "en"),  # q=0 is "not acceptable"
        (None, "fr-FR, de;q=0.9", "en"),
        (None, "*", "en"),
        (None, "zh-HK;q=abc, en;q=0.2", "en"),  # an unparsable q does not win
        (None, "yue-HK", "zh-HK"),
        (None, "ZH-hk", "zh-HK"),
        (None, ";;,,;q=", "en"),
    ],
)
def test_pick_language(ui_locales: str | None, accept_language: str | None, expected: str) -> None:
    assert pick_language(ui_locales, accept_language) == expected


def test_every_language_has_every_message() -> None:
    assert set(MESSAGES) == set(LANGUAGES)
    assert set(MESSAGES["en"]) == set(MESSAGES["zh-HK"])


# --- the login page ---------------------------------------------------------


def test_login_page_shows_who_asks_for_what_and_the_code() -> None:
    html = login()
    page = Page(html)
    assert html.startswith("<!doctype html>")
    assert page.all("html") == [{"lang": "en"}]
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in page.all("meta")
    text = page.visible_text
    assert "Log in with Harbour ID" in text
    assert "Inland Revenue Department" in text
    assert "Your identity" in text and "Your e-mail address" in text
    assert "K7Q4" in text
    assert "scan this QR code" in text
    assert "Open the Harbour ID app" in text
    status = page.by_id("status")
    assert status["role"] == "status" and status["aria-live"] == "polite"
    assert "Waiting for your approval…" in text


def test_login_page_links_and_qr_carry_exactly_the_app_link() -> None:
    html = login()
    page = Page(html)
    app_hrefs = [a["href"] for a in page.all("a") if a["href"] and a["href"].startswith("harbourid:")]
    assert app_hrefs == [APP_LINK]
    # The page's script draws the QR code of the figure's link (qr_code.js, inlined in the nonce'd script; what it
    # draws: test_qr_code_js.py) with the fixed mask and the page's title; auth draws none.
    [figure] = [f for f in page.all("figure") if f["id"] == "qr"]
    assert figure["data-link"] == APP_LINK and not page.all("svg")
    config = json.loads(re.search(r"var config = (\{.*?\});\n", html).group(1))
    assert config["qrMask"] == QR_MASK and config["qrTitle"] == MESSAGES["en"]["qr_title"]
    script = html[html.index("<script nonce="):]
    assert str(qr_script()) in script and "HarbourQr.svg(document, link, config.qrMask, config.qrTitle)" in script
    # The QR has at most 280 CSS pixels (its scale-5 viewBox would otherwise be larger).
    assert "max-width: 280px" in html


def test_login_page_escapes_everything_the_client_controls() -> None:
    html = login(client_name=EVIL, purpose_lines=[EVIL, "a & b"], matching_code="<b>1</b>")
    page = Page(html)
    assert EVIL not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert page.visible_text.count(EVIL) == 2  # shown as text, twice
    assert len(page.all("script")) == 1  # ours, nothing injected
    assert not page.all("b")
    assert "a &amp; b" in html


def test_login_page_script_gets_its_data_as_json() -> None:
    html = login()
    page = Page(html)
    [config_json] = re.findall(r"var config = (\{.*\});", page.scripts)
    config = json.loads(config_json)
    assert config["statusUrl"] == STATUS_URL
    assert config["pollMs"] == 1000 and config["maxPollMs"] == 5000
    assert config["messages"]["waiting"] == "Waiting for your approval…"
    assert "</script>" not in page.scripts  # the status URL's "</script>" was escaped
    script = page.scripts
    assert 'cache: "no-store"' in script and '"Accept": "application/json"' in script
    assert "window.location.replace(" in script


def test_login_page_is_ready_for_a_strict_csp() -> None:
    assert_strict_csp_ready(login())
    assert_strict_csp_ready(login(language="zh-HK"))


def test_login_page_expiry_and_language_switch() -> None:
    expires = datetime(2030, 1, 2, 11, 4, 5, tzinfo=UTC)
    page = Page(login(expires_at=expires, now=expires - timedelta(seconds=90)))
    expiry = page.by_id("expiry")
    assert expiry["data-expires-at"] == "2030-01-02T11:04:05Z"
    assert expiry["data-expires-in"] == "90"  # the seconds left by auth's clock, not the browser's
    assert Page(login(expires_at=expires, now=expires + timedelta(seconds=1))).by_id("expiry")["data-expires-in"] == "0"
    assert page.by_id("language-switch")["href"] == "?ui_locales=zh-HK"
    zh = Page(login(language="zh-HK"))
    assert zh.by_id("language-switch")["href"] == "?ui_locales=en"


def test_login_page_in_traditional_chinese() -> None:
    html = login(language="zh-HK", purpose_lines=["你的身份"])
    page = Page(html)
    assert page.all("html") == [{"lang": "zh-HK"}]
    assert "<title>以 Harbour ID 登入</title>" in html
    assert "開啟 Harbour ID 應用程式" in page.visible_text
    assert "等待你的確認…" in page.visible_text
    assert "你的身份" in page.visible_text


@pytest.mark.parametrize(
    "overrides",
    [
        {"language": "fr"},
        {"csp_nonce": ""},
        {"csp_nonce": 'a" onload="x'},
        {"app_link": "javascript:alert(1)"},
        {"expires_at": datetime(2030, 1, 1)},  # no time zone
    ],
)
def test_login_page_refuses_bad_input(overrides: dict) -> None:
    with pytest.raises(ValueError):
        login(**overrides)


# --- the other pages --------------------------------------------------------


def test_form_post_delivers_each_parameter_escaped() -> None:
    redirect_uri = 'https://rp.example/cb?a=1&b="2"'
    params = {"code": 'c0de"><script>x</script>', "state": "s&t", "iss": "https://id.harbour.example"}
    html = render_form_post(redirect_uri=redirect_uri, params=params, csp_nonce=NONCE)
    page = Page(html)
    [form] = page.all("form")
    assert form["method"] == "post" and form["action"] == redirect_uri
    assert 'action="https://rp.example/cb?a=1&amp;b=&#34;2&#34;"' in html
    inputs = page.all("input")
    assert all(i["type"] == "hidden" for i in inputs)
    assert {i["name"]: i["value"] for i in inputs} == params
    assert len(inputs) == len(params)
    assert len(page.all("script")) == 1 and ".submit()" in page.scripts
    assert "<noscript>" in html and page.all("button")[0]["type"] == "submit"
    assert_strict_csp_ready(html, allowed_urls=("https://rp.example/cb", "https://id.harbour.example"))


@pytest.mark.parametrize("redirect_uri", ["javascript:alert(1)", "data:text/html,x", "com.example.app:/cb"])
def test_form_post_only_to_web_origins(redirect_uri: str) -> None:
    with pytest.raises(ValueError):
        render_form_post(redirect_uri=redirect_uri, params={}, csp_nonce=NONCE)


@pytest.mark.parametrize("language", LANGUAGES)
def test_error_page_escapes_title_and_detail(language: str) -> None:
    html = render_error_page(language=language, title=EVIL, detail=f"redirect_uri {EVIL} is not registered", csp_nonce=NONCE)
    page = Page(html)
    assert EVIL not in html
    assert EVIL in page.visible_text
    assert page.all("html") == [{"lang": language}]
    assert not page.all("script")
    assert MESSAGES[language]["error_hint"] in page.visible_text
    assert_strict_csp_ready(html)


@pytest.mark.parametrize(("language", "title"), [("en", "You have logged out"), ("zh-HK", "你已登出")])
def test_logged_out_page(language: str, title: str) -> None:
    html = render_logged_out(language=language, csp_nonce=NONCE)
    page = Page(html)
    assert page.all("html") == [{"lang": language}]
    assert title in page.visible_text
    assert_strict_csp_ready(html)


def test_scopes_are_described_in_the_citizens_language() -> None:
    from services.auth.oidc.pages import describe_scopes

    assert describe_scopes("en", ["openid"]) == []
    assert describe_scopes("en", ["openid", "offline_access"]) == ["Keep you signed in until you log out"]
    assert describe_scopes("zh-HK", ["openid", "formfill"]) == ["要求以你的個人資料填寫表格（每次由你確認）"]
