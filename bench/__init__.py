"""``make bench``: throughput, latency-bound, replay, memory and scale-out figures.

Everything runs against the real local Kafka (:class:`streams.devstack.kafka.LocalKafka`
with its own data dir) and the project's LLM simulator over HTTP; each worker is a
``streams run`` subprocess. ``python -m bench.run --help`` lists the options; the
results land in ``bench/results.json`` and ``BENCHMARKS.md``.

Modules::

    run.py            entry point: starts Kafka, runs the scenarios, writes the reports
    harness.py        the run context, record counts, "run one worker to the end"
    scenarios.py      (a) overhead, (b) latency-bound + sequential, (c) replay
    scaleout.py       (e) 1/2/3 workers in one group, and a SIGKILL mid-run
    procs.py          subprocesses (simulator, workers, faust), peak RSS, CPU seconds
    kafka_io.py       topics, producing inputs, watermarks, reading outputs back
    faust_forward.py  the bare faust agent used as the overhead baseline
    report.py         the machine description, results.json and BENCHMARKS.md
    notes.py          the method, the notes on missed targets, the profile findings
"""
