"""Contract-first LLM extraction on Kafka."""

import contextlib
import warnings

# confluent-kafka's schema-registry client imports authlib's httpx integration,
# which warns on import about a rename that does not concern us. authlib installs
# an "always" filter for its warning class when imported, so import it first and
# put a narrow filter for this one message in front of it.
with contextlib.suppress(ImportError):
    import authlib.deprecate  # noqa: F401
warnings.filterwarnings(
    "ignore", message="The httpx module is deprecated", category=DeprecationWarning
)
