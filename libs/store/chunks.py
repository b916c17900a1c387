"""Long id lists in slices: `$in` filters of at most IN_CHUNK ids, bulk commands of at most BULK_CHUNK operations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

# The local MongoDB-protocol server checks each document an `$in` filter finds against the whole list, one
# comparison after another, so a read by `_id` costs it more the longer the list: reading 10,000 documents by `_id`
# took it 77 µs of CPU per document in lists of 100, 40 µs in lists of 25 (as in lists of 10, with more round trips;
# docs/operations.md). MongoDB looks each id up in the index and is indifferent.
IN_CHUNK = 25
# Operations per bulk command (libs/store/bulk.py): each is an update by `_id` alone, no list to check, so
# longer commands mean fewer round trips; 100 keeps a single command from holding the local server for long.
BULK_CHUNK = 100


def chunks(ids: Sequence[T], size: int = IN_CHUNK) -> list[list[T]]:
    """`ids` in consecutive slices of at most `size`, in order."""
    return [list(ids[start:start + size]) for start in range(0, len(ids), size)]
