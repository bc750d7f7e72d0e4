"""Test-side name of :mod:`server.local_redis` (the fixtures and fault tests import it from here)."""

from server.local_redis import RedisServer, find_redis_server, free_port, start_redis  # noqa: F401
