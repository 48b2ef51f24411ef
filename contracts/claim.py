"""The insurance-claim contract, v1: who claims what under which policy, for which incident.

Usage::

    from contracts.claim import Claim
    claim = Claim.model_validate_json(answer, strict=True)
    claim.claim_type, claim.claimed_amount, claim.currency   # "auto", Decimal("2840.00"), "USD"

Sources are first notices of loss: claim e-mails (with quoted replies and
signatures), web forms and scanned paper forms. ``description`` is quoted from
the claimant's account rather than paraphrased, so grounding can trace it to the
source. Field constraints reject malformed values; the rules below reject answers
that are well formed but inconsistent. Each raises a
:class:`~pydantic_core.PydanticCustomError` with its own ``type``, located at the
field to fix, and all cross-field problems of one answer are reported together:

======================== =========================== ========================================
type                     loc                         rule
======================== =========================== ========================================
unknown_currency         currency                    an active ISO 4217 code (ISO_4217_CODES)
incident_after_reported  incident_date               the incident is not after the report
currency_minor_units     claimed_amount              no fraction in a zero-decimal currency
                                                     (JPY, KRW, ISK, ...)
duplicate_party          involved_parties.<i>.name   each (name, role) pair is listed once
======================== =========================== ========================================

Grounding policy (``GroundingPolicy.required``): the policy number, claimant name, e-mail
and police report number, when given, must appear in the source text, because a
model that invents them produces a claim nobody can match to a policy or a case.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails

from contracts._common import SAMPLES_DIR, Email, field_error, raise_all
from contracts.invoice import ISO_4217_CODES, CurrencyCode, Text
from streams.contract import Contract, Example, GroundingPolicy, Prompt

__all__ = ["CLAIM_V1", "ZERO_DECIMAL_CURRENCIES", "Claim", "ClaimType", "InvolvedParty"]

ClaimType = Literal["auto", "property", "health", "travel", "liability", "other"]

#: ISO 4217 currencies without minor units: an amount in them has no fraction.
ZERO_DECIMAL_CURRENCIES: Final = ISO_4217_CODES & frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()  # noqa: SIM905
)

PositiveMoney = Annotated[
    Decimal,
    Field(gt=0, max_digits=18, decimal_places=2),
    # x-decimal-places: a grammar target gets the places as a regex (providers.profiles).
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "x-decimal-places": 2}),
]
PolicyNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=40, pattern=r"\d")
]
Account = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=600)]


class InvolvedParty(BaseModel):
    """A person, business, vehicle or item the claim involves, other than the claimant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text = Field(
        description="The party's name as printed: a person, a business, a vehicle (make, "
        "model or registration) or a damaged or lost item."
    )
    role: Text = Field(
        description="Its part in the incident in a few words taken from the document, e.g. "
        "other driver, witness, landlord, airline, stolen, damaged."
    )


class Claim(BaseModel):
    """A first notice of loss: policy, claimant, incident, amount claimed and who was involved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_number: PolicyNumber = Field(
        description="The insurance policy number exactly as printed, without its label; "
        "not a claim reference, a police report number or a customer number."
    )
    claimant_name: Text = Field(
        description="Full name of the policyholder or person making the claim, as printed; "
        "not the insurer's staff or an agent writing on their behalf."
    )
    contact_email: Email | None = Field(
        default=None,
        description="The claimant's e-mail address as printed; null when none is given.",
    )
    claim_type: ClaimType = Field(
        description="The kind of cover claimed under: auto (motor vehicle), property (home, "
        "contents, buildings), health, travel, liability (damage to others), or other."
    )
    incident_date: date = Field(
        description="Date the loss or accident happened, ISO 8601 (YYYY-MM-DD)."
    )
    reported_date: date = Field(
        description="Date the claim was first reported to the insurer (first e-mail sent or "
        "form signed/submitted), ISO 8601 (YYYY-MM-DD); not the date of a later reply."
    )
    location: Text | None = Field(
        default=None,
        description="Where the incident happened (address, town, road or venue) as printed; "
        "null when not stated.",
    )
    description: Account = Field(
        description="What happened: one or two sentences copied from the claimant's own "
        "account, not paraphrased or translated.",
    )
    claimed_amount: PositiveMoney = Field(
        description="The amount claimed or the claimant's estimate of the loss, as a number "
        "without currency symbol; the total when several amounts are listed."
    )
    currency: CurrencyCode = Field(
        description="ISO 4217 code of the claimed amount, three capital letters (e.g. EUR)."
    )
    involved_parties: list[InvolvedParty] = Field(
        default_factory=list,
        description="Other people, businesses, vehicles and items involved, in document "
        "order; empty when none is named.",
    )
    police_report_number: Text | None = Field(
        default=None,
        description="The police, crime or incident report number exactly as printed, without "
        "its label; null when none is given.",
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        raise_all(
            type(self).__name__,
            [*self._date_errors(), *self._amount_errors(), *self._party_errors()],
        )
        return self

    def _date_errors(self) -> list[InitErrorDetails]:
        if self.incident_date <= self.reported_date:
            return []
        return [
            field_error(
                "incident_after_reported",
                "incident_date {incident_date} is after reported_date {reported_date}; a claim "
                "is reported on or after the day of the incident",
                ("incident_date",),
                self.incident_date.isoformat(),
                incident_date=self.incident_date,
                reported_date=self.reported_date,
            )
        ]

    def _amount_errors(self) -> list[InitErrorDetails]:
        if self.currency not in ZERO_DECIMAL_CURRENCIES or self.claimed_amount % 1 == 0:
            return []
        return [
            field_error(
                "currency_minor_units",
                "claimed_amount {amount} has a fraction, but {currency} has no minor units; "
                "copy the amount as printed (e.g. 185,000)",
                ("claimed_amount",),
                self.claimed_amount,
                amount=self.claimed_amount,
                currency=self.currency,
            )
        ]

    def _party_errors(self) -> list[InitErrorDetails]:
        errors = []
        seen: dict[tuple[str, str], int] = {}
        for index, party in enumerate(self.involved_parties):
            key = (party.name.casefold(), party.role.casefold())
            if key in seen:
                errors.append(
                    field_error(
                        "duplicate_party",
                        "involved_parties[{index}] repeats involved_parties[{first}] "
                        "({name}, {role}); list each party once",
                        ("involved_parties", index, "name"),
                        party.name,
                        index=index,
                        first=seen[key],
                        name=party.name,
                        role=party.role,
                    )
                )
            else:
                seen[key] = index
        return errors


INSTRUCTIONS = """\
Extract the one insurance claim in the document into a JSON object that matches the schema.

Rules:
1. Use only what the document states. Do not guess, look up or invent values. Leave \
optional fields null (or involved_parties empty) when the document does not give them.
2. policy_number: the policy number exactly as printed, keeping letters, dashes, spaces \
and leading zeros, without its label ("Policy No.", "Polizzennummer", "N° de contrat"). \
Not a claim reference, case number, police report number or customer number.
3. claimant_name: the policyholder or person claiming, as printed. Not the insurer's staff, \
a broker or the other party. contact_email: the claimant's own address, if given.
4. claim_type: auto for motor vehicles (car, van, motorbike, "Kfz", "motor"); property for \
home, buildings, contents, theft from a home, water or storm damage; health for medical \
or dental treatment; travel for trip cancellation, lost luggage or care abroad; liability \
when the claimant caused damage or injury to someone else; other for anything else \
(pets, phones and gadgets, ...).
5. incident_date: the day the loss happened. reported_date: the day the claim was first \
reported, i.e. the date of the claimant's first e-mail or the date the form was signed or \
submitted, not the date of a later reply, forward or reminder. Both are ISO 8601 dates, \
YYYY-MM-DD. Read numeric dates in the document's convention: month first (MM/DD/YYYY) in \
the US, day first (DD/MM/YYYY, DD.MM.YYYY) elsewhere.
6. location: where it happened (address, town, road, venue) as written, or null.
7. description: copy the one or two sentences of the claimant's account that best say \
what happened, word for word, in the document's language. Do not summarise, translate or \
fix the wording.
8. claimed_amount and currency: the amount claimed or the claimant's estimate of the \
loss, with several listed amounts added up only when the document gives no total. The \
amount is a JSON number: no currency symbols, no spaces or thousands separators, a dot \
as decimal separator ("1.234,50 €" is 1234.50, "¥185,000" is 185000). currency is the ISO \
4217 code (€ is EUR, £ is GBP, $ is USD unless another dollar is named).
9. involved_parties: every other person or business the account names (other driver, \
witness, neighbour, airline, hospital, repair shop) and every vehicle or item it says was \
stolen or damaged, each once, with its role in a few words taken from the document. Not \
the claimant, not the insurer or its staff.
10. police_report_number: the police, crime or incident report reference as printed, or \
null.
11. The text may be an e-mail thread, HTML or OCR output. Ignore quoted replies from the \
insurer, signatures, disclaimers and markup, and read OCR errors as meant (P0LICY is POLICY).
"""

_EXAMPLE_EMAIL = """\
From: Dana Whitfield <dana.whitfield@fastmail.com>
Sent: Tuesday, April 9, 2024 8:14 AM
To: claims@harborline-insurance.com
Subject: Auto claim - policy HL-AUTO-558120

Hello, I need to open an auto claim. On 04/06/2024 I was stopped at the light at \
Elm St & 3rd Ave, Dayton, OH when a pickup rear-ended my Honda Civic. The other \
driver, Mark Boyce, gave me his insurance details and Officer Reyes took a report \
(DPD report 24-031877). The body shop estimate is $2,840.00.

Thanks, Dana Whitfield
"""

_EXAMPLE_FORM = """\
SCHADENMELDUNG Hausratversicherung  |  Versicherungsschein-Nr.: HR 7741-0093
Versicherungsnehmer: Jonas Albrecht, Lindenweg 4, 79098 Freiburg
Schadentag: 12.02.2024   Schadenort: Lindenweg 4, Freiburg (Wohnung, 2. OG)
Schilderung: Durch einen geplatzten Schlauch der Waschmaschine ist Wasser ausgetreten \
und hat den Parkettboden im Flur beschädigt. Das Parkett muss erneuert werden.
Geschätzter Schaden: 3.150,00 EUR     Schadenart: [ ] Kfz  [x] Hausrat  [ ] Sonstiges
Ort, Datum, Unterschrift: Freiburg, 14.02.2024  J. Albrecht
"""

CLAIM_V1: Final = Contract(
    name="claim",
    version=1,
    model=Claim,
    prompt=Prompt(
        instructions=INSTRUCTIONS,
        examples=(
            Example(
                document=_EXAMPLE_EMAIL,
                record={
                    "policy_number": "HL-AUTO-558120",
                    "claimant_name": "Dana Whitfield",
                    "contact_email": "dana.whitfield@fastmail.com",
                    "claim_type": "auto",
                    "incident_date": "2024-04-06",
                    "reported_date": "2024-04-09",
                    "location": "Elm St & 3rd Ave, Dayton, OH",
                    "description": "On 04/06/2024 I was stopped at the light at Elm St & "
                    "3rd Ave, Dayton, OH when a pickup rear-ended my Honda Civic.",
                    "claimed_amount": 2840.0,
                    "currency": "USD",
                    "involved_parties": [
                        {"name": "Mark Boyce", "role": "other driver"},
                    ],
                    "police_report_number": "24-031877",
                },
            ),
            Example(
                document=_EXAMPLE_FORM,
                record={
                    "policy_number": "HR 7741-0093",
                    "claimant_name": "Jonas Albrecht",
                    "contact_email": None,
                    "claim_type": "property",
                    "incident_date": "2024-02-12",
                    "reported_date": "2024-02-14",
                    "location": "Lindenweg 4, Freiburg",
                    "description": "Durch einen geplatzten Schlauch der Waschmaschine ist "
                    "Wasser ausgetreten und hat den Parkettboden im Flur beschädigt.",
                    "claimed_amount": 3150.0,
                    "currency": "EUR",
                    "involved_parties": [
                        {"name": "Parkettboden im Flur", "role": "beschädigt"},
                    ],
                    "police_report_number": None,
                },
            ),
        ),
    ),
    compatibility="BACKWARD",
    # Identifiers a model could invent must be copied from the claim itself; a
    # missing optional value is not checked. Dates and amounts may be derived.
    grounding=GroundingPolicy(
        required=("policy_number", "claimant_name", "contact_email", "police_report_number")
    ),
    description="An insurance claim (first notice of loss): policy number, claimant, "
    "claim type, incident and report dates in order, location, the claimant's account, "
    "amount claimed in an ISO 4217 currency, other parties and any police report.",
    # The examples keep the Avro namespace they were first published under.
    namespace="contracts.claim.v1",
    samples=SAMPLES_DIR / "claim",
)
