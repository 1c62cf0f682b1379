"""Sans-IO protocol: an in-memory client and server pass bytes to each other.

No sockets: what one side returns is fed to the other, whole, byte by byte, or
in odd-sized chunks, so every partial-frame path is exercised.
"""

from __future__ import annotations

import msgspec
import pytest

from varpod.core.errors import FrameTooLarge, NoSuchContainer, ProtocolError, from_wire
from varpod.core.logfile import encode_record
from varpod.rpc.codecs import Call, JsonServerCodec, MsgpackServerCodec, MsgspecClientCodec
from varpod.rpc.interfaces import container as C
from varpod.rpc.interfaces import system as S
from varpod.rpc.minipack import MiniCodec
from varpod.rpc.protocol import ClientConnection, Framer, ServerConnection

PING = "io.varpod.System.Ping"
START = "io.varpod.Container.Start"
EVENTS = "io.varpod.System.Events"
LOGS = "io.varpod.Container.Logs"

CLIENT_CODECS = {
    "msgspec": lambda: MsgspecClientCodec(),
    "minipack": lambda: MiniCodec(),
    "varlink-json": lambda: MsgspecClientCodec(json=True),
}
# None: everything in one piece; otherwise the size of each piece fed.
CHUNKINGS = [None, 1, 3, 4096]


@pytest.fixture(params=list(CLIENT_CODECS))
def pair(request) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection(CLIENT_CODECS[request.param]())
    server = ServerConnection(MsgpackServerCodec(), JsonServerCodec())
    return client, server


def pieces(data: bytes, chunk: int | None) -> list[bytes]:
    if chunk is None:
        return [data]
    return [data[i : i + chunk] for i in range(0, len(data), chunk)]


def to_server(server: ServerConnection, data: bytes, chunk: int | None = None) -> list[Call]:
    calls = []
    for piece in pieces(data, chunk):
        server.receive_data(piece)
        while (call := server.next_call()) is not None:
            calls.append(call)
    return calls


def to_client(client: ClientConnection, data: bytes, chunk: int | None = None) -> list:
    replies = []
    for piece in pieces(data, chunk):
        client.receive_data(piece)
        while (reply := client.next_reply()) is not None:
            replies.append(reply)
    return replies


def params(server: ServerConnection, call: Call, ptype: type = dict):
    return server.codec.decode_params(call, server.codec.decoder(ptype))


def reply_dict(client: ClientConnection, reply) -> dict:
    # msgspec codecs leave parameters raw until the caller names a type; MiniCodec gives dicts.
    return client.codec.decode_parameters(reply.parameters, dict)


# -- one call, one reply ------------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_call_and_reply_round_trip(pair, chunk):
    client, server = pair
    calls = to_server(server, client.send_call(PING, {"ping": "hello"}), chunk)
    assert len(calls) == 1
    call = calls[0]
    assert call.method == PING
    assert (call.more, call.oneway, call.upgrade) == (False, False, False)
    assert server.is_json is client.codec.json
    assert params(server, call, S.PingParams) == S.PingParams(ping="hello")
    assert client.pending == 1

    replies = to_client(client, server.reply(S.PingReply(pong="hello")), chunk)
    assert len(replies) == 1
    reply = replies[0]
    assert (reply.method, reply.continues, reply.error) == (PING, False, None)
    assert reply_dict(client, reply) == {"pong": "hello"}
    assert client.pending == 0
    assert server.buffered() == 0


def test_parameters_default_to_an_empty_map(pair):
    client, server = pair
    (call,) = to_server(server, client.send_call(PING))
    assert params(server, call, S.PingParams) == S.PingParams(ping=None)


def test_no_call_until_the_frame_is_complete(pair):
    client, server = pair
    data = client.send_call(START, {"name": "web-1"})
    for i in range(len(data) - 1):
        server.receive_data(data[i : i + 1])
        assert server.next_call() is None
    server.receive_data(data[-1:])
    call = server.next_call()
    assert call is not None and call.method == START
    assert server.next_call() is None


# -- ordering, more, oneway ---------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_pipelined_calls_are_answered_in_order(pair, chunk):
    client, server = pair
    names = [f"ctr-{i}" for i in range(6)]
    sent = b"".join(client.send_call(START, {"name": n}) for n in names)
    assert client.pending == len(names)

    calls = to_server(server, sent, chunk)
    assert [params(server, c, C.NameParams).name for c in calls] == names

    answers = b"".join(server.reply(C.StateReply(id=f"id-{n}", state="running")) for n in names)
    replies = to_client(client, answers, chunk)
    assert [r.method for r in replies] == [START] * len(names)
    assert [reply_dict(client, r)["id"] for r in replies] == [f"id-{n}" for n in names]
    assert client.pending == 0


def test_pipelined_calls_map_replies_to_their_methods(pair):
    client, server = pair
    sent = client.send_call(PING) + client.send_call(START, {"name": "a"}) + client.send_call(PING)
    calls = to_server(server, sent)
    assert [c.method for c in calls] == [PING, START, PING]
    out = server.reply(S.PingReply(pong="1")) + server.reply(C.StateReply(id="a", state="x"))
    out += server.reply(S.PingReply(pong="2"))
    assert [r.method for r in to_client(client, out, 5)] == [PING, START, PING]


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_more_replies_continue_until_the_final_one(pair, chunk):
    client, server = pair
    sent = client.send_call(EVENTS, {"stream": True}, more=True) + client.send_call(PING)
    calls = to_server(server, sent, chunk)
    assert [(c.method, c.more) for c in calls] == [(EVENTS, True), (PING, False)]

    stream = b"".join(server.reply(S.EventsReply(), continues=True) for _ in range(3))
    replies = to_client(client, stream, chunk)
    assert [r.continues for r in replies] == [True, True, True]
    assert all(r.method == EVENTS for r in replies)
    assert client.pending == 2  # the stream is still open, the ping not answered yet

    replies = to_client(client, server.reply(S.EventsReply()) + server.reply(S.PingReply(pong="p")), chunk)
    assert [(r.method, r.continues) for r in replies] == [(EVENTS, False), (PING, False)]
    assert client.pending == 0


def test_error_reply_ends_a_call(pair):
    client, server = pair
    calls = to_server(server, client.send_call(START, {"name": "nope"}))
    err = NoSuchContainer("no container named nope", name="nope")
    assert calls[0].method == START
    (reply,) = to_client(client, server.error(err.rpc_name, err.parameters()), 2)
    assert reply.error == "io.varpod.Container.NoSuchContainer"
    assert reply.continues is False
    assert client.pending == 0
    wire = client.codec.error_parameters(reply.parameters)
    assert wire == {"name": "nope", "message": "no container named nope"}
    rebuilt = from_wire(reply.error, wire)
    assert type(rebuilt) is NoSuchContainer
    assert (rebuilt.name, rebuilt.message) == ("nope", "no container named nope")


def test_error_reply_ends_a_more_stream(pair):
    client, server = pair
    to_server(server, client.send_call(EVENTS, {"stream": True}, more=True) + client.send_call(PING))
    out = server.reply(S.EventsReply(), continues=True)
    out += server.error("io.varpod.System.EventsOverflow", {"message": "too slow"})
    out += server.reply(S.PingReply(pong="still here"))
    replies = to_client(client, out)
    assert [(r.method, r.continues, r.error) for r in replies] == [
        (EVENTS, True, None),
        (EVENTS, False, "io.varpod.System.EventsOverflow"),
        (PING, False, None),
    ]
    assert reply_dict(client, replies[2]) == {"pong": "still here"}
    assert client.pending == 0


def test_oneway_calls_have_no_pending_entry(pair):
    client, server = pair
    sent = client.send_call(START, {"name": "fire-and-forget"}, oneway=True)
    assert client.pending == 0
    sent += client.send_call(PING)
    assert client.pending == 1
    calls = to_server(server, sent)
    assert [(c.method, c.oneway) for c in calls] == [(START, True), (PING, False)]
    # The only reply belongs to the ping: the oneway call gets none.
    (reply,) = to_client(client, server.reply(S.PingReply(pong="pong")))
    assert reply.method == PING
    assert client.pending == 0


def test_a_reply_without_a_call_is_a_protocol_error(pair):
    client, server = pair
    to_server(server, client.send_call(PING, oneway=True))
    client.receive_data(server.reply(S.PingReply(pong="unasked")))
    with pytest.raises(ProtocolError):
        client.next_reply()


# -- upgrade ------------------------------------------------------------------------------

RAW = encode_record(1, b"hello from the container\n", 1) + b"\x00\x00\x00\x05not a frame at all"


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_upgrade_turns_the_connection_into_raw_bytes(pair, chunk):
    client, server = pair
    calls = to_server(server, client.send_call(LOGS, {"name": "web"}, upgrade=True), chunk)
    assert [(c.method, c.upgrade) for c in calls] == [(LOGS, True)]
    assert not client.upgraded

    replies = to_client(client, server.reply(C.LogsReply(id="abc", tty=False)) + RAW, chunk)
    assert [(r.method, r.continues, r.error) for r in replies] == [(LOGS, False, None)]
    assert reply_dict(client, replies[0]) == {"id": "abc", "tty": False}
    assert client.upgraded
    assert client.pending == 0
    assert client.next_reply() is None
    assert client.take_rest() == RAW
    with pytest.raises(ProtocolError):
        client.send_call(PING)


def test_raw_bytes_after_upgrade_are_never_parsed_as_frames(pair):
    client, server = pair
    to_server(server, client.send_call(LOGS, {"name": "web"}, upgrade=True))
    looks_like_replies = server.reply(S.PingReply(pong="x")) * 3
    replies = to_client(client, server.reply(C.LogsReply(id="abc", tty=True)) + looks_like_replies)
    assert len(replies) == 1
    more = b"later bytes"
    client.receive_data(more)
    assert client.next_reply() is None
    assert client.take_rest() == looks_like_replies + more


def test_upgrade_happens_only_after_the_final_reply(pair):
    client, server = pair
    to_server(server, client.send_call(LOGS, {"name": "web"}, more=True, upgrade=True))
    (first,) = to_client(client, server.reply(C.LogsReply(id="a", tty=False), continues=True))
    assert first.continues and not client.upgraded
    (last,) = to_client(client, server.reply(C.LogsReply(id="a", tty=False)) + b"raw")
    assert not last.continues and client.upgraded
    assert client.take_rest() == b"raw"


def test_an_error_reply_to_an_upgrade_keeps_the_framing(pair):
    client, server = pair
    to_server(server, client.send_call(LOGS, {"name": "gone"}, upgrade=True))
    (reply,) = to_client(client, server.error("io.varpod.Container.NoSuchContainer",
                                              {"name": "gone", "message": "gone"}))
    assert reply.error == "io.varpod.Container.NoSuchContainer"
    assert not client.upgraded
    (call,) = to_server(server, client.send_call(PING, {"ping": "again"}))
    assert call.method == PING
    (reply,) = to_client(client, server.reply(S.PingReply(pong="again")))
    assert reply_dict(client, reply) == {"pong": "again"}


def test_server_keeps_the_bytes_that_follow_an_upgrade_call(pair):
    client, server = pair
    stdin = b"\x00\x00\x00\x09typed input, not a call\0"
    server.receive_data(client.send_call(LOGS, {"name": "web"}, upgrade=True) + stdin)
    call = server.next_call()  # the server stops asking for calls after an upgrade call
    assert call.method == LOGS and call.upgrade
    assert server.take_rest() == stdin
    assert server.buffered() == 0


# -- the two framings ----------------------------------------------------------------------


def test_first_byte_brace_selects_nul_terminated_json():
    server = ServerConnection(MsgpackServerCodec(), JsonServerCodec())
    server.receive_data(b"")  # nothing yet: the framing is still undecided
    assert server.codec is None
    data = (b'{"method":"io.varpod.System.Ping","parameters":{"ping":"v"}}\0'
            b'{"method":"io.varpod.System.Ping"}\0')
    calls = to_server(server, data, 7)
    assert server.is_json
    assert [c.method for c in calls] == [PING, PING]
    assert params(server, calls[0], S.PingParams) == S.PingParams(ping="v")
    assert params(server, calls[1], S.PingParams) == S.PingParams(ping=None)

    out = server.reply(S.PingReply(pong="v"), continues=True)
    assert out.endswith(b"\0") and out.count(b"\0") == 1
    assert msgspec.json.decode(out[:-1]) == {"parameters": {"pong": "v"}, "continues": True}
    out = server.reply(S.PingReply(pong="v"))
    assert msgspec.json.decode(out[:-1]) == {"parameters": {"pong": "v"}}
    out = server.error("org.varlink.service.MethodNotFound", {"method": "x.Y"})
    assert msgspec.json.decode(out[:-1]) == {"error": "org.varlink.service.MethodNotFound",
                                             "parameters": {"method": "x.Y"}}


def test_other_first_bytes_select_length_prefixed_msgpack():
    client = ClientConnection(MsgspecClientCodec())
    server = ServerConnection(MsgpackServerCodec(), JsonServerCodec())
    data = client.send_call(PING)
    body_len = int.from_bytes(data[:4], "big")
    assert body_len == len(data) - 4
    (call,) = to_server(server, data)
    assert call.method == PING
    assert not server.is_json
    out = server.reply(S.PingReply(pong="pong"))
    assert int.from_bytes(out[:4], "big") == len(out) - 4
    assert msgspec.msgpack.decode(out[4:]) == {"parameters": {"pong": "pong"}}


def test_json_client_frames_are_nul_terminated_objects():
    client = ClientConnection(MsgspecClientCodec(json=True))
    data = client.send_call(PING, {"ping": "x"}, more=True)
    assert data.startswith(b"{") and data.endswith(b"\0")
    assert msgspec.json.decode(data[:-1]) == {"method": PING, "parameters": {"ping": "x"}, "more": True}


def test_garbage_is_a_protocol_error():
    server = ServerConnection(MsgpackServerCodec(), JsonServerCodec())
    server.receive_data(b"\x00\x00\x00\x02\xc1\xc1")
    with pytest.raises(ProtocolError):
        server.next_call()
    server = ServerConnection(MsgpackServerCodec(), JsonServerCodec())
    server.receive_data(b'{"method": 5}\0')
    with pytest.raises(ProtocolError):
        server.next_call()


@pytest.mark.parametrize("codec", ["msgspec", "minipack"])
@pytest.mark.parametrize("body", [b"\xc1", b"\x93\x01\x02\x03", b"\x81\xa5error"])
def test_malformed_replies_are_protocol_errors(codec, body):
    client = ClientConnection(CLIENT_CODECS[codec]())
    client.send_call(PING)
    client.receive_data(len(body).to_bytes(4, "big") + body)
    with pytest.raises(ProtocolError):
        client.next_reply()


@pytest.mark.parametrize("codec", [
    "msgspec",
    "minipack",
])
def test_invalid_utf8_in_a_reply_is_a_protocol_error(codec):
    client = ClientConnection(CLIENT_CODECS[codec]())
    client.send_call(PING)
    body = b"\x82\xa5error\xa1\xff\xaaparameters\x80"
    client.receive_data(len(body).to_bytes(4, "big") + body)
    with pytest.raises(ProtocolError):
        client.next_reply()


# -- frame size limits ------------------------------------------------------------------------


def test_frame_too_large_is_a_protocol_error():
    assert issubclass(FrameTooLarge, ProtocolError)


def test_length_prefix_over_the_limit_is_refused_before_the_body():
    framer = Framer(max_size=100)
    framer.feed((101).to_bytes(4, "big"))  # only the prefix: not one body byte has arrived
    with pytest.raises(FrameTooLarge) as exc:
        framer.next_body()
    assert exc.value.limit == 100


def test_length_prefix_at_the_limit_is_accepted():
    framer = Framer(max_size=100)
    framer.feed((100).to_bytes(4, "big"))
    assert framer.next_body() is None
    framer.feed(b"x" * 99)
    assert framer.next_body() is None
    framer.feed(b"x")
    assert framer.next_body() == b"x" * 100


def test_a_partial_length_prefix_waits():
    framer = Framer(max_size=100)
    framer.feed(b"\xff\xff\xff")
    assert framer.next_body() is None


def test_server_refuses_a_huge_length_prefix_from_the_prefix_alone():
    server = ServerConnection(MsgpackServerCodec(), JsonServerCodec(), max_size=1024)
    server.receive_data((1 << 30).to_bytes(4, "big"))
    with pytest.raises(FrameTooLarge) as exc:
        server.next_call()
    assert exc.value.limit == 1024


def test_client_refuses_a_huge_reply_from_the_prefix_alone():
    client = ClientConnection(MsgspecClientCodec(), max_size=1024)
    client.send_call(PING)
    client.receive_data((1025).to_bytes(4, "big"))
    with pytest.raises(FrameTooLarge):
        client.next_reply()


def test_json_without_nul_past_the_limit_is_refused():
    framer = Framer(json=True, max_size=16)
    framer.feed(b"{" + b" " * 15)  # 16 bytes: at the limit, still waiting
    assert framer.next_body() is None
    framer.feed(b" ")
    with pytest.raises(FrameTooLarge) as exc:
        framer.next_body()
    assert exc.value.limit == 16


def test_server_refuses_endless_json():
    server = ServerConnection(MsgpackServerCodec(), JsonServerCodec(), max_size=64)
    with pytest.raises(FrameTooLarge):
        to_server(server, b'{"method": "' + b"a" * 100, 10)


def test_oversized_json_frame_is_refused_however_it_is_chunked():
    frame = b"{" + b" " * 20 + b"}\0"  # 22-byte body, limit 16
    bytewise = Framer(json=True, max_size=16)
    with pytest.raises(FrameTooLarge):
        for b in frame:
            bytewise.feed(bytes((b,)))
            bytewise.next_body()
    whole = Framer(json=True, max_size=16)
    whole.feed(frame)
    with pytest.raises(FrameTooLarge):
        whole.next_body()


# -- buffering ---------------------------------------------------------------------------------


@pytest.mark.parametrize("json", [False, True])
def test_many_large_frames_in_odd_chunks(json):
    # Enough data that the framer compacts its buffer (past 64 KiB consumed) mid-stream.
    bodies = [bytes([65 + i % 26]) * (9000 + 37 * i) for i in range(40)]
    framer = Framer(json=json)
    stream = b"".join(framer.frame(b) for b in bodies)
    got = []
    for piece in pieces(stream, 7777):
        framer.feed(piece)
        while (body := framer.next_body()) is not None:
            got.append(body)
    assert got == bodies
    assert framer.buffered() == 0


def test_take_rest_returns_what_follows_the_last_body():
    framer = Framer()
    framer.feed(framer.frame(b"one") + framer.frame(b"two") + b"\x00\x00")
    assert framer.next_body() == b"one"
    assert framer.buffered() == len(framer.frame(b"two")) + 2
    assert framer.take_rest() == framer.frame(b"two") + b"\x00\x00"
    assert framer.buffered() == 0
    assert framer.next_body() is None
