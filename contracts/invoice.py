"""The invoice contract, v1: who billed what, when, in which currency, with the sums checked.

Usage::

    from contracts.invoice import Invoice
    invoice = Invoice.model_validate_json(answer, strict=True)

Field constraints reject malformed values. The cross-field rules reject answers
that are well formed but inconsistent. Each rule raises a
:class:`~pydantic_core.PydanticCustomError` with its own ``type``, located at the
field to fix, so a re-ask can tell the model exactly which value is wrong. All
cross-field problems of one answer are reported together:

======================== ======================= ==========================================
type                     loc                     rule
======================== ======================= ==========================================
unknown_currency         currency                an active ISO 4217 code (see ISO_4217_CODES)
line_amount_mismatch     line_items.<i>.amount   amount = quantity * unit_price, ± 0.01
line_items_sum_mismatch  subtotal                sum of line_items[*].amount = subtotal, ± 0.01
total_mismatch           total                   subtotal + tax = total, ± 0.01
due_before_issue         due_date                due_date is not before issue_date
======================== ======================= ==========================================
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from contracts._common import SAMPLES_DIR
from streams.contract import Contract, Example, Prompt

__all__ = [
    "INVOICE_V1",
    "ISO_4217_CODES",
    "TOLERANCE",
    "Invoice",
    "LineItem",
]

#: How far printed amounts may drift from the exact arithmetic (rounding per line).
TOLERANCE: Final = Decimal("0.01")

#: Active ISO 4217 codes (list one, 2025). Left out on purpose: precious metals
#: (XAU, XAG, XPD, XPT), bond-market units (XBA-XBD), XDR, XSU, XUA, the testing
#: code XTS and XXX "no currency". None of them can be what an invoice is billed
#: in. Withdrawn codes (HRK, SLL, CUC, ZWL, ...) are rejected as well.
ISO_4217_CODES: Final = frozenset(
    # A block of codes reads like the ISO table; a 175-line list literal would not.
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV
    BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK
    DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL
    HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
    LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
    MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
    SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
    TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG
    XOF XPF YER ZAR ZMW ZWG
    """.split()  # noqa: SIM905
)


def _known_currency(code: str) -> str:
    if code not in ISO_4217_CODES:
        raise PydanticCustomError(
            "unknown_currency",
            "currency {currency} is not an active ISO 4217 code (e.g. EUR, USD, GBP, JPY, CHF)",
            {"currency": code},
        )
    return code


# pydantic renders Decimal as `anyOf: [number, string]`. That invites the model to
# answer "1.234,50" as a string, and strict structured-output modes handle anyOf
# poorly. The contract wants plain JSON numbers, so the JSON schema says exactly
# that; validation still enforces digits, places and bounds. ``x-decimal-places`` lets
# a grammar target (streams.providers.profiles) enforce the places as a regex.
Money = Annotated[
    Decimal,
    Field(max_digits=18, decimal_places=2),
    WithJsonSchema({"type": "number", "x-decimal-places": 2}),
]
NonNegativeMoney = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=2),
    WithJsonSchema({"type": "number", "minimum": 0, "x-decimal-places": 2}),
]
Quantity = Annotated[
    Decimal,
    Field(gt=0, max_digits=18, decimal_places=4),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "x-decimal-places": 4}),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
CurrencyCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    AfterValidator(_known_currency),
]


class LineItem(BaseModel):
    """One billed line of an invoice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: Text = Field(
        description="The line's text as printed, without separate SKU or part-number columns."
    )
    quantity: Quantity = Field(
        description="Units, hours or weight billed on this line; 1 when no quantity is shown."
    )
    unit_price: NonNegativeMoney = Field(
        description="Price per unit before tax, as a number without currency symbol."
    )
    amount: Money = Field(
        description="The line total as printed (quantity * unit_price), before tax."
    )


class Invoice(BaseModel):
    """An invoice: issuer, number, dates, currency, billed lines and totals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vendor: Text = Field(
        description="Name of the business that issued the invoice (the seller), as printed; "
        "never the customer or bill-to party."
    )
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

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        errors = [*self._line_errors(), *self._sum_errors(), *self._date_errors()]
        if errors:
            # A ValidationError raised here is merged into the caller's error list
            # with each entry's own loc, which a plain PydanticCustomError (always
            # located at the model root) could not do.
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def _line_errors(self) -> list[InitErrorDetails]:
        errors = []
        for index, item in enumerate(self.line_items):
            expected = item.quantity * item.unit_price
            if abs(expected - item.amount) > TOLERANCE:
                errors.append(
                    _error(
                        "line_amount_mismatch",
                        "line_items[{index}].amount {amount} is not quantity {quantity} "
                        "* unit_price {unit_price} = {expected}",
                        ("line_items", index, "amount"),
                        item.amount,
                        index=index,
                        amount=item.amount,
                        quantity=item.quantity,
                        unit_price=item.unit_price,
                        expected=expected,
                    )
                )
        return errors

    def _sum_errors(self) -> list[InitErrorDetails]:
        errors = []
        line_sum = sum((item.amount for item in self.line_items), Decimal(0))
        if abs(line_sum - self.subtotal) > TOLERANCE:
            errors.append(
                _error(
                    "line_items_sum_mismatch",
                    "subtotal {subtotal} is not the sum of line_items[*].amount = {expected}",
                    ("subtotal",),
                    self.subtotal,
                    subtotal=self.subtotal,
                    expected=line_sum,
                )
            )
        if abs(self.subtotal + self.tax - self.total) > TOLERANCE:
            errors.append(
                _error(
                    "total_mismatch",
                    "total {total} is not subtotal {subtotal} + tax {tax} = {expected}",
                    ("total",),
                    self.total,
                    total=self.total,
                    subtotal=self.subtotal,
                    tax=self.tax,
                    expected=self.subtotal + self.tax,
                )
            )
        return errors

    def _date_errors(self) -> list[InitErrorDetails]:
        if self.due_date >= self.issue_date:
            return []
        return [
            _error(
                "due_before_issue",
                "due_date {due_date} is before issue_date {issue_date}",
                ("due_date",),
                self.due_date.isoformat(),
                due_date=self.due_date,
                issue_date=self.issue_date,
            )
        ]


def _error(
    type_: str,
    template: str,
    loc: tuple[str | int, ...],
    value: object,
    **context: object,
) -> InitErrorDetails:
    # Context values become strings so that `errors()` stays JSON-serialisable.
    ctx = {key: v if isinstance(v, int) else str(v) for key, v in context.items()}
    return InitErrorDetails(type=PydanticCustomError(type_, template, ctx), loc=loc, input=value)


INSTRUCTIONS = """\
Extract the one invoice in the document into a JSON object that matches the schema.

Rules:
1. Use only what the document states. Do not guess, look up or invent values, and do not \
correct amounts that look wrong: copy them as printed.
2. vendor: the business that issued the invoice (the seller, who is paid), as printed, \
without address or tax ids. Never the customer or bill-to party.
3. invoice_number: the invoice's identifier exactly as printed, keeping prefixes, dashes, \
slashes and leading zeros, without its label ("Invoice No.", "Rechnungsnummer"). Not an \
order, customer, account or VAT number.
4. issue_date and due_date: ISO 8601 dates, YYYY-MM-DD. Read numeric dates in the \
document's convention: month first (MM/DD/YYYY) on US invoices, day first (DD/MM/YYYY, \
DD.MM.YYYY, DD-MM-YYYY) elsewhere. When the invoice is payable on receipt and names no \
other due date, due_date is the issue date. Ignore the dates of emails, deliveries and \
individual services.
5. currency: the ISO 4217 code in capitals (EUR, USD, GBP, JPY, CHF, ...). Map symbols to \
codes: € is EUR, £ is GBP, ¥ on a Japanese invoice is JPY, $ is USD unless the document \
names another dollar (AUD, CAD, ...).
6. Amounts and quantities are JSON numbers: no currency symbols, no spaces, no thousands \
separators, and a dot as the decimal separator. "1.234,50 €" is 1234.50, "CHF 2'392.50" is \
2392.50, "¥299,200" is 299200. Money has at most 2 decimal places, quantities at most 4.
7. line_items: every billed line in document order, including fees, delivery and \
surcharge lines. description is the line's text without separate SKU or part-number \
columns. quantity is the count, hours or weight billed (1 when none is shown). unit_price \
is the price per unit before tax. amount is the line total as printed.
8. subtotal is the total before tax. tax is all tax charged, with several taxes added \
together (e.g. GST + PST); 0 when no tax is charged. total is the invoice total including \
tax, not a balance left after deposits or payments.
9. The text may come from OCR, an email or HTML. Ignore markup, headers, stray characters \
and broken spacing, and read words as meant (INV0ICE is INVOICE).
"""

_EXAMPLE_US = """\
Brightwater Office Supply
Invoice #BW-1042   Date: 02/03/2024   Due: 03/04/2024
2 x Toner cartridge HP 58A @ $89.50 = $179.00
1 x Copy paper, 10 reams @ $54.00 = $54.00
Subtotal $233.00   Tax (7%) $16.31   Total $249.31 USD
"""

_EXAMPLE_DE = """\
Rechnung Nr. 2024-117 der Schmidt Elektrotechnik GmbH
Datum: 15.01.2024, zahlbar bis 29.01.2024
Pos. 1: Installation Steckdosen, 3,5 Std. à 68,00 € = 238,00 €
Pos. 2: Material pauschal, 1 x 1.249,90 € = 1.249,90 €
Netto 1.487,90 €, zzgl. 19 % USt. 282,70 €, Gesamtbetrag 1.770,60 €
"""

INVOICE_V1: Final = Contract(
    name="invoice",
    version=1,
    model=Invoice,
    prompt=Prompt(
        instructions=INSTRUCTIONS,
        examples=(
            Example(
                document=_EXAMPLE_US,
                record={
                    "vendor": "Brightwater Office Supply",
                    "invoice_number": "BW-1042",
                    "issue_date": "2024-02-03",
                    "due_date": "2024-03-04",
                    "currency": "USD",
                    "line_items": [
                        {
                            "description": "Toner cartridge HP 58A",
                            "quantity": 2,
                            "unit_price": 89.5,
                            "amount": 179.0,
                        },
                        {
                            "description": "Copy paper, 10 reams",
                            "quantity": 1,
                            "unit_price": 54.0,
                            "amount": 54.0,
                        },
                    ],
                    "subtotal": 233.0,
                    "tax": 16.31,
                    "total": 249.31,
                },
            ),
            Example(
                document=_EXAMPLE_DE,
                record={
                    "vendor": "Schmidt Elektrotechnik GmbH",
                    "invoice_number": "2024-117",
                    "issue_date": "2024-01-15",
                    "due_date": "2024-01-29",
                    "currency": "EUR",
                    "line_items": [
                        {
                            "description": "Installation Steckdosen",
                            "quantity": 3.5,
                            "unit_price": 68.0,
                            "amount": 238.0,
                        },
                        {
                            "description": "Material pauschal",
                            "quantity": 1,
                            "unit_price": 1249.9,
                            "amount": 1249.9,
                        },
                    ],
                    "subtotal": 1487.9,
                    "tax": 282.7,
                    "total": 1770.6,
                },
            ),
        ),
    ),
    compatibility="BACKWARD",
    description="An invoice: issuer, number, issue and due dates, ISO 4217 currency, "
    "billed lines, subtotal, tax and total, with the arithmetic checked.",
    # The examples keep the Avro namespace they were first published under.
    namespace="contracts.invoice.v1",
    samples=SAMPLES_DIR / "invoice",
)
