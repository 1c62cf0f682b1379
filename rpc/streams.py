"""Upgraded connections: after the reply, the socket carries raw bytes.

The socket is detached from its asyncio transport (we keep a dup of the fd)
so the hot path can hand it straight to the C relay.

Every output stream is a reader of a log: a container's log, or an exec
session's. The relay converts stored records into what the stream carries:

* Logs: records exactly as stored (``core.logfile``), ending with a control
  record on stream 3;
* attach/exec, no TTY: 8-byte-header frames, ending with a control frame on
  stream 3;
* attach/exec with a TTY: raw bytes; the connection closing is the end.

The control payload (msgpack, or JSON on a varlink-JSON connection) says how
the stream ended: ``{"end": "eof"}``, ``{"end": "exit", "exit_code": N}``,
``{"end": "detached"}`` or ``{"error": name, "message": text}``.

Reading from the log means a slow client never stalls the container or other
clients: it just reads further behind, and the log keeps everything. Only a
client that falls behind by more than the log keeps (``log_size_max`` times
the rotated files kept) loses the part that was rotated away.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from .. import native
from ..core import memory
from ..core.errors import InvalidParameter, StreamBroken, VarpodError
from ..core.logfile import HEADER, OVERHEAD, TRAILER, LogWriter, close_reader, encode_record, log_files
from ..core.logread import Position, Selection
from ..core.stdio import StdinWriter
from .detachkeys import DEFAULT_DETACH_KEYS, parse_detach_keys  # noqa: F401 (the daemon's)

log = logging.getLogger("varpod.streams")

CONTROL = 3
# A stream's socket gets this send buffer once it has carried GROW_AFTER bytes: a bulk
# reader then costs the daemon a wake-up (a writer callback and a relay) per 1.5 MiB
# instead of per ~150 KiB of the default 208 KiB buffer. Not from the start: a client
# that stops reading keeps its socket's buffer full, and most streams (exec of a short
# command, a few log lines) never need more. Only the sender's buffer counts on a Unix
# stream socket: the client's SO_RCVBUF is never consulted.
SEND_BUFFER = 1 << 20
GROW_AFTER = 4 << 20
MODE_RECORDS, MODE_FRAMES, MODE_RAW = native.MODE_RECORDS, native.MODE_FRAMES, native.MODE_RAW
NO_UNTIL = 2**63 - 1


class RawChannel:
    """The raw socket of an upgraded connection."""

    def __init__(self, fd: int, leftover: bytes, encode: Any, registry: set | None = None) -> None:
        self.fd = fd
        self._registry = registry
        self.task = asyncio.current_task()
        self.leftover = leftover
        self.encode = encode  # control payloads in the connection's own codec
        self._loop = asyncio.get_running_loop()
        self.closed = False
        self.hangup: asyncio.Future[None] = self._loop.create_future()
        self._reading = False
        # For Logs, the peer closing is a hangup. For attach it may only be the end
        # of its stdin (a half-close) while it still reads our output.
        self._eof_is_hangup = False
        self.sent = 0  # output bytes the relay wrote (grow_send_buffer once it is a bulk stream)
        self._grown = False

    @classmethod
    async def detach(cls, conn: Any) -> RawChannel:
        """Take the socket from its transport once our last reply has been flushed."""
        transport = conn.transport
        transport.pause_reading()
        if transport.get_write_buffer_size():
            transport.set_write_buffer_limits(high=0, low=0)
            await conn.writable()
        sock = transport.get_extra_info("socket")
        fd = os.dup(sock.fileno())
        os.set_blocking(fd, False)
        chan = cls(fd, conn.proto.take_rest(), conn.proto.codec.encode_control, conn.server.channels)
        conn.server.channels.add(chan)
        conn.upgraded = chan
        transport.abort()  # closes the transport's fd; our dup keeps the socket alive
        return chan

    # asyncio.Protocol-shaped hooks: the transport may still deliver a late callback.
    def data_received(self, data: bytes) -> None:
        self.leftover += data

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def shutdown(self) -> None:
        """Daemon shutdown: end the stream with a clear reason."""
        if not self.closed:
            try:
                os.write(self.fd, control_record({"error": "io.varpod.System.ShuttingDown",
                                                  "message": "the daemon is shutting down"},
                                                 self.encode))
            except OSError:
                pass
            self.close()
            if self.task is not None:
                self.task.cancel()

    # -- input ---------------------------------------------------------------------------

    def watch_hangup(self) -> None:
        """For streams without input: the peer closing resolves ``hangup``."""
        self._eof_is_hangup = True
        self.read_input(lambda data: True, lambda: None)

    def read_input(self, on_data: Callable[[bytes], bool], on_eof: Callable[[], None]) -> None:
        """Deliver what the peer sends; ``on_data`` returning False pauses reading."""
        self._on_data, self._on_eof = on_data, on_eof
        if self.leftover:
            data, self.leftover = self.leftover, b""
            if not on_data(data):
                return
        self.resume_input()

    def resume_input(self) -> None:
        if not self._reading and not self.closed:
            self._reading = True
            self._loop.add_reader(self.fd, self._readable)

    def pause_input(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self.fd)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.pause_input()
            if self._eof_is_hangup and not self.hangup.done():
                self.hangup.set_result(None)
            self._on_eof()
        elif not self._on_data(data):
            self.pause_input()

    # -- output ---------------------------------------------------------------------------

    def grow_send_buffer(self) -> None:
        """SEND_BUFFER bytes of send buffer (the kernel books twice that), once per channel."""
        if not self._grown and not self.closed:
            self._grown = True
            grow_send_buffer(self.fd, SEND_BUFFER)

    async def writable(self) -> None:
        fut = self._loop.create_future()
        self._loop.add_writer(self.fd, fut.set_result, None)
        try:
            await fut
        finally:
            self._loop.remove_writer(self.fd)

    async def send(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                await self.writable()
                continue
            except OSError as e:
                raise StreamBroken(f"the client went away: {e.strerror}") from e
            view = view[n:]

    async def end(self, payload: dict[str, Any], mode: int = MODE_RECORDS) -> None:
        if mode == MODE_RAW:
            return  # a TTY stream has nowhere to say it: closing is the end
        body = self.encode(payload)
        await self.send(control_record(payload, self.encode) if mode == MODE_RECORDS
                        else native.encode_frame(CONTROL, body))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._registry is not None:
                self._registry.discard(self)
            self.pause_input()
            self._loop.remove_writer(self.fd)
            os.close(self.fd)
            memory.trim_soon()  # what the session held goes back to the kernel, not just the heap


SO_SNDBUFFORCE = 32  # Linux; not in Python's socket module


def grow_send_buffer(fd: int, size: int) -> None:
    """SO_SNDBUF of ``size``; past net.core.wmem_max with SO_SNDBUFFORCE when we may (root).

    Best effort: a smaller buffer still works, with more wake-ups per MiB.
    """
    sock = socket.socket(fileno=fd)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < 2 * size:  # capped at wmem_max
            sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, size)
    except OSError:
        pass
    finally:
        sock.detach()


def control_record(payload: dict[str, Any], encode: Any) -> bytes:
    return encode_record(CONTROL, encode(payload))


def _stream_mask(sel: Selection) -> int:
    return (2 if sel.stdout else 0) | (4 if sel.stderr else 0)


class LogFollower:
    """Relays a log from a position to a channel, optionally following it live.

    While it is caught up with a live log, or waits for its client to take more,
    it sleeps, and the work is done in callbacks: the writer's notification
    after each append relays the new records right there, in the callback that
    appended them (a small write, a TTY's few KiB or a line, then costs one call,
    not a task switch), and while the client's socket is full a writer callback
    on it relays whenever it has room, staying registered until the follower has
    caught up (a fast producer and a slower client cost a callback and a relay
    per socketful: a task switch and two epoll changes each cost about as much
    as the relay). Anything else (the end, a rotation, an error, a hang-up)
    wakes the task, which handles it.
    """

    def __init__(self, chan: RawChannel, path: str, writer: LogWriter | None, sel: Selection,
                 follow: bool, mode: int = MODE_RECORDS, merge: bool = True) -> None:
        self.chan = chan
        # Consecutive records of one stream go out as one (the log keeps one per pipe
        # read: a line-by-line producer leaves a record per line). Off only for readers
        # that want each read's own timestamp.
        self.merge = merge
        self.path = path
        self.writer = writer
        self.sel = sel
        self.follow = follow and writer is not None
        self.mode = mode
        self._mask = _stream_mask(sel)
        self._since = sel.since or 0
        self._until = NO_UNTIL if sel.until is None else sel.until
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        # Set while the task sleeps: what the callbacks relay into (file, its generation,
        # the cursor). _writable: a writer callback is registered on the client's socket.
        self._live: tuple[int, int, Any] | None = None
        self._writable = False
        self._error: BaseException | None = None  # raised by a relay in a callback

    def _current_generation(self) -> int:
        if self.writer is not None:
            return self.writer.generation
        return log_files(self.path)[-1][0]

    def _open_generation(self, generation: int) -> int | None:
        """The file holding ``generation``; None when it was rotated away."""
        names = [f"{self.path}.{generation}"]
        if generation == self._current_generation():
            names.append(self.path)
        for name in names:
            try:
                return os.open(name, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
        return None

    async def run(self, pos: Position) -> None:
        """Send from ``pos`` until the end of the log (or its writer's finish, when following)."""
        if self.follow:
            self.writer.follow(self._on_append)
        self.chan.hangup.add_done_callback(self._resolve)
        gen, offset, skip = pos.generation, pos.offset, pos.skip
        try:
            while gen <= self._current_generation():
                fd = self._open_generation(gen)
                if fd is not None:
                    try:
                        if await self._send_file(fd, gen, offset, skip):
                            return
                    finally:
                        self._live = None
                        close_reader(fd)
                gen, offset, skip = gen + 1, 0, 0  # rotated: the next generation continues
        finally:
            self.chan.hangup.remove_done_callback(self._resolve)
            if self.follow:
                self.writer.unfollow(self._on_append)

    def _relay(self, cursor: Any, fd: int, end: int) -> bool:
        """Records up to ``end`` to the client; True when it stopped because the client is full."""
        chan = self.chan
        try:
            sent, blocked = native.relay(cursor, fd, end, chan.fd, self.mode, self._mask,
                                         self._since, self._until, merge=self.merge)
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET):
                raise StreamBroken("the client went away") from e
            raise
        chan.sent += sent
        if chan.sent >= GROW_AFTER:
            chan.grow_send_buffer()
        return blocked

    def _on_append(self) -> None:
        """The writer appended (or finished, or rotated): relay now if that is all it takes."""
        if not self._writable:  # else the client's room, not new records, is what it waits for
            self._relay_live()

    def _relay_live(self) -> None:
        """Relay into the sleeping task's cursor; wake the task only for what needs more."""
        live = self._live
        if live is None:
            return  # the task runs: it looks again anyway
        fd, gen, cursor = live
        writer = self.writer
        final = writer is None or gen != writer.generation
        try:
            blocked = self._relay(cursor, fd, os.fstat(fd).st_size if final else writer.size)
        except BaseException as e:
            self._error = e
            self._watch_writable(False)
            self._resolve()
            return
        if blocked and not cursor.past_until:
            self._watch_writable(True)
            return
        self._watch_writable(False)
        if cursor.past_until or final or writer.finished or not self.follow:
            self._resolve()  # caught up with something that ends: the task goes on from here

    def _watch_writable(self, on: bool) -> None:
        if on != self._writable:
            self._writable = on
            if on:
                self._loop.add_writer(self.chan.fd, self._relay_live)
            else:
                self._loop.remove_writer(self.chan.fd)

    def _resolve(self, _: Any = None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _sleep(self, live: tuple[int, int, Any], *, until_writable: bool = False) -> None:
        """While the callbacks relay into ``live``: until they need the task, or a hang-up."""
        if self.chan.hangup.done():
            raise StreamBroken("the client went away")
        self._waiter = self._loop.create_future()
        self._live = live
        self._watch_writable(until_writable)
        try:
            await self._waiter
        finally:
            self._waiter = None
            self._live = None
            self._watch_writable(False)
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self.chan.hangup.done():
            raise StreamBroken("the client went away")

    async def _send_file(self, fd: int, gen: int, offset: int, skip: int) -> bool:
        """Send this file from ``offset``; True when the whole stream is done."""
        if skip:
            offset = await self._send_partial(fd, offset, skip)
        cursor = native.Cursor()
        cursor.offset = offset
        writer = self.writer
        last = self._current_generation() if writer is None else 0  # no writer: nothing changes
        while True:
            # A file no longer written (rotated, or no writer) is final: read it to its end.
            final = writer is None or gen != writer.generation
            end = os.fstat(fd).st_size if final else writer.size
            if cursor.offset < end or cursor.busy:
                before = cursor.offset
                blocked = self._relay(cursor, fd, end)
                if cursor.past_until:
                    return True
                if blocked:
                    await self._sleep((fd, gen, cursor), until_writable=True)
                    if cursor.past_until:
                        return True
                    continue
                if cursor.offset != before or cursor.offset >= end:
                    continue
            if gen < (last if writer is None else writer.generation):
                return False  # a newer file goes on from here
            if not self.follow or writer.finished:
                log.debug("stream of %s ends at %d", self.path, cursor.offset)
                return True
            await self._sleep((fd, gen, cursor))
            if cursor.past_until:
                return True

    async def _send_partial(self, fd: int, offset: int, skip: int) -> int:
        """The tail of a record that ``--tail`` starts in the middle of."""
        stream, n = HEADER.unpack(os.pread(fd, HEADER.size, offset))
        raw = os.pread(fd, n + TRAILER.size, offset + HEADER.size)
        ts, _ = TRAILER.unpack_from(raw, n)
        rest = raw[skip:n]
        if rest and self.sel.wants(stream) and self._since <= ts <= self._until:
            if self.mode == MODE_RECORDS:
                await self.chan.send(encode_record(stream, rest, ts))
            elif self.mode == MODE_FRAMES:
                await self.chan.send(native.encode_frame(stream, rest))
            else:
                await self.chan.send(rest)
        return offset + n + OVERHEAD


async def serve_logs(chan: RawChannel, path: str, writer: LogWriter | None, pos: Position,
                     sel: Selection, follow: bool, timestamps: bool = False) -> None:
    chan.watch_hangup()
    try:
        await LogFollower(chan, path, writer, sel, follow, merge=not timestamps).run(pos)
        await chan.end({"end": "eof"})
    except StreamBroken:
        pass
    except VarpodError as e:
        await _try_end(chan, {"error": e.rpc_name, "message": e.message})
    except Exception as e:
        log.exception("log stream failed")
        await _try_end(chan, {"error": "io.varpod.System.InternalError", "message": str(e)})
    finally:
        chan.close()


async def _try_end(chan: RawChannel, payload: dict[str, Any], mode: int = MODE_RECORDS) -> None:
    try:
        await chan.end(payload, mode)
    except (StreamBroken, OSError):
        pass


# -- attach ------------------------------------------------------------------------------------

class DetachFilter:
    """Finds the detach sequence in a client's input; bytes that might start it are held back."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, detach requested)."""
        keys = self.keys
        if not keys or (not self._held and keys[0] not in data):
            return data, False
        buf = self._held + data
        out = bytearray()
        i = 0
        while i < len(buf):
            j = buf.find(keys[0], i)
            if j < 0:
                out += buf[i:]
                i = len(buf)
                break
            out += buf[i:j]
            candidate = buf[j : j + len(keys)]
            if candidate == keys:
                self._held = b""
                return bytes(out), True
            if keys.startswith(candidate):  # the sequence may finish in the next read
                self._held = candidate
                return bytes(out), False
            out.append(buf[j])
            i = j + 1
        self._held = b""
        return bytes(out), False


class AttachSession:
    """One attached client: output from a log, input to stdin, detach keys watched."""

    def __init__(self, chan: RawChannel, follower: LogFollower,
                 stdin: Callable[[], StdinWriter | None] | None, detach_keys: bytes,
                 exit_info: Callable[[], Awaitable[dict[str, Any]]], close_stdin_on_eof: bool) -> None:
        self.chan = chan
        self.follower = follower
        self._stdin = stdin
        self._filter = DetachFilter(detach_keys)
        self._exit_info = exit_info
        self._close_on_eof = close_stdin_on_eof
        self._detached = asyncio.get_running_loop().create_future()
        self._writer: StdinWriter | None = None

    async def run(self, pos: Position) -> None:
        mode = self.follower.mode
        if self._stdin is not None:
            self.chan.read_input(self._on_input, self._on_input_eof)
        output = asyncio.ensure_future(self.follower.run(pos))
        try:
            done, _ = await asyncio.wait([output, self._detached],
                                         return_when=asyncio.FIRST_COMPLETED)
            if self._detached in done:
                output.cancel()
                await _try_end(self.chan, {"end": "detached"}, mode)
                return
            output.result()
            await self.chan.end({"end": "exit", **await self._exit_info()}, mode)
        except StreamBroken:
            pass
        except VarpodError as e:
            await _try_end(self.chan, {"error": e.rpc_name, "message": e.message}, mode)
        except Exception as e:
            log.exception("attach stream failed")
            await _try_end(self.chan, {"error": "io.varpod.System.InternalError",
                                       "message": str(e)}, mode)
        finally:
            output.cancel()
            if self._writer is not None and self._resume in self._writer.on_drained:
                self._writer.on_drained.remove(self._resume)
            self.chan.close()

    def _on_input(self, data: bytes) -> bool:
        data, detach = self._filter.feed(data)
        writer = self._stdin() if self._stdin is not None else None
        ok = True
        if data and writer is not None:
            if writer is not self._writer:
                self._writer = writer
                writer.on_drained.append(self._resume)
            ok = writer.write(data)
        if detach and not self._detached.done():
            self._detached.set_result(None)
            return False
        return ok

    def _resume(self) -> None:
        self.chan.resume_input()

    def _on_input_eof(self) -> None:
        writer = self._stdin() if self._stdin is not None else None
        if writer is not None and self._close_on_eof:
            writer.close()


async def receive_fds(chan: RawChannel, count: int, timeout: float = 30.0) -> list[int]:
    """The fds a client sends right after an upgrade (one byte carrying SCM_RIGHTS)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(fileno=os.dup(chan.fd))  # a socket object for recvmsg; closing it closes the dup
    sock.setblocking(False)
    try:
        deadline = loop.time() + timeout
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(sock, 1, count)
                break
            except BlockingIOError:
                ready = loop.create_future()
                # The reader may fire again before this task runs: only the first one counts.
                loop.add_reader(chan.fd, _resolve_once, ready)
                try:
                    await asyncio.wait_for(ready, max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise InvalidParameter("the client did not send its preserved fds",
                                           parameter="preserve_fds") from None
                finally:
                    loop.remove_reader(chan.fd)
    finally:
        sock.close()
    if not msg or len(fds) != count:
        for fd in fds:
            os.close(fd)
        raise InvalidParameter(f"expected {count} fds, received {len(fds)}", parameter="preserve_fds")
    for fd in fds:
        os.set_inheritable(fd, False)
    return fds


def _resolve_once(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
