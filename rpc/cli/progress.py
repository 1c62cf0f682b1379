"""Pull/load/import progress as podman shows it.

On a terminal, one line per blob redrawn in place (``Copying blob 3167a855ed11
[=====>------] 1.0MiB / 2.1MiB``); otherwise plain lines, one per step, written
once (``Copying blob 3167a855ed11 done``), which logs and scripts can read.
"""

from __future__ import annotations

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any, TextIO

BAR = 30


def size(n: int) -> str:
    """Binary units, as podman's progress bars show them."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f}{unit}" if unit != "B" else f"{n}B"
        value /= 1024
    return f"{n}B"


class Display:
    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty() and not quiet
        self.blobs: dict[str, str] = {}  # digest -> its line, in first-seen order
        self.drawn = 0  # blob lines on screen below the cursor's block start
        self.finished: set[str] = set()

    def feed(self, event: dict[str, Any], quiet_images: bool = False) -> None:
        if self.quiet:
            return
        kind, ident, state = event.get("kind", ""), event.get("id", ""), event.get("state", "")
        if kind == "blob":
            self._blob(ident, state, event.get("current", 0), event.get("total", 0))
        elif kind == "config":
            self._line(f"Copying config {_short(ident)} done")
        elif kind == "manifest":
            self._line("Writing manifest to image destination")
        elif kind == "image" and quiet_images:
            return  # the command prints its own result
        elif event.get("text"):
            self._line(event["text"])

    def _blob(self, digest: str, state: str, current: int, total: int) -> None:
        short = _short(digest)
        if state in ("done", "exists"):
            text = f"Copying blob {short} {'skipped: already exists' if state == 'exists' else 'done'}"
        elif state == "extract":
            text = f"Copying blob {short} extracting"
        elif total:
            filled = min(BAR, BAR * current // total)
            bar = "=" * max(filled - 1, 0) + (">" if filled < BAR else "=") + "-" * (BAR - filled)
            text = f"Copying blob {short} [{bar}] {size(current)} / {size(total)}"
        else:
            text = f"Copying blob {short} {size(current)}"
        if self.tty:
            self.blobs[digest] = text
            self._redraw()
        elif state in ("done", "exists") and digest not in self.finished:
            self.finished.add(digest)
            self.stream.write(text + "\n")
            self.stream.flush()

    def _redraw(self) -> None:
        out = []
        if self.drawn:
            out.append(f"\x1b[{self.drawn}A")
        for text in self.blobs.values():
            out.append("\r\x1b[2K" + text + "\n")
        self.drawn = len(self.blobs)
        self.stream.write("".join(out))
        self.stream.flush()

    def _line(self, text: str) -> None:
        # Lines after the blob block: the block is finished, later lines scroll below it.
        self.drawn = 0
        self.blobs.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.flush()


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12] or digest[:12]
