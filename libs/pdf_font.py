"""The font PDFs are written with when they must print Chinese: the demo relying party's application PDF (fpdf2) and
signing's visible signature stamps (pyHanko).

One TrueType file (or collection, whose first face is used) covering Latin and Traditional and Simplified Chinese:
by default WenQuanYi Micro Hei from Debian's `fonts-wqy-microhei` (`make up` and `make test` install it; the image's
Dockerfile too). It is never part of this repository. A process that writes such PDFs checks the file at start
(`checked_font`) and refuses to start without it, rather than mangle a citizen's name into question marks later.

fontTools (a dependency of fpdf2 and of pyHanko's OpenType support) is imported only when a face is read.
"""

from __future__ import annotations

import functools
import io

from .service.settings import SettingsError, env, setting

DEFAULT_PDF_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
INSTALL_HINT = "on Debian: apt-get install fonts-wqy-microhei (`make up` and `make test` do)"
# The first bytes of a TrueType or OpenType font, or of a collection of them.
_FONT_MAGICS = (b"\x00\x01\x00\x00", b"true", b"OTTO", b"ttcf")
# Dropped from the face a stamp embeds: kerning and ligatures, vertical metrics (GPOS: ~1 s of fontTools' subsetting per signature for
# WenQuanYi, ~0.05 s without), and tables fontTools cannot subset. Plain horizontal text of Latin and Han needs neither.
_NOT_FOR_STAMPS = ("GPOS", "GSUB", "GDEF", "FFTM", "vhea", "vmtx")


def pdf_font_setting() -> str:
    """HARBOUR_PDF_FONT: the TrueType font (or collection) PDFs that print Chinese are written with."""
    return setting("PDF_FONT", DEFAULT_PDF_FONT)


def pdf_font_from_env() -> str:
    """HARBOUR_PDF_FONT for a process without a settings class (the demo relying party), checked."""
    return checked_font(env("PDF_FONT", DEFAULT_PDF_FONT))


def checked_font(path: str) -> str:
    """`path`, if it is a readable TrueType/OpenType font file; otherwise the process should not start."""
    try:
        with open(path, "rb") as file:
            magic = file.read(4)
    except OSError as exc:
        raise SettingsError(f"HARBOUR_PDF_FONT: no readable font at {path} ({exc.strerror}); {INSTALL_HINT}") from None
    if magic not in _FONT_MAGICS:
        raise SettingsError(f"HARBOUR_PDF_FONT: {path} is not a TrueType or OpenType font")
    return path


@functools.lru_cache(maxsize=2)
def font_face(path: str) -> bytes:
    """The font as one TrueType/OpenType face for pyHanko's stamps: the file, or a collection's first face (pyHanko reads
    no collections), without the tables in _NOT_FOR_STAMPS. Read once per process; a PDF embeds only the glyphs it
    uses (a subset)."""
    from fontTools.ttLib import TTFont

    with open(path, "rb") as file:
        data = file.read()
    font = TTFont(io.BytesIO(data), fontNumber=0 if data.startswith(b"ttcf") else -1, lazy=True)
    for tag in _NOT_FOR_STAMPS:
        if tag in font:
            del font[tag]
    if "post" in font:
        font["post"].formatType = 3.0  # no glyph names: 30,000 of them are most of the rest of the subsetting's time
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


# Every printable ASCII character, always in a stamp's face: the fixed wording, digits and the time's punctuation.
_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))


def stamp_face(path: str, text: str) -> bytes:
    """font_face(path) cut down to the glyphs of `text` and printable ASCII, at 1,000 units per em: a few kilobytes that
    pyHanko then parses and subsets in milliseconds, where the whole face (34,000 glyphs) costs it most of a second per
    stamp. CPU-bound (fontTools, ~0.5 s): signing calls it in a thread."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(font_face(path)), lazy=True)
    subsetter = subset.Subsetter(subset.Options(
        layout_features=[], glyph_names=False, notdef_outline=True, name_IDs=["*"], name_languages=["*"], hinting=False))
    subsetter.populate(text=_ASCII + text)
    subsetter.subset(font)
    if font["head"].unitsPerEm != 1000:
        # pyHanko writes the font's advance widths into the PDF as they are, where PDF means thousandths of an em:
        # WenQuanYi's 2,048 units per em spread every glyph twice as wide as drawn. Scaled to 1,000, they agree.
        from fontTools.ttLib.scaleUpem import scale_upem

        scale_upem(font, 1000)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()
