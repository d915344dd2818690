"""Settings: precedence, env names, errors that name the key, and docs that cover them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from oilspill.cli import build_parser, main
from oilspill.config import SETTINGS, Settings, load_settings, markdown_table
from oilspill.errors import ConfigError


def test_defaults_match_the_legacy_service() -> None:
    settings = load_settings(environ={}, dotenv=None)
    assert (settings.host, settings.port, settings.ttl) == ("127.0.0.1", 8000, 600)
    assert settings.data_dir == Path("./results")
    assert settings.backend == "sar" and settings.cors_origin_list == ["*"]
    assert settings.worker_count >= 1


def test_env_overrides_default_and_flag_overrides_env(tmp_path: Path) -> None:
    env = {"OILSPILL_TTL": "30", "OILSPILL_DATA_DIR": str(tmp_path)}
    assert load_settings(environ=env, dotenv=None).ttl == 30
    assert load_settings({"ttl": 5}, environ=env, dotenv=None).ttl == 5
    assert load_settings(environ=env, dotenv=None).data_dir == tmp_path


def test_dotenv_is_read_below_the_environment(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nOILSPILL_PORT=9001\nexport OILSPILL_TTL='42'\n")
    settings = load_settings(environ={"OILSPILL_PORT": "9002"}, dotenv=dotenv)
    assert settings.port == 9002 and settings.ttl == 42


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="OILSPILL_WORKERS='many'"):
        load_settings(environ={"OILSPILL_WORKERS": "many"}, dotenv=None)


def test_http_backend_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="--ml-url"):
        Settings(backend="http")
    with pytest.raises(ConfigError, match="backend must be one of"):
        Settings(backend="yolo")


def test_every_setting_is_a_serve_flag_with_help() -> None:
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    help_text = serve.format_help()
    for setting in SETTINGS:
        assert "--" + setting.name.replace("_", "-") in help_text
        assert f"OILSPILL_{setting.name.upper()}" in help_text


def test_the_readme_settings_table_is_the_generated_one() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert markdown_table() in readme, "regenerate it with `oilspill settings`"


def test_settings_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings"]) == 0
    assert capsys.readouterr().out == markdown_table()


def test_an_unknown_log_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="log level must be one of"):
        Settings(log_level="verbose")


@pytest.mark.parametrize(
    ("values", "processes"),
    [
        ({}, True),  # the embedded detector on 2 workers: processes
        ({"workers": 1}, False),
        ({"worker_processes": "no"}, False),
        ({"worker_processes": "yes", "workers": 1}, True),
        ({"backend": "http", "ml_url": "http://127.0.0.1:9/segment"}, False),
    ],
)
def test_worker_processes_auto_means_processes_for_the_embedded_detector_on_2_workers(
    values: dict[str, str | int], processes: bool
) -> None:
    settings = load_settings({"workers": 2, **values}, environ={}, dotenv=None)
    assert settings.processes is processes


def test_worker_processes_takes_auto_or_a_yes_no_value() -> None:
    assert load_settings(environ={"OILSPILL_WORKER_PROCESSES": "TRUE"}, dotenv=None).processes
    with pytest.raises(ConfigError, match="OILSPILL_WORKER_PROCESSES='sometimes'"):
        load_settings(environ={"OILSPILL_WORKER_PROCESSES": "sometimes"}, dotenv=None)
