"""The utility's application: its fields, their checks, and the PDF the citizen signs."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from fpdf import FPDF

from libs.pdf_font import DEFAULT_PDF_FONT

PLANS = ("standard", "green")
_PHONE = re.compile(r"^\+?[0-9 ]{8,16}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[a-z]{2,}$", re.IGNORECASE)
# Where the applicant's visible signature goes on the A4 page (PDF points from the lower left): the box under
# "Applicant's signature", which the site asks signing to stamp (clients/relying_party/signing_handlers.py).
MM = 72 / 25.4
_A4_HEIGHT_MM = 297
_BOX_MM = (20, 228, 110, 253)  # left, top, right, bottom, in fpdf2's millimetres from the top left
SIGNATURE_BOX = [round(_BOX_MM[0] * MM, 2), round((_A4_HEIGHT_MM - _BOX_MM[3]) * MM, 2),
                 round(_BOX_MM[2] * MM, 2), round((_A4_HEIGHT_MM - _BOX_MM[1]) * MM, 2)]


class InvalidApplication(ValueError):
    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(", ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Application:
    reference: str
    name: str
    address: str
    phone: str
    email: str
    plan: str
    created_at: datetime

    @classmethod
    def from_form(cls, form: dict[str, str]) -> "Application":
        values = {k: (form.get(k) or "").strip() for k in ("name", "address", "phone", "email", "plan")}
        problems = {}
        if not 2 <= len(values["name"]) <= 120:
            problems["name"] = "required"
        if not 5 <= len(values["address"]) <= 300:
            problems["address"] = "required"
        if not _PHONE.match(values["phone"]):
            problems["phone"] = "invalid"
        if values["email"] and not _EMAIL.match(values["email"]):
            problems["email"] = "invalid"
        if values["plan"] not in PLANS:
            problems["plan"] = "invalid"
        if problems:
            raise InvalidApplication(problems)
        return cls(reference=f"HP-{secrets.token_hex(4).upper()}", created_at=datetime.now(UTC), **values)

    @property
    def document_name(self) -> str:
        return f"Harbour Power application {self.reference}.pdf"

    def to_pdf(self, font: str = DEFAULT_PDF_FONT) -> bytes:
        """A one-page PDF of the application in `font` (HARBOUR_PDF_FONT: Latin and Chinese, embedded as a subset), so a
        name or address in Chinese prints as typed; below it, the box the applicant's visible signature goes in.
        CPU-bound (the font is parsed each time, ~0.5 s): the site calls it in a thread."""
        pdf = FPDF(format="A4")
        pdf.set_title(f"Application {self.reference}")
        pdf.set_author("Harbour Power & Light (demo)")
        pdf.set_creation_date(self.created_at)
        pdf.add_font("platform", "", font)
        pdf.add_page()
        pdf.set_font("platform", "", 18)
        pdf.cell(0, 12, "Harbour Power & Light", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("platform", "", 13)
        pdf.cell(0, 9, "Application to open an electricity account", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(6)
        rows = (("Reference", self.reference), ("Applicant", self.name), ("Supply address", self.address),
                ("Phone", self.phone), ("E-mail", self.email or "-"), ("Tariff", self.plan),
                ("Date", self.created_at.strftime("%Y-%m-%d %H:%M UTC")))
        pdf.set_font("platform", "", 11)
        for label, value in rows:
            pdf.set_text_color(90, 90, 90)
            pdf.cell(45, 8, label)
            pdf.set_text_color(0, 0, 0)
            pdf.multi_cell(0, 8, value, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(8)
        pdf.set_font("platform", "", 10)
        pdf.multi_cell(0, 6, "I apply for an electricity account at the address above and confirm that the "
                             "details are correct. Signed electronically with Harbour ID.")
        left, top, right, bottom = _BOX_MM
        pdf.set_xy(left, top - 7)
        pdf.cell(0, 6, "Applicant's signature")
        pdf.set_draw_color(170, 170, 170)
        pdf.rect(left, top, right - left, bottom - top)
        return bytes(pdf.output())
