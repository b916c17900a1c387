"""The login page draws its QR code itself (services/auth/oidc/templates/qr_code.js): run by node here, its code is
module for module segno's (error level M, raised as segno raises it, the page's fixed mask) and its SVG segno's markup
character for character — for login links of every shape and for text of every length a QR code holds (versions 1
to 40, levels M, Q and H) — and an independent reader (zxing-cpp) scans what it draws back to the link."""

from __future__ import annotations

import io
import json
import random
import string
import subprocess
from pathlib import Path

import segno

from services.auth.oidc import pages, qr_links
from services.auth.oidc.pages import QR_MASK

from ..support.node import tool

SCRIPT = Path(pages.__file__).with_name("templates") / "qr_code.js"
SEGNO_OPTIONS = {"scale": 5, "dark": "#000", "light": "#fff", "svgclass": "qr-code", "lineclass": None, "omitsize": True}

# Runs the page's encoder on each [text, mask, title] read from stdin; its svg() builds the element on a minimal
# document that writes markup back (attributes in the order set, text and attributes escaped as segno escapes them).
HARNESS = """
const qr = require(process.argv[1]);
const escape = (s, quotes) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
  .replace(/"/g, quotes ? "&quot;" : '"');
const document = {
  createElementNS(ns, name) {
    return {name, attributes: [], children: [], textContent: "",
      setAttribute(k, v) { this.attributes.push([k, String(v)]); },
      appendChild(child) { this.children.push(child); }};
  }
};
const markup = (e) => {
  const attributes = e.attributes.map(([k, v]) => ` ${k}="${escape(v, true)}"`).join("");
  const inner = e.children.map(markup).join("") + escape(e.textContent, false);
  return e.name === "path" ? `<path${attributes}/>` : `<${e.name}${attributes}>${inner}</${e.name}>`;
};
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(cases.map(([text, mask, title]) =>
  [qr.encode(text, mask), markup(qr.svg(document, text, mask, title))])));
"""


def drawn_by_the_page(cases: list[tuple[str, int, str]]) -> list[tuple[list[list[int]], str]]:
    """(matrix, svg markup) for each (text, mask, title), from the page's own script run by node."""
    done = subprocess.run([tool("node"), "-e", HARNESS, str(SCRIPT)], input=json.dumps(cases), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def login_links(count: int, rng: random.Random) -> list[str]:
    """QR links as auth makes them (qr_links.qr_link), under issuers of several shapes, t from 0 to a long login's."""
    issuers = ["http://127.0.0.1:8000", "https://id.harbour.gov.hk", "https://login.x.example:8443/idp/harbour"]
    keys = [bytes(rng.randrange(256) for _ in range(32)) for _ in range(3)]
    tx_alphabet = string.ascii_letters + string.digits + "-_"
    return [qr_links.qr_link(rng.choice(issuers), rng.choice(keys), "".join(rng.choices(tx_alphabet, k=rng.choice([16, 43]))),
                             rng.choice([0, 1, 9, 59, 299, rng.randrange(10_000_000)])) for _ in range(count)]


def texts_of_every_length(rng: random.Random) -> list[str]:
    """Text in byte mode (lower-case letters), 1 to 2,300 bytes: every version from 1 to 40 at level M or above."""
    alphabet = string.ascii_letters + string.digits + "-_.~/?&=%:"
    return ["h" + "".join(rng.choices(alphabet, k=n)) for n in [*range(0, 400, 3), *range(400, 2300, 37)]]


def test_the_pages_code_and_svg_are_segnos_own():
    rng = random.Random(20261203)
    titles = ["QR code to log in with the Harbour ID app", "以 Harbour ID 應用程式登入的二維碼", 'Scan <me> & "you"', ""]
    cases = [(text, QR_MASK, rng.choice(titles)) for text in login_links(300, rng) + texts_of_every_length(rng)]
    cases += [(text, mask, titles[0]) for text in texts_of_every_length(rng)[::9] for mask in range(8)]
    seen_versions, seen_levels = set(), set()
    for (text, mask, title), (matrix, svg) in zip(cases, drawn_by_the_page(cases), strict=True):
        code = segno.make(text, error="m", mask=mask, micro=False)
        assert matrix == [list(row) for row in code.matrix], (text, mask, code.version, code.error)
        assert svg == code.svg_inline(title=title, **SEGNO_OPTIONS), (text, mask)
        seen_versions.add(code.version)
        seen_levels.add(code.error)
    # The cases reach every version (the version information from 7 on, the widest block layouts) and every level
    # the boost can choose.
    assert seen_versions == set(range(1, 41)) and seen_levels == {"M", "Q", "H"}


def test_a_login_link_is_never_a_micro_qr_code():
    """segno would draw a Micro QR code for a very short text; no login link is that short, so the page's code (never
    Micro) is what segno draws for every link the page shows."""
    shortest = qr_links.qr_link("http://a.b", b"k" * 32, "x", 0)
    assert segno.make(shortest, error="m", mask=QR_MASK).is_micro is False


def test_what_the_page_draws_scans_back_to_the_link():
    """The longest QR link of a login (the issuer's https form, 43-character tx, t in the millions) and a short one,
    drawn by the page's script and read by zxing-cpp, which knows nothing of segno."""
    import zxingcpp
    from PIL import Image

    links = [qr_links.qr_link("https://login.x.example:8443/idp/harbour", b"k" * 32, "x" * 43, 9_999_999),
             qr_links.qr_link("http://127.0.0.1:8000", b"k" * 32, "y" * 16, 0)]
    for link, (matrix, _) in zip(links, drawn_by_the_page([(link, QR_MASK, "") for link in links]), strict=True):
        scale, border = 4, 4
        side = (len(matrix) + 2 * border) * scale
        image = Image.new("L", (side, side), 255)
        for y, row in enumerate(matrix):
            for x, dark in enumerate(row):
                if dark:
                    image.paste(0, ((x + border) * scale, (y + border) * scale, (x + border + 1) * scale,
                                    (y + border + 1) * scale))
        png = io.BytesIO()
        image.save(png, format="PNG")
        [found] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.getvalue())))
        assert found.text == link and found.format == zxingcpp.BarcodeFormat.QRCode
