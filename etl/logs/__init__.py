"""Business logs: parsers into ECS-style documents, loading into Elasticsearch, analysis jobs."""
