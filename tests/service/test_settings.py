"""Settings come from TONGYEOK_* variables, are validated, masked when printed, and documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.runtime.providers import DEVICES
from service.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_environment_variables_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONGYEOK_PORT", "9001")
    monkeypatch.setenv("TONGYEOK_API_KEYS", '["k1", "k2"]')
    settings = Settings()
    assert settings.port == 9001
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1", "k2"]
    assert settings.masked()["api_keys"] == ["***", "***"]
    assert "k1" not in str(settings.masked()) and "k1" not in repr(settings)
    monkeypatch.setenv("TONGYEOK_MAX_BATCH_ROWS", "0")
    with pytest.raises(ValidationError, match="max_batch_rows"):
        Settings()


def test_the_start_up_line_names_the_data_directory_in_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert Settings().masked()["data_dir"] == str(tmp_path / "tongyeok")  # unset: XDG's
    assert Settings(data_dir=tmp_path / "d").masked()["data_dir"] == str(tmp_path / "d")


def test_an_unknown_device_is_refused_at_start_with_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``gpu`` once meant the CPU without a word; now the service does not start, and says what
    it takes."""
    monkeypatch.setenv("TONGYEOK_DEVICE", "gpu")
    with pytest.raises(ValidationError, match=r"device\n.*Input should be 'auto'") as refused:
        Settings()
    assert all(repr(name) in str(refused.value) for name in DEVICES)  # every choice, named
    monkeypatch.setenv("TONGYEOK_DEVICE", "cuda")
    assert Settings().device == "cuda"


def test_readme_documents_every_setting_with_its_default() -> None:
    rows = re.findall(r"^\| `TONGYEOK_([A-Z_]+)` \| `([^`]*)` \|", README.read_text(), re.MULTILINE)
    documented = {name.lower(): default for name, default in rows}
    assert set(documented) == set(Settings.model_fields)
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default
        assert documented[name] == str(default), name


def test_unset_threads_leave_one_core_to_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from service.scheduling import repository as models
    from service.scheduling.repository import runtime_options

    monkeypatch.setattr(models, "cpu_quota", lambda: None)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert runtime_options(Settings(device="cpu")).intra_op_threads == 3
    assert runtime_options(Settings(device="cpu", threads=4)).intra_op_threads == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert runtime_options(Settings(device="cpu")).intra_op_threads == 1
    # a container's CPU limit counts, not the node's cores: 2.5 CPUs of 64 cores -> 3 usable
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(models, "cpu_quota", lambda: 2.5)
    assert runtime_options(Settings(device="cpu")).intra_op_threads == 2
    monkeypatch.setattr(models, "cpu_quota", lambda: 0.5)
    assert runtime_options(Settings(device="cpu")).intra_op_threads == 1


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),
        ({"cpu.max": "150000 100000"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage"}, None),
        ({"cpu.max": "0 100000"}, None),
        ({"cpu.max": "100000 0"}, None),
        ({}, None),
    ],
)
def test_the_cgroup_cpu_quota_is_read_as_cpus(
    tmp_path: Path, files: dict[str, str], quota: float | None
) -> None:
    from service.scheduling.repository import cpu_quota

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_quota(tmp_path) == quota


def refused(monkeypatch: pytest.MonkeyPatch, variable: str, field: str, value: str) -> None:
    """Setting ``variable`` to ``value`` is refused at start-up, naming ``field``."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=field):
        Settings()


@pytest.mark.parametrize("value", ["maybe", "", "2", "\u202e", "x" * 10_000])
def test_overlap_encoder_refuses_what_is_not_a_boolean(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    refused(monkeypatch, "TONGYEOK_OVERLAP_ENCODER", "overlap_encoder", value)
    monkeypatch.setenv("TONGYEOK_OVERLAP_ENCODER", "false")
    assert Settings().overlap_encoder is False


@pytest.mark.parametrize("value", ["sometimes", "", "1", "IN-RUN", "\u202e", "x" * 10_000])
def test_spinning_refuses_what_it_does_not_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from service.scheduling.repository import runtime_options

    refused(monkeypatch, "TONGYEOK_SPINNING", "spinning", value)
    monkeypatch.setenv("TONGYEOK_SPINNING", "always")
    assert runtime_options(Settings(device="cpu")).spinning == "always"


def test_auto_spinning_spins_only_where_a_core_is_left_to_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from service.scheduling import repository as models
    from service.scheduling.repository import runtime_options

    monkeypatch.setattr(models, "cpu_quota", lambda: None)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert Settings().spinning == "auto"
    assert runtime_options(Settings(device="cpu")).spinning == "in-run"  # 1 thread of 2 cores
    assert runtime_options(Settings(device="cpu", threads=2)).spinning == "off"
    assert runtime_options(Settings(device="cpu", threads=8)).spinning == "off"
    assert runtime_options(Settings(device="cpu", threads=2, spinning="in-run")).spinning == (
        "in-run"
    )


def test_a_misspelt_variable_is_refused_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TONGYEOK_MAX_TEXT_CHAR", "10")
    with pytest.raises(
        ValidationError,
        match="TONGYEOK_MAX_TEXT_CHAR is not a setting; did you mean TONGYEOK_MAX_TEXT_CHARS",
    ):
        Settings()
    monkeypatch.delenv("TONGYEOK_MAX_TEXT_CHAR")
    monkeypatch.setenv("TONGYEOK_CACHE_DIR", "/tmp/x")  # read by the exporter: known
    monkeypatch.setenv("TONGYEOK_MAX_TEXT_CHARS", "10")
    assert Settings().max_text_chars == 10


@pytest.mark.parametrize(
    ("text", "keys"),
    [("secret", ["secret"]), ("k1, k2", ["k1", "k2"]), ('["k1", "k,2"]', ["k1", "k,2"])],
)
def test_api_keys_are_comma_separated_or_a_json_list(
    monkeypatch: pytest.MonkeyPatch, text: str, keys: list[str]
) -> None:
    monkeypatch.setenv("TONGYEOK_API_KEYS", text)
    assert [k.get_secret_value() for k in Settings().api_keys] == keys


def test_an_empty_key_in_a_list_is_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TONGYEOK_API_KEYS", "k1,,k2")
    with pytest.raises(ValidationError, match="an empty key"):
        Settings()


def test_a_settings_file_sits_between_the_environment_and_the_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Flags (arguments) > environment > the TOML file > defaults."""
    from service.settings import load_settings

    config = tmp_path / "tongyeok.toml"
    config.write_text(
        'host = "0.0.0.0"\nport = 9100\nmax_text_chars = 77\napi_keys = ["k1"]\n'
        "faults = {step_raises_every = 5}\n"
    )
    monkeypatch.setenv("TONGYEOK_PORT", "9200")
    settings = load_settings(config, host="10.0.0.1")
    assert (settings.host, settings.port, settings.max_text_chars) == ("10.0.0.1", 9200, 77)
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1"]
    assert settings.faults == {"step_raises_every": 5.0} and settings.max_texts == 128
    assert isinstance(settings, Settings)
    monkeypatch.setenv("TONGYEOK_CONFIG", str(config))  # the file named by the environment
    assert load_settings().max_text_chars == 77
    monkeypatch.delenv("TONGYEOK_CONFIG")
    assert load_settings().max_text_chars == 5000


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("max_text_char = 1\n", "'max_text_char' is not a setting; did you mean max_text_chars?"),
        ("PORT = 1\n", "'PORT' is not a setting; did you mean port?"),
        ("[server]\nport = 1\n", "'server' is not a setting; see README's settings table"),
        ('port = "x\n', "is not valid TOML: Illegal character"),
    ],
)
def test_a_settings_file_is_refused_naming_it_and_the_closest_key(
    tmp_path: Path, text: str, refusal: str
) -> None:
    from service.settings import load_settings

    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"settings file {config}")) as refused:
        load_settings(config)
    assert refusal in str(refused.value)
    config.write_text("port = 70000\n")  # a known key with a bad value: pydantic names it
    with pytest.raises(ValueError, match=r"^port \(TONGYEOK_PORT\): .*got 70000$"):
        load_settings(config)
    with pytest.raises(ValueError, match="No such file"):
        load_settings(tmp_path / "none.toml")


def test_a_bad_value_is_one_line_naming_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A newcomer's ``TONGYEOK_MAX_TEXT_CHARS=abc`` was pydantic's three-line report with a link;
    it is one line naming the variable, what is wrong and what was given."""
    from service.settings import load_settings

    monkeypatch.setenv("TONGYEOK_MAX_TEXT_CHARS", "abc")
    with pytest.raises(ValueError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message and "errors.pydantic.dev" not in message
    assert message.startswith("max_text_chars (TONGYEOK_MAX_TEXT_CHARS): ")
    assert message.endswith("got 'abc'")
