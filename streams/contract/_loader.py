"""Finding contracts: by import path, or by name and version through an entry point.

A pipeline names one contract version in one of two ways::

    contract = "acme_contracts.po:PURCHASE_ORDER_V2"   # import path; the version is the object's
    contract = "purchase_order"                         # a name, with contract_version = 2
    contract_version = 2

Names are found through the entry points of group :data:`ENTRY_POINT_GROUP`,
which is how the built-in examples are registered too::

    [project.entry-points."streams.contracts"]
    purchase_order = "acme_contracts.po:CONTRACTS"

An entry point's object is a :class:`Contract` or an iterable of them. A search
directory (``contract_search_path`` in the config) is put on the import path,
and the entry points of distributions installed into it (``pip install --target
DIR``) are read as well. Every mistake is one :class:`~streams.errors.ConfigError`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Final

from streams.contract._model import Contract
from streams.errors import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ContractRegistry",
    "discover",
    "load_contract",
    "resolve",
    "select",
]

#: The entry-point group a package declares its contracts in.
ENTRY_POINT_GROUP: Final = "streams.contracts"


class ContractRegistry:
    """Contracts by name and version, each with where it came from."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int], tuple[Contract, str]] = {}

    def add(self, contract: Contract, source: str) -> None:
        """Add one version; a second, different object with the same name and version fails."""
        if not isinstance(contract, Contract):
            raise ConfigError(
                f"{source}: {type(contract).__name__} is not a streams.contract.Contract"
            )
        key = (contract.name, contract.version)
        known = self._by_key.get(key)
        if known is not None and known[0] is not contract:
            raise ConfigError(
                f"contract {contract.ref} is declared twice: by {known[1]} and by {source}"
            )
        self._by_key[key] = (contract, source)

    def get(self, name: str, version: int) -> Contract:
        try:
            return self._by_key[(name, version)][0]
        except KeyError:
            known = ", ".join(c.ref for c in self) or "none"
            raise ConfigError(
                f"unknown contract {name}.v{version}; known: {known} "
                f"(entry-point group {ENTRY_POINT_GROUP!r})"
            ) from None

    def versions(self, name: str) -> list[Contract]:
        return [c for c in self if c.name == name]

    def __iter__(self) -> Iterator[Contract]:
        for key in sorted(self._by_key):
            yield self._by_key[key][0]

    def __len__(self) -> int:
        return len(self._by_key)


def discover(search_path: Sequence[Path] = ()) -> ContractRegistry:
    """Every contract declared in group :data:`ENTRY_POINT_GROUP`, search directories included."""
    _extend_import_path(search_path)
    registry = ContractRegistry()
    seen: set[str] = set()
    # The search directories first, then everything importable. A distribution seen
    # twice (its folder is on sys.path too) counts once, the first one found, as in
    # importlib.metadata.entry_points().
    dists = [*metadata.distributions(path=[str(p) for p in search_path]), *metadata.distributions()]
    for dist in dists:
        dist_name = dist.metadata["Name"] or "?"
        key = dist_name.lower().replace("-", "_").replace(".", "_")
        if key in seen:
            continue
        seen.add(key)
        for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
            where = f"entry point {ep.name} = {ep.value} ({dist_name})"
            for contract in _contracts_of(_import(ep.value), where):
                registry.add(contract, where)
    return registry


def resolve(ref: str, version: int | None = None, *, search_path: Sequence[Path] = ()) -> Contract:
    """The contract a pipeline names: ``module:OBJECT``, or a name and ``version``."""
    if ":" in ref:
        _extend_import_path(search_path)
        contract = load_contract(ref)
        if version is not None and version != contract.version:
            raise ConfigError(
                f"contract {ref} is {contract.ref}, but contract_version = {version}; "
                "drop contract_version (an import path names its version)"
            )
        return contract
    if version is None:
        raise ConfigError(f"contract {ref!r} is a name: set contract_version too")
    return discover(search_path).get(ref, version)


def select(refs: Sequence[str], *, search_path: Sequence[Path] = ()) -> list[Contract]:
    """The contracts the schema tools work on: ``module:OBJECT`` or an entry-point name.

    An import path may name one contract or a collection of them; a name means
    every version registered under it.
    """
    _extend_import_path(search_path)
    chosen = ContractRegistry()
    registry: ContractRegistry | None = None
    for ref in refs:
        if ":" in ref:
            for contract in _contracts_of(_import(ref), f"contract {ref}"):
                chosen.add(contract, ref)
            continue
        registry = registry or discover(search_path)
        versions = registry.versions(ref)
        if not versions:
            known = ", ".join(sorted({c.name for c in registry})) or "none"
            raise ConfigError(f"unknown contract {ref!r}; known: {known}")
        for contract in versions:
            chosen.add(contract, f"entry point {ref}")
    return list(chosen)


def load_contract(ref: str) -> Contract:
    """Import ``module:OBJECT`` and check that it is a :class:`Contract`."""
    obj = _import(ref)
    if not isinstance(obj, Contract):
        raise ConfigError(
            f"contract {ref}: a {type(obj).__name__}, not a streams.contract.Contract"
        )
    return obj


def _import(ref: str) -> object:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"contract {ref!r}: write an import path as module:OBJECT")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"contract {ref}: module {exc.name or module_name!r} not found; install its "
            "package or add its folder to contract_search_path"
        ) from None
    except Exception as exc:
        # A user's module failing at import is a config mistake too; say where and why.
        raise ConfigError(
            f"contract {ref}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"contract {ref}: {module_name} has no {attr!r}") from None
    return obj


def _contracts_of(obj: object, where: str) -> list[Contract]:
    if isinstance(obj, Contract):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        items = list(obj)
        for item in items:
            if not isinstance(item, Contract):
                raise ConfigError(
                    f"{where}: holds a {type(item).__name__}, not a streams.contract.Contract"
                )
        return items
    raise ConfigError(
        f"{where}: a {type(obj).__name__}, not a Contract or a collection of Contracts"
    )


def _extend_import_path(search_path: Sequence[Path]) -> None:
    for folder in search_path:
        entry = str(Path(folder).resolve())
        if not Path(entry).is_dir():
            raise ConfigError(f"contract_search_path: {folder} is not a directory")
        if entry not in sys.path:
            sys.path.insert(0, entry)
