"""The public contract API is exactly what ``streams.contract.__all__`` names."""

from __future__ import annotations

import streams.contract


def test_public_contract_api() -> None:
    """A user's package imports these names; adding or removing one is a deliberate change."""
    assert sorted(streams.contract.__all__) == [
        "Compatibility",
        "Contract",
        "ContractRegistry",
        "ContractVersion",
        "ENTRY_POINT_GROUP",
        "Example",
        "GroundingPolicy",
        "Prompt",
        "discover",
        "load_contract",
        "resolve",
        "select",
    ]
    for name in streams.contract.__all__:
        assert getattr(streams.contract, name) is not None
    assert streams.contract.ENTRY_POINT_GROUP == "streams.contracts"
