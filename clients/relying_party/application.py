"""The utility's application: its fields, their checks, and the PDF the citizen signs."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from fpdf import FPDF

PLANS = ("standard", "green")
_PHONE = re.compile(r"^\+?[0-9 ]{8,16}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[a-z]{2,}$", re.IGNORECASE)


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

    def to_pdf(self) -> bytes:
        """A one-page PDF of the application (Latin text: the core PDF fonts need no font files)."""
        pdf = FPDF(format="A4")
        pdf.set_title(f"Application {self.reference}")
        pdf.set_author("Harbour Power & Light (demo)")
        pdf.set_creation_date(self.created_at)
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.cell(0, 12, "Harbour Power & Light", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 13)
        pdf.cell(0, 9, "Application to open an electricity account", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(6)
        rows = (("Reference", self.reference), ("Applicant", self.name), ("Supply address", self.address),
                ("Phone", self.phone), ("E-mail", self.email or "-"), ("Tariff", self.plan),
                ("Date", self.created_at.strftime("%Y-%m-%d %H:%M UTC")))
        for label, value in rows:
            pdf.set_font("Helvetica", "B", 11)
            pdf.cell(45, 8, label)
            pdf.set_font("Helvetica", "", 11)
            pdf.multi_cell(0, 8, _latin(value), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(8)
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(0, 6, "I apply for an electricity account at the address above and confirm that the "
                             "details are correct. Signed electronically with Harbour ID.")
        return bytes(pdf.output())


def _latin(text: str) -> str:
    """The core fonts cover Latin-1 only; anything else is shown as '?' rather than failing."""
    return text.encode("latin-1", "replace").decode("latin-1")
