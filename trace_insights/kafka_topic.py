"""Creating the span topic, shared by the collector and the aggregator."""

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError


def ensure_topic(servers: list[str], topic: str, partitions: int, replication: int) -> None:
    """Create ``topic`` if missing; an existing topic keeps its own partition count."""
    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="trace-insights-admin")
    try:
        if topic in admin.list_topics():
            return
        admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=replication)]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
