"""`make stop-daemon` stops the daemon by the pid it wrote under its run root, never by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def stop_daemon(run_root: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(REPO), "stop-daemon", f"RUN_ROOT={run_root}"],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_daemon_writes_its_pid_and_removes_it_when_it_stops(fresh_daemon):
    d = fresh_daemon.start()
    pidfile = Path(d.run_root) / "varpod.pid"
    assert pidfile.read_text() == f"{d.proc.pid}\n"
    assert oct(pidfile.stat().st_mode & 0o777) == "0o644"
    d.stop()
    assert not pidfile.exists()


def test_make_stop_daemon_stops_that_daemon_and_only_it(fresh_daemon, tmp_path):
    d = fresh_daemon.start()
    other = subprocess.Popen(["sleep", "1000"])  # any other process, to be left alone
    try:
        done = stop_daemon(d.run_root)
        assert done.returncode == 0, done.stderr
        assert f"stopped the varpod daemon (pid {d.proc.pid})" in done.stdout
        assert d.proc.wait(5) == 0  # a clean SIGTERM shutdown
        assert not (Path(d.run_root) / "varpod.pid").exists()
        assert other.poll() is None
        again = stop_daemon(d.run_root)
        assert (again.returncode, "is missing" in again.stdout) == (0, True)
        # A stale pidfile naming a process that is not a varpod daemon: nothing is killed.
        (Path(d.run_root) / "varpod.pid").write_text(f"{other.pid}\n")
        stale = stop_daemon(d.run_root)
        assert (stale.returncode, "is stale" in stale.stdout) == (0, True)
        assert other.poll() is None
        assert not (Path(d.run_root) / "varpod.pid").exists()
    finally:
        other.kill()
        other.wait()
