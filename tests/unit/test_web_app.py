"""services/auth/web_app.py: the web app's one origin (WebAuthn refuses IP addresses) and which file a path names."""

from __future__ import annotations

import pytest

from libs.service.settings import SettingsError
from services.auth.web_app import WebApp, canonical_origin, load_files, rp_id


@pytest.mark.parametrize(("issuer", "origin"), [
    ("http://127.0.0.1:8000", "http://localhost:8000"),
    ("http://[::1]:8000", "http://localhost:8000"),
    ("https://id.harbour.example", "https://id.harbour.example"),
    ("https://id.harbour.example:8443/base", "https://id.harbour.example:8443"),
])
def test_the_origin_defaults_to_the_issuers_with_loopback_as_localhost(issuer, origin):
    assert canonical_origin(issuer) == origin
    assert rp_id(origin) in ("localhost", "id.harbour.example")


def test_a_configured_origin_must_be_an_origin_with_a_host_name():
    assert canonical_origin("http://127.0.0.1:8000", "https://App.Example:8443") == "https://app.example:8443"
    for bad in ("https://app.example/app", "ftp://app.example", "https://10.0.0.1", "https://user@app.example", "app.example"):
        with pytest.raises(SettingsError):
            canonical_origin("http://127.0.0.1:8000", bad)
    with pytest.raises(SettingsError):  # a public IP issuer: no RP id possible, the operator must say the origin
        canonical_origin("http://192.0.2.1:8000")


def test_paths_name_index_html_for_screens_and_files_by_name(tmp_path):
    (tmp_path / "i18n").mkdir()
    for name in ("index.html", "sw.js", "i18n/en.json", ".env"):
        (tmp_path / name).write_text(name)
    files = load_files(tmp_path)
    assert set(files) == {"index.html", "sw.js", "i18n/en.json"}  # dot files are never served
    app = WebApp(files, "http://localhost:8000", "http://127.0.0.1:8000")
    for screen in ("", "authorize", "inbox", "devices/dev-1"):
        assert app.file_for(screen).body == b"index.html"
    assert app.file_for("i18n/en.json").body == b"i18n/en.json"
    for unknown in ("missing.js", ".env", "i18n/../sw.js", "i18n//en.json", "./sw.js"):
        assert app.file_for(unknown) is None, unknown


def test_a_missing_folder_is_no_files_and_every_path_is_none(tmp_path):
    app = WebApp(load_files(tmp_path / "absent"), "http://localhost:8000", "http://127.0.0.1:8000")
    assert app.files == {} and app.file_for("") is None and app.file_for("sw.js") is None
    assert app.config()["rp_id"] == "localhost"
