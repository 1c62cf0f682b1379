"""Fuzzing the server's decoding: garbage only ever costs a ProtocolError or an InvalidParameter.

Anything else escaping ``ServerConnection.next_call`` or a method's parameter
decoder would skip the server's error reply and kill the connection instead.
"""

from __future__ import annotations

import itertools
import os

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import inspect as mi

from varpod.core.errors import InvalidParameter, ProtocolError
from varpod.rpc.codecs import Call, JsonServerCodec, MsgpackServerCodec, MsgspecClientCodec
from varpod.rpc.minipack import MiniCodec
from varpod.rpc.protocol import ClientConnection, ServerConnection
from varpod.rpc.registry import Registry
from varpod.rpc.service import Service

# CI runs a short pass; `VARPOD_FUZZ_EXAMPLES=100000 pytest tests/rpc/test_fuzz_decoder.py`
# (or benchmarks/fuzz.py) runs a long one over the same properties.
FUZZ = settings(max_examples=int(os.environ.get("VARPOD_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _registry() -> Registry:
    # As rpc/daemon.py does; only the registered methods and their decoders are used.
    registry = Registry()
    Service(engine=object(), bus=object(), info={}).register(registry)
    return registry


REGISTRY = _registry()
METHODS = REGISTRY.methods()
METHOD_NAMES = [m.name for m in METHODS]

INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
SCALARS = st.one_of(st.none(), st.booleans(), INT64, st.floats(), st.text(max_size=20),
                    st.binary(max_size=20))
ANY = st.recursive(
    SCALARS,
    lambda kids: st.one_of(st.lists(kids, max_size=5),
                           st.dictionaries(st.text(max_size=8), kids, max_size=5)),
    max_leaves=15,
)
ENVELOPE_KEYS = st.sampled_from(["method", "parameters", "more", "oneway", "upgrade"]) | st.text(max_size=8)


def new_server(max_size: int = 1 << 20) -> ServerConnection:
    return ServerConnection(REGISTRY.msgpack, REGISTRY.json, max_size=max_size)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def drain(server: ServerConnection, data: bytes, cuts: list[int]) -> list[Call]:
    """Feed in pieces, taking calls as they complete; stops at the first ProtocolError."""
    calls = []
    try:
        for piece in split_at(data, cuts):
            server.receive_data(piece)
            while (call := server.next_call()) is not None:
                calls.append(call)
    except ProtocolError as e:
        # What the server answers garbage with (anything else fails the test); the answer
        # itself must still encode.
        assert server.error(e.rpc_name, e.parameters())
    return calls


def check_call(call: Call) -> None:
    assert isinstance(call.method, str)
    assert isinstance(call.parameters, msgspec.Raw)
    assert all(isinstance(flag, bool) for flag in (call.more, call.oneway, call.upgrade))


CUTS = st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=8)
MAX_SIZES = st.sampled_from([16, 256, 1 << 20])


# -- bytes in, ProtocolError or calls out --------------------------------------------------


@FUZZ
@given(data=st.binary(min_size=1, max_size=600), cuts=CUTS, max_size=MAX_SIZES)
def test_arbitrary_bytes(data, cuts, max_size):
    for call in drain(new_server(max_size), data, cuts):
        check_call(call)


@FUZZ
@given(bodies=st.lists(st.binary(max_size=200), min_size=1, max_size=5), cuts=CUTS, max_size=MAX_SIZES)
def test_length_prefixed_garbage(bodies, cuts, max_size):
    data = b"".join(len(b).to_bytes(4, "big") + b for b in bodies)
    server = new_server(max_size)
    for call in drain(server, data, cuts):
        check_call(call)
    assert not server.is_json


@FUZZ
@given(bodies=st.lists(st.binary(max_size=200), min_size=1, max_size=5), cuts=CUTS, max_size=MAX_SIZES)
def test_nul_terminated_garbage(bodies, cuts, max_size):
    data = b"{" + b"\0".join(bodies)
    server = new_server(max_size)
    for call in drain(server, data, cuts):
        check_call(call)
    assert server.is_json


@FUZZ
@given(envelopes=st.lists(st.dictionaries(ENVELOPE_KEYS, ANY, max_size=6), min_size=1, max_size=4),
       json=st.booleans(), cuts=CUTS)
def test_envelope_shaped_maps(envelopes, json, cuts):
    if json:
        data = b"".join(msgspec.json.encode(e) + b"\0" for e in envelopes)
    else:
        data = b"".join(len(b).to_bytes(4, "big") + b for b in map(msgspec.msgpack.encode, envelopes))
    server = new_server()
    for call in drain(server, data, cuts):
        check_call(call)
    assert server.is_json is json


# -- valid calls in, the same calls out ---------------------------------------------------------

JSONABLE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(1 << 63), (1 << 63) - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30)),
    lambda kids: st.one_of(st.lists(kids, max_size=4),
                           st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=10,
)
CALLS = st.lists(
    st.tuples(st.sampled_from(METHOD_NAMES) | st.text(min_size=1, max_size=30),
              st.dictionaries(st.text(max_size=10), JSONABLE, max_size=5),
              st.booleans(), st.booleans(), st.booleans()),
    min_size=1, max_size=6,
)
CLIENT_CODECS = {"msgspec": MsgspecClientCodec, "minipack": MiniCodec,
                 "json": lambda: MsgspecClientCodec(json=True)}


@FUZZ
@given(calls=CALLS, codec=st.sampled_from(sorted(CLIENT_CODECS)),
       cuts=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=30))
def test_valid_calls_survive_any_chunking(calls, codec, cuts):
    client = ClientConnection(CLIENT_CODECS[codec]())
    data = b"".join(client.send_call(method, params, more=more, oneway=oneway, upgrade=upgrade)
                    for method, params, more, oneway, upgrade in calls)
    server = new_server()
    got = []
    for piece in split_at(data, cuts):
        server.receive_data(piece)
        while (call := server.next_call()) is not None:
            got.append(call)
    assert server.is_json is (codec == "json")
    assert server.buffered() == 0
    decode = msgspec.json.decode if codec == "json" else msgspec.msgpack.decode
    assert [(c.method, decode(c.parameters), c.more, c.oneway, c.upgrade) for c in got] == calls


# -- parameters: InvalidParameter or the method's Struct --------------------------------------


def well_typed(t: mi.Type) -> st.SearchStrategy:
    """Values of a msgspec type, in builtins, with junk mixed in at every level."""
    if isinstance(t, mi.StructType):
        required = {f.encode_name: maybe_junk(f.type) for f in t.fields if f.required}
        optional = {f.encode_name: maybe_junk(f.type) for f in t.fields if not f.required}
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(t, mi.UnionType):
        return st.one_of([well_typed(x) for x in t.types])
    if isinstance(t, mi.ListType):
        return st.lists(maybe_junk(t.item_type), max_size=4)
    if isinstance(t, mi.DictType):
        return st.dictionaries(st.text(max_size=8), maybe_junk(t.value_type), max_size=4)
    simple = {mi.NoneType: st.none(), mi.BoolType: st.booleans(), mi.IntType: INT64,
              mi.FloatType: st.floats(), mi.StrType: st.text(max_size=20)}
    return simple.get(type(t), ANY)


def maybe_junk(t: mi.Type) -> st.SearchStrategy:
    good = well_typed(t)
    return st.one_of(good, good, good, ANY)  # mostly right, sometimes wrong


def parameter_maps(method) -> st.SearchStrategy:
    return st.one_of(
        well_typed(mi.type_info(method.params)),
        st.tuples(well_typed(mi.type_info(method.params)),
                  st.dictionaries(st.text(max_size=8), ANY, min_size=1, max_size=3))
        .map(lambda pair: {**pair[1], **pair[0]}),
        st.dictionaries(st.text(max_size=8), ANY, max_size=5),
        ANY,
    )


def decode_all(method, raw_msgpack: bytes, raw_json: bytes) -> None:
    for codec, raw, decoder in ((REGISTRY.msgpack, raw_msgpack, method.decoders[0]),
                                (REGISTRY.json, raw_json, method.decoders[1])):
        try:
            params = codec.decode_params(Call(method.name, msgspec.Raw(raw)), decoder)
        except InvalidParameter as e:
            assert isinstance(e.parameter, str)
            assert e.rpc_name == "org.varlink.service.InvalidParameter"
        else:
            assert isinstance(params, method.params)


@FUZZ
@given(data=st.data(), method=st.sampled_from(METHODS))
def test_parameter_decoders_raise_only_invalid_parameter(data, method):
    value = data.draw(parameter_maps(method), label="parameters")
    decode_all(method, msgspec.msgpack.encode(value), msgspec.json.encode(value))


@FUZZ
@given(method=st.sampled_from(METHODS), raw=st.binary(min_size=1, max_size=200))
def test_parameter_decoders_on_raw_garbage(method, raw):
    decode_all(method, raw, raw)


@pytest.mark.parametrize("method", METHODS, ids=METHOD_NAMES)
def test_parameter_decoders_take_the_empty_default(method):
    # Leaving parameters out means {}: methods whose fields are all optional accept it.
    all_optional = all(not f.required for f in mi.type_info(method.params).fields)
    for codec, decoder in ((REGISTRY.msgpack, method.decoders[0]), (REGISTRY.json, method.decoders[1])):
        if all_optional:
            assert isinstance(codec.decode_params(Call(method.name), decoder), method.params)
        else:
            with pytest.raises(InvalidParameter):
                codec.decode_params(Call(method.name), decoder)


@pytest.mark.parametrize(("method", "value", "field"), [
    ("io.varpod.Container.Start", {}, "name"),
    ("io.varpod.Container.Start", {"name": "web", "bogus": 1}, "bogus"),
    ("io.varpod.Container.Start", {"name": 5}, "name"),
    ("io.varpod.Container.Create", {}, "spec"),  # command and rootfs are optional: an image may give them
    ("io.varpod.Container.Create", {"spec": {"rootfs": "/r", "command": [], "bogus": 1}}, "spec.bogus"),
    ("io.varpod.Container.Create", {"spec": {"rootfs": "/r", "command": ["sh", 1]}}, "spec.command[1]"),
])
@pytest.mark.parametrize("json", [False, True], ids=["msgpack", "json"])
def test_invalid_parameter_names_the_parameter(method, value, field, json):
    m = next(m for m in METHODS if m.name == method)
    codec, module = (REGISTRY.json, msgspec.json) if json else (REGISTRY.msgpack, msgspec.msgpack)
    with pytest.raises(InvalidParameter) as exc:
        codec.decode_params(Call(method, msgspec.Raw(module.encode(value))), m.decoders[json])
    assert exc.value.parameter == field


# -- invalid UTF-8 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"\x00\x00\x00\x0a\x81\xa6method\xa1\xff",
    b'{"method":"\xff"}\0',
], ids=["msgpack", "json"])
def test_invalid_utf8_in_the_envelope_is_a_protocol_error(data):
    server = new_server()
    server.receive_data(data)
    with pytest.raises(ProtocolError):
        server.next_call()


@pytest.mark.parametrize(("codec", "raw"), [
    (REGISTRY.msgpack, b"\x81\xa4name\xa1\xff"),  # a value
    (REGISTRY.msgpack, b"\x81\xa3\x00\x00\x80\xc0"),  # an unknown key
    (REGISTRY.json, b'{"name":"\xff"}'),
], ids=["msgpack-value", "msgpack-key", "json-value"])
def test_invalid_utf8_in_parameters_is_invalid_parameter(codec, raw):
    method = next(m for m in METHODS if m.name == "io.varpod.Container.Start")
    with pytest.raises(InvalidParameter):
        codec.decode_params(Call(method.name, msgspec.Raw(raw)), method.decoders[codec.json])


# -- nesting ---------------------------------------------------------------------------------------

DEPTH = 20000  # a 20 kB frame, far inside the default 16 MiB limit


@pytest.mark.parametrize("json", [False, True], ids=["msgpack", "json"])
def test_deep_nesting_is_a_protocol_error(json):
    if json:
        data = b'{"method":"io.varpod.System.Ping","parameters":' + b"[" * DEPTH + b"]" * DEPTH + b"}\0"
    else:
        body = b"\x82\xa6method\xb5io.varpod.System.Ping\xaaparameters" + b"\x91" * DEPTH + b"\xc0"
        data = len(body).to_bytes(4, "big") + body
    server = new_server()
    server.receive_data(data)
    with pytest.raises(ProtocolError):
        server.next_call()


@pytest.mark.parametrize("codec", [MsgpackServerCodec, JsonServerCodec])
def test_moderate_nesting_decodes(codec):
    server = new_server()
    value: object = 1
    for _ in range(100):
        value = [value]
    module = msgspec.json if codec.json else msgspec.msgpack
    body = module.encode({"method": "io.varpod.System.Ping", "parameters": value})
    server.receive_data(body + b"\0" if codec.json else len(body).to_bytes(4, "big") + body)
    call = server.next_call()
    assert module.decode(call.parameters) == value
