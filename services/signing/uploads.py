"""An upload checked as a PDF this service can sign, and the signature field a new signature goes into.

The sandbox's job for an upload (`inspect_upload`) lives here, apart from signatures.py: the forkserver preloads this
module and verify.py, and with them only pyHanko's reader and writer - not the HSM, the authority, the TSA and the
database driver signatures.py brings, which no parsing worker uses (docs/operations.md, idle RSS). signatures.py
imports these for its own PDF signatures.
"""

from __future__ import annotations

import io
from typing import Any

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields

from .reports import InvalidAppearance, InvalidPdf  # defined without pyHanko, they cross the sandbox
from .stamps import check_appearance, field_spec

FIELD_NAME = "HarbourID-Signature"  # the first signature's field; a countersignature's is FIELD_NAME-2, -3, ...


def check_pdf(data: bytes) -> int:
    """Validate an upload as a signable PDF; its page count."""
    if not data.startswith(b"%PDF-"):
        raise InvalidPdf("the document is not a PDF (no %PDF- header)")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            raise InvalidPdf("encrypted PDFs cannot be signed here")
        pages = int(reader.root["/Pages"]["/Count"])
    except InvalidPdf:
        raise
    except Exception as exc:  # pyHanko's reader raises many types on a malformed file
        raise InvalidPdf(f"the PDF cannot be read: {exc}") from None
    if pages < 1:
        raise InvalidPdf("the PDF has no pages")
    return pages


def new_field_name(reader: PdfFileReader) -> str:
    """A signature field name the PDF does not have yet: each signature goes into its own new field, in its own
    incremental update, so the signatures already there (ours or anyone's) keep their byte ranges."""
    taken = {name for name, _, _ in fields.enumerate_sig_fields(reader)}
    if FIELD_NAME not in taken:
        return FIELD_NAME
    n = 2
    while f"{FIELD_NAME}-{n}" in taken:
        n += 1
    return f"{FIELD_NAME}-{n}"


def inspect_upload(data: bytes, appearance: dict[str, Any] | None = None) -> int:
    """Sandbox job (services/signing/sandbox.py): check_pdf, the appearance's page and box (check_appearance), then a
    dry run of the revision sign_pdf will add.

    sign_pdf later runs in the main process (the key is in the HSM there); the dry run makes pyHanko parse
    here, under the sandbox's limits, everything it will parse then, and refuses now what it could not sign.
    """
    pages = check_pdf(data)
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
        if appearance is not None:
            check_appearance(writer.prev, pages, appearance)
        fields.append_signature_field(writer, field_spec(new_field_name(writer.prev), appearance))
        writer.write(io.BytesIO())
    except InvalidAppearance:
        raise
    except Exception as exc:  # pyHanko raises many types on a file it cannot add a revision to
        raise InvalidPdf(f"a signature cannot be added to this PDF: {exc}") from None
    return pages
