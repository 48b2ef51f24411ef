"""Loading contracts from outside the repository: import paths, entry points, search folders."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

import contracts
from streams.contract import (
    ENTRY_POINT_GROUP,
    Contract,
    ContractRegistry,
    discover,
    resolve,
    select,
)
from streams.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
_IDS = itertools.count()

MODULE = '''
from pydantic import BaseModel, ConfigDict, Field

from streams.contract import Contract, Example, Prompt


class Order(BaseModel):
    """A purchase order."""

    model_config = ConfigDict(extra="forbid")
    po_number: str = Field(description="The PO number.")


ORDER_V1 = Contract(
    name="{name}",
    version=1,
    model=Order,
    prompt=Prompt("Extract the order.", (Example("PO 1", {{"po_number": "1"}}),)),
)
CONTRACTS = (ORDER_V1,)
NOT_A_CONTRACT = Order
'''


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The loader puts search folders on sys.path; each test gets its own copy back.
    monkeypatch.setattr(sys, "path", list(sys.path))


def _package(folder: Path, *, name: str = "order", entry_point: bool = True) -> str:
    """Write a user's contract module into ``folder`` (and its dist-info); return its name."""
    module = f"acme_orders_{next(_IDS)}"
    (folder / f"{module}.py").write_text(MODULE.format(name=name), "utf-8")
    if entry_point:
        info = folder / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(
            f"[{ENTRY_POINT_GROUP}]\n{name} = {module}:CONTRACTS\n", "utf-8"
        )
    return module


def test_builtin_examples_come_through_the_entry_point_group() -> None:
    """invoice, claim and lead are found the way a user's contracts are: by entry point."""
    refs = [c.ref for c in discover()]
    assert refs == ["claim.v1", "invoice.v1", "invoice.v2", "invoice.v3", "lead.v1"]
    assert discover().get("invoice", 2) is contracts.get_contract("invoice", 2)


def test_import_path_names_a_version(tmp_path: Path) -> None:
    """``module:OBJECT`` loads that contract; its version comes from the object."""
    module = _package(tmp_path, entry_point=False)
    contract = resolve(f"{module}:ORDER_V1", search_path=[tmp_path])
    assert isinstance(contract, Contract)
    assert contract.ref == "order.v1"
    assert resolve(f"{module}:ORDER_V1", 1) is contract


def test_name_and_version_through_an_entry_point_in_a_search_folder(tmp_path: Path) -> None:
    """A distribution installed into a search folder registers its contracts by name."""
    module = _package(tmp_path)
    contract = resolve("order", 1, search_path=[tmp_path])
    assert contract is sys.modules[module].ORDER_V1


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no_such_module_xyz:X", r"module 'no_such_module_xyz' not found"),
        ("{module}:MISSING", r"has no 'MISSING'"),
        ("{module}:NOT_A_CONTRACT", r"a ModelMetaclass, not a streams.contract.Contract"),
        ("{module}", r"is a name: set contract_version too"),
        ("nothing", r"is a name: set contract_version too"),
    ],
)
def test_each_mistake_is_one_line_config_error(tmp_path: Path, ref: str, message: str) -> None:
    """A missing module, a missing object, a non-contract: one ConfigError line each."""
    module = _package(tmp_path, entry_point=False)
    with pytest.raises(ConfigError, match=message) as info:
        resolve(ref.format(module=module), search_path=[tmp_path])
    assert "\n" not in str(info.value)


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    """A name no entry point declares fails, naming the contracts that exist."""
    with pytest.raises(ConfigError, match=r"unknown contract order\.v1; known: claim\.v1, "):
        resolve("order", 1, search_path=[tmp_path])


def test_version_mismatch_with_an_import_path(tmp_path: Path) -> None:
    """contract_version contradicting the object's version is refused."""
    module = _package(tmp_path, entry_point=False)
    with pytest.raises(ConfigError, match=r"is order\.v1, but contract_version = 2"):
        resolve(f"{module}:ORDER_V1", 2, search_path=[tmp_path])


def test_two_contracts_with_the_same_name_and_version(tmp_path: Path) -> None:
    """Two packages declaring order.v1 fail start-up, naming both entry points."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    one, two = _package(first), _package(second)
    with pytest.raises(ConfigError, match=r"contract order\.v1 is declared twice: by entry") as e:
        discover([first, second])
    assert one in str(e.value)
    assert two in str(e.value)


def test_a_search_folder_that_does_not_exist(tmp_path: Path) -> None:
    """A typo in contract_search_path is a ConfigError, not an empty search."""
    with pytest.raises(ConfigError, match="is not a directory"):
        discover([tmp_path / "missing"])


def test_registry_refuses_what_is_not_a_contract() -> None:
    """Only Contract objects can be registered."""
    with pytest.raises(ConfigError, match=r"str is not a streams\.contract\.Contract"):
        ContractRegistry().add("invoice", "test")  # type: ignore[arg-type]


def test_select_takes_collections_and_names(tmp_path: Path) -> None:
    """The schema tools take ``module:COLLECTION`` and entry-point names (all versions)."""
    module = _package(tmp_path, entry_point=False)
    chosen = select([f"{module}:CONTRACTS", "invoice"], search_path=[tmp_path])
    assert [c.ref for c in chosen] == ["invoice.v1", "invoice.v2", "invoice.v3", "order.v1"]
    with pytest.raises(ConfigError, match=r"unknown contract 'nope'; known: claim, invoice"):
        select(["nope"])


def test_a_user_module_that_fails_at_import(tmp_path: Path) -> None:
    """A contract declared wrongly (bad name) surfaces as a ConfigError naming the module."""
    module = _package(tmp_path, name="bad-name", entry_point=False)
    with pytest.raises(ConfigError, match=rf"importing {module} failed: ValueError: contract"):
        resolve(f"{module}:ORDER_V1", search_path=[tmp_path])


def test_streams_never_imports_the_example_contracts() -> None:
    """No module under streams/ imports the built-in contracts by name (they are plugins)."""
    found = subprocess.run(
        ["grep", "-rlE", r"^\s*(import contracts|from contracts)", "streams"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert not found, found


def test_importing_streams_loads_no_example_contract() -> None:
    """The worker, schema tools, demo and reports load contracts only through the registry."""
    modules = "streams.app, streams.avro_schema, streams.demo, streams.grounding_report"
    code = (
        f"import sys, {modules}, streams.commands, streams.inspect\n"
        "print(sorted(m for m in sys.modules if m.startswith('contracts.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("contract", "version", "message"),
    [
        ("no_such_module_xyz:PO_V1", None, r"module 'no_such_module_xyz' not found"),
        ("invoice", 9, r"unknown contract invoice\.v9; known: claim\.v1"),
        ("contracts.catalog:INVOICE", None, r"a tuple, not a streams\.contract\.Contract"),
    ],
)
def test_a_pipeline_naming_a_bad_contract_fails_at_start_up(
    tmp_path: Path, contract: str, version: int | None, message: str
) -> None:
    """build_pipeline turns each contract mistake into one ConfigError line naming the pipeline."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from streams.app import build_pipeline
    from streams.settings import load_settings

    config = tmp_path / "streams.toml"
    version_line = f"contract_version = {version}\n" if version else ""
    config.write_text(
        '[[pipelines]]\nname = "po"\ninput_topic = "po.raw"\n'
        f'contract = "{contract}"\n{version_line}'
        f"contract_search_path = [{json.dumps(str(tmp_path))}]\n",
        "utf-8",
    )
    settings = load_settings(config)
    registry = SchemaRegistryClient.new_client({"url": "mock://loader-test"})
    with pytest.raises(ConfigError, match=message) as e:
        build_pipeline(settings, "po", registry=registry)
    assert str(e.value).startswith("pipeline po: ")
    assert "\n" not in str(e.value)


def test_a_pipeline_loads_a_contract_by_import_path_from_its_search_folder(
    tmp_path: Path,
) -> None:
    """contract = "module:OBJECT" with contract_search_path builds, versioned by the object."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from streams.app import build_pipeline
    from streams.settings import load_settings

    module = _package(tmp_path, entry_point=False)
    config = tmp_path / "streams.toml"
    config.write_text(
        '[[pipelines]]\nname = "po"\ninput_topic = "po.raw"\n'
        f'contract = "{module}:ORDER_V1"\n'
        f"contract_search_path = [{json.dumps(str(tmp_path))}]\n",
        "utf-8",
    )
    registry = SchemaRegistryClient.new_client({"url": "mock://loader-test-ok"})
    pipeline = build_pipeline(load_settings(config), "po", registry=registry)
    assert pipeline.contract.ref == "order.v1"
    assert pipeline.encoder.schema_dict["namespace"] == "order.v1"
