"""Error classes and their wire names: unique names, and from_wire rebuilds what the server sent."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varpod.core import errors
from varpod.core.errors import ALL_ERRORS, BY_RPC_NAME, VarpodError, from_wire

WIRE_ERRORS = [cls for cls in ALL_ERRORS if cls is not VarpodError]


def test_rpc_names_are_unique():
    # The base class deliberately travels as InternalError (test below); every other
    # class, subclasses of subclasses included, must have a name of its own.
    counts = Counter(cls.rpc_name for cls in WIRE_ERRORS)
    assert [name for name, n in counts.items() if n > 1] == []
    assert len(BY_RPC_NAME) == len(WIRE_ERRORS)


def test_every_error_class_in_the_module_is_listed():
    defined = {obj for obj in vars(errors).values()
               if isinstance(obj, type) and issubclass(obj, VarpodError)}
    assert defined == set(ALL_ERRORS)


def test_the_base_class_travels_as_internal_error():
    assert VarpodError.rpc_name == errors.InternalError.rpc_name
    assert BY_RPC_NAME[VarpodError.rpc_name] is errors.InternalError


@pytest.mark.parametrize("cls", WIRE_ERRORS, ids=lambda c: c.__name__)
def test_rpc_names_are_qualified_by_interface(cls):
    interface, _, member = cls.rpc_name.rpartition(".")
    assert interface.count(".") >= 1
    assert member[:1].isupper() and member.isalnum()


@pytest.mark.parametrize("cls", WIRE_ERRORS, ids=lambda c: c.__name__)
def test_parameters_are_the_fields_then_message(cls):
    values = {name: f"{name}-value" for name in cls.fields}
    err = cls("it failed", **values)
    assert err.parameters() == {**values, "message": "it failed"}
    assert list(err.parameters()) == [*cls.fields, "message"]


@pytest.mark.parametrize("cls", WIRE_ERRORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("codec", [msgspec.msgpack, msgspec.json])
def test_from_wire_rebuilds_the_same_class(cls, codec):
    values = {name: f"{name}-{i}" for i, name in enumerate(cls.fields)}
    sent = cls(f"{cls.__name__} happened", **values)
    wire = codec.decode(codec.encode(sent.parameters()))
    got = from_wire(sent.rpc_name, wire)
    assert type(got) is cls
    assert got.message == sent.message
    assert str(got) == str(sent)
    for name, value in values.items():
        assert getattr(got, name) == value
    assert got.parameters() == sent.parameters()


@settings(max_examples=200, deadline=None)
@given(cls=st.sampled_from(WIRE_ERRORS), message=st.text(min_size=1),
       value=st.one_of(st.text(), st.integers(-(1 << 63), (1 << 63) - 1)))
def test_from_wire_round_trips_any_message_and_field_values(cls, message, value):
    values = {name: value for name in cls.fields}
    got = from_wire(cls.rpc_name, cls(message, **values).parameters())
    assert type(got) is cls
    assert got.message == message
    assert {name: getattr(got, name) for name in cls.fields} == values


def test_from_wire_ignores_fields_the_class_does_not_have():
    got = from_wire("io.varpod.Container.NoSuchContainer",
                    {"name": "web", "message": "no web", "extra": 1, "fields": "x"})
    assert type(got) is errors.NoSuchContainer
    assert got.parameters() == {"name": "web", "message": "no web"}
    assert not hasattr(got, "extra")


def test_from_wire_without_a_message_still_says_what_happened():
    got = from_wire("io.varpod.System.ShuttingDown", None)
    assert type(got) is errors.ShuttingDown
    assert "ShuttingDown" in got.message


def test_from_wire_fills_missing_fields():
    got = from_wire("io.varpod.Container.InvalidState", {"message": "no"})
    assert type(got) is errors.InvalidState
    assert (got.id, got.state) == ("", "")


def test_unknown_names_give_a_varpod_error_carrying_the_name():
    name = "com.example.Thing.WentWrong"
    got = from_wire(name, {"message": "the thing went wrong", "detail": 3})
    assert type(got) is VarpodError
    assert got.rpc_name == name
    assert name in str(got) and "the thing went wrong" in got.message
    assert got.parameters()["message"] == got.message
    # The name lives on the instance: the class and later errors keep their own.
    assert VarpodError.rpc_name == "io.varpod.System.InternalError"
    assert from_wire("org.example.Other", {}).rpc_name == "org.example.Other"
    assert VarpodError("plain").rpc_name == "io.varpod.System.InternalError"


def test_unknown_name_without_parameters():
    got = from_wire("org.example.Nope", None)
    assert type(got) is VarpodError
    assert got.rpc_name == "org.example.Nope"
    assert "org.example.Nope" in got.message
