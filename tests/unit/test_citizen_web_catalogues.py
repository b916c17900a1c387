"""The citizen web app's message catalogues (clients/citizen_web/i18n): the three languages say the same things;
and its shell: the service worker keeps every file, no inline script or style, an installable manifest.

Every catalogue has the same keys, none empty, the same {placeholders} as English; every key the code and the page
name exists: `t("…")`/`tOr("…")` and key-like string literals ("namespace.name") in the modules, `data-i18n*="…"` in
index.html; and the keys built from what the platform sends (`field.<name>`, `action.<action>`, `kind.<kind>`,
`activity.action.<audited action>`, `scope.<scope>`, `channel.<channel>`, `language.<tag>`) exist for every value the platform can send.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from libs.approvals.prompt import ACTIONS
from services.formfill.vault import FIELDS
from services.auth.oidc.discovery import provider_metadata
from services.signing.ledger.tracker import KINDS

WEB = Path(__file__).resolve().parents[2] / "clients" / "citizen_web"
LANGUAGES = ("en", "zh-HK", "zh-CN")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def catalogue(language: str) -> dict[str, str]:
    return json.loads((WEB / "i18n" / f"{language}.json").read_text(encoding="utf-8"))


def code() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted((WEB / "js").glob("*.js")))


def used_keys() -> set[str]:
    """The keys the modules and the page name."""
    english = catalogue("en")
    namespaces = {key.split(".", 1)[0] for key in english}
    source = code()
    keys = set(re.findall(r"""\b(?:t|tOr)\(\s*["']([^"'`]+)["']""", source))
    # Literals chosen between (a ternary inside t(...)), or returned to be translated later: "namespace.rest".
    keys |= {m for m in re.findall(r"""["']([a-z]+\.[A-Za-z0-9_.-]+)["']""", source) if m.split(".", 1)[0] in namespaces}
    page = (WEB / "index.html").read_text(encoding="utf-8")
    keys |= set(re.findall(r'data-i18n(?:-label|-placeholder)?="([^"]+)"', page))
    return keys


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalogue_has_the_same_keys_none_empty(language):
    english, other = catalogue("en"), catalogue(language)
    assert sorted(other) == sorted(english), {"missing": sorted(set(english) - set(other)), "extra": sorted(set(other) - set(english))}
    assert [key for key, text in other.items() if not isinstance(text, str) or not text.strip()] == []
    different = {key for key in english if set(PLACEHOLDER.findall(english[key])) != set(PLACEHOLDER.findall(other[key]))}
    assert different == set(), different


def test_every_key_the_app_uses_exists():
    english = catalogue("en")
    used = used_keys()
    assert len(used) > 100  # the patterns still find the app's keys
    assert sorted(used - set(english)) == []


def test_keys_built_from_what_the_platform_sends_exist():
    english = catalogue("en")
    built = ({f"field.{name}" for name in FIELDS} | {f"action.{action}" for action in ACTIONS}
             | {f"kind.{kind}" for kind in set(KINDS.values()) | {"operator"}}
             | {f"activity.action.{action}" for action in KINDS}
             | {f"scope.{scope}" for scope in provider_metadata("https://id.example").scopes_supported}
             | {f"channel.{channel}" for channel in ("inbox", "push", "email", "sms")}
             | {f"language.{language}" for language in LANGUAGES})
    assert sorted(built - set(english)) == []


def test_the_chinese_catalogues_are_translated():
    """zh-HK and zh-CN say it in Chinese (a key left in English is a forgotten translation), and differ where the
    scripts differ."""
    english, hk, cn = catalogue("en"), catalogue("zh-HK"), catalogue("zh-CN")
    same = {"app.name"}  # the product's name
    for other in (hk, cn):
        untranslated = sorted(k for k in english if k not in same and other[k] == english[k])
        assert untranslated == []
    assert hk["nav.devices"] != cn["nav.devices"]  # 裝置 / 设备


def test_the_service_worker_keeps_every_file_of_the_app_shell():
    """sw.js's list of the shell's files is the folder's files (index.html as /app/), so the app works offline whole."""
    listed = set(re.findall(r'"(/app/[^"]*)"', (WEB / "sw.js").read_text(encoding="utf-8").split("const DATA_PATHS")[0]))
    files = {"/app/" + path.relative_to(WEB).as_posix() for path in WEB.rglob("*") if path.is_file()}
    files = {"/app/" if name == "/app/index.html" else name for name in files} - {"/app/sw.js"}
    assert listed == files, {"not kept": sorted(files - listed), "not there": sorted(listed - files)}


def test_the_page_has_no_inline_script_or_style_and_the_manifest_makes_it_installable():
    page = (WEB / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []  # every script from a file (CSP script-src 'self')
    assert "<style" not in page and " style=" not in page and not re.search(r"\son[a-z]+=", page)
    code = "\n".join(path.read_text(encoding="utf-8") for path in WEB.rglob("*.js"))
    assert ".innerHTML" not in code and "eval(" not in code and ".style" not in code
    manifest = json.loads((WEB / "manifest.webmanifest").read_text(encoding="utf-8"))
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == ("/app/", "/app/", "standalone")
    icons = {(icon["sizes"], icon.get("purpose", "any")) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= icons
    for icon in manifest["icons"]:
        assert (WEB / icon["src"].removeprefix("/app/")).is_file()
