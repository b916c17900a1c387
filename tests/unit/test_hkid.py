"""Identity card numbers, checked against an independent re-implementation of the check digit.

The reference below uses the other published formulation of the rule: with
the check character valued 0-9 or A=10 at weight 1 (and a single-letter
prefix padded with a space worth 36), the weighted sum of all nine
characters is divisible by 11. Every sample number asserted on here was
computed with it, not copied from elsewhere.
"""

from __future__ import annotations

import random
import string

import pytest

from services.auth.identity.hkid import InvalidHKID, check_digit, parse_hkid

_CHECK_CHARS = "0123456789A"


def reference_is_valid(compact: str) -> bool:
    """True if `compact` (letters, six digits, check char; no parentheses) is valid."""
    padded = compact.rjust(9)  # one-letter prefix -> leading space
    values = [36 if c == " " else int(c, 36) for c in padded]  # int("A", 36) == 10
    return sum(v * w for v, w in zip(values, range(9, 0, -1))) % 11 == 0


def reference_generate(rng: random.Random) -> str:
    """A random valid number in canonical form, found by trying each check char."""
    prefix = "".join(rng.choices(string.ascii_uppercase, k=rng.choice((1, 2))))
    digits = "".join(rng.choices(string.digits, k=6))
    (check,) = [c for c in _CHECK_CHARS if reference_is_valid(prefix + digits + c)]
    return f"{prefix}{digits}({check})"


# Computed with reference_is_valid above.
VALID = ["A123456(3)", "AB987654(3)", "Z683365(A)", "G123456(A)", "XY000000(3)", "C668668(9)"]


def test_the_reference_agrees_with_the_samples() -> None:
    for number in VALID:
        assert reference_is_valid(number.replace("(", "").replace(")", ""))
    assert not reference_is_valid("A1234564")
    assert not reference_is_valid("Z6833655")


@pytest.mark.parametrize("number", VALID)
def test_valid_numbers_parse_to_themselves(number: str) -> None:
    assert parse_hkid(number) == number


def test_check_digit_of_the_samples() -> None:
    assert check_digit("A", "123456") == "3"
    assert check_digit("AB", "987654") == "3"
    assert check_digit("Z", "683365") == "A"
    assert check_digit("XY", "000000") == "3"


def test_check_digit_zero_when_the_remainder_is_zero() -> None:
    rng = random.Random(1)
    numbers = [reference_generate(rng) for _ in range(2000)]
    zeros = [n for n in numbers if n.endswith("(0)")]
    assert zeros, "the generator should produce some numbers whose check char is 0"
    for number in zeros:
        assert parse_hkid(number) == number


def test_agrees_with_the_reference_on_random_numbers() -> None:
    rng = random.Random(20240601)
    for _ in range(5000):
        number = reference_generate(rng)
        assert parse_hkid(number) == number
        body, check = number[:-3], number[-2]
        assert check_digit(body[:-6], body[-6:]) == check


def test_every_wrong_check_char_is_rejected() -> None:
    rng = random.Random(7)
    for _ in range(300):
        number = reference_generate(rng)
        for wrong in _CHECK_CHARS:
            if wrong == number[-2]:
                continue
            candidate = number[:-2] + wrong + ")"
            with pytest.raises(InvalidHKID, match="check digit does not match"):
                parse_hkid(candidate)


@pytest.mark.parametrize(
    "typed",
    ["A123456(3)", "a123456(3)", "A1234563", "a1234563", " A 123456 ( 3 ) ", "A123 456(3)\t", "\nA1234563\n"],
)
def test_accepted_spellings_normalise(typed: str) -> None:
    assert parse_hkid(typed) == "A123456(3)"


def test_check_char_a_accepted_in_lower_case() -> None:
    assert parse_hkid("z683365(a)") == "Z683365(A)"
    assert parse_hkid("z683365a") == "Z683365(A)"


def test_wrong_check_digit() -> None:
    with pytest.raises(InvalidHKID, match="check digit does not match"):
        parse_hkid("A123456(4)")
    with pytest.raises(InvalidHKID, match="check digit does not match"):
        parse_hkid("Z683365(5)")


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "C668668(E)",  # E is never a check character
        "A12345(3)",  # five digits
        "A1234567(3)",  # seven digits
        "ABC123456(3)",  # three letters
        "123456(3)",  # no letter
        "A123456()",
        "A123456(3",  # unbalanced
        "A1234563)",
        "A123456((3))",
        "A123456-3",
        "A12345X(3)",
        "A\u0661\u0662\u0663\u0664\u0665\u0666(3)",  # Arabic-Indic digits
        "\u00df123456(3)",  # upper-cases to "SS"
        "\uff21123456(3)",  # full-width A
        "A" + "1" * 100,
    ],
)
def test_wrong_format(typed: str) -> None:
    with pytest.raises(InvalidHKID, match="wrong format"):
        parse_hkid(typed)


def test_not_a_string_is_wrong_format() -> None:
    with pytest.raises(InvalidHKID, match="wrong format"):
        parse_hkid(None)  # type: ignore[arg-type]


def test_invalid_hkid_is_a_value_error() -> None:
    assert issubclass(InvalidHKID, ValueError)


@pytest.mark.parametrize("typed", ["A123456(4)", "AB987654(7)", "C668668(E)", "Q12345(6)"])
def test_messages_never_contain_the_number(typed: str) -> None:
    with pytest.raises(InvalidHKID) as info:
        parse_hkid(typed)
    message = str(info.value)
    assert message in (
        "identity card number has the wrong format",
        "identity card number check digit does not match",
    )
    digits = "".join(c for c in typed if c.isdigit())
    assert digits[:4] not in message
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("prefix", "digits"),
    [("", "123456"), ("ABC", "123456"), ("a", "123456"), ("A", "12345"), ("A", "1234567"), ("A", "12345X"), ("1", "123456")],
)
def test_check_digit_rejects_impossible_input(prefix: str, digits: str) -> None:
    with pytest.raises(InvalidHKID, match="wrong format"):
        check_digit(prefix, digits)
