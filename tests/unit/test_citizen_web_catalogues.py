"""The citizen web app's message catalogues (clients/citizen_web/i18n): the three languages say the same things.

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
