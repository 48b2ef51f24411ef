"""The broker's ceiling: a bare faust agent that forwards bytes, input to output.

Run by :mod:`bench.procs` as ``python -m bench.faust_forward worker`` with its settings
in ``BENCH_FAUST_*`` environment variables. It does nothing a pipeline could skip:
no decoding, no model call, no validation, so its rate is the ceiling of a faust
stream on this broker and machine. Defaults are faust's own (acks=all included), apart
from reading from the earliest offset and running without the web server.
"""

from __future__ import annotations

import os
from typing import Any

import faust

app = faust.App(
    os.environ.get("BENCH_FAUST_ID", "bench-faust"),
    broker=f"kafka://{os.environ.get('BENCH_FAUST_BROKER', '127.0.0.1:9092')}",
    datadir=os.environ.get("BENCH_FAUST_DATADIR", "/tmp/bench-faust-data"),
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    # The topics exist already (made by the benchmark with the pipeline's partitioning).
    topic_allow_declare=False,
    key_serializer="raw",
    value_serializer="raw",
)
source = app.topic(os.environ.get("BENCH_FAUST_IN", "in"), key_type=bytes, value_type=bytes)
sink = app.topic(os.environ.get("BENCH_FAUST_OUT", "out"), key_type=bytes, value_type=bytes)


@app.agent(source)
async def forward(stream: Any) -> None:
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)


if __name__ == "__main__":
    app.main()
