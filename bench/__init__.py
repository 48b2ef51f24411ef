"""``make bench``: our worker and a naive faust peer, side by side, per record and per process.

Everything runs against the real local Kafka (:class:`streams.devstack.kafka.LocalKafka`
with its own data dir) and the project's LLM simulator over HTTP; each worker is a
``streams run`` subprocess, each peer a faust worker subprocess. ``python -m bench.run
--help`` lists the options; the results land in ``bench/results.json`` and
``BENCHMARKS.md``.

Modules::

    run.py            entry point: starts Kafka, runs the scenarios, writes the reports
    harness.py        the run context, record counts, "run one worker or peer to the end",
                      filing ours and the peer's figures side by side
    scenarios.py      (a) instant model, (b) latency-bound + sequential, (c) replay,
                      (f) 256 in flight
    scaleout.py       (e) 1/2/3 workers and 1/2/3 peers in one group, and a SIGKILL
    kill.py           (g) kill -9 and restart: records lost, ours and the peer's
    profile.py        (p) py-spy on the worker and the peer
    procs.py          subprocesses (simulators, workers, peers, faust) and their RSS
    cpu.py            CPU seconds per process over a window, ms per record per role
    kafka_io.py       topics, producing inputs, watermarks, reading outputs back
    faust_peer.py     the naive faust peer: one httpx call, validation, produce per record
    faust_forward.py  the bare faust agent forwarding bytes: the broker's ceiling
    report.py         the machine description, the tables, results.json and BENCHMARKS.md
    notes.py          the method, the notes on each target, the profile section
"""
