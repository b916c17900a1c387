"""MongoDB access: the client factory, index declarations, transactions."""

from .client import DATABASE, MONGO_CLIENT, create_client, install_mongo, ping
from .indexes import IndexSpec, apply_indexes, index
from .transactions import in_transaction

__all__ = [
    "DATABASE",
    "MONGO_CLIENT",
    "IndexSpec",
    "apply_indexes",
    "create_client",
    "in_transaction",
    "index",
    "install_mongo",
    "ping",
]
