"""The public contract API: what a user's package imports to declare its contracts.

Usage::

    from streams.contract import Contract, Example, GroundingPolicy, Prompt

    PO_V1 = Contract(name="purchase_order", version=1, model=PurchaseOrder,
                     prompt=Prompt("Extract the purchase order.", (Example(doc, record),)),
                     grounding=GroundingPolicy(required=("po_number",)))
    CONTRACTS = (PO_V1,)

and, in the package's ``pyproject.toml``::

    [project.entry-points."streams.contracts"]
    purchase_order = "acme_contracts.po:CONTRACTS"

A pipeline then names ``contract = "purchase_order"`` with ``contract_version =
1``, or the import path ``contract = "acme_contracts.po:PO_V1"``.
"""

from streams.contract._loader import (
    ENTRY_POINT_GROUP,
    ContractRegistry,
    discover,
    load_contract,
    resolve,
    select,
)
from streams.contract._model import Compatibility, Contract, Example, GroundingPolicy, Prompt

#: The name streams' own modules use for a contract version.
ContractVersion = Contract

__all__ = [
    "ENTRY_POINT_GROUP",
    "Compatibility",
    "Contract",
    "ContractRegistry",
    "ContractVersion",
    "Example",
    "GroundingPolicy",
    "Prompt",
    "discover",
    "load_contract",
    "resolve",
    "select",
]
