"""pump_stream: an output-only stream to fds 1 and 2, short ones in Python, the rest in C.

What the daemon sends is played into one end of a socketpair; what reaches
fds 1 and 2 is read back with capfd. Whichever side takes the stream apart,
the bytes out and the end returned are the same.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from varpod.core.logfile import encode_record
from varpod.native import encode_frame
from varpod.rpc.minipack import packb
from varpod.rpc.terminal import pump_stream

END = {"end": "exit", "exit_code": 3}


def control(records: bool) -> bytes:
    body = packb(END)
    return encode_record(3, body, 7) if records else encode_frame(3, body)


def entry(records: bool, stream: int, payload: bytes) -> bytes:
    return encode_record(stream, payload, 5) if records else encode_frame(stream, payload)


def play(chunks: list[bytes], initial: bytes, records: bool, close: bool = True,
         on_signal=None) -> dict | None:
    """Send ``chunks`` from the daemon's end (a moment apart), pump the client's end."""
    a, b = socket.socketpair()

    def send() -> None:
        for chunk in chunks:
            time.sleep(0.01)
            b.sendall(chunk)
        if close:
            b.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        return pump_stream(a.fileno(), initial, records=records, on_signal=on_signal)
    finally:
        sender.join()
        a.close()
        b.close()


def payloads(entries: list[bytes], stream: int) -> bytes:
    return b"".join(e[8 : 8 + int.from_bytes(e[4:8], "big")] for e in entries if e[0] == stream)


@pytest.mark.parametrize("records", [False, True], ids=["frames", "records"])
@pytest.mark.parametrize("split", ["all in the reply", "one read", "a read per entry", "long"])
def test_what_reaches_stdout_and_stderr(capfdbinary, records, split):
    body = [entry(records, 1, b"out\n"), entry(records, 2, b"err\n"), entry(records, 0, b"ignored"),
            entry(records, 1, b"")]
    if split == "long":  # more than one read: the C loop's
        body += [entry(records, 1, os.urandom(300_000)), entry(records, 2, b"tail\n")]
    stream = b"".join(body) + control(records)
    if split == "all in the reply":
        initial, chunks = stream, []
    elif split == "one read":
        initial, chunks = stream[:5], [stream[5:]]
    else:
        initial, chunks = b"", [*body, control(records)]
    assert play(chunks, initial, records) == END
    assert capfdbinary.readouterr() == (payloads(body, 1), payloads(body, 2))


def test_eof_before_the_end_writes_the_whole_entries_and_returns_none(capfd):
    assert play([entry(False, 1, b"partial")], b"", records=False) is None
    assert capfd.readouterr().out == "partial"


def test_a_torn_stream_ends_at_eof_after_its_whole_entries(capfd):
    torn = entry(False, 1, b"whole") + entry(False, 2, b"torn off")[:10]
    assert play([torn], b"", records=False) is None
    assert capfd.readouterr().out == "whole"


def test_a_corrupt_entry_is_refused(capfd):
    bad = entry(False, 1, b"fine") + b"\x07\x00\x00\x00\x00\x00\x00\x01x" + control(False)
    with pytest.raises(ValueError, match="corrupt frame at offset 12"):
        play([bad], b"", records=False)
    assert capfd.readouterr().out == "fine"


def test_a_signal_while_waiting_is_handled_and_the_stream_goes_on(capfd):
    seen: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda sig, _frame: seen.append(sig))
    calls: list[int] = []
    try:
        a, b = socket.socketpair()
        killer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
        sender = threading.Timer(0.5, b.sendall, (entry(False, 1, b"after\n") + control(False),))
        killer.start()
        sender.start()
        try:
            got = pump_stream(a.fileno(), b"", records=False, on_signal=lambda: calls.append(len(seen)))
        finally:
            killer.join()
            sender.join()
            a.close()
            b.close()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert got == END
    assert seen == [signal.SIGUSR1]
    assert calls == [1]  # on_signal ran after the handler, while nothing had arrived yet
    assert capfd.readouterr().out == "after\n"


def test_a_short_stream_never_loads_the_c_module():
    # What `varpod exec ID /bin/true` receives: one line and the end. The cffi module costs
    # ~2.5 ms of start-up; a stream this short does not need it.
    code = textwrap.dedent("""
        import socket, sys
        from varpod.rpc.minipack import packb
        from varpod.rpc.terminal import pump_stream
        def frame(s, p): return bytes([s, 0, 0, 0]) + len(p).to_bytes(4, "big") + p
        a, b = socket.socketpair()
        b.sendall(frame(1, b"hi\\n") + frame(3, packb({"end": "exit", "exit_code": 0})))
        end = pump_stream(a.fileno(), b"", records=False)
        print(end, "varpod.native._streamio" in sys.modules, "_cffi_backend" in sys.modules, file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=True)
    assert done.stdout == b"hi\n"
    assert done.stderr.decode().strip() == "{'end': 'exit', 'exit_code': 0} False False"


@pytest.mark.parametrize("records", [False, True], ids=["frames", "records"])
def test_output_that_came_with_the_reply_prints_before_anything_more_arrives(records):
    # The container's first line can arrive in the same read as the Attach reply, and
    # then nothing for a long time (`echo ready; sleep`): it must print at once.
    r, w = os.pipe()
    saved = os.dup(1)
    a, b = socket.socketpair()
    printed: list[bytes] = []

    def daemon() -> None:
        ready, _, _ = select.select([r], [], [], 5)
        printed.append(os.read(r, 100) if ready else b"")
        b.sendall(control(records))

    sender = threading.Thread(target=daemon)
    sender.start()
    os.dup2(w, 1)
    try:
        got = pump_stream(a.fileno(), entry(records, 1, b"ready\n"), records=records)
    finally:
        os.dup2(saved, 1)
        sender.join()
        for fd in (r, w, saved):
            os.close(fd)
        a.close()
        b.close()
    assert printed == [b"ready\n"]
    assert got == END
