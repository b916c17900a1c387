"""Hong Kong identity card numbers: parsing, normalising and the check digit.

A number is one or two capital letters, six digits and a check character
(0-9 or A) conventionally written in parentheses: ``A123456(3)``. Citizens
type it in many shapes (lower case, spaces, no parentheses), so we accept
those and store one canonical form; two spellings of one card must never
become two accounts.

The number is personal data. Error messages therefore describe what is wrong
without ever repeating the value, so they are safe to log and to return in
problem+json bodies.
"""

from __future__ import annotations

import re

__all__ = ["InvalidHKID", "check_digit", "parse_hkid"]

# Longer input is rejected before any work: a real number is at most 11
# characters, and the slack covers spaces a citizen might type.
_MAX_INPUT_LENGTH = 32

# ASCII only, on purpose: `\d` would also match other scripts' digits.
_CANONICAL_INPUT = re.compile(
    r"(?P<prefix>[A-Z]{1,2})(?P<digits>[0-9]{6})"
    r"(?:\((?P<check_paren>[0-9A])\)|(?P<check_bare>[0-9A]))"
)
_PREFIX = re.compile(r"[A-Z]{1,2}")
_DIGITS = re.compile(r"[0-9]{6}")

# A single-letter prefix is scored as if preceded by a space worth 36.
_SPACE_VALUE = 36
_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)

_WRONG_FORMAT = "identity card number has the wrong format"
_WRONG_CHECK = "identity card number check digit does not match"


class InvalidHKID(ValueError):
    """The input is not a valid identity card number.

    The message never contains the number itself (it is personal data).
    """


def _letter_value(letter: str) -> int:
    return ord(letter) - ord("A") + 10  # A=10 ... Z=35


def check_digit(prefix: str, digits: str) -> str:
    """The check character ("0"-"9" or "A") for `prefix` + `digits`.

    `prefix` must be one or two capital ASCII letters and `digits` exactly
    six ASCII digits; anything else raises InvalidHKID rather than producing
    a check character for a number that cannot exist.
    """
    if not _PREFIX.fullmatch(prefix) or not _DIGITS.fullmatch(digits):
        raise InvalidHKID(_WRONG_FORMAT)
    values = [_letter_value(c) for c in prefix]
    if len(values) == 1:
        values.insert(0, _SPACE_VALUE)
    values.extend(int(d) for d in digits)
    remainder = sum(w * v for w, v in zip(_WEIGHTS, values, strict=True)) % 11
    check = 11 - remainder  # 1..11
    if check == 11:
        return "0"
    if check == 10:
        return "A"
    return str(check)


def parse_hkid(value: str) -> str:
    """The canonical form (e.g. ``A123456(3)``) of an identity card number.

    Accepts lower case, spaces anywhere and a check character with or
    without its parentheses. Raises InvalidHKID if the shape is wrong or the
    check character does not match; the message never includes `value`.
    """
    if not isinstance(value, str) or len(value) > _MAX_INPUT_LENGTH or not value.isascii():
        # isascii first: str.upper() maps some non-ASCII letters to ASCII
        # ones (e.g. "ß" -> "SS"), which must not sneak through.
        raise InvalidHKID(_WRONG_FORMAT)
    compact = "".join(value.split()).upper()
    match = _CANONICAL_INPUT.fullmatch(compact)
    if match is None:
        raise InvalidHKID(_WRONG_FORMAT)
    prefix, digits = match["prefix"], match["digits"]
    given = match["check_paren"] or match["check_bare"]
    if check_digit(prefix, digits) != given:
        raise InvalidHKID(_WRONG_CHECK)
    return f"{prefix}{digits}({given})"
