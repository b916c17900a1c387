"""The local face matcher: which selfies it accepts, why it rejects the rest, and what it never keeps.

Every test image is generated in memory with Pillow; nothing is read from or
written to disk.
"""

from __future__ import annotations

import builtins
import dataclasses
import io
import os
import random
import struct
import tempfile
import zlib

import pytest
from PIL import Image

from services.auth.identity import proofing
from services.auth.identity.proofing import (
    MAX_SELFIE_BYTES,
    MAX_SELFIE_PIXELS,
    FaceMatcher,
    LocalFaceMatcher,
    ProofingResult,
    SelfieRejected,
)


def noise(width: int = 200, height: int = 200, *, seed: int = 1) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **options)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a width x height canvas but carries no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def assert_message_is_clean(exc: SelfieRejected, data: bytes) -> None:
    """The error carries a short human message and a reason code, and nothing of the image."""
    message = str(exc)
    assert exc.args == (message,)
    assert vars(exc) == {"reason": exc.reason}
    assert 0 < len(message) < 120 and message.isascii() and message.isprintable()
    # No run of the message occurs in the image, so no image bytes are in the message.
    for start in range(len(message) - 7):
        assert message[start : start + 8].encode() not in data
    if data:
        assert repr(data[:8])[2:-1] not in message
        assert data[:8].hex() not in message
    # Nothing chained: a PIL exception (and its frames) would otherwise ride along.
    assert exc.__cause__ is None and exc.__context__ is None


async def rejected(data: bytes, matcher: LocalFaceMatcher | None = None) -> SelfieRejected:
    with pytest.raises(SelfieRejected) as info:
        await (matcher or LocalFaceMatcher()).match(data)
    assert_message_is_clean(info.value, data)
    return info.value


# --- accepted ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
async def test_noise_passes(fmt: str) -> None:
    result = await LocalFaceMatcher().match(encode(noise(), fmt))
    assert isinstance(result, ProofingResult)
    assert result.passed is True
    assert 0.2 <= result.score <= 1.0
    assert result.method == "local-image-quality"


async def test_phone_style_mpo_jpeg_passes() -> None:
    data = encode(noise(seed=2), "MPO", save_all=True, append_images=[noise(seed=3)])
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "MPO"
    assert (await LocalFaceMatcher().match(data)).passed


async def test_other_png_modes_pass() -> None:
    grey = noise().convert("L")
    palette = noise().convert("P")
    rgba = noise().convert("RGBA")
    for img in (grey, palette, rgba):
        assert (await LocalFaceMatcher().match(encode(img, "PNG"))).passed


async def test_score_is_deterministic() -> None:
    data = encode(noise(seed=9), "JPEG")
    first = await LocalFaceMatcher().match(data)
    second = await LocalFaceMatcher().match(data, reference="kiosk-photo-123")
    assert first == second


async def test_minimum_size_is_inclusive() -> None:
    assert (await LocalFaceMatcher().match(encode(noise(64, 64), "PNG"))).passed


# --- rejected ---------------------------------------------------------------


async def test_solid_colour_is_low_quality() -> None:
    data = encode(Image.new("RGB", (200, 200), (200, 150, 120)), "PNG")
    assert (await rejected(data)).reason == "low-quality"


async def test_threshold_is_configurable() -> None:
    data = encode(noise(), "PNG")
    assert (await rejected(data, LocalFaceMatcher(threshold=0.99))).reason == "low-quality"
    flat = encode(Image.new("RGB", (200, 200), (10, 10, 10)), "PNG")
    result = await LocalFaceMatcher(threshold=0.0).match(flat)
    assert result.passed and result.score == pytest.approx(0.0)


@pytest.mark.parametrize("threshold", [-0.1, 1.1, float("nan")])
def test_threshold_must_be_a_fraction(threshold: float) -> None:
    with pytest.raises(ValueError):
        LocalFaceMatcher(threshold=threshold)


@pytest.mark.parametrize("size", [(32, 32), (63, 200), (200, 63)])
async def test_small_noise_is_too_small(size: tuple[int, int]) -> None:
    assert (await rejected(encode(noise(*size), "PNG"))).reason == "too-small"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
async def test_other_formats_are_unsupported(fmt: str) -> None:
    assert (await rejected(encode(noise(), fmt))).reason == "unsupported-format"


async def test_random_bytes_are_not_an_image() -> None:
    data = random.Random(4).randbytes(50_000)
    assert (await rejected(data)).reason == "not-an-image"


async def test_empty_is_not_an_image() -> None:
    assert (await rejected(b"")).reason == "not-an-image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
async def test_truncated_image_is_not_an_image(fmt: str) -> None:
    data = encode(noise(), fmt)
    assert (await rejected(data[: len(data) // 2])).reason == "not-an-image"


async def test_corrupt_png_is_not_an_image() -> None:
    data = bytearray(encode(noise(), "PNG"))
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    assert (await rejected(bytes(data))).reason == "not-an-image"


async def test_over_the_byte_limit_is_too_large_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    monkeypatch.setattr("PIL.Image.open", lambda *a, **k: opened.append(a))  # Pillow is loaded on first use
    data = random.Random(5).randbytes(MAX_SELFIE_BYTES + 1)
    assert (await rejected(data)).reason == "too-large"
    assert opened == []


async def test_exactly_the_byte_limit_is_decoded() -> None:
    data = random.Random(6).randbytes(MAX_SELFIE_BYTES)
    assert (await rejected(data)).reason == "not-an-image"


async def test_declared_canvas_over_the_pixel_limit_is_too_large() -> None:
    # 7000 x 7000 = 49 MP: over our limit, under Pillow's own warning level.
    assert 7000 * 7000 > MAX_SELFIE_PIXELS
    data = png_header_only(7000, 7000)
    assert len(data) < 100
    assert (await rejected(data)).reason == "too-large"


async def test_pillow_decompression_bomb_is_too_large() -> None:
    # 400 MP: Pillow itself refuses this in Image.open.
    assert (await rejected(png_header_only(20_000, 20_000))).reason == "too-large"


# --- what it never does or keeps -------------------------------------------


async def test_never_touches_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the matcher must not touch the disk")

    accepted = encode(noise(), "JPEG")
    bad = encode(noise(), "GIF")
    for target, name in [(builtins, "open"), (os, "open"), (tempfile, "mkstemp"), (tempfile, "NamedTemporaryFile"), (tempfile, "TemporaryFile")]:
        monkeypatch.setattr(target, name, forbidden)
    assert (await LocalFaceMatcher().match(accepted)).passed
    assert (await rejected(bad)).reason == "unsupported-format"


def test_local_matcher_is_a_face_matcher() -> None:
    matcher: FaceMatcher = LocalFaceMatcher()
    assert callable(matcher.match)


def test_result_is_frozen() -> None:
    result = ProofingResult(score=0.5, passed=True, method="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.passed = False  # type: ignore[misc]


def test_selfie_rejected_is_a_value_error_with_a_reason() -> None:
    exc = SelfieRejected("too-small", "selfie must be at least 64x64 pixels")
    assert isinstance(exc, ValueError)
    assert exc.reason == "too-small"
    assert str(exc) == "selfie must be at least 64x64 pixels"
