"""The pipeline as a faust app: ``faust -A streams.faust_app worker``.

For teams that already run faust. Each configured pipeline becomes one agent that runs
the same :class:`~streams.pipeline.Pipeline` as the native worker, key-ordered with up
to ``worker.max_in_flight`` records in flight, through the same output routing and the
project's own producer, over a consumer that never commits at or past the lowest
unfinished offset (:mod:`streams.faust_app._consumer`; faust-streaming issue 606).

Usage::

    STREAMS_CONFIG=streams.toml faust -A streams.faust_app worker   # every pipeline
    streams run invoices --config streams.toml --engine faust        # one pipeline

    from streams.faust_app import create_app
    app = create_app(load_settings(path), ["invoices"])             # in your own code

``app`` is built on first access from the settings (``$STREAMS_CONFIG`` and
``STREAMS_*``), never at import time. Needs the ``faust`` extra:
``pip install 'kafka-llm-streams[faust]'``.
"""

from __future__ import annotations

from typing import Any

from streams.faust_app._app import ExtractionApp, create_app, run_app
from streams.faust_app._consumer import SafeConsumer

__all__ = ["ExtractionApp", "SafeConsumer", "create_app", "run_app"]

_app: ExtractionApp | None = None


def __getattr__(name: str) -> Any:
    """``streams.faust_app.app``: what ``faust -A streams.faust_app`` looks up."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        from streams.settings import load_settings

        _app = create_app(load_settings())
    return _app
