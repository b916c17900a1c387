"""MongoDB access: the client factory, index declarations, transactions, `$in` lists in slices."""

from .chunks import IN_CHUNK, chunks
from .client import DATABASE, MONGO_CLIENT, create_client, install_mongo, ping
from .indexes import IndexSpec, apply_indexes, index, retire_indexes
from .transactions import after_commit, at_commit, in_transaction

__all__ = [
    "DATABASE",
    "IN_CHUNK",
    "MONGO_CLIENT",
    "IndexSpec",
    "after_commit",
    "at_commit",
    "apply_indexes",
    "retire_indexes",
    "chunks",
    "create_client",
    "in_transaction",
    "index",
    "install_mongo",
    "ping",
]
