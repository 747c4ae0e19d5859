"""``LEDGER_REDIS_URL`` for a Redis Cluster, and grouping streams by hash slot."""

from __future__ import annotations

import pytest
from redis.asyncio.cluster import RedisCluster

from ledger import bus
from ledger.config import Settings
from ledger.core.connections import connect_redis
from ledger.errors import ConfigError, UnavailableError
from ledger.queue import names
from ledger.queue.slots import by_slot
from tests.ports import free_port


@pytest.mark.parametrize("url", [
    "redis+cluster://10.0.0.1:7000",
    "redis+cluster://10.0.0.1:7000,10.0.0.2:7000,redis-3.internal:7001",
    "rediss+cluster://ledger:s3cr%40t@10.0.0.1:7000,10.0.0.2:7000/",
    "redis+cluster://[::1]:7000",
])
def test_cluster_urls_are_accepted(url: str) -> None:
    settings = Settings.from_env({"LEDGER_REDIS_URL": url})
    assert settings.redis_url == url
    assert bus.is_cluster_url(url)


@pytest.mark.parametrize(("url", "message"), [
    ("redis+cluster://", "list the cluster's nodes"),
    ("redis+cluster://10.0.0.1", "list the cluster's nodes"),
    ("redis+cluster://10.0.0.1:7000/2", "no database"),
    ("redis+cluster://10.0.0.1:7000,,10.0.0.2:7000", "list the cluster's nodes"),
    ("redis+sentinel://10.0.0.1:26379", "must start with redis://"),
])
def test_bad_cluster_urls_say_what_form_is_wanted(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"LEDGER_REDIS_URL": url})


def test_cluster_nodes_and_credentials_are_parsed() -> None:
    nodes, user, password = bus.cluster_nodes(
        "rediss+cluster://ledger:s3cr%40t@10.0.0.1:7000,[::1]:7001")
    assert nodes == [("10.0.0.1", 7000), ("::1", 7001)]
    assert (user, password) == ("ledger", "s3cr@t")
    with pytest.raises(ConfigError, match="database 0"):
        bus.cluster_nodes("redis+cluster://10.0.0.1:7000/1")


async def test_the_factory_gives_a_cluster_client_only_for_a_cluster_url() -> None:
    cluster = bus.client("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
    plain = bus.client("redis://127.0.0.1:6379/0")
    try:
        found = bus.cluster_of(cluster)
        assert isinstance(found, RedisCluster)
        assert [(n.host, n.port) for n in found.startup_nodes] == [
            ("127.0.0.1", 7000), ("127.0.0.1", 7001)]
        assert bus.cluster_of(plain) is None
    finally:
        await cluster.aclose()
        await plain.aclose()


async def test_streams_are_grouped_by_slot_in_order_of_first_appearance() -> None:
    cluster = bus.client("redis+cluster://127.0.0.1:7000")
    try:
        found = bus.cluster_of(cluster)
        assert found is not None
        keys = [names.queue_stream(p) for p in ("a", "b", "a")] + [names.dead_letters("a")]
        # One project's keys share its tag, so its slot; two projects are two slots.
        assert by_slot(found, keys) == [[keys[0], keys[2], keys[3]], [keys[1]]]
    finally:
        await cluster.aclose()


async def test_an_unreachable_cluster_is_unavailable_not_a_crash() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(UnavailableError, match="cannot reach the Redis Cluster"):
        await connect_redis(f"redis+cluster://127.0.0.1:{port}")
