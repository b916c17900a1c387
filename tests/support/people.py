"""Identity data for test citizens: valid and invalid HKID numbers, selfies, whole identities."""

from __future__ import annotations

import io
import os
import random
import uuid
from datetime import date, timedelta

from PIL import Image

from services.auth.identity.hkid import check_digit


def random_hkid() -> str:
    prefix = random.choice("ABCDEGHKMPRVWYZ")
    digits = f"{random.randrange(10**6):06d}"
    return f"{prefix}{digits}({check_digit(prefix, digits)})"


def wrong_check_digit(hkid: str) -> str:
    right = hkid[-2]
    wrong = next(c for c in "0123456789A" if c != right)
    return hkid[:-2] + wrong + ")"


def selfie(size: int = 160) -> bytes:
    """A photographic-enough PNG: random noise, so every selfie's bytes are unique."""
    image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def identity(**overrides) -> dict:
    data = {
        "id_number": random_hkid(),
        "name_en": f"CHAN Tai Man {uuid.uuid4().hex[:6].upper().replace('0', 'X').translate(str.maketrans('123456789', 'ABCDEFGHJ'))}",
        "name_zh": "陳大文",
        "date_of_birth": (date(1950, 1, 1) + timedelta(days=random.randrange(15000))).isoformat(),
        "gender": "M",
        "phone": f"+8529{random.randrange(10**7):07d}",
        "email": f"citizen-{uuid.uuid4().hex[:8]}@example.hk",
        "address": "Flat 12A, 8 Harbour Road, Wan Chai, Hong Kong",
        "language": "zh-HK",
    }
    data.update(overrides)
    return data
