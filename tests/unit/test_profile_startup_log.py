"""At start-up a pipeline logs, once, the contract constraints its target will not enforce."""

from __future__ import annotations

import logging

import pytest

from streams.app import build_pipeline
from streams.settings import Settings, load_settings


def _settings(profile: str) -> Settings:
    return load_settings(
        None,
        llm={"base_url": "http://127.0.0.1:9/v1", "schema_profile": profile},
        registry={"url": "mock://"},
        worker={"cache": False},
        pipelines=[
            {"name": "p", "input_topic": "p.raw", "contract": "invoice", "contract_version": 1}
        ],
    )


@pytest.mark.parametrize(
    ("profile", "count", "shown"),
    [
        ("llamacpp", 1, "quantity: exclusiveMinimum=0 (the regex allows 0)"),
        ("legacy", 16, "#/properties/currency: pattern=^[A-Z]{3}$"),
    ],
)
def test_the_unenforced_constraints_are_logged_once(
    profile: str, count: int, shown: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One INFO line names the profile, counts the constraints and says validation catches them."""
    with caplog.at_level(logging.INFO, logger="streams.app"):
        build_pipeline(_settings(profile), "p")
    lines = [r.getMessage() for r in caplog.records if "not enforced" in r.getMessage()]
    assert len(lines) == 1
    assert f"schema profile {profile}/v1" in lines[0]
    assert f"{count} constraint(s) are not enforced by the decoder, only by validation" in lines[0]
    assert shown in lines[0]
