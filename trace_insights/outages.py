"""Which errors are outages: a store or broker that cannot be reached or cannot take writes
just now. An outage is waited out (retry, 503 with Retry-After); any other error raised while
handling a record is taken to come from what the record holds, so retrying cannot help."""

import redis.exceptions as redis_errors
import sqlalchemy.exc as sql_errors
from kafka.errors import KafkaError

_LOST = (
    OSError,
    KafkaError,
    sql_errors.OperationalError,  # connection lost or refused, server shutting down, disk full
    sql_errors.InterfaceError,
    sql_errors.DisconnectionError,
    sql_errors.TimeoutError,  # no pool connection in time
)
# Server replies that mean "not now" rather than "not this".
_REDIS_REPLIES = (
    redis_errors.ReadOnlyError,  # a replica during failover
    redis_errors.OutOfMemoryError,
    redis_errors.BusyLoadingError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
)


# PostgreSQL's SQLSTATE classes that mean the server, not the statement: connection (08),
# insufficient resources (53), operator intervention (57), system error (58), and a
# transaction to run again (40: serialization failure, deadlock). Others — 22 data exception,
# 23 integrity, 54 program limit (an index row too large: a value) — come from the values.
_SERVER_STATES = ("08", "53", "57", "58", "40")


def is_outage(exc: BaseException) -> bool:
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(exc, sql_errors.DBAPIError) and isinstance(state, str):
        return state[:2] in _SERVER_STATES
    if isinstance(exc, _LOST):
        return True
    if isinstance(exc, redis_errors.RedisError):
        if isinstance(exc, _REDIS_REPLIES):
            return True
        # a reply to a command it could not run on these values, or a value it cannot encode
        return not isinstance(exc, redis_errors.ResponseError | redis_errors.DataError)
    return False


def dependency_of(exc: BaseException) -> str:
    """The dependency an outage is of, in words (for a 503 and its log line)."""
    if isinstance(exc, redis_errors.RedisError):
        return "the aggregate store (Redis)"
    if isinstance(exc, sql_errors.SQLAlchemyError):
        return "the database"
    if isinstance(exc, KafkaError):
        return "Kafka"
    return "a dependency"


def database_problem(exc: sql_errors.SQLAlchemyError) -> str:
    """A database error in one line: the driver's own message when there is one."""
    return f"{exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}"
