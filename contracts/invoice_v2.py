"""The invoice contract, v2: v1 plus the buyer's purchase-order reference, when printed.

Usage::

    from contracts.invoice_v2 import Invoice
    invoice = Invoice.model_validate_json(answer, strict=True)
    invoice.purchase_order   # "4500-8812", or None when the invoice cites no PO

v2 only adds one optional field with a default, so it is FULL compatible with
v1 (``compatible_with=1``) and keeps v1's pipeline, topics and registry subject:

* BACKWARD: a v2 reader fills ``purchase_order`` with null for v1 data;
* FORWARD: a v1 reader skips the v2 writer's ``purchase_order``.

``streams schemas check`` proves both directions by writing the samples with one
schema and reading them with the other. Every field, constraint and cross-field
rule of v1 (:mod:`contracts.invoice`) holds unchanged: the model subclasses v1.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from pydantic import Field

from contracts import invoice as v1
from contracts._common import SAMPLES_DIR
from contracts.invoice import Text
from streams.contract import Contract, Example, Prompt

__all__ = ["INVOICE_V2", "Invoice"]


class Invoice(v1.Invoice):
    """An invoice: issuer, number, dates, currency, billed lines, totals and the buyer's PO."""

    purchase_order: Text | None = Field(
        default=None,
        description="The buyer's purchase-order number the invoice cites, exactly as printed "
        "without its label (PO, P.O. No., Bestellnummer); null when none is printed.",
    )


INSTRUCTIONS: Final = (
    v1.INSTRUCTIONS
    + """\
10. purchase_order: the buyer's purchase-order reference the invoice cites ("PO", "P.O. \
No.", "Your order", "Bestellnummer", "Bon de commande"), exactly as printed without its \
label. It is not the invoice number, a delivery note, a customer account or a quote \
number. Use null when the invoice cites no purchase order.
"""
)

_EXAMPLE_US = """\
Brightwater Office Supply
Invoice #BW-1042   Date: 02/03/2024   Due: 03/04/2024   Your PO: 4500-8812
2 x Toner cartridge HP 58A @ $89.50 = $179.00
1 x Copy paper, 10 reams @ $54.00 = $54.00
Subtotal $233.00   Tax (7%) $16.31   Total $249.31 USD
"""


def _v1_record(index: int, **changes: Any) -> dict[str, Any]:
    # A deep copy: v1's example records must stay as they are, they pin v1's prompt version.
    return copy.deepcopy(v1.INVOICE_V1.prompt.examples[index].record) | changes


INVOICE_V2: Final = Contract(
    name="invoice",
    version=2,
    model=Invoice,
    prompt=Prompt(
        instructions=INSTRUCTIONS,
        examples=(
            Example(
                document=_EXAMPLE_US,
                record=_v1_record(0, purchase_order="4500-8812"),
            ),
            Example(
                document=v1.INVOICE_V1.prompt.examples[1].document,
                record=_v1_record(1, purchase_order=None),
            ),
        ),
    ),
    compatibility="FULL",
    compatible_with=1,
    description="An invoice: issuer, number, issue and due dates, ISO 4217 currency, "
    "billed lines, subtotal, tax and total, with the arithmetic checked, and the buyer's "
    "purchase-order reference when one is printed.",
    # The examples keep the Avro namespace they were first published under.
    namespace="contracts.invoice.v2",
    samples=SAMPLES_DIR / "invoice",
)
