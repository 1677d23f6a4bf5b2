"""REDIS_SENTINELS read into the three Redis users' settings (portal/redis_conn.py); that they
follow a real failover is tests/fleet/test_failover_sentinel.py."""

from __future__ import annotations

import pytest

from portal import redis_conn

SENTINELS = [("10.0.0.1", 26379), ("10.0.0.2", 26380)]


def test_sentinels_are_host_port_pairs_and_anything_else_is_refused() -> None:
    assert redis_conn.parse_sentinels("") == []
    assert redis_conn.parse_sentinels(" 10.0.0.1:26379, 10.0.0.2:26380 ,") == SENTINELS
    assert redis_conn.parse_sentinels("[::1]:26379") == [("::1", 26379)]
    for bad in ("10.0.0.1", "10.0.0.1:port", ":26379"):
        with pytest.raises(ValueError, match="not host:port"):
            redis_conn.parse_sentinels(bad)


def test_without_sentinels_every_user_connects_to_redis_url_as_before() -> None:
    url = "redis://127.0.0.1:6379/0"
    assert redis_conn.celery_broker(url, [], "fleetport") == (url, {})
    assert redis_conn.channel_layer_host(url, [], "fleetport", socket_timeout=10) == {
        "address": url,
        "socket_timeout": 10,
    }


def test_with_sentinels_the_broker_and_the_layer_ask_them_for_the_primary() -> None:
    url = "redis://:s%40cret@unused:6379/3"
    broker, options = redis_conn.celery_broker(url, SENTINELS, "fleetport")
    assert broker == "sentinel://:s%40cret@10.0.0.1:26379/3;sentinel://:s%40cret@10.0.0.2:26380/3"
    assert options["master_name"] == "fleetport"
    host = redis_conn.channel_layer_host(url, SENTINELS, "fleetport", socket_timeout=10)
    assert host["sentinels"] == SENTINELS
    assert host["master_name"] == "fleetport"
    assert (host["db"], host["password"], host["socket_timeout"]) == (3, "s@cret", 10)
    assert "address" not in host
