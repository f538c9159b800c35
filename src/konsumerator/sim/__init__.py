"""The workload simulator: a Kafka topic and its consumers, for the demo and the scorecard."""
