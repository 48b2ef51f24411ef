"""Moved to :mod:`streams.contract`; kept for modules that still import it from here."""

from streams.contract import Contract, ContractVersion, Example, Prompt

__all__ = ["Contract", "ContractVersion", "Example", "Prompt"]
