"""The prose of ``BENCHMARKS.md``: how the figures are measured, and what they mean.

The method and the notes are filled in from the results of the run. The profile
findings were measured separately (py-spy on a worker process, and two
experiments with fixes applied from outside the project's code); they are kept
here as text with the commit they were measured at, and should be re-measured
when the code they name changes.
"""

from __future__ import annotations

from typing import Any

METHOD = """
## Method

Everything runs on one machine: a fresh single-node Kafka ({kafka_note}), the project's
LLM simulator (`streams simulate-llm`, its own process, over HTTP), each worker as the
real entry point `streams run <pipeline> --config <generated toml>` in its own process
(default log level, `registry.url = "mock://"`), and the benchmark driver. Scenarios
run one after the other, never side by side.

- **Clock.** A pipeline run starts when the worker logs its first partition
  assignment (it has joined its group; interpreter start-up, imports, settings,
  registry and cache load are behind it) and ends at the broker append time of
  the last output record. Output topics are created with
  `message.timestamp.type=LogAppendTime`, so that time is when the broker
  acknowledged the last output. Progress is polled from the output watermarks.
- **(a) overhead.** {overhead_records} records (the 23 invoice samples in
  rotation, distinct keys, 6 partitions), simulator latency 0, result cache off
  (`worker.cache=false`) so every record makes one model call. Baseline: a bare
  `faust.App` agent (`bench/faust_forward.py`) forwarding the same input bytes to an
  output topic, run on its own afterwards. Both rates use the same window, first
  output to last output, because faust's group-join moment is not visible from
  outside; the pipeline's rate from group join is in `results.json` beside it.
- **(b) latency-bound.** {latency_bound_records} records over 1,000 keys (100 with
  `--quick`), simulator latency 200 ms and `--max-concurrency 64`, worker
  `max_in_flight=64`, `llm.max_connections=64`, cache off. Ideal: 64 / 0.2 s = 320
  rec/s. Key order: the valid topic is read back, and per key the provenance's
  `source_offset` must increase in output order. Sequential: {sequential_records}
  records with `max_in_flight=1`.
- **(c) replay.** A pipeline with the cache on, over (b)'s input: one run warms the
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
- **CPU.** User+system seconds of every process of the run (`/proc/<pid>/stat`) over
  each measured window, and the machine's busy time (`/proc/stat`); "other tenants"
  is the machine's busy time that none of the run's processes used.
"""

PROFILE = """
## Profile: where the worker's time goes, and the fixes I would make

Measured with `py-spy record -r 200 -f raw -- python -m streams run ...` on a worker
of scenario (a) (latency 0, 3,000 records), (b) (latency 200 ms, 64 connections, 2,000
records) and (c) (a replay of 3,000 cache hits), at commit `da94835`, summed by function
(inclusive share of all of the worker process's samples, start-up included). The
worker is one asyncio process, so it can use one core at most; in every scenario
above it was CPU-bound on that core well before the model latency mattered.

| function (inclusive) | (a) latency 0 | (b) 200 ms, 64 conns | (c) replay |
| --- | --- | --- | --- |
| httpx request path (`OpenAICompatProvider.complete` → httpcore) | 42% | 68% | - |
| of which httpcore `AsyncConnectionPool._assign_requests_to_connections` | 20% | 51% | - |
| of which httpcore `current_async_library` (a failed `import sniffio`) | 8% | 7% | - |
| `estimate_tokens` (via `Extractor.estimate`) | 17% | 8% | 19% |
| `streams.grounding.ground` | 18% | 9% | 38% |
| `AvroWireEncoder.encode` + `json.dumps` | 8% | 4% | 13% |
| `Prompt.version` (re-hashes the whole prompt per access) | 2% | 1% | 5% |

1. **httpcore's connection pool dominates the latency-bound case.** On every request
   start and finish, `_assign_requests_to_connections` walks all pooled connections and
   probes each (`has_expired` → `getpeername` + a `select` readability check, `is_idle`),
   so its cost grows with `max_connections`: at 64 connections it is half of the worker.
   Known upstream (encode/httpcore PR #1035, "O(N^2+N*M) → O(N+M)", still open for
   httpcore 1.0.9; fixed in the httpx2 fork, pydantic/httpx2 PRs #974 and #1075).
   *Fix:* send provider calls through a client whose pool is O(1) per request:
   `aiohttp.ClientSession` with `TCPConnector(limit=max_connections)` (aiohttp is
   already a dependency; only `streams/providers/_http.py` changes, its error table
   maps aiohttp's exceptions instead), or move to httpx2.
2. **A failed import on every request.** httpcore 1.0.9 imports `sniffio` inside
   `current_async_library()` for every lock, event and shielded close. anyio ≥ 4.11 no
   longer installs sniffio, the import fails, and Python retries the file-system
   search each time (encode/httpcore PR #1103). *Fix:* add `sniffio` to
   `[project] dependencies` in `pyproject.toml` (one line).
3. **The token estimate re-scans the fixed system prompt twice per record**
   (`Extractor.extract` for the gate, and `_paid_call` for the spend reservation).
   *Fix:* estimate the system message once in `Extractor.__init__` (it is fixed per
   contract and prompt version), pass the gate's estimate on to `_paid_call`, and on a
   cache hit skip the estimate entirely (a cached record has passed the gate before).
4. **Grounding is recomputed on every cache hit** (38% of a replay), and per record it
   builds a normalised view and scans every date and number of the document, even for
   fields that match exactly. *Fix:* store the grounding in the cache entry (it depends
   only on the record and the document, both fixed by the cache key); build the date and
   number indexes lazily, only when a field needs them.
5. **`Prompt.version` JSON-dumps and hashes the whole prompt on every access**, several
   times per record (provenance, headers, cache key). *Fix:* `functools.cached_property`
   (works on the frozen dataclass).

What fixes 1-3 buy was measured with them applied from outside the code (a
`sitecustomize.py` on `PYTHONPATH`, not committed: sniffio importable, the system-prompt
estimate memoised, and, for the last column, `httpx` aliased to `httpx2` 2.16.2), full
counts, same machine, same day:

| figure | as shipped | + sniffio, estimate once | + httpx2's pool |
| --- | --- | --- | --- |
| (a) pipeline rec/s (worker CPU per record) | 92 (8.6 ms) | 158 (5.4 ms) | 188 (5.3 ms) |
| (b) latency-bound rec/s (worker CPU per record) | 45 (18.6 ms) | 54 (16.6 ms) | 212 (4.6 ms) |
| (c) replay rec/s (worker CPU per record) | 221 (3.3 ms) | 416 (2.4 ms) | not run |

With those three, (b) reaches 66% of ideal and is again CPU-bound on one core
(4.6 ms per record: HTTP client 33%, grounding 29%, Avro and JSON 12%, the user
turn's estimate 6%). 320 rec/s needs about 3 ms per record on one core, so fixes 4 and 5
plus a leaner HTTP client (1) should close the latency-bound gap on an idle core; the
replay target (0.5 ms per record) needs 3-5 as well, and probably orjson for the
provenance and cache entry.

### Applied after this run (not yet re-measured by `make bench`)

At commit after `da94835`, fixes 2-5 went into the code: `sniffio` is a dependency,
the fixed system prompt's token estimate is computed once per extractor, the prompt
hash and system turn are cached, and a cache entry stores the record's grounding
(reused only when the input text is byte-identical, so spans stay correct). Fix 1
(the HTTP client's connection pool) is not done. The table above is from before
these changes; the next `make bench` run replaces it.
"""

LOCAL_MODEL = """
## The embedded local model (issue 7)

Measured by `tests/localmodel/test_local_model_pipeline.py` (run in `make test`):
two sample documents per contract through the full pipeline (real Kafka, strict
validation, repair, at most 2 attempts, grounding) against the llama.cpp server with
Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 2 threads, one request at a time, on the machine
above while other work held about one of its two cores (load average 3-4).

| contract | documents | valid | valid rate | seconds per document | why the others were invalid |
| --- | --- | --- | --- | --- | --- |
| invoice | 2 | 1 | 50% | 119.9 | amounts with float noise (`decimal_max_places`) |
| claim | 2 | 0 | 0% | 68.5 | `incident_after_reported`; dates in a layout repair did not parse |
| lead | 2 | 2 | 100% | 135.5 | - |

Seconds per document include both attempts when the first was re-asked. Generation ran
at about 10 tokens/s under that load (45 tokens/s reported on an idle machine). A later
run in `.ci/run` on a fresh clone gave the same valid rates (invoice 1/2 at 243 s per
document, claim 0/2 at 30 s, lead 2/2 at 18 s) and the same reasons: the invoice's
`decimal_max_places` errors are not float noise (a `round_float_noise` repair added in
between did not change them); the model writes amounts with more than two decimals.
"""


class _Safe(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def method(results: dict[str, Any]) -> str:
    values = _Safe(results)
    values.setdefault("kafka_note", f"Apache Kafka {results['machine']['kafka']}, own data dir")
    return METHOD.format_map(values)


def cpu_ms(results: dict[str, Any], scenario: str, records: str, process: str) -> float | None:
    """CPU milliseconds per record that ``process`` spent in ``scenario``."""
    cpu = results.get("cpu_seconds", {}).get(scenario, {})
    n = results.get(records)
    if f"{process}_s" not in cpu or not n:
        return None
    return 1000 * float(cpu[f"{process}_s"]) / int(n)


def others_cores(results: dict[str, Any], scenario: str) -> float | None:
    cpu = results.get("cpu_seconds", {}).get(scenario, {})
    if not cpu.get("wall_s"):
        return None
    return float(cpu["others_s"]) / float(cpu["wall_s"])


def _overhead(results: dict[str, Any]) -> list[str]:
    ratio = results.get("overhead_ratio")
    if ratio is None or ratio >= 0.8:
        return []
    worker = cpu_ms(results, "overhead", "overhead_records", "worker")
    faust = cpu_ms(results, "overhead_faust", "overhead_records", "faust")
    sim = cpu_ms(results, "overhead", "overhead_records", "simulator")
    return [
        f"- **overhead_ratio {ratio:.3f}, target 0.8: missed by a wide margin.** The worker "
        f"spent {worker or 0:.1f} ms of CPU per record, the bare faust agent "
        f"{faust or 0:.2f} ms, and the simulator alone {sim or 0:.2f} ms per request. "
        "Both are CPU-bound, so the ratio is the ratio of per-record CPU. The pipeline does "
        "per record what a byte-forwarder never does: build a schema-constrained request, "
        "an HTTP round trip, repair, pydantic validation, grounding, Avro encoding and an "
        "acknowledged produce. Measured with fixes 1-3 below applied, the worker needs "
        "5.3 ms per record (measured ratio 0.06-0.08); with 4 and 5 as well I estimate 2-3 ms "
        "(ratio 0.15-0.2, not measured). 0.8 is out of reach for any design that makes "
        "an HTTP call per record in Python: the simulator's side of that one exchange "
        f"alone costs {sim or 0:.2f} ms of CPU, more than faust's whole per-record path. A "
        "fair target needs a baseline that makes the same HTTP call (a faust agent plus one "
        "request per record), or a target in ms of CPU per record."
    ]


def _latency(results: dict[str, Any]) -> list[str]:
    frac = results.get("latency_bound_fraction_of_ideal")
    if frac is None or frac >= 0.9:
        return []
    worker = cpu_ms(results, "latency_bound", "latency_bound_records", "worker")
    return [
        f"- **latency-bound {frac:.1%} of the ideal 320 rec/s, target 90%: missed.** "
        f"The worker is CPU-bound, not latency-bound: {worker or 0:.1f} ms of CPU per "
        "record (one core allows about 3.1 ms at 320 rec/s), and half of it goes to "
        "httpcore's connection pool, whose cost grows with the 64 connections (finding 1). "
        "Concurrency itself works: the same model with one record in flight gives "
        f"{results.get('sequential_rps', 0):.2f} rec/s, {results.get('latency_bound_rps', 0):.0f} "
        f"with 64 ({results.get('latency_bound_speedup_vs_sequential', 0):.0f}x), no 429s, "
        "and key order held."
    ]


def _replay(results: dict[str, Any]) -> list[str]:
    rps = results.get("replay_rps")
    if rps is None or rps >= 2000:
        return []
    worker = cpu_ms(results, "replay", "replay_records", "worker")
    return [
        f"- **replay {rps:,.0f} rec/s, target 2,000: missed.** No model call was made "
        f"(`replay_model_calls` = {results.get('replay_model_calls')}), so this is pure "
        f"worker CPU: {worker or 0:.1f} ms per record where 2,000 rec/s allows 0.5. A "
        "cache hit still re-runs grounding, the token estimate over the system prompt, "
        "and re-hashes the prompt (findings 3-5)."
    ]


def _scaleout(results: dict[str, Any]) -> list[str]:
    if any(f"scaleout_rps_{n}" not in results for n in (1, 2, 3)):
        return []
    rates = [float(results[f"scaleout_rps_{n}"]) for n in (1, 2, 3)]
    busy = others_cores(results, "scaleout_3")
    nproc = results["machine"]["nproc"]
    shown = f"{rates[0]:.0f} / {rates[1]:.0f} / {rates[2]:.0f} rec/s for 1 / 2 / 3 workers"
    if rates[2] < 1.3 * rates[0]:
        notes = [
            f"- **Scale-out is flat ({shown}).** Partitions were split evenly (6 / 3+3 / "
            "2+2+2) and the workers' CPU split with them, but this machine has "
            f"{nproc} CPUs and other tenants kept {busy or 0:.1f} of them busy during the "
            "3-worker run, so one worker already had all the CPU there was. The figure "
            "shows the group mechanics work, not how throughput scales; measure on a "
            "machine with a free core per worker."
        ]
    else:
        notes = [
            f"- **Scale-out: {shown}.** Each worker is one single-threaded process, "
            f"CPU-bound on its core; with {nproc} CPUs (other tenants busy "
            f"{busy or 0:.1f} of them in the 3-worker run) the third worker mostly "
            "competes with the first two, the simulator and the broker."
        ]
    if results.get("scaleout_kill_invariant_ok"):
        notes.append(
            "- **Kill run: the invariant held** (no input key missing, none in two output "
            f"topics) with {results.get('scaleout_kill_duplicates')} duplicates: records "
            "the killed worker had produced but not yet committed, processed again by the "
            "survivor that took its partitions over. That is at-least-once delivery as "
            "designed; `worker.exactly_once = true` is the mode that removes them. The "
            f"group needed {results.get('scaleout_kill_recovery_seconds')} s to finish "
            "after the kill, most of it aiokafka's 10 s session timeout before the "
            "rebalance."
        )
    return notes


def notes_for(results: dict[str, Any]) -> str:
    """Honest notes on every target that was missed, and on the conditions."""
    notes = _overhead(results) + _latency(results) + _replay(results) + _scaleout(results)
    shares = [
        v
        for v in (others_cores(results, s) for s in results.get("cpu_seconds", {}))
        if v is not None
    ]
    if shares:
        notes.append(
            f"- **The machine was shared.** Other tenants used {min(shares):.1f} to "
            f"{max(shares):.1f} of the {results['machine']['nproc']} CPUs during the "
            "measured windows (table above), so every absolute rate here is lower than on "
            "an idle machine and varies between runs; the CPU per record is the steadier "
            "figure to compare."
        )
    body = "\n".join(notes) or "- Every target was met in this run."
    return body + "\n" + PROFILE + LOCAL_MODEL
