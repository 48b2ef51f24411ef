"""Contract-first LLM extraction on Kafka."""

import warnings

# confluent-kafka's schema-registry client imports authlib's httpx integration,
# which warns on import about a rename that does not concern us. Narrow filter:
# this one message only.
warnings.filterwarnings(
    "ignore", message="The httpx module is deprecated", category=DeprecationWarning
)
