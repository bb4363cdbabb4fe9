"""config: the shipped defaults and price table, typed, exact, and found when installed."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import config
from config import (
    PricingTable,
    Settings,
    load_pricing,
    load_settings,
    read_package_toml,
)
from protocol.session import Preferences
from services.file_watcher import BLIND_RESCAN_INTERVAL_S
from services.store import RetryPolicy
from services.watch.coalesce import DEFAULT_MAX_HOLD_S, DEFAULT_SETTLE_S
from services.watch.observers import POLL_INTERVAL_S

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_defaults_load_into_typed_settings() -> None:
    """defaults.toml loads into Settings with the documented values and types."""
    settings = load_settings()
    assert isinstance(settings, Settings)
    assert settings.autosave.interval_s == 30.0
    assert isinstance(settings.autosave.interval_s, float)
    assert settings.history.size == 20
    assert settings.store.attempts == 3
    assert settings.supervisor.request_wait_s == 5.0
    assert settings.supervisor.heartbeat_liveness == 3
    assert settings.protocol.max_frame_bytes == 1_048_576


def test_budget_defaults_are_exact_decimals() -> None:
    """Budget figures in defaults.toml are Decimals with the written digits, never floats."""
    budget = load_settings().budget
    assert budget.warning_fraction == Decimal("0.8")
    assert budget.confirm_above == Decimal("0.10")
    assert budget.daily_limit == Decimal(50)
    assert budget.weekly_limit == Decimal(200)
    assert budget.monthly_limit == Decimal(500)
    for value in (budget.warning_fraction, budget.confirm_above, budget.daily_limit):
        assert isinstance(value, Decimal)


def test_defaults_file_sets_every_setting_explicitly() -> None:
    """Every field of Settings appears in defaults.toml, so the file documents them all."""
    data = read_package_toml("defaults.toml")
    for section, model in Settings.model_fields.items():
        assert section in data, section
        section_type: Any = model.annotation
        assert set(data[section]) == set(section_type.model_fields), section


def test_overrides_merge_over_the_defaults() -> None:
    """An override changes only the keys it names, at any depth; the rest stay default."""
    settings = load_settings({"autosave": {"interval_s": 5}, "budget": {"daily_limit": None}})
    assert settings.autosave.interval_s == 5.0
    assert settings.budget.daily_limit is None
    assert settings.budget.weekly_limit == Decimal(200)
    assert settings.history.size == 20
    assert load_settings().autosave.interval_s == 30.0, "the shipped defaults are not mutated"


def test_empty_overrides_are_the_defaults() -> None:
    """No overrides, `None` and `{}` all give the shipped defaults."""
    assert load_settings(None) == load_settings({}) == load_settings()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"autosave": {"intervall_s": 5}}, "intervall_s"),
        ({"autosav": {"interval_s": 5}}, "autosav"),
        ({"autosave": {"interval_s": 0}}, "interval_s"),
        ({"store": {"attempts": 0}}, "attempts"),
        ({"budget": {"warning_fraction": Decimal("1.5")}}, "warning_fraction"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(overrides: dict[str, Any], field: str) -> None:
    """A misspelt or out-of-range override is an error naming the key, never silently ignored."""
    with pytest.raises(ValidationError, match=field):
        load_settings(overrides)


def test_pricing_loads_as_a_dated_table_of_aliases() -> None:
    """pricing.toml loads into a dated table; its prices (none today) would be Decimals."""
    pricing = load_pricing()
    assert isinstance(pricing, PricingTable)
    assert pricing.meta.as_of == "2026-11-30"
    assert pricing.meta.unit == "USD per 1K tokens"
    for price in pricing.models.values():
        assert isinstance(price.input, Decimal)
        assert isinstance(price.output, Decimal)


def test_seed_model_names_are_aliases_of_current_ids() -> None:
    """The UI's short names (claude-sonnet-3.5, gemini-flash...) map to the providers' ids."""
    pricing = load_pricing()
    assert pricing.aliases["gemini-pro"] == "gemini-1.5-pro"
    assert pricing.aliases["claude-sonnet-3.5"] == "claude-3-5-sonnet-20241022"
    assert {"claude-opus-3", "gemini-flash"} <= set(pricing.aliases)


def test_toml_floats_are_read_as_decimal() -> None:
    """`read_package_toml` parses every TOML float as a Decimal, so no price is ever a float."""
    data = read_package_toml("defaults.toml")
    floats = [v for section in data.values() if isinstance(section, dict) for v in section.values()]
    assert not any(isinstance(value, float) for value in floats)


def test_config_files_are_read_beside_the_package_without_importlib_resources() -> None:
    """From a checkout (or a wheel) the TOML files are read by path, so a process never pays
    importlib.resources' imports (the zip case below still goes through it)."""
    code = "import sys, config; config.raw_defaults(); print('importlib.resources' in sys.modules)"
    result = _python(code, "", cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]


def _python(code: str, argument: str, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, argument],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        check=False,
    )


def test_config_is_found_when_installed_as_a_zip(tmp_path: Path) -> None:
    """Installed somewhere else, even inside a zip archive, `config` still finds its TOML files."""
    archive = tmp_path / "site.zip"
    source = Path(config.__file__).parent
    with zipfile.ZipFile(archive, "w") as bundle:
        for name in ("__init__.py", "settings.py", "defaults.toml", "pricing.toml"):
            bundle.write(source / name, f"config/{name}")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import config; "
        "assert config.__file__.startswith(sys.argv[1]), config.__file__; "
        "print(config.load_pricing().meta.as_of, config.load_settings().history.size)"
    )
    result = _python(code, str(archive), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2026-11-30", "20"]


def test_toml_files_are_declared_as_package_data() -> None:
    """pyproject ships defaults.toml and pricing.toml inside the wheel with the `config` package."""
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "*.toml" in pyproject["tool"]["setuptools"]["package-data"]["config"]


def _documented_defaults() -> dict[tuple[str, str], str]:
    """(section, key) -> the default column of docs/configuration.md's tables, unquoted."""
    text = (PROJECT_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    body = text.split("## Every setting of `config/defaults.toml`", 1)[1].split("\n## ", 1)[0]
    found: dict[tuple[str, str], str] = {}
    section = ""
    for line in body.splitlines():
        heading = re.fullmatch(r"### `\[(\w+)\]`", line.strip())
        if heading:
            section = heading.group(1)
            continue
        row = re.match(r"\| `(\w+)` \| [^|]* \| `([^`]+)`", line)
        if row and section:
            found[(section, row.group(1))] = row.group(2)
    return found


def test_documented_defaults_are_the_shipped_values() -> None:
    """Every key of defaults.toml is in docs/configuration.md with the very value shipped."""
    shipped = {
        (section, key): value
        for section, values in read_package_toml("defaults.toml").items()
        for key, value in values.items()
    }
    documented = _documented_defaults()
    assert set(documented) == set(shipped)
    for name, text in documented.items():
        parsed = tomllib.loads(f"v = {text}", parse_float=Decimal)["v"]
        assert parsed == shipped[name], name


def test_settings_models_hold_no_default_values() -> None:
    """No settings field has a value in Python: defaults.toml is the only copy."""
    for section, field in Settings.model_fields.items():
        section_type: Any = field.annotation
        assert field.is_required(), section
        for key, inner in section_type.model_fields.items():
            assert inner.is_required(), f"{section}.{key} has a default in Python"


def test_values_the_code_takes_from_elsewhere_match_the_toml() -> None:
    """Defaults held outside `config` (preferences, retry policy, timings) equal the toml."""
    settings = load_settings()
    preferences = Preferences()
    assert preferences.autosave_interval_s == settings.autosave.interval_s
    assert preferences.budget_warning_fraction == settings.budget.warning_fraction
    assert preferences.confirm_above == settings.budget.confirm_above
    policy = RetryPolicy()
    assert (policy.attempts, policy.wait_initial_s, policy.wait_max_s) == (
        settings.store.attempts,
        settings.store.wait_initial_s,
        settings.store.wait_max_s,
    )
    assert (
        settings.watch.settle_s,
        settings.watch.max_hold_s,
    ) == (DEFAULT_SETTLE_S, DEFAULT_MAX_HOLD_S)
    assert settings.watch.blind_rescan_interval_s == BLIND_RESCAN_INTERVAL_S
    assert settings.watch.poll_interval_s == POLL_INTERVAL_S


def test_one_default_is_read_without_importing_pydantic() -> None:
    """`default_value` is cheap enough for the command line to call before its heavy imports."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import config; "
        "print(config.default_value('supervisor', 'fork_server'), 'pydantic' in sys.modules)"
    )
    result = _python(code, str(PROJECT_ROOT), cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]


def test_a_missing_key_is_an_error_not_a_silent_default() -> None:
    """Settings built from a defaults file that lacks a key fail, naming the key."""
    data = config.raw_defaults()
    del data["ledger"]["snapshot_delay_s"]
    with pytest.raises(ValidationError, match="snapshot_delay_s"):
        Settings.model_validate(data)
