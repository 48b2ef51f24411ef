"""``streams eval``: is model B as good as model A on my documents, under my contract?

Each labelled sample (``NAME.txt`` with ``NAME.json``, the expected record) goes
through the real pipeline stages (decode, budget gate, provider call, repair,
validate, re-ask, grounding, Avro encode) with no Kafka: the cache is off, the
registry is the in-process ``mock://`` and each outcome is read back from the
bytes the valid topic would carry. Per model configuration it reports the valid
rate, exact and normalised match per field, the fields most often wrong, the
routes with their invalid reasons, attempts, tokens, cost, latency percentiles
and grounding coverage; with two configurations, the difference per field and
the samples where they disagree::

    streams eval invoice contracts/samples/invoice \\
        --model label=before,base_url=http://127.0.0.1:8080/v1,model=qwen,schema_profile=legacy \\
        --model label=after,base_url=http://127.0.0.1:8080/v1,model=qwen,schema_profile=llamacpp \\
        --json eval.json --html eval.html --min-valid-rate 0.8
"""

from streams.eval._models import ModelConfig, parse_model
from streams.eval._run import SampleResult, evaluate
from streams.eval._samples import Sample, load_samples
from streams.eval._score import summarise

__all__ = [
    "ModelConfig",
    "Sample",
    "SampleResult",
    "evaluate",
    "load_samples",
    "parse_model",
    "summarise",
]
