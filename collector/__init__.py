"""The OTLP receiver: accepts traces over HTTP and gRPC and makes them durable in Kafka."""
