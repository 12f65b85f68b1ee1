"""One settings object for the service, from ``TONGYEOK_*`` environment variables and a TOML file.

Precedence: the command's flags (arguments) > the environment > the TOML file (``tongyeok serve
--config``, or ``TONGYEOK_CONFIG``; keys are the field names) > the defaults. Validated at
start-up, printed with secrets masked, passed to ``create_app`` — never read at import. The
README's settings table is checked against this class by a test.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from service.runtime.providers import Device, device_help

PREFIX = "TONGYEOK_"
# Variables of the prefix read outside the settings, known here so that a typo in any other
# TONGYEOK_* variable is caught at start: the settings file, the exporter's cache and the shipped
# model's precision (tongyeok serve), and those of the tests, the Compose file and the Locust
# load test.
OTHER_VARIABLES = (
    *("config", "cache_dir", "shipped_precision"),
    *("data", "artifacts", "image", "host_port"),
    *("loadtest_sentences", "loadtest_source", "loadtest_target"),
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=None, extra="ignore")

    @property
    def data_path(self) -> Path:
        """``data_dir``, or the user's data directory (XDG)."""
        if self.data_dir is not None:
            return self.data_dir
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "tongyeok"

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="HTTP worker processes (1: one process does everything; more: that many "
        "workers parse, tokenize and detokenize in front of one engine process that decodes, "
        "restarted when they die)",
    )
    model_repository: Path = Field(
        Path("models"), description="directory of model packages, one per language pair"
    )
    data_dir: Path | None = Field(
        None,
        description="where state that must survive a restart is kept when state_url is unset "
        "(API keys and usage, glossaries, document jobs: SQLite files); None: "
        "$XDG_DATA_HOME/tongyeok, else ~/.local/share/tongyeok",
    )
    state_url: str | None = Field(
        None,
        description="where the shared state lives (API keys, their usage and rate limits, "
        "glossaries, document jobs and their results): redis://host:port/db to share it between "
        "replicas, none needing session affinity; unset: SQLite files in data_dir (keys.sqlite3, "
        "glossaries.sqlite3, documents.sqlite3), rates in each process",
    )
    state_failure: Literal["closed", "open"] = Field(
        "closed",
        description="when the key database cannot be reached: closed refuses keyed requests "
        "with 503; open serves keys from api_keys unbilled (stored keys cannot be checked: 503)",
    )
    max_wrong_keys_per_minute: int = Field(
        30,
        ge=0,
        description="wrong API keys one client address may send a minute; beyond, every request "
        "with a key from it is a 429 until the minute has passed, so keys cannot be guessed "
        "(shared through state_url's Redis; 0: no limit, e.g. behind a proxy, where every client "
        "has the proxy's address)",
    )
    device: Device = Field("auto", description=device_help())
    threads: int = Field(
        0,
        ge=0,
        description="ONNX Runtime intra-op threads (0: one per core but one, left to the event "
        "loop; a container's CPU limit caps the cores)",
    )
    spinning: Literal["auto", "off", "in-run", "always"] = Field(
        "auto",
        description="when ONNX Runtime's idle intra-op threads spin: in-run (during a decoder "
        "step, then they sleep), always (between steps too), off; auto: in-run when the threads "
        "leave a core to the event loop, else off",
    )
    max_batch_rows: int = Field(
        256, ge=1, description="decoder rows per step (a beam-4 sentence takes 4)"
    )
    max_client_rows: int | None = Field(
        None,
        ge=1,
        description="while another client has work (or sent a request within the last second), "
        "one client's sentences hold at most this many decoder rows; unset: the device's (16 on "
        "a CPU, where a step's time grows with its rows; on CUDA an equal share of "
        "max_batch_rows). It bounds the others' latency during one client's flood; set it to "
        "max_batch_rows for no bound",
    )
    max_batch_tokens: int = Field(
        65536,
        ge=1,
        description="cache positions the running batch may reserve: beams x (source + longest "
        "output) summed over its sentences",
    )
    batching: Literal["continuous", "request", "none"] = Field(
        "continuous",
        description="continuous (sentences join and leave at every step); request and none "
        "exist to benchmark against",
    )
    join_interval: int = Field(
        4,
        ge=1,
        description="continuous batching: while the engine is busy, waiting sentences join every "
        "this many decoder steps (or at once when 8 or more wait); larger batches one encoder pass",
    )
    overlap_encoder: bool = Field(
        True,
        description="run joining sentences' encoder pass in a thread of its own while the batch "
        "keeps stepping (off: every step waits for it)",
    )
    max_queue_sentences: int = Field(
        4096,
        ge=1,
        description="sentences waiting beyond which requests get 429 (a request with more gets "
        "413)",
    )
    request_timeout: float = Field(30.0, gt=0, description="seconds before a request gets 504")
    max_request_work: int = Field(
        4096,
        ge=1,
        description="sentences x beam_size one request may ask for (413 beyond): the work "
        "request_timeout covers at the measured capacity; raise it with the timeout or on "
        "faster hardware",
    )
    max_texts: int = Field(128, ge=1, description="texts per request")
    max_text_chars: int = Field(5000, ge=1, description="characters per text")
    max_body_bytes: int = Field(
        1_000_000, ge=1, description="request body size, counted as it arrives (413 beyond)"
    )
    body_timeout: float = Field(
        10.0, gt=0, description="seconds a client may take to send its body (408 beyond)"
    )
    max_beam_size: int = Field(8, ge=1, description="largest beam a request may ask for")
    cache_entries: int = Field(
        20_000, ge=0, description="sentence translations kept in the LRU cache (0: off)"
    )
    cache_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="bytes the translation cache may hold (its strings as Python stores them, "
        "and each entry's objects)",
    )
    file_expiry_seconds: float = Field(
        600.0,
        gt=0,
        description="seconds a translated file stays downloadable from /download_file, by the "
        "key that made it (each key's last 32)",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="API keys accepted without limits (comma-separated, or a JSON list), "
        "besides those of tongyeok keys; neither: no auth",
    )
    metrics_token: SecretStr | None = Field(
        None, description="bearer token /metrics requires (unset: /metrics is open)"
    )
    drain_seconds: float = Field(
        20.0, ge=0, description="grace period for in-flight requests on SIGTERM"
    )
    repository_poll_seconds: float = Field(
        5.0,
        ge=0,
        description="seconds between looks at the model repository for packages added, "
        "replaced or removed (0: only on SIGHUP or POST /v1/admin/reload)",
    )
    max_inflight_requests: int = Field(
        512,
        ge=1,
        description="requests in flight on the routes that check a key, counted once the key "
        "is admitted (any request, without keys) and the body has arrived, beyond which new ones "
        "get 429 before any work (bounds the event loop's backlog under overload)",
    )
    max_unauthenticated_requests: int = Field(
        32,
        ge=1,
        description="requests in flight on the routes that check no key (the page, its files, "
        "the docs' scripts), beyond which they get 429: they never take the keyed share",
    )
    max_connections: int = Field(
        4096,
        ge=1,
        description="open connections; beyond, the oldest one still sending its request (from "
        "the address with the most) is closed for the new one, else the new one is (tongyeok "
        "serve; lowered to fit the open-file limit)",
    )
    max_connections_per_client: int = Field(
        512,
        ge=0,
        description="open connections from one client address, beyond which its new ones are "
        "closed (tongyeok serve; 0: no limit, e.g. behind a proxy, where every client has the "
        "proxy's address)",
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds a connection may take to send a request's headers, from its "
        "opening or its previous answer, bytes arriving or not (closed beyond; tongyeok serve)",
    )
    send_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds an answer may wait on a client that reads none of it (closed "
        "beyond, its request ended; tongyeok serve)",
    )
    public_url: str | None = Field(
        None,
        description="scheme and host clients reach the service at (e.g. https://mt.example.com), "
        "for the URLs it writes (download links, redirects); unset: the address each "
        "connection arrived at, never the client's Host header",
    )
    faults: dict[str, float] = Field(
        default_factory=dict,
        description='tests only: fault injection as JSON, e.g. {"step_raises_every": 5} '
        "(service/scheduling/faults.py); empty: off",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (arguments) > environment > the TOML file (``model_config["toml_file"]``, set
        by ``load_settings``; none by default) > defaults."""
        toml = TomlConfigSettingsSource(settings_cls)
        return init_settings, env_settings, dotenv_settings, toml, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def no_unknown_variables(cls, data: Any) -> Any:
        """A ``TONGYEOK_*`` variable that names no setting is a typo, refused with the closest
        name instead of ignored (``TONGYEOK_MAX_TEXT_CHAR`` once left the limit at 5000)."""
        known = {name.upper() for name in (*cls.model_fields, *OTHER_VARIABLES)}
        for variable in sorted(os.environ):
            name = variable[len(PREFIX) :]
            if variable.startswith(PREFIX) and name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"did you mean {PREFIX}{close[0]}?" if close else "see README's table"
                raise ValueError(f"{variable} is not a setting; {hint}")
        return data

    @field_validator("api_keys", mode="before")
    @classmethod
    def keys_from_text(cls, value: Any) -> Any:
        """A variable's text: a JSON list, or comma-separated keys (spaces around them ignored)."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("not a valid JSON list of keys") from None
        return [key.strip() for key in value.split(",")]

    @field_validator("api_keys", "metrics_token")
    @classmethod
    def no_empty_secrets(cls, value: Any) -> Any:
        """An empty key would let anyone in: refuse it at start-up."""
        secrets = value if isinstance(value, list) else [value]
        if any(s is not None and not s.get_secret_value().strip() for s in secrets):
            raise ValueError("an empty key or token is not allowed")
        return value

    @field_validator("public_url")
    @classmethod
    def scheme_and_host(cls, value: str | None) -> str | None:
        """``http(s)://host[:port]``: what every URL the service writes starts with."""
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
                raise ValueError("public_url is http(s)://host[:port], e.g. https://mt.example.com")
        return value

    def masked(self) -> dict[str, Any]:
        """Every setting, secrets replaced by ***, for the start-up log line."""
        data = self.model_dump()
        data["api_keys"] = ["***"] * len(self.api_keys)
        data["metrics_token"] = "***" if self.metrics_token else None
        if self.state_url:  # a password in the URL stays out of the log
            data["state_url"] = self.state_url.split("@")[-1]
        data["model_repository"] = str(self.model_repository)
        data["data_dir"] = str(self.data_path)  # where the SQLite state is, also when unset
        return data


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """The settings: ``overrides`` (the command's flags) > environment > the TOML file
    ``config`` (default: ``TONGYEOK_CONFIG``'s; none) > defaults. A file that does not parse, or
    a key that names no setting, is refused naming the file (and the closest name)."""
    config = config or os.environ.get(f"{PREFIX}CONFIG") or None
    try:
        if config is None:
            return Settings(**overrides)
        path = Path(config)
        check_settings_file(path)
        # The same class with a file: pydantic-settings reads ``toml_file`` from its config.
        with_file = type(Settings.__name__, (Settings,), {"model_config": {"toml_file": path}})
        return with_file(**overrides)
    except ValidationError as exc:
        raise ValueError(settings_errors(exc)) from None


def settings_errors(exc: ValidationError) -> str:
    """Pydantic's report in a person's words, one clause per setting: ``max_text_chars
    (TONGYEOK_MAX_TEXT_CHARS): Input should be a valid integer, got 'abc'``."""
    clauses = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            name = str(error["loc"][0])
            given = error.get("input")
            got = f", got {given!r}" if isinstance(given, str | int | float) else ""
            clauses.append(f"{name} ({PREFIX}{name.upper()}): {message}{got}")
        else:
            clauses.append(message)
    return "; ".join(clauses)


def check_settings_file(path: Path) -> None:
    """ValueError naming ``path`` unless it is a TOML table of settings' names (lower-case)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"settings file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"settings file {path} is not valid TOML: {exc}") from None
    known = sorted(Settings.model_fields)
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key.lower(), known, n=1)
            hint = f"did you mean {close[0]}?" if close else "see README's settings table"
            raise ValueError(f"settings file {path}: {key!r} is not a setting; {hint}")
