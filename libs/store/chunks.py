"""Long `$in` lists in slices, for every query and update that names many ids at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

# The local MongoDB-protocol server slows down super-linearly with longer `$in` lists; 100 keeps each query cheap.
IN_CHUNK = 100


def chunks(ids: Sequence[T], size: int = IN_CHUNK) -> list[list[T]]:
    """`ids` in consecutive slices of at most `size`, in order."""
    return [list(ids[start:start + size]) for start in range(0, len(ids), size)]
