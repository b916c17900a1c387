"""Identity proofing: judging a citizen's selfie through a `FaceMatcher`.

Production deployments plug in a real face matcher (e.g. the kiosk vendor's
service comparing the selfie with the identity card photo). The local
default, `LocalFaceMatcher`, cannot compare faces; it only checks that the
upload is a real, decodable, reasonably detailed JPEG or PNG, so that
development and tests exercise the same rejections the real thing has.

Selfies are biometric personal data, and untrusted input to an image
decoder. Hence the rules here: size limits are enforced before decoding,
decoding happens in memory only (never on disk), errors carry a short
reason code and a message without any image data, and nothing keeps a
reference to the bytes once `match` has returned or raised.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import Protocol


__all__ = [
    "MAX_SELFIE_BYTES",
    "MAX_SELFIE_PIXELS",
    "MIN_SELFIE_SIDE",
    "FaceMatcher",
    "LocalFaceMatcher",
    "ProofingResult",
    "SelfieRejected",
]

MAX_SELFIE_BYTES = 2 * 1024 * 1024
# Decompression-bomb guard: a small file can declare a huge canvas. 40 MP is
# far above any phone selfie and far below Pillow's own (global) limit, which
# we deliberately leave alone rather than change for the whole process.
MAX_SELFIE_PIXELS = 40_000_000
MIN_SELFIE_SIDE = 64

# Pillow's format names we decode. "MPO" is how Pillow labels the JPEGs many
# phone cameras write (a baseline JPEG plus extra APP2 images); it is decoded
# by the JPEG decoder, so refusing it would reject ordinary selfies.
_ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "MPO"})

# The largest possible standard deviation of 8-bit values (half 0, half 255).
_MAX_GREY_STDDEV = 127.5

DEFAULT_QUALITY_THRESHOLD = 0.2
LOCAL_METHOD = "local-image-quality"


class SelfieRejected(ValueError):
    """The selfie cannot be assessed at all; the citizen should retake it.

    `reason` is a short machine code ("too-large", "not-an-image",
    "unsupported-format", "too-small", "low-quality") for clients and
    metrics; the message is for humans and never contains image data.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ProofingResult:
    """A matcher's verdict: `score` in 0..1, whether it passed, and which method judged."""

    score: float
    passed: bool
    method: str


class FaceMatcher(Protocol):
    """Judges a selfie. Raises SelfieRejected when the image is unusable.

    `reference` is an opaque hint for matchers that compare against a known
    photo (e.g. the kiosk's document-photo id); matchers may ignore it.
    """

    async def match(self, selfie: bytes, *, reference: str | None = None) -> ProofingResult: ...


@dataclass(frozen=True)
class _Rejection:
    """A rejection returned (not raised) from the worker thread.

    Returning instead of raising means no traceback, and so no frame whose
    locals hold the selfie, outlives the decode.
    """

    reason: str
    message: str


def _too_large() -> _Rejection:
    return _Rejection("too-large", "selfie is too large")


def _assess(selfie: bytes) -> float | _Rejection:
    """Decode `selfie` in memory and score its detail (0..1), or say why not.

    CPU-bound; runs in a worker thread. Pillow is loaded on the first selfie, not at start (2 MB of every auth).
    """
    from PIL import Image, ImageStat

    try:
        with io.BytesIO(selfie) as buffer, Image.open(buffer) as img:
            if img.format not in _ACCEPTED_FORMATS:
                return _Rejection("unsupported-format", "selfie must be a JPEG or PNG image")
            # Image.open has read only the header; check the declared canvas
            # before load() allocates it.
            width, height = img.size
            if width * height > MAX_SELFIE_PIXELS:
                return _too_large()
            if width < MIN_SELFIE_SIDE or height < MIN_SELFIE_SIDE:
                return _Rejection(
                    "too-small",
                    f"selfie must be at least {MIN_SELFIE_SIDE}x{MIN_SELFIE_SIDE} pixels",
                )
            img.load()  # full decode: truncated or corrupt data fails here
            with img.convert("L") as grey:
                stddev = ImageStat.Stat(grey).stddev[0]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard (or its warning, if warnings are errors).
        return _too_large()
    except Exception:
        # Malformed input makes Pillow raise many exception types (OSError,
        # SyntaxError, ValueError, struct.error, ...); all mean the same here.
        return _Rejection("not-an-image", "selfie is not a readable image")
    return min(1.0, max(0.0, stddev / _MAX_GREY_STDDEV))


class LocalFaceMatcher:
    """The local default matcher: image sanity and a detail score, no face comparison.

    The score is the greyscale standard deviation normalised to 0..1: a flat
    single-colour image scores about 0, a photograph or noise well above the
    default threshold. It is deterministic, so tests can rely on it. Below
    the threshold the selfie is rejected as "low-quality" (retake it), the
    same way a real matcher rejects an unusable photo; a result that is
    returned has therefore always passed.
    """

    def __init__(self, *, threshold: float = DEFAULT_QUALITY_THRESHOLD) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        self._threshold = threshold

    @property
    def threshold(self) -> float:
        return self._threshold

    async def match(self, selfie: bytes, *, reference: str | None = None) -> ProofingResult:
        del reference  # no document photo to compare with locally
        if len(selfie) > MAX_SELFIE_BYTES:
            outcome: float | _Rejection = _too_large()  # never decoded
        elif not selfie:
            outcome = _Rejection("not-an-image", "selfie is empty")
        else:
            outcome = await asyncio.to_thread(_assess, selfie)
        # A raised SelfieRejected keeps this frame alive in its traceback;
        # drop the bytes first so a logged or stored error cannot pin them.
        del selfie
        if isinstance(outcome, _Rejection):
            raise SelfieRejected(outcome.reason, outcome.message)
        if outcome < self._threshold:
            raise SelfieRejected("low-quality", "selfie shows too little detail")
        return ProofingResult(score=outcome, passed=True, method=LOCAL_METHOD)
