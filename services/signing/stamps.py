"""The optional visible signature on a PDF: a field on a page, in a box, with a stamp that shows the name the citizen
approved, "Signed with Harbour ID" and the signing time, in the platform's PDF font (libs/pdf_font.py: Latin and
Chinese, embedded as a subset). Without an appearance a signature stays invisible.

`appearance`: {"page": 1-based, "box": [x1, y1, x2, y2] in PDF points from the page's origin (lower left), "name":
shown or None}. signing_requests.Appearance checks its shape; check_appearance checks its page and box against the PDF,
in the sandbox (uploads.inspect_upload), before the request is stored.

fontTools and HarfBuzz (pyHanko's OpenType engine, ~16 MB) are imported by the first stamp, not with this module:
the sandbox's forkserver preloads uploads.py, which imports this (and libs/pdf_font.py, with libs.service, is imported
by the first visible signature too).
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from pyhanko.pdf_utils.font.api import FontEngine, FontEngineFactory
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.rw_common import find_inherited_value_in_tree
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields
from pyhanko.stamp import TextStampStyle

from .reports import InvalidAppearance

STAMP_TEXT = "%(signer)s\nSigned with Harbour ID\n%(ts)s"
STAMP_TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"  # pyHanko's signing time, in the process's time zone, named
STAMP_FONT_SIZE = 10  # scaled down to fit a smaller box


def check_appearance(reader: PdfFileReader, pages: int, appearance: dict[str, Any]) -> None:
    """The appearance's page is in the PDF and its box inside that page's MediaBox; InvalidAppearance otherwise."""
    page = appearance["page"]
    if page > pages:
        raise InvalidAppearance(f"the PDF has {pages} page(s): there is no page {page}")
    page_ref, _ = reader.find_page_for_modification(page - 1)
    media = find_inherited_value_in_tree(page_ref.get_object(), "/MediaBox", "/Parent")
    if media is None or len(media) != 4:
        raise InvalidAppearance(f"page {page} has no usable MediaBox")
    x = sorted((float(media[0]), float(media[2])))
    y = sorted((float(media[1]), float(media[3])))
    x1, y1, x2, y2 = appearance["box"]
    if not (x[0] <= x1 and x2 <= x[1] and y[0] <= y1 and y2 <= y[1]):
        raise InvalidAppearance(f"the box {list(appearance['box'])} is not inside page {page} "
                                f"([{x[0]:g}, {y[0]:g}, {x[1]:g}, {y[1]:g}])")


def field_spec(name: str, appearance: dict[str, Any] | None) -> fields.SigFieldSpec:
    """The new signature field: invisible, or on the appearance's page in its box."""
    if appearance is None:
        return fields.SigFieldSpec(name)
    return fields.SigFieldSpec(name, on_page=appearance["page"] - 1, box=tuple(appearance["box"]))


class FaceInMemory(FontEngineFactory):
    """pyHanko's OpenType font engine (GlyphAccumulator) over a face in memory (libs/pdf_font.stamp_face), not a file."""

    def __init__(self, face: bytes, font_size: int = STAMP_FONT_SIZE) -> None:
        self.face = face
        self.font_size = font_size

    def create_font_engine(self, writer: Any, obj_stream: Any = None) -> FontEngine:
        from pyhanko.pdf_utils.font.opentype import GlyphAccumulator

        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(writer=writer, font_handle=io.BytesIO(self.face), font_size=self.font_size, obj_stream=obj_stream)


async def visible(appearance: dict[str, Any] | None, field_name: str, *, font: str, signer_name: str) -> dict[str, Any]:
    """PdfSigner's keyword arguments for the appearance (none: an invisible signature), with the stamp's text
    parameters as `text_params`. The name shown is the approved one, else the certificate's (`signer_name`)."""
    if appearance is None:
        return {}
    from libs.pdf_font import stamp_face  # (it brings libs.service, which the sandbox's forkserver does without)

    shown = appearance.get("name") or signer_name
    face = await asyncio.to_thread(stamp_face, font, shown)  # fontTools, CPU-bound (~0.5 s): off the event loop
    style = TextStampStyle(stamp_text=STAMP_TEXT, timestamp_format=STAMP_TIME_FORMAT, border_width=1, background=None,
                           text_box_style=TextBoxStyle(font=FaceInMemory(face)))
    return {"stamp_style": style, "new_field_spec": field_spec(field_name, appearance), "text_params": {"signer": shown}}
