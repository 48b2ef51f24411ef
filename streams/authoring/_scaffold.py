"""``streams contract new NAME --dir D``: a contract package to start from.

It writes::

    D/pyproject.toml               the package, with its streams.contracts entry point
    D/<NAME>_contract/__init__.py  CONTRACTS: every version, what the entry point names
    D/<NAME>_contract/v1.py        the model and its Contract (prompt with one example)
    D/<NAME>_contract/samples/     three labelled samples: NN-*.txt plus NN-*.json
    D/tests/test_<NAME>_contract.py  the samples and the example validate

The samples use the one labelled-sample format the simulator's fixtures, the
schema compatibility proofs and the grounding report read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

from streams.errors import ConfigError

__all__ = ["scaffold"]

_NAME: Final = re.compile(r"^[a-z][a-z0-9_]*$")

_SAMPLES: Final = (
    (
        "01-northwind",
        "Northwind Traders\n12 Harbour Road, Leith\n\nReference: NW-1001\n"
        "Date: 2026-03-02\n\nTotal due: 1250.00 EUR\n",
        {
            "reference": "NW-1001",
            "counterparty": "Northwind Traders",
            "issued_on": "2026-03-02",
            "total": 1250.0,
            "currency": "EUR",
        },
    ),
    (
        "02-contoso",
        "CONTOSO LTD\nOur ref. CT/2026/77, issued 2026-04-15.\n"
        "Please pay 89.90 GBP within 30 days.\n",
        {
            "reference": "CT/2026/77",
            "counterparty": "CONTOSO LTD",
            "issued_on": "2026-04-15",
            "total": 89.9,
            "currency": "GBP",
        },
    ),
    (
        "03-fabrikam",
        "From: Fabrikam Inc.\nDocument no. FAB-5521\nDated 2026-05-30\nAmount: 4999.00 USD\n",
        {
            "reference": "FAB-5521",
            "counterparty": "Fabrikam Inc.",
            "issued_on": "2026-05-30",
            "total": 4999.0,
            "currency": "USD",
        },
    ),
)

_EXAMPLE_DOCUMENT: Final = "Tailspin Toys\nRef: TT-42\nDate: 2026-01-10\nTotal: 310.50 CHF\n"
_EXAMPLE_RECORD: Final = {
    "reference": "TT-42",
    "counterparty": "Tailspin Toys",
    "issued_on": "2026-01-10",
    "total": 310.5,
    "currency": "CHF",
}

_PYPROJECT: Final = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "The {name} contract for kafka-llm-streams."
requires-python = ">=3.11"
dependencies = ["kafka-llm-streams"]

[project.entry-points."streams.contracts"]
{name} = "{package}:CONTRACTS"

[tool.setuptools]
packages = ["{package}"]

[tool.setuptools.package-data]
{package} = ["samples/*"]

[tool.pytest.ini_options]
pythonpath = ["."]
"""

_INIT: Final = '''\
"""The {name} contract: every version, as the streams.contracts entry point names them."""

from {package}.v1 import {const}_V1

CONTRACTS = ({const}_V1,)
'''

_V1: Final = '''\
"""{title}, version 1."""

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from streams.contract import Contract, Example, GroundingPolicy, Prompt

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class {cls}(BaseModel):
    """{title}: who sent it, its reference, its date and its total."""

    model_config = ConfigDict(extra="forbid")

    reference: Text = Field(description="The document's reference number, exactly as printed.")
    counterparty: Text = Field(description="The company that issued the document.")
    issued_on: date = Field(description="The date the document was issued.")
    total: Decimal = Field(
        max_digits=12, decimal_places=2, description="The total amount, without currency."
    )
    currency: str = Field(pattern=r"^[A-Z]{{3}}$", description="ISO 4217 code, e.g. EUR.")


INSTRUCTIONS = """\\
Extract the {title_lower} from the document. Copy the reference and the company name
exactly as printed. Give the date as YYYY-MM-DD and the total as a decimal number
with two places."""

{const}_V1 = Contract(
    name="{name}",
    version=1,
    model={cls},
    prompt=Prompt(
        instructions=INSTRUCTIONS,
        examples=(
            Example(
                document={example_document!r},
                record={example_record},
            ),
        ),
    ),
    compatibility="BACKWARD",
    grounding=GroundingPolicy(required=("reference", "counterparty")),
    samples=Path(__file__).parent / "samples",
)
'''

_TEST: Final = '''\
"""The {name} contract's samples and prompt example validate against its model."""

import json

import pytest

from {package} import CONTRACTS

CASES = [
    (contract, path)
    for contract in CONTRACTS
    if contract.samples is not None
    for path in sorted(contract.samples.glob("*.json"))
]


@pytest.mark.parametrize(("contract", "path"), CASES, ids=lambda c: getattr(c, "name", c))
def test_sample_validates(contract, path) -> None:
    """Each labelled sample's expected record is a valid record, and has its document."""
    contract.model.model_validate_json(path.read_text("utf-8"), strict=True)
    assert path.with_suffix(".txt").is_file()


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.ref)
def test_prompt_examples_validate(contract) -> None:
    """Every example shown to the model is itself a valid record."""
    for example in contract.prompt.examples:
        contract.model.model_validate_json(json.dumps(example.record), strict=True)
'''


def scaffold(name: str, directory: Path) -> list[Path]:
    """Write a contract package for ``name`` into ``directory``; return the files written."""
    if not _NAME.match(name):
        raise ConfigError(
            f"contract name {name!r}: use lower-case letters, digits and underscores, "
            "starting with a letter (it names the package, Avro records and topics)"
        )
    package = f"{name}_contract"
    if (directory / package).exists() or (directory / "pyproject.toml").exists():
        raise ConfigError(f"{directory}: already holds a project; choose an empty --dir")
    title = name.replace("_", " ").capitalize()
    fields = {
        "name": name,
        "package": package,
        "dist": f"{name.replace('_', '-')}-contract",
        "const": name.upper(),
        "cls": "".join(part.capitalize() for part in name.split("_")),
        "title": title,
        "title_lower": title.lower(),
        "example_document": _EXAMPLE_DOCUMENT,
        # JSON of strings is also a Python literal, and reads like the samples.
        "example_record": json.dumps(_EXAMPLE_RECORD, indent=4).replace("\n", "\n" + " " * 16),
    }
    files = {
        directory / "pyproject.toml": _PYPROJECT.format(**fields),
        directory / package / "__init__.py": _INIT.format(**fields),
        directory / package / "v1.py": _V1.format(**fields),
        directory / "tests" / f"test_{package}.py": _TEST.format(**fields),
    }
    for stem, document, record in _SAMPLES:
        samples = directory / package / "samples"
        files[samples / f"{stem}.txt"] = document
        files[samples / f"{stem}.json"] = json.dumps(record, indent=2) + "\n"
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
