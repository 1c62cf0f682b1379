"""The clients: two thin I/O shells over one sans-IO ``ClientConnection``.

``Client`` is blocking and never imports asyncio or anyio (that import alone
costs ~60 ms of start-up here). ``AsyncClient`` imports asyncio when it connects.
Server errors are raised as the same exception classes the daemon raised.
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` costs ~6 ms more of CLI start-up
import os
import sys
from _collections import deque  # the C type; `collections` costs ~1.5 ms of CLI start-up

from ..core.errors import DaemonNotRunning, StreamBroken, VarpodError, from_wire
from .api import API, pick, result_type
from .protocol import ClientConnection

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from .protocol import Reply

MODE_RECORDS, MODE_FRAMES = 0, 1  # varpod.native's: imported (with the C module) only by streams


def _decoder(codec: Any, fmt: int) -> Any:
    from .framing import StreamDecoder

    return StreamDecoder(codec, fmt)


_Record: Any = None


def _record(stream: int, ts: int, payload: bytes) -> Any:
    global _Record
    if _Record is None:  # imported on first use, and only once: this runs per record
        from ..core.logfile import Record

        _Record = Record
    return _Record(stream, ts, payload, 0)


def _fd_bytes(fds: tuple[int, ...]) -> bytes:
    """SCM_RIGHTS data: the fds as C ints (what ``array("i", fds)`` gives, without importing array)."""
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


DEFAULT_SOCKET = "/run/varpod/varpod.sock"
# A recv allocates its whole size first: at 1 MiB glibc mmaps, mremaps and unmaps it
# on every call (~17 us here, most of a call's cost); below its 128 KiB threshold, no.
RECV_SIZE = 64 << 10
WRITE_BATCH = 8  # calls an AsyncClient joins into one write (see _write_nowait)
RAW_BACKLOG = 8 << 20  # stream bytes an AsyncClient holds for a slow reader before it stops reading


def socket_path(path: str | None = None) -> str:
    return path or os.environ.get("VARPOD_SOCKET") or DEFAULT_SOCKET


def _codec(raw: bool) -> Any:
    if raw:
        from .minipack import MiniCodec

        return MiniCodec()
    from .codecs import MsgspecClientCodec

    return MsgspecClientCodec()


def _unavailable(path: str, e: OSError) -> DaemonNotRunning:
    return DaemonNotRunning(f"cannot reach the varpod daemon at {path}: {e.strerror or e}; "
                            "is `varpod serve` running? (set --socket or VARPOD_SOCKET)")


class _Results:
    """Turns replies into results or raised errors; shared by both clients."""

    _conn: ClientConnection
    _raw: bool

    def _result(self, reply: Reply, rtype: str, field: str | None) -> Any:
        codec = self._conn.codec
        if reply.error is not None:
            raise from_wire(reply.error, codec.error_parameters(reply.parameters))
        if self._raw:
            return pick(reply.parameters, field)
        return pick(codec.decode_parameters(reply.parameters, result_type(rtype)), field)


class Client(_Results, API):
    """Blocking client. ``raw=True`` returns dicts and skips msgspec (the CLI uses it)."""

    def __init__(self, path: str | None = None, *, raw: bool = False,
                 timeout: float | None = None) -> None:
        self.path = socket_path(path)
        self._raw = raw
        self._conn = ClientConnection(_codec(raw))
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(self.path)
        except OSError as e:
            self._sock.close()
            raise _unavailable(self.path, e) from None

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as e:
            # A daemon that refuses a connection (limit, credentials) says why, then
            # closes; our write may fail first. Its reason is the better error.
            self._raise_refusal()
            raise StreamBroken(f"lost the connection to the daemon: {e}") from e

    def _raise_refusal(self) -> None:
        try:
            self._sock.settimeout(1.0)
            while (reply := self._conn.next_reply()) is None:
                data = self._sock.recv(65536)
                if not data:
                    return
                self._conn.receive_data(data)
        except (OSError, VarpodError):
            return
        if reply.error is not None:
            raise from_wire(reply.error, self._conn.codec.error_parameters(reply.parameters))

    def _next_reply(self) -> Reply:
        while True:
            reply = self._conn.next_reply()
            if reply is not None:
                return reply
            try:
                data = self._sock.recv(RECV_SIZE)
            except OSError as e:
                raise StreamBroken(f"lost the connection to the daemon: {e}") from e
            if not data:
                raise StreamBroken("the daemon closed the connection")
            self._conn.receive_data(data)

    def _call(self, method: str, params: dict[str, Any], rtype: str, field: str | None = None) -> Any:
        self._send(self._conn.send_call(method, params))
        return self._result(self._next_reply(), rtype, field)

    def _stream(self, method: str, params: dict[str, Any], rtype: str, field: str | None = None):
        # A connection of its own: dropping the iterator early cannot leave
        # unread replies in front of this connection's next call.
        sub = Client(self.path, raw=self._raw)
        try:
            sub._send(sub._conn.send_call(method, params, more=True))
        except BaseException:
            sub.close()
            raise
        return sub._replies(rtype, field)

    def _replies(self, rtype: str, field: str | None):
        try:
            while True:
                reply = self._next_reply()
                value = self._result(reply, rtype, field)
                if value is not None:
                    yield value
                if not reply.continues:
                    return
        finally:
            self.close()

    def call(self, method: str, parameters: dict[str, Any] | None = None, *,
             more: bool = False, oneway: bool = False) -> Any:
        """Any method by its full name, untyped: the reply parameters as a dict (or raw)."""
        self._send(self._conn.send_call(method, parameters or {}, more=more, oneway=oneway))
        if oneway:
            return None
        return self._conn.codec.decode_parameters(self._check(self._next_reply()).parameters, dict)

    def _check(self, reply: Reply) -> Reply:
        if reply.error is not None:
            raise from_wire(reply.error, self._conn.codec.error_parameters(reply.parameters))
        return reply

    def _records(self, method: str, params: dict[str, Any]):
        sub = self._open_upgraded(method, params)
        return sub._read_records()

    def open_stream(self, method: str, params: dict[str, Any]) -> Client:
        """A connection of its own, upgraded to a raw stream after a successful reply
        (its ``upgrade_reply``); read it with ``take_buffered()`` then the fd."""
        return self._open_upgraded(method, params)

    def take_buffered(self) -> bytes:
        """Bytes received past the upgrade reply, not yet read by anyone."""
        return self._conn.take_rest()

    def _open_upgraded(self, method: str, params: dict[str, Any]) -> Client:
        """A connection of its own, upgraded to a raw stream after a successful reply."""
        sub = Client(self.path, raw=self._raw)
        try:
            sub._send(sub._conn.send_call(method, params, upgrade=True))
            sub.upgrade_reply = sub._conn.codec.decode_parameters(
                sub._check(sub._next_reply()).parameters, dict)
        except BaseException:
            sub.close()
            raise
        return sub

    def _read_records(self):
        """Log records after an upgrade, up to the end record; closes this connection."""
        decoder = _decoder(self._conn.codec, MODE_RECORDS)
        decoder.feed(self._conn.take_rest())
        try:
            while True:
                for stream, payload, ts in decoder.entries():
                    yield _record(stream, ts, payload)
                if decoder.ended:
                    decoder.check()
                    return
                if not self._recv_into(decoder):
                    raise StreamBroken("the stream ended without its end record")
        finally:
            self.close()

    def _recv(self) -> bytes:
        try:
            return self._sock.recv(RECV_SIZE)
        except OSError as e:
            raise StreamBroken(f"lost the connection to the daemon: {e}") from e

    def _recv_into(self, decoder: Any) -> int:
        """Read straight into the stream decoder's buffer; 0 at EOF."""
        try:
            n = self._sock.recv_into(decoder.get_buffer())
        except OSError as e:
            raise StreamBroken(f"lost the connection to the daemon: {e}") from e
        decoder.buffer_updated(n)
        return n

    def _upgrade(self, method: str, params: dict[str, Any], resize: tuple[str, str, str],
                 fds: tuple[int, ...] = ()) -> AttachStream:
        sub = self._open_upgraded(method, params)
        if fds:
            sub._sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                          _fd_bytes(fds))])
        return AttachStream(sub, bool(sub.upgrade_reply.get("tty")), resize)

    def _fd_stream(self, method: str, params: dict[str, Any], fd: int, rtype: str,
                   field: str | None = None, owned: bool = False):
        """A call that hands the daemon ``fd`` after its upgrade reply, then reads replies.
        ``owned``: the fd was opened for this call and is closed once sent."""
        try:
            sub = self._open_upgraded(method, params)
            try:
                sub._sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_bytes((fd,)))])
                sub._conn.resume(method)
            except BaseException:
                sub.close()
                raise
        finally:
            if owned:
                os.close(fd)
        return sub._replies(rtype, field)

    def _fd_call(self, method: str, params: dict[str, Any], fd: int, rtype: str,
                 field: str | None = None, owned: bool = False) -> Any:
        result = None
        for result in self._fd_stream(method, params, fd, rtype, field, owned):  # noqa: B007 (the last)
            pass
        return result
    def concurrently(self, calls: list[tuple[str, dict[str, Any]]], limit: int = 32) -> list[Any]:
        """Run the calls side by side, each on a connection of its own (at most ``limit``
        open at once), so the daemon works on them together: five stops of 2 s take 2 s.

        Returns the reply parameters (dicts) in call order; a call that failed has its
        exception (a VarpodError) in its place instead.
        """
        import select

        results: list[Any] = [None] * len(calls)
        todo = list(enumerate(calls))
        todo.reverse()
        busy: dict[int, tuple[Client, int]] = {}
        idle: list[Client] = []
        poller = select.poll()
        try:
            while todo or busy:
                while todo and len(busy) < limit:
                    i, (method, params) = todo.pop()
                    try:
                        sub = idle.pop() if idle else Client(self.path, raw=self._raw)
                        sub._send(sub._conn.send_call(method, params))
                    except VarpodError as e:
                        results[i] = e
                        continue
                    busy[sub.fileno()] = (sub, i)
                    poller.register(sub.fileno(), select.POLLIN)
                for fd, _ in poller.poll():
                    sub, i = busy.pop(fd)
                    poller.unregister(fd)
                    try:
                        reply = sub._check(sub._next_reply())
                        results[i] = sub._conn.codec.decode_parameters(reply.parameters, dict)
                        idle.append(sub)
                    except VarpodError as e:
                        results[i] = e
                        if isinstance(e, StreamBroken):
                            sub.close()
                        else:
                            idle.append(sub)
        finally:
            for sub, _ in busy.values():
                sub.close()
            for sub in idle:
                sub.close()
        return results

    def pipeline(self, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Send every call at once, then read the replies in order (one round trip)."""
        self._send(b"".join(self._conn.send_call(m, p) for m, p in calls))
        out = []
        for _ in calls:
            reply = self._next_reply()
            out.append(self._conn.codec.decode_parameters(self._check(reply).parameters, dict))
        return out


class _Slot:
    """A caller waiting for its replies on an AsyncClient connection."""

    __slots__ = ("replies", "waiter")

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.waiter: Any = None  # a future while the caller sleeps


class _Wire:
    """The asyncio Protocol under an AsyncClient: received bytes go straight to it.

    A Protocol, not a stream object: with 64 calls in flight the per-call cost
    is what counts, and a callback resolving futures is the cheapest way here.
    """

    def __init__(self) -> None:
        self.client: AsyncClient | None = None
        self.transport: Any = None
        self.writable: Any = None  # a future while the transport's buffer is full

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.client._on_data(data)

    def eof_received(self) -> bool:
        self.client._on_lost(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._on_lost(exc)
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        import asyncio

        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None


class AsyncClient(_Results, API):
    """Async client (asyncio, and anyio on its asyncio backend). Many tasks may call
    at once on one connection: calls are pipelined and replies, which come back in
    order, are handed to their callers.

        async with await AsyncClient.connect() as client:
            await client.start("web")
    """

    def __init__(self, wire: _Wire, path: str, raw: bool = False) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self.path = path
        self._raw = raw
        self._wire = wire
        wire.client = self
        self._conn = ClientConnection(_codec(raw))
        self._slots: deque[_Slot] = deque()  # awaiting a reply, in send order
        self._lost = False
        self._later: list[bytes] | None = None  # writes held until this turn of the loop ends
        # After an upgrade: raw bytes for the stream reader, and its waiter.
        self._raw_data: deque[bytes] = deque()
        self._raw_size = 0  # bytes in _raw_data
        self._reading_paused = False
        self._raw_waiter: Any = None

    @classmethod
    async def connect(cls, path: str | None = None, *, raw: bool = False) -> AsyncClient:
        import asyncio

        path = socket_path(path)
        try:
            _, wire = await asyncio.get_running_loop().create_unix_connection(_Wire, path)
        except OSError as e:
            raise _unavailable(path, e) from None
        return cls(wire, path, raw)

    async def aclose(self) -> None:
        self._wire.transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the wire -----------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        if self._conn.upgraded:
            self._raw_data.append(data)
            self._raw_size += len(data)
            if self._raw_size > RAW_BACKLOG and not self._reading_paused:
                # The stream's reader is behind: let the socket (and the daemon) hold the rest.
                self._reading_paused = True
                self._wire.transport.pause_reading()
            self._wake_raw()
            return
        self._conn.receive_data(data)
        while (reply := self._conn.next_reply()) is not None:
            head = self._slots[0]
            head.replies.append(reply)
            if not reply.continues:
                self._slots.popleft()
            if head.waiter is not None and not head.waiter.done():
                head.waiter.set_result(None)
            if self._conn.upgraded:  # what follows the reply belongs to the stream
                rest = self._conn.take_rest()
                if rest:
                    self._raw_data.append(rest)
                    self._raw_size += len(rest)
                break

    def _on_lost(self, exc: Exception | None) -> None:
        self._lost = True
        for slot in self._slots:
            if slot.waiter is not None and not slot.waiter.done():
                slot.waiter.set_result(None)
        self._wake_raw()

    def _wake_raw(self) -> None:
        if self._raw_waiter is not None and not self._raw_waiter.done():
            self._raw_waiter.set_result(None)

    def _write_nowait(self, data: bytes) -> None:
        """Send ``data``; writes made in one turn of the loop leave a few at a time.

        The first write of a turn goes out at once (a lone call waits for
        nothing); the ones after it, typically every task a batch of replies
        woke sending its next call, are joined WRITE_BATCH at a time, and the
        rest when the turn ends. One system call per call halved the rate of 64
        tasks on one connection here; one per turn left the daemon idle until
        the client's turn ended (fastest when both share one CPU, slowest when
        they run on two); batches of 8 were close to the best of both.
        """
        if self._lost:
            raise StreamBroken("lost the connection to the daemon")
        later = self._later
        if later is None:
            self._wire.transport.write(data)
            self._later = []
            self._loop.call_soon(self._write_later)
        elif len(later) < WRITE_BATCH - 1:
            later.append(data)
        else:
            later.append(data)
            self._wire.transport.write(b"".join(later))
            later.clear()

    def _write_later(self) -> None:
        later, self._later = self._later, None
        if later and not self._lost and not self._wire.transport.is_closing():
            self._wire.transport.write(b"".join(later))

    async def _write(self, data: bytes) -> None:
        self._write_nowait(data)
        if self._wire.writable is not None:  # the daemon is not reading: wait, do not buffer on
            await self._wire.writable

    def _send_call(self, method: str, params: dict[str, Any], more: bool,
                   upgrade: bool = False) -> _Slot:
        slot = _Slot()
        frame = self._conn.send_call(method, params, more=more, upgrade=upgrade)
        self._slots.append(slot)
        self._write_nowait(frame)
        return slot

    async def _next(self, slot: _Slot) -> Reply:
        if not slot.replies:
            await self._next_wait(slot)
        return slot.replies.popleft()

    async def _next_wait(self, slot: _Slot) -> None:
        while not slot.replies:
            if self._lost:
                raise StreamBroken("the daemon closed the connection")
            slot.waiter = self._loop.create_future()
            await slot.waiter
            slot.waiter = None

    async def _receive(self) -> bytes:
        """Raw bytes after an upgrade; StreamBroken once the daemon is gone."""
        while not self._raw_data:
            if self._lost:
                raise StreamBroken("the stream ended without its end")
            self._raw_waiter = self._loop.create_future()
            await self._raw_waiter
            self._raw_waiter = None
        data = self._raw_data.popleft()
        self._raw_size -= len(data)
        if self._reading_paused and self._raw_size <= RAW_BACKLOG // 2:
            self._reading_paused = False
            self._wire.transport.resume_reading()
        return data

    async def _call(self, method: str, params: dict[str, Any], rtype: str,
                    field: str | None = None) -> Any:
        slot = self._send_call(method, params, False)
        if self._wire.writable is not None:  # the daemon is not reading: wait, do not buffer on
            await self._wire.writable
        if not slot.replies:
            await self._next_wait(slot)
        return self._result(slot.replies.popleft(), rtype, field)

    def _stream(self, method: str, params: dict[str, Any], rtype: str, field: str | None = None):
        return self._areplies(method, params, rtype, field)

    def _records(self, method: str, params: dict[str, Any]):
        return self._arecords(method, params)

    async def _open_upgraded(self, method: str, params: dict[str, Any]) -> tuple[AsyncClient, dict]:
        sub = await AsyncClient.connect(self.path, raw=self._raw)
        try:
            slot = sub._send_call(method, params, False, upgrade=True)
            reply = await sub._next(slot)
            if reply.error is not None:
                raise from_wire(reply.error, sub._conn.codec.error_parameters(reply.parameters))
            result = sub._conn.codec.decode_parameters(reply.parameters, dict)
        except BaseException:
            await sub.aclose()
            raise
        return sub, result

    async def _arecords(self, method: str, params: dict[str, Any]):
        sub, _ = await self._open_upgraded(method, params)
        try:
            decoder = _decoder(sub._conn.codec, MODE_RECORDS)
            decoder.feed(sub._conn.take_rest())
            while True:
                for stream, payload, ts in decoder.entries():
                    yield _record(stream, ts, payload)
                if decoder.ended:
                    decoder.check()
                    return
                decoder.feed(await sub._receive())
        finally:
            await sub.aclose()

    async def _upgrade(self, method: str, params: dict[str, Any], resize: tuple[str, str, str],
                       fds: tuple[int, ...] = ()) -> AsyncAttachStream:
        sub, result = await self._open_upgraded(method, params)
        if fds:
            sock = sub._wire.transport.get_extra_info("socket")
            sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_bytes(fds))])
        return AsyncAttachStream(sub, bool(result.get("tty")), resize)

    def _fd_stream(self, method: str, params: dict[str, Any], fd: int, rtype: str,
                   field: str | None = None, owned: bool = False):
        return self._afd_replies(method, params, fd, rtype, field, owned)

    async def _afd_replies(self, method: str, params: dict[str, Any], fd: int, rtype: str,
                           field: str | None, owned: bool):
        try:
            sub, _ = await self._open_upgraded(method, params)
        except BaseException:
            if owned:
                os.close(fd)
            raise
        try:
            sock = sub._wire.transport.get_extra_info("socket")
            try:
                sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_bytes((fd,)))])
            finally:
                if owned:
                    os.close(fd)
            sub._conn.resume(method)
            sub._conn.receive_data(b"".join(sub._raw_data))  # what arrived meanwhile, as raw bytes
            sub._raw_data.clear()
            sub._raw_size = 0
            slot = _Slot()
            sub._slots.append(slot)
            while (reply := sub._conn.next_reply()) is not None:
                slot.replies.append(reply)
            while True:
                reply = await sub._next(slot)
                value = sub._result(reply, rtype, field)
                if value is not None:
                    yield value
                if reply.error is not None or not reply.continues:
                    return
        finally:
            await sub.aclose()

    async def _fd_call(self, method: str, params: dict[str, Any], fd: int, rtype: str,
                       field: str | None = None, owned: bool = False) -> Any:
        result = None
        async for result in self._afd_replies(method, params, fd, rtype, field, owned):  # noqa: B007
            pass
        return result

    async def _areplies(self, method: str, params: dict[str, Any], rtype: str, field: str | None):
        # A connection of its own, as in Client._stream.
        sub = await AsyncClient.connect(self.path, raw=self._raw)
        try:
            slot = sub._send_call(method, params, True)
            while True:
                reply = await sub._next(slot)
                value = sub._result(reply, rtype, field)
                if value is not None:
                    yield value
                if not reply.continues:
                    return
        finally:
            await sub.aclose()


class _Session:
    """What both attach-stream shells share: the decoder, how it ended, what it is for."""

    def __init__(self, conn: Any, tty: bool, resize: tuple[str, str, str]) -> None:
        self._conn = conn
        self.tty = tty
        self._resize = resize  # (method, key, ref): how to resize what this stream is attached to
        # The decoder (and varpod.native under it) is made when the stream is read here:
        # the CLI reads the socket itself (take_buffered) and never pays for either.
        self._rest = conn._conn.take_rest()
        self._stream_decoder: Any = None
        self.end: dict[str, Any] = {}

    @property
    def _decoder(self) -> Any:
        if self._stream_decoder is None:
            self._stream_decoder = _decoder(self._conn._conn.codec, MODE_FRAMES)
            self._stream_decoder.feed(self._rest)
            self._rest = b""
        return self._stream_decoder

    @property
    def exit_code(self) -> int | None:
        return self.end.get("exit_code")

    @property
    def ref(self) -> str:
        """The container name or exec session ID this stream is attached to."""
        return self._resize[2]

    @property
    def resize_method(self) -> str:
        return "io.varpod.Container." + self._resize[0]

    def resize_params(self, height: int, width: int) -> dict[str, Any]:
        return {self._resize[1]: self._resize[2], "height": height, "width": width}

    def take_buffered(self) -> bytes:
        """Bytes received but not yet decoded (for callers that read the socket themselves)."""
        if self._stream_decoder is None:
            rest, self._rest = self._rest, b""
            return rest
        return self._stream_decoder.take()


class AttachStream(_Session):
    """An attached session (container or exec), blocking.

    Iterate for ``(stream, bytes)`` (1 stdout, 2 stderr; a TTY gives stream 1
    only, raw). ``send()`` writes to the process's stdin, ``close_stdin()``
    sends EOF, ``resize()`` sets a TTY's size. When the iteration ends, ``end``
    holds how: ``{"end": "exit", "exit_code": N, ...}`` or ``{"end": "detached"}``
    (empty for a TTY, whose stream has no trailer: ask ``inspect`` or ``wait``).
    """

    def __init__(self, conn: Client, tty: bool, resize: tuple[str, str, str]) -> None:
        super().__init__(conn, tty, resize)
        self.closed = False

    def fileno(self) -> int:
        return self._conn.fileno()

    def __iter__(self):
        try:
            if self.tty:
                pending = self._decoder.take()
                if pending:
                    yield 1, pending
                while data := self._conn._recv():
                    yield 1, data
                return
            while True:
                for stream, payload, _ in self._decoder.entries():
                    yield stream, payload
                if self._decoder.ended:
                    self.end = self._decoder.end
                    self._decoder.check()
                    return
                if not self._conn._recv_into(self._decoder):
                    raise StreamBroken("the stream ended without its end frame")
        finally:
            self.close()

    def read(self) -> tuple[bytes, bytes]:
        """Everything until the end, as (stdout, stderr)."""
        out: dict[int, list[bytes]] = {1: [], 2: []}
        for stream, data in self:
            out.setdefault(stream, []).append(data)
        return b"".join(out[1]), b"".join(out[2])

    def send(self, data: bytes) -> None:
        self._conn._send(data)

    def close_stdin(self) -> None:
        try:
            self._conn._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def resize(self, height: int, width: int) -> None:
        with Client(self._conn.path, raw=True) as c:
            c.call(self.resize_method, self.resize_params(height, width))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._conn.close()

    def __enter__(self) -> AttachStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAttachStream(_Session):
    """The async twin of AttachStream: ``async for stream, data in session``."""

    async def __aiter__(self):
        try:
            if self.tty:
                pending = self._decoder.take()
                if pending:
                    yield 1, pending
                while True:
                    try:
                        data = await self._conn._receive()
                    except StreamBroken:
                        return  # a TTY stream's end is the close
                    yield 1, data
            while True:
                for stream, payload, _ in self._decoder.entries():
                    yield stream, payload
                if self._decoder.ended:
                    self.end = self._decoder.end
                    self._decoder.check()
                    return
                self._decoder.feed(await self._conn._receive())
        finally:
            await self.aclose()

    async def read(self) -> tuple[bytes, bytes]:
        out: dict[int, list[bytes]] = {1: [], 2: []}
        async for stream, data in self:
            out.setdefault(stream, []).append(data)
        return b"".join(out[1]), b"".join(out[2])

    async def send(self, data: bytes) -> None:
        await self._conn._write(data)

    async def close_stdin(self) -> None:
        self._conn._wire.transport.write_eof()

    async def resize(self, height: int, width: int) -> None:
        client = await AsyncClient.connect(self._conn.path, raw=True)
        async with client:
            await client._call(self.resize_method, self.resize_params(height, width),
                               "container.Empty")

    async def aclose(self) -> None:
        await self._conn.aclose()
