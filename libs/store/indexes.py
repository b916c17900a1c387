"""Index declarations: each store module lists its indexes; start-up applies them.

Creating an index that already exists with the same options is a no-op in
MongoDB, so applying on every start is safe. An index a newer version no
longer needs is retired by name (`retire_indexes`): left in place, every
write would still pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: Sequence[tuple[str, int]]
    name: str
    unique: bool = False
    # Documents expire this many seconds after the date in the (single) key field.
    expire_after_s: int | None = None
    partial_filter: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def model(self) -> IndexModel:
        kwargs: dict[str, Any] = {"name": self.name, **self.options}
        if self.unique:
            kwargs["unique"] = True
        if self.expire_after_s is not None:
            kwargs["expireAfterSeconds"] = self.expire_after_s
        if self.partial_filter is not None:
            kwargs["partialFilterExpression"] = self.partial_filter
        return IndexModel(list(self.keys), **kwargs)


def index(collection: str, *fields: str, **kwargs: Any) -> IndexSpec:
    """Shorthand: `index("outbox", "sent_at", expire_after_s=86400)`; `-field` sorts descending."""
    keys = [(f[1:], -1) if f.startswith("-") else (f, ASCENDING) for f in fields]
    name = kwargs.pop("name", None) or f"{collection}_" + "_".join(k for k, _ in keys)
    return IndexSpec(collection=collection, keys=keys, name=name, **kwargs)


async def apply_indexes(db: AsyncDatabase, specs: Iterable[IndexSpec]) -> None:
    by_collection: dict[str, list[IndexModel]] = {}
    for spec in specs:
        by_collection.setdefault(spec.collection, []).append(spec.model())
    for collection, models in by_collection.items():
        await db[collection].create_indexes(models)


async def retire_indexes(db: AsyncDatabase, collection: str, names: Iterable[str]) -> None:
    """Drop the named indexes of `collection` where an older version made them (absent ones are fine)."""
    present = {spec["name"] async for spec in await db[collection].list_indexes()}
    for name in names:
        if name in present:
            await db[collection].drop_index(name)
