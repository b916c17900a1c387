"""Which partitions a consumer process reads, decided in the service's database instead of by the broker.

Kafka's group protocol hands partitions out at a rebalance, and a member that
died without leaving holds its share until the broker evicts it. The local
broker never evicts one, so a service restarted after SIGKILL would wait for
its dead predecessor forever; a production broker waits `session.timeout.ms`.
Instead, each consumer process holds time-limited leases on partitions in the
service's own MongoDB (the store every replica already shares) and assigns
itself those partitions; committed offsets stay in the broker under the group.

- Every process renews its membership and its leases every `renew_every_s`
  (a third of `ttl_s` by default); a lease lapses `ttl_s` after its last renewal.
- A process keeps at most its fair share (partitions / live members, rounded
  up) and takes free or lapsed partitions up to that share, so replicas
  spread the partitions between them and a dead one's share moves to the
  others within `ttl_s`.
- The owner id is the process's instance id (HARBOUR_INSTANCE_ID: host and
  port by default), so a process restarted in place — a crashed container in
  the same pod, a service restarted by `make up` — takes back its own leases
  at once instead of waiting for them to lapse.

Two processes may briefly both read a partition (one paused past its lease,
then resumed): the consumer's processed-event marker keeps the effect once.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pymongo
from aiokafka import TopicPartition
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from libs.store.indexes import index

# How long a stopping process tries to give its leases back before leaving them to lapse.
RELEASE_TIMEOUT_S = 2.0

LEASES_COLLECTION = "consumer_leases"
MEMBERS_COLLECTION = "consumer_members"
LEASE_INDEXES = (
    index(LEASES_COLLECTION, "group"),
    index(MEMBERS_COLLECTION, "group"),
    # Lapsed members are forgotten after a day (a live one renews every few seconds).
    index(MEMBERS_COLLECTION, "expires_at", name="members_ttl", expire_after_s=24 * 3600),
)


def _lease_id(group: str, tp: TopicPartition) -> str:
    return f"{group}|{tp.topic}|{tp.partition}"


class PartitionLeases:
    def __init__(self, leases: AsyncCollection, members: AsyncCollection, *, group: str, owner: str,
                 ttl_s: float = 10.0) -> None:
        self.leases = leases
        self.members = members
        self.group = group
        self.owner = owner
        self.ttl_s = ttl_s

    async def claim(self, partitions: list[TopicPartition], now: datetime | None = None) -> set[TopicPartition]:
        """Renew this process's membership and leases; return the partitions it may read until the next call."""
        now = now or datetime.now(UTC)
        expires = now + timedelta(seconds=self.ttl_s)
        await self.members.update_one({"_id": f"{self.group}|{self.owner}"},
                                      {"$set": {"group": self.group, "owner": self.owner, "expires_at": expires}},
                                      upsert=True)
        live = await self.members.count_documents({"group": self.group, "expires_at": {"$gt": now}})
        share = math.ceil(len(partitions) / max(live, 1))

        held = await self._held(partitions)
        for tp in sorted(held, key=_order)[share:]:  # more than the share: give the rest back
            await self.leases.delete_one({"_id": _lease_id(self.group, tp), "owner": self.owner})
            held.discard(tp)
        if held:
            await self.leases.update_many({"group": self.group, "owner": self.owner, "_id": {"$in": [
                _lease_id(self.group, tp) for tp in held]}}, {"$set": {"expires_at": expires}})
        for tp in sorted(partitions, key=_order):
            if len(held) >= share:
                break
            if tp not in held and await self._take(tp, now, expires):
                held.add(tp)
        return held

    async def release(self, timeout_s: float = RELEASE_TIMEOUT_S) -> None:
        """Give every lease back (a clean stop), so another replica takes the partitions without waiting. Bounded:
        a stop must not wait on a database that does not answer (the leases lapse by themselves within `ttl_s`)."""
        with pymongo.timeout(timeout_s):
            await self.leases.delete_many({"group": self.group, "owner": self.owner})
            await self.members.delete_one({"_id": f"{self.group}|{self.owner}"})

    async def _held(self, partitions: list[TopicPartition]) -> set[TopicPartition]:
        by_id = {_lease_id(self.group, tp): tp for tp in partitions}
        docs = await self.leases.find({"group": self.group, "owner": self.owner}, {"_id": 1}).to_list()
        return {by_id[doc["_id"]] for doc in docs if doc["_id"] in by_id}

    async def _take(self, tp: TopicPartition, now: datetime, expires: datetime) -> bool:
        lease_id = _lease_id(self.group, tp)
        try:
            # Matches a lease that is ours or has lapsed; no match inserts, which a live lease refuses.
            await self.leases.update_one(
                {"_id": lease_id, "$or": [{"owner": self.owner}, {"expires_at": {"$lte": now}}]},
                {"$set": {"group": self.group, "owner": self.owner, "expires_at": expires}},
                upsert=True,
            )
            return True
        except DuplicateKeyError:
            return False


def _order(tp: TopicPartition) -> tuple[str, int]:
    return tp.topic, tp.partition
