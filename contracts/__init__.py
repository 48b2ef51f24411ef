"""The example contracts: invoice, claim and lead, written as any user writes theirs.

They use only the public API (:mod:`streams.contract`) and are registered
through the ``streams.contracts`` entry-point group in ``pyproject.toml``
(pointing at :mod:`contracts.catalog`), the way a user's package registers its
own. Nothing in :mod:`streams` imports them.

``get_contract`` and ``all_contracts`` are conveniences for the tests and
notebooks that use these examples directly. They, and the contract tuples, are
loaded on first use, so importing ``contracts.base`` (the old home of the API)
does not load the examples.
"""

from __future__ import annotations

import importlib
from typing import Any

from contracts._common import SAMPLES_DIR
from streams.contract import Contract, ContractVersion, Example, Prompt

__all__ = [
    "CLAIM",
    "INVOICE",
    "LEAD",
    "SAMPLES_DIR",
    "Contract",
    "ContractVersion",
    "Example",
    "Prompt",
    "all_contracts",
    "get_contract",
]

_LAZY = frozenset({"CLAIM", "INVOICE", "LEAD", "all_contracts", "get_contract"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("contracts.catalog"), name)
    raise AttributeError(f"module 'contracts' has no attribute {name!r}")
