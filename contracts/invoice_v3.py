"""The invoice contract, v3: a breaking change, so a new major version and a new pipeline.

Usage::

    from contracts.invoice_v3 import Invoice
    invoice = Invoice.model_validate_json(answer, strict=True)
    invoice.vendor.name, invoice.vendor.tax_id   # "Schmidt Elektrotechnik GmbH", "DE812345678"

v3 turns ``vendor`` from a string into a record ``{name, tax_id}``. A v3 reader
cannot read v1/v2 data (a string is not a record) and a v1/v2 reader cannot read
v3 data, so v3 starts a new compatibility line (``compatible_with=None``) and
``streams schemas check`` does not compare it with v1 or v2.

**Bind v3 to a new pipeline name.** Topics and the Schema Registry subject are
named after the pipeline (``<pipeline>.valid`` and ``<pipeline>.valid-value``),
so a new name is what gives v3 its own topics and subject, for example::

    [[pipelines]]
    name = "invoices-v3"            # never "invoices", which carries v1/v2 records
    input_topic = "invoices.raw"    # the same raw topic may feed both pipelines
    contract = "invoice"
    contract_version = 3

Binding v3 to the v1/v2 pipeline would fail at start-up anyway: the registry
refuses the v3 schema under the subject's BACKWARD level (HTTP 409). Consumers
migrate by reading ``invoices-v3.valid``; the old pipeline runs until they have.

Every other field, constraint and cross-field rule is v2's, unchanged.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts import invoice as v1
from contracts import invoice_v2 as v2
from contracts._common import SAMPLES_DIR, raise_all
from contracts.invoice import CurrencyCode, LineItem, Money, NonNegativeMoney, Text
from streams.contract import Contract, Example, Prompt

__all__ = ["INVOICE_V3", "Invoice", "Vendor"]


class Vendor(BaseModel):
    """The business that issued the invoice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text = Field(
        description="Name of the business that issued the invoice (the seller), as printed; "
        "never the customer or bill-to party."
    )
    tax_id: Text | None = Field(
        default=None,
        description="The seller's VAT, GST or tax identification number exactly as printed, "
        "without its label; null when none is printed.",
    )


class Invoice(BaseModel):
    """An invoice: issuer with tax id, number, dates, currency, billed lines, totals and PO."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vendor: Vendor = Field(description="The business that issued the invoice (the seller).")
    invoice_number: Text = Field(
        description="The invoice identifier exactly as printed, with prefixes and leading zeros, "
        "without its label."
    )
    issue_date: date = Field(description="Date the invoice was issued, ISO 8601 (YYYY-MM-DD).")
    due_date: date = Field(
        description="Date payment is due, ISO 8601 (YYYY-MM-DD); the issue date when payable "
        "on receipt."
    )
    currency: CurrencyCode = Field(
        description="ISO 4217 code of the invoice currency, three capital letters (e.g. EUR)."
    )
    line_items: list[LineItem] = Field(
        min_length=1, description="Every billed line, in document order, including fees."
    )
    subtotal: Money = Field(description="Total of the line items before tax.")
    tax: NonNegativeMoney = Field(
        description="Total tax charged (all taxes added together); 0 when none is charged."
    )
    total: Money = Field(
        description="Invoice total including tax; not a balance left after deposits or payments."
    )
    purchase_order: Text | None = Field(
        default=None,
        description="The buyer's purchase-order number the invoice cites, exactly as printed "
        "without its label (PO, P.O. No., Bestellnummer); null when none is printed.",
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        # The arithmetic and date rules are v1's. They run on a v1 view of this record:
        # the fields they read have the same names, so each error keeps its location.
        shared = {name: getattr(self, name) for name in v1.Invoice.model_fields}
        view = v1.Invoice.model_construct(**(shared | {"vendor": self.vendor.name}))
        raise_all(
            type(self).__name__,
            [*view._line_errors(), *view._sum_errors(), *view._date_errors()],
        )
        return self


INSTRUCTIONS: Final = v2.INSTRUCTIONS.replace(
    """\
2. vendor: the business that issued the invoice (the seller, who is paid), as printed, \
without address or tax ids. Never the customer or bill-to party.
""",
    """\
2. vendor: the business that issued the invoice (the seller, who is paid). vendor.name is \
its name as printed, without address or tax ids; never the customer or bill-to party. \
vendor.tax_id is the seller's own VAT, GST or tax number exactly as printed without its \
label ("USt-IdNr.", "VAT No.", "ABN"), or null when none is printed; never the customer's.
""",
)

_EXAMPLE_DE = """\
Rechnung Nr. 2024-117 der Schmidt Elektrotechnik GmbH, USt-IdNr. DE812345678
Datum: 15.01.2024, zahlbar bis 29.01.2024, Ihre Bestellung: BE-5521
Pos. 1: Installation Steckdosen, 3,5 Std. à 68,00 € = 238,00 €
Pos. 2: Material pauschal, 1 x 1.249,90 € = 1.249,90 €
Netto 1.487,90 €, zzgl. 19 % USt. 282,70 €, Gesamtbetrag 1.770,60 €
"""


def _v3_record(example: Example, tax_id: str | None, **changes: Any) -> dict[str, Any]:
    # A deep copy, never a change in place: v2's example records pin v2's prompt version.
    record = copy.deepcopy(example.record)
    del record["vendor"]
    vendor = {"name": example.record["vendor"], "tax_id": tax_id}
    return {"vendor": vendor, **record, **changes}


INVOICE_V3: Final = Contract(
    name="invoice",
    version=3,
    model=Invoice,
    prompt=Prompt(
        instructions=INSTRUCTIONS,
        examples=(
            Example(
                document=v2.INVOICE_V2.prompt.examples[0].document,
                record=_v3_record(v2.INVOICE_V2.prompt.examples[0], None),
            ),
            Example(
                document=_EXAMPLE_DE,
                record=_v3_record(
                    v2.INVOICE_V2.prompt.examples[1], "DE812345678", purchase_order="BE-5521"
                ),
            ),
        ),
    ),
    compatibility="BACKWARD",
    compatible_with=None,
    description="An invoice: issuer name and tax id, number, issue and due dates, ISO 4217 "
    "currency, billed lines, subtotal, tax and total, with the arithmetic checked, and the "
    "buyer's purchase-order reference when one is printed.",
    # The examples keep the Avro namespace they were first published under.
    namespace="contracts.invoice.v3",
    samples=SAMPLES_DIR / "invoice",
)
