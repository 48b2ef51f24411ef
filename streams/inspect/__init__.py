"""``streams tail`` and ``streams explain``: read the output topics as a person would.

Usage::

    streams tail invoices.valid --from-beginning --max 20
    streams tail invoices.invalid --format json --follow
    streams explain invoices 01-acme-industrial-usd --config streams.toml

``tail`` prints one row per record of any of the four output topics. A
``.valid`` value is decoded from the Schema Registry wire format: the schema id
after the magic byte is looked up in the registry when ``registry.url`` is
http(s); otherwise (or if the registry cannot answer) the checked-in schema
``avro/<contract>/v<N>.avsc`` of the contract named in the ``streams.contract``
header is used, and, for records whose headers a sink dropped, the contract of
the pipeline that writes the topic. The other three topics carry JSON envelopes.

``explain`` scans the pipeline's raw topic and its four output topics for one
key and prints each input's journey: the input (its first 300 characters), the
attempts, the outcome topic, the reason, the cost and the provenance.

Both read with their own throwaway consumer (no group offsets are committed)
and report progress of long scans on stderr.

The modules, each importing only those before it: ``_read`` (throwaway consumers,
:class:`Record`), ``_decode`` (:class:`Schemas`, envelopes), ``_tail``, ``_explain`` and
``_cli`` (:func:`register`). They are private, and ``_tail`` is not ``tail``, so that
``streams.inspect.tail`` is always the function rather than a submodule of that name.
"""

from streams.inspect._cli import register
from streams.inspect._decode import ROUTES as ROUTES
from streams.inspect._decode import Schemas
from streams.inspect._explain import TEXT_PREVIEW as TEXT_PREVIEW
from streams.inspect._explain import explain
from streams.inspect._read import METADATA_TIMEOUT_S as METADATA_TIMEOUT_S
from streams.inspect._read import Record
from streams.inspect._tail import DEFAULT_TAIL as DEFAULT_TAIL
from streams.inspect._tail import TABLE_HEADER as TABLE_HEADER
from streams.inspect._tail import Row, row_for, tail

__all__ = ["Record", "Row", "Schemas", "explain", "register", "row_for", "tail"]
