"""Bus fixtures: the shared Redis (unique namespace per test) and private redis-servers."""

from tests.integration.bus.redis_fixtures import redis_ns, redis_proc, redis_url

__all__ = ["redis_ns", "redis_proc", "redis_url"]
