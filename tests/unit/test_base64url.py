"""libs/base64url: unpadded base64url, decoded strictly."""

from __future__ import annotations

import os

import pytest

from libs import base64url


def test_round_trip_without_padding():
    for size in range(40):
        data = os.urandom(size)
        text = base64url.encode(data)
        assert "=" not in text and "+" not in text and "/" not in text
        assert base64url.decode(text) == data
        assert base64url.decode(text + "=" * (-len(text) % 4)) == data  # padding is accepted too


@pytest.mark.parametrize("text", ["a+b/", "ab cd", "abcde", "ab==cd", "ab===", "é"])
def test_anything_outside_the_alphabet_is_refused(text):
    # The standard library would skip the stray characters and decode something.
    with pytest.raises(ValueError):
        base64url.decode(text)
