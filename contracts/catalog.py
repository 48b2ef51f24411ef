"""Every version of each example contract: what the ``streams.contracts`` entry points name."""

from typing import Final

from contracts._common import SAMPLES_DIR
from contracts.claim import CLAIM_V1
from contracts.invoice import INVOICE_V1
from contracts.invoice_v2 import INVOICE_V2
from contracts.invoice_v3 import INVOICE_V3
from contracts.lead import LEAD_V1
from streams.contract import Contract

__all__ = ["CLAIM", "INVOICE", "LEAD", "SAMPLES_DIR", "all_contracts", "get_contract"]

#: What each entry point names: every version of one contract.
INVOICE: Final = (INVOICE_V1, INVOICE_V2, INVOICE_V3)
CLAIM: Final = (CLAIM_V1,)
LEAD: Final = (LEAD_V1,)

_ALL: Final = {(c.name, c.version): c for c in (*INVOICE, *CLAIM, *LEAD)}


def get_contract(name: str, version: int) -> Contract:
    """One example contract version; a miss names the ones that exist."""
    try:
        return _ALL[(name, version)]
    except KeyError:
        known = ", ".join(c.ref for c in _ALL.values())
        raise KeyError(f"unknown contract {name}.v{version}; known: {known}") from None


def all_contracts() -> list[Contract]:
    return sorted(_ALL.values(), key=lambda c: (c.name, c.version))
