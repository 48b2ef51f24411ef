"""Versioned data contracts: pydantic models plus the prompts that fill them.

Importing the package registers every contract, so ``get_contract("invoice", 1)``
works after ``import contracts``.
"""

# Importing a contract module registers its versions.
from contracts import claim, invoice, invoice_v2, invoice_v3, lead  # noqa: F401
from contracts.base import (
    SAMPLES_DIR,
    ContractVersion,
    Example,
    Prompt,
    all_contracts,
    get_contract,
    register,
)

__all__ = [
    "SAMPLES_DIR",
    "ContractVersion",
    "Example",
    "Prompt",
    "all_contracts",
    "get_contract",
    "register",
]
