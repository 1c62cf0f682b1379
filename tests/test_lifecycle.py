"""The container lifecycle end to end: client -> daemon -> real runc."""

from __future__ import annotations

import os
import threading
import time

import pytest

from varpod.core.errors import (
    AlreadyPaused,
    AmbiguousName,
    ContainerStopped,
    InvalidState,
    NameInUse,
    NoSuchContainer,
    NotPaused,
)


def output(client, name: str, **kw) -> tuple[bytes, bytes]:
    out, err = [], []
    for rec in client.logs(name, **kw):
        (out if rec.stream == 1 else err).append(rec.payload)
    return b"".join(out), b"".join(err)


def run(client, rootfs: str, command: list[str], **kw):
    """create + start + wait; returns (id, WaitReply)."""
    created = client.create(rootfs, command, **kw)
    client.start(created.id)
    return created.id, client.wait(created.id)


def eventually(predicate, timeout: float = 15.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached")


def test_run_prints_output_and_exit_code(client, rootfs):
    cid, waited = run(client, rootfs, ["/bin/sh", "-c", "echo hi; echo oops >&2; exit 7"])
    assert waited.exit_code == 7 and waited.exit_code_known
    assert output(client, cid) == (b"hi\n", b"oops\n")
    # wait returns once the exit is recorded; the runtime cleanup follows at once
    info = eventually(lambda: (i := client.inspect(cid)).State.Status == "exited" and i)
    assert info.State.ExitCode == 7
    assert info.State.FinishedAt > info.State.StartedAt
    client.remove(cid)
    with pytest.raises(NoSuchContainer):
        client.inspect(cid)


@pytest.mark.parametrize(("command", "code"), [
    (["/bin/true"], 0),
    (["/bin/false"], 1),
    (["/bin/sh", "-c", "exit 255"], 255),
])
def test_exit_codes(client, rootfs, command, code):
    _, waited = run(client, rootfs, command)
    assert waited.exit_code == code


def test_killed_by_a_signal_exits_128_plus_signal(client, rootfs):
    # pid 1 of a namespace only dies of signals sent from outside it: SIGKILL here.
    c = client.create(rootfs, ["/bin/sleep", "1000"])
    client.start(c.id)
    client.kill(c.id, "SIGKILL")
    assert client.wait(c.id).exit_code == 128 + 9


def test_signals_go_through_the_pidfd_not_a_runtime_spawn(fresh_daemon, tmp_path, rootfs):
    """kill and stop of a watched container reach its init through the daemon's pidfd; only
    stop's escalation to every process of the container (``kill --all``) asks the runtime."""
    calls = tmp_path / "calls"
    fresh_daemon.wrap_runtime("logged", f'echo "$*" >> {calls}')
    fresh_daemon.start()

    def kills() -> list[str]:
        return [line for line in calls.read_text().splitlines() if " json kill " in line]

    with fresh_daemon.client() as client:
        killed = client.create(rootfs, ["/bin/sleep", "1000"])
        client.start(killed.id)
        client.kill(killed.id, "SIGKILL")
        assert client.wait(killed.id).exit_code == 128 + 9
        stopped = client.create(rootfs, ["/bin/sleep", "1000"])
        client.start(stopped.id)
        assert client.stop(stopped.id, timeout=0).state == "exited"
        assert kills() == []

        # pid 1 of its namespace, sleep ignores SIGTERM: stop escalates after its timeout
        deaf = client.create(rootfs, ["/bin/sleep", "1000"])
        client.start(deaf.id)
        assert client.stop(deaf.id, timeout=1).state == "exited"
        assert [f"kill --all {deaf.id} 9" in line for line in kills()] == [True]
        for c in (killed, stopped, deaf):
            client.remove(c.id)


def test_full_state_walk(client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"], name="walk")
    assert client.inspect("walk").State.Status == "configured"
    assert client.init("walk").state == "created"
    assert client.inspect("walk").State.Pid > 0
    assert client.start("walk").state == "running"
    assert client.pause("walk").state == "paused"
    with pytest.raises(AlreadyPaused):
        client.pause("walk")
    assert client.unpause("walk").state == "running"
    with pytest.raises(NotPaused):
        client.unpause("walk")
    pid = client.inspect("walk").State.Pid
    assert os.path.exists(f"/proc/{pid}")
    # sleep is pid 1 of its namespace and ignores SIGTERM: stop escalates to SIGKILL.
    assert client.stop("walk", timeout=1).state in ("stopped", "exited")
    st = client.inspect("walk").State
    assert st.ExitCode == 137 and st.StoppedByUser
    with pytest.raises(ContainerStopped):
        client.stop("walk")
    with pytest.raises(InvalidState):
        client.pause("walk")
    assert client.start("walk").state == "running"
    new_pid = client.inspect("walk").State.Pid
    assert new_pid != pid
    assert client.restart("walk", timeout=0).state == "running"
    assert client.inspect("walk").State.Pid not in (pid, new_pid)
    with pytest.raises(InvalidState):
        client.remove("walk")
    client.kill("walk", "KILL")
    assert client.wait("walk").exit_code == 137
    assert client.remove("walk") == c.id


def test_stop_timeout_zero_kills_at_once(client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"])
    client.start(c.id)
    client.stop(c.id, timeout=0)
    assert client.inspect(c.id).State.ExitCode == 137


def test_stop_signal_is_used(client, rootfs):
    script = "trap 'echo got-usr1; exit 3' USR1; while true; do sleep 0.05; done"
    c = client.create(rootfs, ["/bin/sh", "-c", script], stop_signal="SIGUSR1")
    client.start(c.id)
    client.stop(c.id, timeout=30)
    st = client.inspect(c.id).State
    assert st.ExitCode == 3
    assert output(client, c.id)[0] == b"got-usr1\n"


def test_stop_releases_the_lock_while_waiting(daemon, client, rootfs):
    """podman#8501: while stop waits, inspect/list/kill proceed and see `stopping`."""
    c = client.create(rootfs, ["/bin/sleep", "1000"], name="slowstop")
    client.start(c.id)
    result = {}

    def stopper():
        with daemon.client() as other:
            result["state"] = other.stop("slowstop", timeout=120).state

    t = threading.Thread(target=stopper)
    t.start()
    try:
        with daemon.client() as observer:
            eventually(lambda: observer.inspect("slowstop").State.Status == "stopping")
            assert any(x.Id == c.id and x.State == "stopping" for x in observer.list())
            assert t.is_alive()  # the stop is still waiting for its timeout
            observer.kill("slowstop", "KILL")
        t.join(60)
        assert not t.is_alive()
    finally:
        t.join()
    assert result["state"] in ("stopped", "exited")
    assert client.inspect(c.id).State.ExitCode == 137


def test_concurrent_stops_both_answer(daemon, client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"])
    client.start(c.id)
    answers = []

    def stop():
        with daemon.client() as other:
            try:
                answers.append(other.stop(c.id, timeout=1).state)
            except ContainerStopped:
                answers.append("already-stopped")

    threads = [threading.Thread(target=stop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 2
    assert client.inspect(c.id).State.Status == "exited"


def test_names_and_id_prefixes(client, rootfs):
    a = client.create(rootfs, ["/bin/true"], name="alpha")
    assert client.inspect(a.id[:12]).Id == a.id
    assert client.inspect("alpha").Id == a.id
    with pytest.raises(NameInUse):
        client.create(rootfs, ["/bin/true"], name="alpha")
    generated = client.create(rootfs, ["/bin/true"])
    assert generated.name and client.inspect(generated.name).Id == generated.id
    # Force an ambiguous prefix by trying a one-character prefix shared by two IDs.
    ids = [x.Id for x in client.list(all=True)]
    shared = next((p for p in "0123456789abcdef" if sum(i.startswith(p) for i in ids) > 1), None)
    if shared is not None:
        with pytest.raises(AmbiguousName):
            client.inspect(shared)
    with pytest.raises(NoSuchContainer):
        client.inspect("no-such-thing")


def test_wait_for_a_condition(daemon, client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"])
    got = {}

    def waiter():
        with daemon.client() as other:
            got["r"] = other.wait(c.id, ["running"])

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.2)
    assert t.is_alive()
    client.start(c.id)
    t.join(30)
    assert got["r"].state == "running"
    client.stop(c.id, timeout=0)


def test_restart_policy_on_failure_counts(client, rootfs):
    c = client.create(rootfs, ["/bin/sh", "-c", "echo run; exit 3"], restart_policy="on-failure:2")
    client.start(c.id)

    def settled():
        info = client.inspect(c.id)
        return info if info.RestartCount == 2 and info.State.Status == "exited" else None

    info = eventually(settled, timeout=30)
    assert info.State.ExitCode == 3
    time.sleep(0.5)  # a third restart would have happened by now (backoff 0.4 s)
    assert client.inspect(c.id).RestartCount == 2
    assert output(client, c.id)[0] == b"run\n" * 3


def test_restart_policy_on_failure_skips_success(client, rootfs):
    c = client.create(rootfs, ["/bin/true"], restart_policy="on-failure")
    client.start(c.id)
    client.wait(c.id)
    time.sleep(0.3)
    assert client.inspect(c.id).RestartCount == 0


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_restart_always_until_user_stop(client, rootfs, policy):
    c = client.create(rootfs, ["/bin/sh", "-c", "sleep 0.1"], restart_policy=policy)
    client.start(c.id)
    eventually(lambda: client.inspect(c.id).RestartCount >= 2, timeout=30)
    # A user stop is never undone.
    try:
        client.stop(c.id, timeout=0)
    except ContainerStopped:
        pass  # caught between runs: the pending restart is cancelled all the same
    count = client.inspect(c.id).RestartCount
    time.sleep(1.0)
    info = client.inspect(c.id)
    assert info.State.Status == "exited"
    assert info.RestartCount == count


def test_kill_counts_as_user_stop(client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"], restart_policy="always")
    client.start(c.id)
    client.kill(c.id)
    client.wait(c.id)
    time.sleep(0.5)
    assert client.inspect(c.id).RestartCount == 0


def test_auto_remove(client, rootfs):
    c = client.create(rootfs, ["/bin/true"], auto_remove=True)
    client.start(c.id)
    eventually(lambda: all(x.Id != c.id for x in client.list(all=True)))


@pytest.mark.parametrize("tty", [False, True])
def test_an_attached_or_waited_for_auto_removed_container_is_gone_when_it_answers(client, rootfs, tty):
    # As podman's `run --rm`: the exit is reported once the container is removed, so the
    # next `ps -a` does not list it.
    c = client.create(rootfs, ["/bin/sh", "-c", "echo out; exit 3"], auto_remove=True, tty=tty)
    waited = client.wait_stream(c.id)
    assert next(waited).state == ""  # registered
    session = client.attach(c.id, start=True)
    out, _ = session.read()
    assert out.replace(b"\r", b"") == b"out\n" and session.exit_code == (None if tty else 3)
    assert client.list(all=True) == []
    assert next(waited).exit_code == 3 and client.list(all=True) == []


def test_events_in_order(daemon, client, rootfs):
    start_seq = max((e.seq for e in client.events(since_seq=0, stream=False)), default=0)
    cid, _ = run(client, rootfs, ["/bin/true"], name="evt")
    client.remove(cid)
    eventually(lambda: any(e.action == "remove" and e.id == cid
                           for e in client.events(since_seq=start_seq, stream=False)))
    actions = [e.action for e in client.events(since_seq=start_seq, stream=False) if e.id == cid]
    assert actions == ["create", "init", "start", "died", "cleanup", "remove"]
    died = next(e for e in client.events(since_seq=start_seq, stream=False)
                if e.id == cid and e.action == "died")
    assert died.attributes["exitCode"] == "0" and died.name == "evt"


def test_event_stream_is_live(daemon, client, rootfs):
    seen = []
    ready = threading.Event()

    def reader():
        with daemon.client() as other:
            stream = other.events(filters={"container": "live-evt"})
            ready.set()
            for ev in stream:
                seen.append(ev.action)
                if ev.action == "remove":
                    return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    ready.wait(10)
    time.sleep(0.2)  # the subscription is made when the call is served
    cid, _ = run(client, rootfs, ["/bin/true"], name="live-evt")
    client.remove(cid)
    t.join(20)
    assert seen == ["create", "init", "start", "died", "cleanup", "remove"]


def test_private_network_has_only_loopback(client, rootfs):
    cid, _ = run(client, rootfs, ["/bin/sh", "-c", "ls /sys/class/net"])
    assert output(client, cid)[0].split() == [b"lo"]
    cid, _ = run(client, rootfs, ["/bin/sh", "-c", "ip -o link show lo"])
    assert b"UP" in output(client, cid)[0]


def test_host_network_sees_host_interfaces(client, rootfs):
    cid, _ = run(client, rootfs, ["/bin/ls", "/sys/class/net"], network="host")
    assert set(output(client, cid)[0].split()) == {n.encode() for n in os.listdir("/sys/class/net")}


def test_config_reaches_the_process(client, rootfs):
    script = 'echo "$FOO|$(pwd)|$(id -u):$(id -g)|$(hostname)"; touch /probe 2>/dev/null || echo ro'
    cid, waited = run(client, rootfs, ["/bin/sh", "-c", script], env=["FOO=bar baz"], workdir="/tmp",
                      user="65534:65534", hostname="box1", read_only=True)
    assert waited.exit_code == 0
    assert output(client, cid)[0] == b"bar baz|/tmp|65534:65534|box1\nro\n"


def test_rlimits_never_above_the_daemons(client, rootfs):
    import resource

    cid, _ = run(client, rootfs, ["/bin/sh", "-c", "ulimit -n; ulimit -Hn"])
    soft, hard = (int(x) for x in output(client, cid)[0].split())
    assert soft <= resource.getrlimit(resource.RLIMIT_NOFILE)[1] and hard == soft


def test_sync_keeps_a_consistent_state(client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"])
    assert client.sync(c.id).state == "configured"
    client.start(c.id)
    assert client.sync(c.id).state == "running"
    client.pause(c.id)
    assert client.sync(c.id).state == "paused"
    client.unpause(c.id)
    client.stop(c.id, timeout=0)
    assert client.sync(c.id).state == "exited"


def test_start_failure_is_a_runtime_error_and_leaves_no_runtime_state(daemon, client, rootfs):
    from varpod.core.errors import RuntimeFailed

    c = client.create(rootfs, ["/no/such/binary"])
    with pytest.raises(RuntimeFailed) as err:
        client.start(c.id)
    assert "no such file or directory" in err.value.message.lower()
    assert client.inspect(c.id).State.Status == "configured"
    assert c.id not in daemon.runtime_containers()


def test_many_containers_run_concurrently(daemon, client, rootfs):
    ids = [client.create(rootfs, ["/bin/sh", "-c", f"echo n{i}"]).id for i in range(20)]
    errors = []

    def go(cid):
        try:
            with daemon.client() as other:
                other.start(cid)
                assert other.wait(cid).exit_code == 0
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=go, args=(cid,)) for cid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for i, cid in enumerate(ids):
        assert output(client, cid)[0] == f"n{i}\n".encode()


def test_checkpoint_is_probed_and_refused_clearly(client, rootfs):
    from varpod.core.errors import Unsupported

    c = client.create(rootfs, ["/bin/sleep", "1000"])
    with pytest.raises(InvalidState):
        client.checkpoint(c.id)  # not running: the state table refuses first
    client.start(c.id)
    with pytest.raises(Unsupported) as e:
        client.checkpoint(c.id, leave_running=True)
    assert e.value.feature == "checkpoint"
    assert "criu" in e.value.message.lower() or "CRIU" in e.value.message
    assert client.inspect(c.id).State.Status == "running"
    client.stop(c.id, timeout=0)
    with pytest.raises(Unsupported):
        client.restore(c.id)
