"""The harness's PostgreSQL and Redis are real servers, ready for the later issues' stores."""

import pytest
import redis
import sqlalchemy as sa

pytestmark = pytest.mark.integration


def test_redis_answers(redis_url):
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    client.close()


def test_postgres_has_pg_trgm(database_url):
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        version = connection.execute(sa.select(sa.func.current_setting("server_version_num")))
        assert int(version.scalar_one()) >= 150000
        similarity = connection.execute(sa.select(sa.func.similarity("timeout", "timeouts")))
        assert similarity.scalar_one() > 0.5
    engine.dispose()
