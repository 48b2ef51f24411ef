"""Command-line overrides of one setting keep the rest of its group from the file."""

from __future__ import annotations

from pathlib import Path

from streams.settings import load_settings


def test_a_group_override_merges_with_the_file(tmp_path: Path) -> None:
    """--bootstrap replaces kafka.bootstrap_servers only; group_prefix stays from the TOML."""
    config = tmp_path / "s.toml"
    config.write_text('[kafka]\nbootstrap_servers = "a:1"\ngroup_prefix = "team"\n')
    settings = load_settings(config, kafka={"bootstrap_servers": "b:2"})
    assert settings.kafka.bootstrap_servers == "b:2"
    assert settings.kafka.group_prefix == "team"
