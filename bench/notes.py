"""The prose of ``BENCHMARKS.md``: how the figures are measured, and what they mean."""

from __future__ import annotations

from typing import Any

METHOD = """
## Method

Everything runs on one machine: a fresh single-node Kafka ({kafka_note}), the project's
LLM simulator (`streams simulate-llm`, its own process, over HTTP), each worker as the
real entry point `streams run <pipeline> --config <generated toml>` in its own process,
and the benchmark driver. Scenarios run one after the other, never side by side.

- **Clock.** A pipeline run starts when the worker logs its first partition
  assignment (it has joined its group; interpreter start-up, imports, settings,
  registry and cache load are behind it) and ends at the broker append time of
  the last output record. Output topics are created with
  `message.timestamp.type=LogAppendTime`, so that time is when the broker
  acknowledged the last output. Progress is polled from the output watermarks.
- **(a) overhead.** {overhead_records} records (the 23 invoice samples in
  rotation, distinct keys), simulator latency 0, result cache off
  (`worker.cache=false`) so every record makes one model call. Baseline: a bare
  `faust.App` agent (`bench/faust_forward.py`) forwarding the same input bytes to an
  output topic, run on its own afterwards. Both rates use the same window, first
  output to last output, because faust's group-join moment is not visible from
  outside; the pipeline's rate from group join is reported beside it.
- **(b) latency-bound.** {latency_bound_records} records over 1,000 keys (100 with
  `--quick`), simulator latency 200 ms and `--max-concurrency 64`, worker
  `max_in_flight=64`, `llm.max_connections=64`, cache off. Ideal: 64 / 0.2 s = 320
  rec/s. Key order: the valid topic is read back, and per key the provenance's
  `source_offset` must increase in output order. Sequential: {sequential_records}
  records with `max_in_flight=1`.
- **(c) replay.** Pipeline with the cache on, over (b)'s input: one run warms the
  cache, `streams.replay.reset_offsets(..., to_earliest=True)` rewinds the group, and
  the second run is measured. Model calls are the simulator's `/_sim/stats` total
  before and after.
- **(d) memory.** The kernel's peak resident set (`VmHWM` in `/proc/<pid>/status`) of
  every worker process, read just before it is stopped.
- **(e) scale-out.** 6-partition input, simulator latency 100 ms with a limit of 256
  concurrent requests, 64 in flight per worker. The input ({scaleout_records}
  records) is produced only once all workers hold partitions, and the clock runs
  from then to the last output. Kill run: three workers, one SIGKILLed after a
  third of the outputs; once the group has committed the whole input, every input
  key must be in exactly one output topic at least once; extra outputs are counted
  as duplicates.
"""


class _Safe(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def method(results: dict[str, Any]) -> str:
    values = _Safe(results)
    values.setdefault("kafka_note", f"Apache Kafka {results['machine']['kafka']}, own data dir")
    return METHOD.format_map(values)


def notes_for(results: dict[str, Any]) -> str:
    """Honest notes on every target that was missed (and on the ones worth a caveat)."""
    notes: list[str] = []
    ratio = results.get("overhead_ratio")
    if ratio is not None and ratio < 0.8:
        notes.append(
            f"- **overhead_ratio {ratio:.3f} (target 0.8): missed.** See the profile below."
        )
    frac = results.get("latency_bound_fraction_of_ideal")
    if frac is not None and frac < 0.9:
        notes.append(f"- **latency-bound {frac:.1%} of ideal (target 90%): missed.**")
    replay = results.get("replay_rps")
    if replay is not None and replay < 2000:
        notes.append(f"- **replay {replay:,.0f} rec/s (target 2,000): missed.**")
    return "\n".join(notes) or "- Every target was met in this run."
