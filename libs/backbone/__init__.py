"""Above the service kit, the store and the events: what every back-end service's domain stands on.

`install_backbone` wires a service's database, producer and outbox relay into
its app; `ServiceContext` is what its use cases are handed (no aiohttp).
"""

from .context import ServiceContext
from .install import install_backbone

__all__ = ["ServiceContext", "install_backbone"]
