"""LEDGER_REDIS_APPENDFSYNC reaches the embedded Redis (issue 9, durability).

``everysec`` stays the default: ``always`` measured 20-80 % slower on the enqueue step
(bench/bench_durability.py, bench/RESULTS.md), over the 15 % that would have made it the default.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from ledger.config import Settings
from ledger.embedded import EmbeddedRedis
from ledger.errors import ConfigError


@pytest.mark.parametrize(("env", "expected"), [({}, "everysec"),
                                               ({"LEDGER_REDIS_APPENDFSYNC": "always"}, "always")])
def test_the_embedded_redis_fsyncs_as_configured(tmp_path: Path, env: dict[str, str],
                                                 expected: str) -> None:
    settings = Settings.from_env(env)
    server = EmbeddedRedis(tmp_path / "redis", appendfsync=settings.redis_appendfsync)
    client = redis.Redis.from_url(server.start())
    try:
        assert client.config_get("appendfsync") == {"appendfsync": expected}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        client.close()
        server.stop()


def test_an_unknown_fsync_policy_is_refused() -> None:
    with pytest.raises(ConfigError, match="LEDGER_REDIS_APPENDFSYNC must be one of"):
        Settings.from_env({"LEDGER_REDIS_APPENDFSYNC": "no"})
