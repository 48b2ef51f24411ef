"""Contract-first LLM extraction on Kafka."""
