"""Settings: read once at start-up from the environment (and ``.env``), validated, frozen.

A missing or invalid variable raises :class:`ConfigError` naming it, so a bad deployment
stops at start-up instead of failing on the first call. Every variable is listed in
``.env.example`` and the README.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, TypeVar, get_args
from urllib.parse import urlsplit

from rt_server.access import is_loopback
from rt_server.errors import ConfigError
from rt_server.images import DEFAULT_MAX_IMAGE_BYTES
from rt_server.logs import Category, parse_log_events
from rt_server.profile import Eagerness, NoiseReduction, Profile, TurnDetection, unknown_locks
from rt_server.profiles import load_profiles
from rt_server.sched import DEFAULT_US, MAX_US, MIN_US, valid

_T = TypeVar("_T", bound=str)

BackendName: TypeAlias = Literal["openai", "azure", "emulator"]
SocketKind: TypeAlias = Literal["picows", "aiohttp", "sdk"]  # see rt_server.backends.sockets
Voice: TypeAlias = Literal[
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "marin", "sage", "shimmer", "verse"
]


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def default_instance_id() -> str:
    """``INSTANCE_ID``'s default: ``<host name>-<process id>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-session limits; every one is documented in the README's limits table."""

    max_message_bytes: int = 256 * 1024
    max_audio_realtime_factor: float = 4.0
    max_text_messages_per_second: float = 5.0
    max_text_bytes_per_second: int = 32 * 1024
    max_session_seconds: float = 3600.0
    idle_timeout_seconds: float = 600.0
    max_sessions: int = 500
    send_buffer_bytes: int = 4 * 1024 * 1024
    backend_connect_timeout: float = 15.0
    response_timeout_seconds: float = 30.0
    reconnect_attempts: int = 3
    head_timeout_seconds: float = 10.0
    stall_timeout_seconds: float = 10.0
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_sessions_total: int = 0  # across every instance sharing REDIS_URL (0: no cap)
    max_sessions_per_token: int = 0  # per client token, across instances (0: no cap)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything rt_server needs, validated; built by :func:`load_settings`."""

    backend: BackendName = "emulator"
    backend_socket: SocketKind = "picows"
    openai_api_key: str | None = field(default=None, repr=False)
    openai_model: str = "gpt-realtime"
    openai_base_url: str | None = None
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    azure_api_key: str | None = field(default=None, repr=False)
    azure_api_version: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    profile: Profile = field(default_factory=Profile)
    profiles: dict[str, Profile] = field(default_factory=dict)
    client_tokens: tuple[str, ...] = field(default=(), repr=False)
    admin_token: str | None = field(default=None, repr=False)
    admin_local: bool = False  # loopback callers use the admin endpoints without the token
    allowed_origins: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    tool_modules: tuple[str, ...] = ()
    shutdown_grace_seconds: float = 10.0
    ready_cache_seconds: float = 10.0
    log_level: str = "INFO"
    log_json: bool = False
    log_events: dict[Category, str] = field(default_factory=dict)  # LOG_EVENTS, by category
    limits: Limits = field(default_factory=Limits)
    public_url: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_account_sid: str | None = None  # with the auth token: POST /make-call
    twilio_phone_number: str | None = None  # the caller id of outbound calls
    twilio_api_url: str = "https://api.twilio.com"
    phone_frame_ms: int = 40  # reply media frames to Twilio: at least this long
    dtmf: Literal["text", "ignore"] = "text"  # a caller's key: a user text item, or nothing
    monitor_buffer: int = 1000
    record_audio_dir: str | None = None
    # Conversation records: an async SQLAlchemy URL (None: not recorded; see _records_url).
    records_url: str | None = field(default=None, repr=False)
    records_retention_days: int = 30
    records_queue: int = 100_000
    records_max_events: int = 10_000
    discussions_dir: str | None = None  # transcript files of discussions (None: no files)
    client_secret_seconds: int = 600
    client_secrets_per_minute: float = 10.0
    audio_coalesce_ms: int = 20
    temperature: float | None = None  # the Azure preview path's sampling temperature
    sched_slice_us: int = DEFAULT_US  # 0: the kernel's default slice (see rt_server.sched)
    #: Shared live state (docs/scale-out.md): a ``redis://`` URL; None: this process alone.
    redis_url: str | None = field(default=None, repr=False)
    instance_id: str = field(default_factory=default_instance_id)
    resume_window_seconds: float = 120.0
    #: OpenTelemetry traces over OTLP/HTTP to this collector (None: no tracing).
    otel_endpoint: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from ``env``; raise :class:`ConfigError` naming a bad variable."""
        get = _Reader(env)
        backend = _backend_name(get)
        profile = _profile(get)
        profiles = {"default": profile}
        if path := get.text("PROFILE_FILE"):
            profiles = load_profiles(path, profile, env)
            profile = profiles["default"]
        settings = cls(
            backend=backend,
            backend_socket=get.choice("BACKEND_SOCKET", get_args(SocketKind), "picows"),
            openai_api_key=get.text("OPENAI_API_KEY"),
            openai_model=get.text("OPENAI_MODEL") or "gpt-realtime",
            openai_base_url=get.url("OPENAI_BASE_URL"),
            azure_endpoint=get.url("AZURE_OPENAI_ENDPOINT"),
            azure_deployment=get.text("AZURE_OPENAI_DEPLOYMENT"),
            azure_api_key=get.text("AZURE_OPENAI_API_KEY"),
            azure_api_version=get.text("AZURE_OPENAI_API_VERSION"),
            host=get.host("HOST") or "127.0.0.1",
            port=get.integer("PORT", 8080, low=0, high=65535),
            profile=profile,
            profiles=profiles,
            client_tokens=get.items("CLIENT_TOKENS"),
            admin_token=get.text("ADMIN_TOKEN"),
            admin_local=get.flag("ADMIN_LOCAL", False),
            allowed_origins=get.items("ALLOWED_ORIGINS"),
            cors_origins=get.items("CORS_ORIGINS"),
            tool_modules=get.items("RT_TOOLS"),
            shutdown_grace_seconds=get.number("SHUTDOWN_GRACE_SECONDS", 10.0, low=0.0),
            ready_cache_seconds=get.number("READY_CACHE_SECONDS", 10.0, low=0.0),
            log_level=get.choice(
                "LOG_LEVEL", ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR"), "INFO"
            ),
            log_json=get.flag("LOG_JSON", False),
            log_events=parse_log_events(get.text("LOG_EVENTS") or ""),
            limits=_limits(get),
            public_url=get.url("PUBLIC_URL"),
            twilio_auth_token=get.text("TWILIO_AUTH_TOKEN"),
            twilio_account_sid=get.text("TWILIO_ACCOUNT_SID"),
            twilio_phone_number=get.text("TWILIO_PHONE_NUMBER"),
            twilio_api_url=get.url("TWILIO_API_URL") or "https://api.twilio.com",
            monitor_buffer=get.integer("MONITOR_BUFFER", 1000, low=1),
            record_audio_dir=get.text("RECORD_AUDIO_DIR"),
            records_url=_records_url(get),
            records_retention_days=get.integer("RECORDS_RETENTION_DAYS", 30, low=0),
            records_queue=get.integer("RECORDS_QUEUE", 100_000, low=100),
            records_max_events=get.integer("RECORDS_MAX_EVENTS", 10_000, low=100),
            discussions_dir=_discussions_dir(get),
            client_secret_seconds=get.integer("CLIENT_SECRET_SECONDS", 600, low=10, high=7200),
            client_secrets_per_minute=get.number("CLIENT_SECRETS_PER_MINUTE", 10.0, low=0.1),
            audio_coalesce_ms=get.integer("AUDIO_COALESCE_MS", 20, low=0, high=200),
            phone_frame_ms=get.integer("PHONE_FRAME_MS", 40, low=0, high=500),
            dtmf=get.choice("DTMF", ("text", "ignore"), "text"),
            temperature=_temperature(get),
            sched_slice_us=_slice(get),
            redis_url=_redis_url(get),
            instance_id=get.text("INSTANCE_ID") or default_instance_id(),
            resume_window_seconds=get.number("RESUME_WINDOW_SECONDS", 120.0, low=1.0),
            otel_endpoint=get.url("OTEL_EXPORTER_OTLP_ENDPOINT"),
        )
        settings.check()
        return settings

    def find_profile(self, name: str | None) -> Profile | None:
        """The profile a client asked for by name (None: the default one)."""
        if name is None or name == "default":
            return self.profile
        return self.profiles.get(name)

    def check(self) -> None:
        """Raise :class:`ConfigError` when the chosen backend lacks what it needs, or
        ``ADMIN_LOCAL`` is on where others can reach the server."""
        if self.admin_local and not is_loopback(self.host):
            raise ConfigError(
                f"ADMIN_LOCAL=true is for local development: HOST must be a loopback address "
                f"(127.0.0.1, ::1, localhost), got {self.host!r}"
            )
        if self.backend == "openai" and not self.openai_api_key:
            raise ConfigError("OPENAI_API_KEY is required when BACKEND=openai")
        if self.backend == "azure":
            if not self.azure_endpoint:
                raise ConfigError("AZURE_OPENAI_ENDPOINT is required when BACKEND=azure")
            if not self.azure_deployment:
                raise ConfigError("AZURE_OPENAI_DEPLOYMENT is required when BACKEND=azure")
            if self.azure_api_version:
                self._check_preview()

    def _check_preview(self) -> None:
        """The Azure preview path speaks the beta protocol: a profile field it has no
        beta form for stops start-up, named (rather than silently not applied)."""
        from rt_server.backends.preview import lost_fields

        pcm = {"type": "audio/pcm", "rate": 24000}
        for name, profile in {"default": self.profile, **self.profiles}.items():
            if lost := lost_fields(profile.session(pcm)):
                raise ConfigError(
                    f"profile {name!r} sets {', '.join(lost)}, which the Azure preview path "
                    f"(AZURE_OPENAI_API_VERSION={self.azure_api_version}) cannot take; use the "
                    "GA path (unset AZURE_OPENAI_API_VERSION) or leave them out"
                )


def load_settings(env_file: str | None = ".env") -> Settings:
    """Read ``.env`` (without overriding the real environment), then the environment."""
    from dotenv import load_dotenv

    if env_file:
        load_dotenv(env_file, override=False)
    return Settings.from_env(os.environ)


def _backend_name(get: _Reader) -> BackendName:
    name = get.text("BACKEND")
    if name is None:
        if get.text("OPENAI_API_KEY"):
            return "openai"
        if get.text("AZURE_OPENAI_ENDPOINT"):
            return "azure"
        return "emulator"
    return get.choice("BACKEND", get_args(BackendName), "emulator")


def _profile(get: _Reader) -> Profile:
    d = Profile()
    max_tokens = get.integer("MAX_OUTPUT_TOKENS", 0, low=0)
    speed = get.number("SPEED", 0.0, low=0.0)
    if speed and not 0.25 <= speed <= 1.5:
        raise ConfigError(f"SPEED must be between 0.25 and 1.5, got {speed:g}")
    threshold = get.number("VAD_THRESHOLD", d.vad_threshold, low=0.0)
    if threshold > 1.0:
        raise ConfigError(f"VAD_THRESHOLD must be between 0 and 1, got {threshold:g}")
    return Profile(
        instructions=get.text("INSTRUCTIONS") or d.instructions,
        voice=get.choice("VOICE", get_args(Voice), d.voice),
        greeting=get.text("GREETING") or d.greeting,
        output_modality=get.choice("OUTPUT_MODALITY", ("audio", "text"), d.output_modality),
        max_output_tokens=max_tokens or None,
        speed=speed or None,
        transcription_model=get.text("TRANSCRIPTION_MODEL") or d.transcription_model,
        transcription_language=get.text("TRANSCRIPTION_LANGUAGE"),
        turn_detection=get.choice("TURN_DETECTION", get_args(TurnDetection), d.turn_detection),
        vad_threshold=threshold,
        vad_prefix_padding_ms=get.integer("VAD_PREFIX_PADDING_MS", d.vad_prefix_padding_ms, low=0),
        vad_silence_duration_ms=get.integer(
            "VAD_SILENCE_DURATION_MS", d.vad_silence_duration_ms, low=0
        ),
        vad_eagerness=get.choice("VAD_EAGERNESS", get_args(Eagerness), d.vad_eagerness),
        noise_reduction=get.choice("NOISE_REDUCTION", get_args(NoiseReduction), d.noise_reduction),
        welcome_instructions=get.text("WELCOME_INSTRUCTIONS"),
        show_tool_calls=get.flag("SHOW_TOOL_CALLS", False),
        gateway_locked=_locked(get),
    )


def _locked(get: _Reader) -> tuple[str, ...]:
    """GATEWAY_LOCKED: session fields of the GA Realtime API, checked at start-up."""
    names = get.items("GATEWAY_LOCKED")
    if (wrong := unknown_locks(names)) is not None:
        raise ConfigError(f"GATEWAY_LOCKED names {wrong}")
    return names


def _limits(get: _Reader) -> Limits:
    default = Limits()
    return Limits(
        max_message_bytes=get.integer("MAX_MESSAGE_BYTES", default.max_message_bytes, low=1024),
        max_audio_realtime_factor=get.number(
            "MAX_AUDIO_REALTIME_FACTOR", default.max_audio_realtime_factor, low=1.0
        ),
        max_text_messages_per_second=get.number(
            "MAX_TEXT_MESSAGES_PER_SECOND", default.max_text_messages_per_second, low=0.01
        ),
        max_text_bytes_per_second=get.integer(
            "MAX_TEXT_BYTES_PER_SECOND", default.max_text_bytes_per_second, low=1024
        ),
        max_session_seconds=get.number("MAX_SESSION_SECONDS", default.max_session_seconds, low=1.0),
        idle_timeout_seconds=get.number(
            "IDLE_TIMEOUT_SECONDS", default.idle_timeout_seconds, low=1.0
        ),
        max_sessions=get.integer("MAX_SESSIONS", default.max_sessions, low=1),
        send_buffer_bytes=get.integer("SEND_BUFFER_BYTES", default.send_buffer_bytes, low=65536),
        backend_connect_timeout=get.number(
            "BACKEND_CONNECT_TIMEOUT", default.backend_connect_timeout, low=0.1
        ),
        response_timeout_seconds=get.number(
            "RESPONSE_TIMEOUT_SECONDS", default.response_timeout_seconds, low=0.1
        ),
        reconnect_attempts=get.integer("RECONNECT_ATTEMPTS", default.reconnect_attempts, low=0),
        head_timeout_seconds=get.number(
            "HEAD_TIMEOUT_SECONDS", default.head_timeout_seconds, low=0.1
        ),
        stall_timeout_seconds=get.number(
            "STALL_TIMEOUT_SECONDS", default.stall_timeout_seconds, low=0.1
        ),
        max_image_bytes=get.integer("MAX_IMAGE_BYTES", default.max_image_bytes, low=1024),
        max_sessions_total=get.integer("MAX_SESSIONS_TOTAL", 0, low=0),
        max_sessions_per_token=get.integer("MAX_SESSIONS_PER_TOKEN", 0, low=0),
    )


def _temperature(get: _Reader) -> float | None:
    """TEMPERATURE: 0.6 to 1.2 (the range the preview Realtime API accepts), or unset."""
    if get.text("TEMPERATURE") is None:
        return None
    value = get.number("TEMPERATURE", 0.8, low=0.0)
    if not 0.6 <= value <= 1.2:
        raise ConfigError(f"TEMPERATURE must be between 0.6 and 1.2, got {value:g}")
    return value


def _slice(get: _Reader) -> int:
    """SCHED_SLICE_US: 0, or a slice the kernel accepts as it is (100 us to 100 ms)."""
    us = get.integer("SCHED_SLICE_US", DEFAULT_US, low=0, high=MAX_US)
    if not valid(us):
        raise ConfigError(f"SCHED_SLICE_US must be 0 or between {MIN_US} and {MAX_US}, got {us}")
    return us


def _redis_url(get: _Reader) -> str | None:
    """REDIS_URL: ``redis://``, ``rediss://`` (TLS) or ``unix://``; unset: no sharing."""
    url = get.text("REDIS_URL")
    if url is not None and urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
    return url


def _discussions_dir(get: _Reader) -> str | None:
    """DISCUSSIONS_DIR (default ``discussions``); ``off``: no transcript files."""
    value = get.text("DISCUSSIONS_DIR") or "discussions"
    return None if value.lower() == "off" else value


def _records_url(get: _Reader) -> str | None:
    """DATABASE_URL (PostgreSQL, shared) or RECORDS_PATH (SQLite); None when RECORDS=off."""
    if not get.flag("RECORDS", True):
        return None
    if url := get.text("DATABASE_URL"):
        return async_database_url(url)
    return f"sqlite+aiosqlite:///{get.text('RECORDS_PATH') or 'rt_server.sqlite3'}"


def async_database_url(url: str) -> str:
    """``url`` with an asyncio driver: ``postgresql://`` becomes ``postgresql+asyncpg://``."""
    scheme, sep, rest = url.partition("://")
    drivers = {
        "postgres": "postgresql+asyncpg",
        "postgresql": "postgresql+asyncpg",
        "postgresql+asyncpg": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
        "sqlite+aiosqlite": "sqlite+aiosqlite",
    }
    if not sep or scheme.lower() not in drivers or not rest:
        raise ConfigError(
            "DATABASE_URL must be postgresql://user:password@host/db (or sqlite:///path), "
            f"got a {scheme or 'schemeless'!r} URL"
        )
    return f"{drivers[scheme.lower()]}://{rest}"


class _Reader:
    """Typed access to string variables; empty strings count as unset."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def host(self, name: str) -> str | None:
        """An address to listen on: an IP address, or a host name (checked when bound)."""
        value = self.text(name)
        if value is None:
            return None
        try:
            ipaddress.ip_address(value.strip("[]"))
            return value.strip("[]")
        except ValueError:
            pass
        labels = value.rstrip(".").split(".")
        if all(label.isdigit() for label in labels) or not all(map(_HOST_LABEL.fullmatch, labels)):
            raise ConfigError(f"{name} must be an IP address or a host name, got {value!r}")
        return value

    def url(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
            raise ConfigError(f"{name} must be an http(s) or ws(s) URL, got {value!r}")
        return value.rstrip("/")

    def integer(self, name: str, default: int, *, low: int, high: int | None = None) -> int:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
        if number < low or (high is not None and number > high):
            raise ConfigError(f"{name} must be between {low} and {high or 'any'}, got {number}")
        return number

    def number(self, name: str, default: float, *, low: float) -> float:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if not number >= low:
            raise ConfigError(f"{name} must be at least {low}, got {value}")
        return number

    def items(self, name: str) -> tuple[str, ...]:
        """A comma-separated list."""
        value = self.text(name) or ""
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def flag(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")

    def choice(self, name: str, choices: tuple[_T, ...], default: _T) -> _T:
        value = self.text(name)
        if value is None:
            return default
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
