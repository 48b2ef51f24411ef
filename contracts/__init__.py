"""Versioned data contracts: pydantic models plus the prompts that fill them.

Importing the package registers every contract, so ``get_contract("invoice", 1)``
works after ``import contracts``.
"""

from contracts import invoice  # noqa: F401  (the import registers the contract)
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
