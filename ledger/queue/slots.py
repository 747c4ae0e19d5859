"""Reading many project streams with one consumer group, on one Redis server or a Redis Cluster.

One Redis server: ONE ``XREADGROUP`` names every stream (as the writers always did), and blocks.

A Redis Cluster refuses a command whose keys lie in different hash slots (CROSSSLOT), and every
project has its own tag ``{p:<project_id>}``, so its own slot. There the streams are grouped by
slot, one ``XREADGROUP`` per slot, all sent in one pipeline (one round trip per master, in
parallel), each sent straight to the master that holds its slot (no ``COMMAND GETKEYS`` round
trip to find the keys of a command whose keys move). Every stream still gets the same ``COUNT``
per round, so projects are served as fairly as on one server. A pipeline cannot block (a blocked
command holds up those behind it on the same connection), so after an empty round the reader
waits instead, from ``CLUSTER_POLL_MIN_SECONDS`` doubling to ``CLUSTER_POLL_MAX_SECONDS`` while
nothing comes (a busy queue is read again at once, an idle one costs one pipelined round per
master per reader every 100 ms); a single slot is read with a blocking command as on one server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from ledger import bus

logger = logging.getLogger(__name__)

#: How long a cluster reader waits after a round that found nothing in any slot, first and at
#: most: the latency a lone entry may see after a quiet spell, against the cost of idle rounds.
CLUSTER_POLL_MIN_SECONDS = 0.005
CLUSTER_POLL_MAX_SECONDS = 0.1


def by_slot(cluster: RedisCluster, keys: list[str]) -> list[list[str]]:
    """``keys`` grouped by hash slot, in the order each slot first appears."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(cluster.keyslot(key), []).append(key)
    return list(groups.values())


class GroupReader:
    """One consumer's reads of many streams (``read``); on a cluster it keeps the idle wait."""

    def __init__(self, redis: aioredis.Redis, group: str, consumer: str) -> None:
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self._poll = CLUSTER_POLL_MIN_SECONDS

    async def read(self, streams: Mapping[str, str], *, count: int,
                   block_ms: int | None = None) -> list[Any]:
        """``XREADGROUP`` of ``streams`` (name → id: ``">"`` for new entries, ``"0"`` for own
        pending), at most ``count`` entries from each; the reply as ``redis.xreadgroup`` gives
        it (``[[stream, [(id, fields), …]], …]``).

        Raises:
            redis.exceptions.RedisError: the read failed (``NOGROUP``: a stream or its group
                vanished). On a cluster, only when no slot answered with entries: what other
                slots delivered is returned, and a slot that failed is read again next round.
        """
        cluster = bus.cluster_of(self.redis)
        if cluster is None:
            named: Any = dict(streams)
            reply: Any = await self.redis.xreadgroup(self.group, self.consumer, named,
                                                     count=count, block=block_ms)
            return list(reply or [])
        # The slot map is learnt at the first command (and again after a failover moved slots).
        await cluster.initialize()
        groups = by_slot(cluster, list(streams))
        if not groups:
            return []
        if len(groups) == 1:
            keys = groups[0]
            reply = await cluster.execute_command(
                *self._command(streams, keys, count, block_ms),
                target_nodes=cluster.get_node_from_key(keys[0]))
            return list(reply or [])
        out = await self._read_slots(cluster, streams, groups, count)
        if out:
            self._poll = CLUSTER_POLL_MIN_SECONDS
        elif block_ms:
            await asyncio.sleep(min(self._poll, block_ms / 1000))
            self._poll = min(self._poll * 2, CLUSTER_POLL_MAX_SECONDS)
        return out

    async def _read_slots(self, cluster: RedisCluster, streams: Mapping[str, str],
                          groups: list[list[str]], count: int) -> list[Any]:
        pipe = cluster.pipeline(transaction=False)
        for keys in groups:
            pipe.execute_command(*self._command(streams, keys, count, None),
                                 target_nodes=cluster.get_node_from_key(keys[0]))
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        out: list[Any] = []
        errors: list[Exception] = []
        for part in replies:
            if isinstance(part, Exception):
                errors.append(part)
            elif part:
                out += part
        if errors:
            if not out:
                raise errors[0]
            logger.warning("queue: %d of %d slots could not be read this round (%s); they are"
                           " read again next round", len(errors), len(groups), errors[0])
        return out

    def _command(self, streams: Mapping[str, str], keys: list[str], count: int,
                 block_ms: int | None) -> list[Any]:
        args: list[Any] = ["XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        return [*args, "STREAMS", *keys, *[streams[key] for key in keys]]
