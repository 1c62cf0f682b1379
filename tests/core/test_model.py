"""Names, restart policies, signals and the replace-never-mutate record."""

from __future__ import annotations

import signal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from varpod.core.errors import InvalidConfig, InvalidName
from varpod.core.model import (
    NAME_MAX,
    ContainerConfig,
    ContainerRecord,
    ContainerState,
    Resources,
    RestartPolicy,
    check_name,
    new_id,
    online_cpus,
    parse_signal,
    random_name,
)
from varpod.core.states import State

# -- check_name ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", "0", "web-1", "A_b.c-d", "db.primary", "x" * 253, "9" * 64, "a..b", "a--", "Z_"],
)
def test_check_name_accepts_valid_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../x",
        "..",
        ".",
        "a/b",
        "/abs",
        ".hidden",
        "-x",
        "_x",
        "x" * 254,
        "a\x00b",
        "\x00",
        "a b",
        "a:b",
        "a\n",
        "a\nb",
        "tab\t",
        "caf\u00e9",
        "\u0661",  # ARABIC-INDIC DIGIT ONE
        "\uff41",  # FULLWIDTH LATIN SMALL LETTER A
        "a\u200b",  # zero-width space
        "$(id)",
        "a;rm",
    ],
    ids=repr,
)
def test_check_name_rejects_hostile_names(name):
    with pytest.raises(InvalidName) as info:
        check_name(name)
    # the name travels back on the wire, capped
    assert len(info.value.name) <= NAME_MAX
    assert info.value.name == name[:NAME_MAX]


def test_check_name_length_cap_is_253():
    assert NAME_MAX == 253
    check_name("a" * NAME_MAX)
    with pytest.raises(InvalidName):
        check_name("a" * (NAME_MAX + 1))


@given(st.text(max_size=300))
def test_check_name_accepts_exactly_the_rule(name):
    ok = (
        1 <= len(name) <= 253
        and name[0] in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        and all(
            c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-" for c in name
        )
    )
    if ok:
        assert check_name(name) == name
    else:
        with pytest.raises(InvalidName):
            check_name(name)


def test_random_name_passes_check_name():
    names = {random_name() for _ in range(300)}
    for name in names:
        assert check_name(name) == name
        adjective, _, noun = name.partition("_")
        assert adjective and noun
    assert len(names) > 1  # it is random


def test_new_id_is_64_hex_and_unique():
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    for cid in ids:
        assert len(cid) == 64
        assert set(cid) <= set("0123456789abcdef")


# -- RestartPolicy.parse ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "retries"),
    [
        ("no", "no", 0),
        ("always", "always", 0),
        ("unless-stopped", "unless-stopped", 0),
        ("on-failure", "on-failure", 0),
        ("on-failure:3", "on-failure", 3),
        ("on-failure:0", "on-failure", 0),
    ],
)
def test_restart_policy_parse(text, name, retries):
    policy = RestartPolicy.parse(text)
    assert policy == RestartPolicy(name=name, max_retries=retries)


@pytest.mark.parametrize(
    "text",
    [
        "sometimes",
        "always:3",
        "no:1",
        "unless-stopped:2",
        "on-failure:x",
        "on-failure:-1",
        "on-failure:3.5",
        "",
        "ALWAYS",
        "on_failure",
        "on-failure:3:4",
    ],
)
def test_restart_policy_parse_rejects(text):
    with pytest.raises(InvalidConfig) as info:
        RestartPolicy.parse(text)
    assert info.value.field == "restart_policy"


def test_restart_policy_default_is_no():
    assert RestartPolicy() == RestartPolicy(name="no", max_retries=0)


# -- parse_signal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (9, signal.SIGKILL),
        ("9", signal.SIGKILL),
        ("KILL", signal.SIGKILL),
        ("SIGKILL", signal.SIGKILL),
        ("sigterm", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("SigHup", signal.SIGHUP),
        (1, 1),
        ("64", 64),
        (signal.SIGUSR1, signal.SIGUSR1),
    ],
)
def test_parse_signal(value, number):
    assert parse_signal(value) == int(number)


@pytest.mark.parametrize(
    "value",
    [0, 65, -1, "0", "65", "NOPE", "SIGNOPE", "SIG", "", "-9", "9x", " 9", "KILL ", 1000],
    ids=repr,
)
def test_parse_signal_rejects(value):
    with pytest.raises(InvalidConfig) as info:
        parse_signal(value)
    assert info.value.field == "signal"


def test_parse_signal_rejects_non_ascii_digits():
    with pytest.raises(InvalidConfig):
        parse_signal("\u00b2")


@given(st.text(max_size=12))
def test_parse_signal_only_ever_returns_a_signal_or_raises_invalid_config(text):
    # Only ASCII input: see test_parse_signal_rejects_non_ascii_digits for the known bug.
    text = text.encode("ascii", "ignore").decode()
    try:
        number = parse_signal(text)
    except InvalidConfig:
        return
    assert 0 < number < signal.NSIG


# -- records ---------------------------------------------------------------------------------


def _record() -> ContainerRecord:
    config = ContainerConfig(id=new_id(), name="web-1", rootfs="/r", command=["/bin/sh"])
    return ContainerRecord(config, ContainerState())


def test_with_state_replaces_without_mutating():
    rec = _record()
    new = rec.with_state(state=State.RUNNING, pid=42)
    assert new is not rec
    assert new.state.state is State.RUNNING
    assert new.state.pid == 42
    # the original record is what it was
    assert rec.state.state is State.CONFIGURED
    assert rec.state.pid == 0
    assert rec.state == ContainerState()
    # unchanged fields are carried over, the config is shared
    assert new.state.exit_code == rec.state.exit_code
    assert new.config is rec.config
    assert new.id == rec.id and new.name == "web-1"


def test_records_are_frozen():
    rec = _record()
    with pytest.raises(AttributeError):
        rec.state.pid = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        rec.config.name = "other"  # type: ignore[misc]


def test_with_state_rejects_unknown_fields():
    with pytest.raises(TypeError):
        _record().with_state(no_such_field=1)


def test_record_round_trips_through_json():
    rec = _record().with_state(state=State.EXITED, exit_code=3, stopped_by_user=True)
    config = msgspec.json.decode(msgspec.json.encode(rec.config), type=ContainerConfig)
    state = msgspec.json.decode(msgspec.json.encode(rec.state), type=ContainerState)
    assert ContainerRecord(config, state) == rec
    assert state.state is State.EXITED


# -- resource limits ------------------------------------------------------------------------


def test_resources_default_to_no_limits_and_old_records_decode_without_them():
    assert Resources() == Resources(memory=0, nano_cpus=0, pids_limit=0, cpu_shares=0)
    old = b'{"id":"%s","name":"web-1","rootfs":"/r","command":["/bin/true"]}' % new_id().encode()
    assert msgspec.json.decode(old, type=ContainerConfig).resources == Resources()


def test_updated_checks_and_replaces_only_what_is_given():
    res = Resources().updated(memory=64 << 20, cpus=0.5, pids_limit=100, cpu_shares=512)
    assert res == Resources(memory=64 << 20, nano_cpus=500_000_000, pids_limit=100, cpu_shares=512)
    assert res.cpu_quota == 50_000
    assert res.updated() is res
    assert res.updated(pids_limit=-1) == Resources(memory=64 << 20, nano_cpus=500_000_000,
                                                   pids_limit=0, cpu_shares=512)
    assert res.updated(memory=0, cpu_shares=0).memory == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"memory": -1}, "memory"), ({"memory": 1}, "memory"), ({"memory": (6 << 20) - 1}, "memory"),
    ({"memory": 1 << 63}, "memory"),
    ({"cpus": 0.0}, "cpus"), ({"cpus": 0.009}, "cpus"), ({"cpus": -1.0}, "cpus"),
    ({"cpus": float("inf")}, "cpus"), ({"cpus": float("nan")}, "cpus"),
    ({"pids_limit": -2}, "pids_limit"), ({"pids_limit": 1 << 63}, "pids_limit"),
    ({"cpu_shares": -1}, "cpu_shares"), ({"cpu_shares": 1}, "cpu_shares"),
    ({"cpu_shares": 262_145}, "cpu_shares"),
])
def test_out_of_range_limits_are_invalid_config_naming_the_field(change, field):
    with pytest.raises(InvalidConfig) as info:
        Resources().updated(**change)
    assert info.value.field == field


def test_cpus_range_is_the_machines():
    cpus = online_cpus()
    assert Resources().updated(cpus=float(cpus)).nano_cpus == cpus * 10**9
    assert Resources().updated(cpus=0.01).cpu_quota == 1000
    with pytest.raises(InvalidConfig, match=f"from 0.01 to {cpus}.00"):
        Resources().updated(cpus=cpus + 0.01)


def test_the_smallest_and_largest_limits_are_accepted():
    res = Resources().updated(memory=6 << 20, pids_limit=1, cpu_shares=2)
    assert (res.memory, res.pids_limit, res.cpu_shares) == (6 << 20, 1, 2)
    assert Resources().updated(cpu_shares=262_144, memory=(1 << 63) - 1).cpu_shares == 262_144
