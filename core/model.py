"""Frozen container configuration and the mutable-by-replacement state record."""

from __future__ import annotations

import re
import secrets
import signal as _signal

import msgspec

from .errors import InvalidConfig, InvalidName
from .states import State

# podman's rule for names, plus a length cap: names end up in paths and logs.
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
NAME_MAX = 253
ID_RE = re.compile(r"[0-9a-f]{64}\Z")

RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
NETWORK_MODES = ("private", "host", "none")


class RestartPolicy(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str = "no"
    max_retries: int = 0

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """``no``, ``always``, ``unless-stopped`` or ``on-failure[:N]``."""
        name, _, count = text.partition(":")
        if name not in RESTART_POLICIES:
            raise InvalidConfig(f"unknown restart policy {text!r}", field="restart_policy")
        if count and name != "on-failure":
            raise InvalidConfig(
                f"restart policy {name} takes no retry count", field="restart_policy"
            )
        try:
            retries = int(count) if count else 0
        except ValueError:
            raise InvalidConfig(
                f"restart retry count {count!r} is not a number", field="restart_policy"
            ) from None
        if retries < 0:
            raise InvalidConfig("restart retry count must be >= 0", field="restart_policy")
        return cls(name=name, max_retries=retries)


class ContainerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the user asked for; never changes after create."""

    id: str
    name: str
    rootfs: str
    command: list[str]
    env: list[str] = []
    workdir: str = "/"
    user: str = "0:0"
    hostname: str = ""
    tty: bool = False
    stdin: bool = False
    runtime: str = ""
    restart: RestartPolicy = RestartPolicy()
    stop_signal: int = int(_signal.SIGTERM)
    stop_timeout: int = 10
    network: str = "private"
    read_only: bool = False
    labels: dict[str, str] = {}
    auto_remove: bool = False
    log_size_max: int = 0
    created_at: int = 0  # ns since the epoch


class ContainerState(msgspec.Struct, frozen=True, kw_only=True):
    """What is true now; replaced (never mutated) on every transition."""

    state: State = State.CONFIGURED
    pid: int = 0
    exit_code: int = 0
    exit_code_known: bool = True
    started_at: int = 0
    finished_at: int = 0
    stopped_by_user: bool = False
    restart_count: int = 0
    error: str = ""
    launched_at: int = 0  # when the runtime was asked to create the current process (ns)


class ContainerRecord(msgspec.Struct, frozen=True):
    config: ContainerConfig
    state: ContainerState

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    def with_state(self, **changes: object) -> ContainerRecord:
        return ContainerRecord(self.config, msgspec.structs.replace(self.state, **changes))


def new_id() -> str:
    return secrets.token_hex(32)


def check_name(name: str) -> str:
    if not name or len(name) > NAME_MAX or not NAME_RE.match(name):
        raise InvalidName(
            f"invalid container name {name[:80]!r}: names are 1-{NAME_MAX} characters "
            "of [a-zA-Z0-9_.-] and start with a letter or digit",
            name=name[:NAME_MAX],
        )
    return name


_ADJECTIVES = (
    "amber", "brave", "calm", "deft", "eager", "fair", "gentle", "hardy", "ideal", "jolly",
    "keen", "lucid", "merry", "nimble", "noble", "proud", "quiet", "rapid", "sharp", "steady",
    "swift", "tidy", "vivid", "warm", "witty", "zesty",
)
_NOUNS = (
    "albatross", "badger", "cormorant", "dolphin", "egret", "falcon", "gecko", "heron", "ibis",
    "jackal", "kestrel", "lemur", "marten", "newt", "osprey", "panda", "quail", "raven", "stoat",
    "tapir", "urchin", "vole", "walrus", "yak",
)


def random_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"


def parse_signal(value: int | str) -> int:
    """A signal number from ``9``, ``KILL`` or ``SIGKILL``."""
    if isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit()):
        number = int(value)
        if 0 < number < _signal.NSIG:
            return number
        raise InvalidConfig(f"signal {value} is out of range", field="signal")
    text = value.upper()
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(_signal.Signals[text])
    except KeyError:
        raise InvalidConfig(f"unknown signal {value!r}", field="signal") from None
