"""Upgraded connections: after the reply, the socket carries raw bytes.

The socket is detached from its asyncio transport (we keep a dup of the fd)
so the hot paths can hand it straight to ``sendfile`` or the C copy loop.

Log streams carry log records exactly as stored (``core.logfile``): replay is a
``sendfile`` of the file's bytes. Attach streams carry 8-byte-header frames
(or raw bytes for a TTY). Either ends with a control record/frame on stream 3
whose payload (msgpack, or JSON on a varlink-JSON connection) says how it
ended: ``{"end": "eof"}``, ``{"end": "detached"}``, ``{"exit_code": N}`` or
``{"error": name, "message": text}``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from typing import Any

from ..core.errors import StreamBroken, VarpodError
from ..core.logfile import (
    HEADER,
    OVERHEAD,
    TRAILER,
    LogWriter,
    encode_record,
    log_files,
    parse_records,
)
from ..core.logread import Position, Selection

log = logging.getLogger("varpod.streams")

CONTROL = 3
BLOCK = 1 << 20


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
        self._on_data: Any = None

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

    def watch_hangup(self) -> None:
        """Resolve ``hangup`` when the peer closes (we read and discard what it sends)."""
        def readable() -> None:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._loop.remove_reader(self.fd)
                if not self.hangup.done():
                    self.hangup.set_result(None)
        self._loop.add_reader(self.fd, readable)

    async def writable(self) -> None:
        fut = self._loop.create_future()
        self._loop.add_writer(self.fd, fut.set_result, None)
        try:
            done, _ = await asyncio.wait([fut, self.hangup], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._loop.remove_writer(self.fd)
        if fut not in done:
            raise StreamBroken("the client went away")

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

    async def sendfile(self, src: int, offset: int, count: int) -> None:
        end = offset + count
        while offset < end:
            try:
                n = os.sendfile(self.fd, src, offset, end - offset)
            except BlockingIOError:
                await self.writable()
                continue
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET):
                    raise StreamBroken("the client went away") from e
                raise
            if n == 0:
                break  # the file is shorter than it was: stop here
            offset += n

    async def end(self, payload: dict[str, Any]) -> None:
        await self.send(control_record(payload, self.encode))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._registry is not None:
                self._registry.discard(self)
            self._loop.remove_reader(self.fd)
            self._loop.remove_writer(self.fd)
            os.close(self.fd)


def control_record(payload: dict[str, Any], encode: Any) -> bytes:
    return encode_record(CONTROL, encode(payload))


class LogFollower:
    """Sends a container's log records from a position, optionally following."""

    def __init__(self, chan: RawChannel, path: str, writer: LogWriter | None, sel: Selection,
                 follow: bool) -> None:
        self.chan = chan
        self.path = path
        self.writer = writer
        self.sel = sel
        self.follow = follow and writer is not None
        self._wake = asyncio.Event()

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
        if self.follow:
            self.writer.follow(self._wake.set)
        gen, offset, skip = pos.generation, pos.offset, pos.skip
        try:
            while gen <= self._current_generation():
                fd = self._open_generation(gen)
                if fd is not None:
                    try:
                        if await self._send_file(fd, offset, skip):
                            break
                    finally:
                        os.close(fd)
                gen, offset, skip = gen + 1, 0, 0  # rotated: the next generation continues
            await self.chan.end({"end": "eof"})
        finally:
            if self.follow:
                self.writer.unfollow(self._wake.set)

    async def _send_file(self, fd: int, offset: int, skip: int) -> bool:
        """Send this file from ``offset``; True when the whole stream is done."""
        if skip:
            offset = await self._send_partial(fd, offset, skip)
        while True:
            rotated = not self._is_current(fd)  # before the size: a rotated file is final
            size = os.fstat(fd).st_size
            if offset < size:
                offset = await self._send_range(fd, offset, size)
                if offset < 0:
                    return True  # past --until
                continue
            if rotated:
                return False
            if not self.follow or self.writer.finished:
                return True
            self._wake.clear()
            # Re-check after clearing: a write or rotation may have landed in between.
            if os.fstat(fd).st_size > offset or self.writer.finished or not self._is_current(fd):
                continue
            waiter = asyncio.ensure_future(self._wake.wait())
            done, _ = await asyncio.wait([waiter, self.chan.hangup],
                                         return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if self.chan.hangup in done:
                raise StreamBroken("the client went away")

    def _is_current(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        fst = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)

    async def _send_partial(self, fd: int, offset: int, skip: int) -> int:
        head = os.pread(fd, HEADER.size, offset)
        stream, n = HEADER.unpack(head)
        raw = os.pread(fd, n + TRAILER.size, offset + HEADER.size)
        ts, _ = TRAILER.unpack_from(raw, n)
        rest = raw[skip:n]
        if rest and self.sel.wants(stream) and self._in_time(ts):
            await self.chan.send(encode_record(stream, rest, ts))
        return offset + n + OVERHEAD

    def _in_time(self, ts: int) -> bool:
        return (self.sel.since is None or ts >= self.sel.since) and (
            self.sel.until is None or ts <= self.sel.until)

    async def _send_range(self, fd: int, offset: int, end: int) -> int:
        """Send records in [offset, end); returns the new offset, or -1 past --until."""
        sel = self.sel
        if sel.all_streams and sel.since is None and sel.until is None:
            await self.chan.sendfile(fd, offset, end - offset)
            return end
        pending = b""
        pos = offset
        while pos < end:
            chunk = os.pread(fd, min(BLOCK, end - pos), pos)
            if not chunk:
                break
            buf = pending + chunk if pending else chunk
            base = pos - len(pending)
            pos += len(chunk)
            records, used = parse_records(buf, base)
            out = []
            for rec in records:
                if sel.until is not None and rec.time > sel.until:
                    if out:
                        await self.chan.send(b"".join(out))
                    return -1
                if sel.wants(rec.stream) and (sel.since is None or rec.time >= sel.since):
                    out.append(buf[rec.offset - base : rec.offset - base + len(rec.payload) + OVERHEAD])
            if out:
                await self.chan.send(b"".join(out))
            pending = buf[used:]
        return pos - len(pending)


async def serve_logs(chan: RawChannel, path: str, writer: LogWriter | None, pos: Position,
                     sel: Selection, follow: bool) -> None:
    chan.watch_hangup()
    try:
        await LogFollower(chan, path, writer, sel, follow).run(pos)
    except StreamBroken:
        pass
    except VarpodError as e:
        await _try_end(chan, {"error": e.rpc_name, "message": e.message})
    except Exception as e:
        log.exception("log stream failed")
        await _try_end(chan, {"error": "io.varpod.System.InternalError", "message": str(e)})
    finally:
        chan.close()


async def _try_end(chan: RawChannel, payload: dict[str, Any]) -> None:
    try:
        await chan.end(payload)
    except (StreamBroken, OSError):
        pass
