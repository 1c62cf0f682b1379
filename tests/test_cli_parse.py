"""The CLI's fast argv parser (rpc/fastargs.py) against argparse on the same declarations.

For every argv it accepts, fastargs must give argparse's Namespace; what it
declines goes to argparse, which must still print its help and errors. No
daemon is needed.
"""

from __future__ import annotations

import functools
import io
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from varpod.rpc import cli, fastargs

ROOTFS = ["--rootfs", "/tmp/rootfs"]


@functools.cache
def _parser():
    # Built once: parse_args leaves an argparse parser as it was, and building the whole
    # CLI's takes ~20 ms, thousands of times over in the property tests.
    return cli.build_parser()


def by_argparse(argv: list[str]) -> dict | tuple[str, object]:
    """argparse's attributes for argv, or ("exit", code) with what it printed."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            return vars(_parser().parse_args(list(argv)))
    except SystemExit as e:
        return ("exit", e.code)


def by_fastargs(argv: list[str]) -> dict | None:
    """fastargs' attributes for argv, or None when it declines."""
    try:
        return vars(fastargs.parse(list(argv), cli.recorded()))
    except fastargs.Decline:
        return None


def check_agrees(argv: list[str]) -> dict | None:
    """fastargs declines or agrees with argparse; its attributes (None: declined)."""
    fast = by_fastargs(argv)
    if fast is not None:
        assert fast == by_argparse(argv), argv
    return fast


# -- the forms people type: never declined, always argparse's answer -------------------------

COMMON = [
    ["run", "--rm", *ROOTFS, "/bin/echo", "hi"],
    ["run", "--rm", "-it", *ROOTFS, "/bin/sh"],
    ["run", "-i", "--rm", *ROOTFS, "/bin/cat"],
    ["run", "-d", "--name", "svc", *ROOTFS, "/bin/sleep", "1000"],
    ["run", "-itd", *ROOTFS, "sh"],
    ["run", "--rm", *ROOTFS, "/bin/sh", "-c", "exit 7"],
    ["run", "--rm", *ROOTFS, "--", "/bin/sh", "-c", "echo -n x"],
    ["run", "--rm", "--rootfs=/r", "ls", "-la", "--color=never", "-h"],
    ["run", "--name", "web", "-e", "A=1", "-eB=2", "--env", "C=3", "--env=D=4", "-w", "/tmp",
     "-u", "1000:1000", "--hostname", "h", "-t", "-i", "--runtime", "runc", "--restart", "always",
     "--stop-signal", "TERM", "--stop-timeout", "5", "--network", "host", "--read-only", "-l", "a=b",
     "--label", "c=d", "--rm", "--log-size-max", "1048576", "--detach-keys", "", *ROOTFS, "sh"],
    ["run", "--net", "none", "-wdir", "-uroot", *ROOTFS, "id"],
    ["create", "--name", "web", "--restart", "on-failure:3", *ROOTFS, "/bin/sh", "-c", "..."],
    ["create", *ROOTFS, "-l", "x=y", "--stop-timeout=10", "true"],
    ["run", "-d", "-m", "64m", "--cpus", "0.5", "--pids-limit", "100", "--cpu-shares", "512",
     *ROOTFS, "sh"],
    ["create", "--memory=1g", "--cpus=2", *ROOTFS, "sh"],
    ["update", "--memory", "128m", "--cpus=1.5", "svc"],
    ["update", "-m64m", "--pids-limit", "10", "--cpu-shares=256", "a", "b"],
    ["update", "--pids-limit=-1", "svc"],
    ["exec", "--preserve-fds", "2", "svc", "sh", "-c", "cat <&3"],
    ["exec", "-i", "--preserve-fds=1", "svc", "cat"],
    ["exec", "-it", "svc", "/bin/sh"],
    ["exec", "-d", "svc", "sleep", "1"],
    ["exec", "-e", "K=V", "-eX=Y", "-w", "/", "-u", "0", "--privileged", "--cap-add", "NET_ADMIN",
     "--cap-add=SYS_TIME", "--detach-keys", "ctrl-x", "svc", "env"],
    ["exec", "-i", "svc", "sh", "-c", "cat", "--", "-x"],
    ["exec", "svc", "ls", "-i", "--tty"],
    ["ps"],
    ["ps", "-a"],
    ["ps", "-a", "-q"],
    ["ps", "-aq", "--no-trunc"],
    ["ps", "-a", "--format", "json"],
    ["ps", "--format=table"],
    ["inspect", "svc"],
    ["inspect", "a", "b", "c"],
    ["logs", "svc"],
    ["logs", "-f", "--tail", "10", "-t", "svc"],
    ["logs", "-ft", "-n", "5", "svc"],
    ["logs", "-n5", "--since", "10m", "--until", "2024-01-01T00:00:00Z", "svc"],
    ["logs", "svc", "-f"],
    ["stop", "svc"],
    ["stop", "-t", "5", "svc"],
    ["stop", "-t0", "a", "b"],
    ["restart", "--time", "3", "svc"],
    ["kill", "svc"],
    ["kill", "-s", "HUP", "svc"],
    ["kill", "--signal=9", "svc"],
    ["rm", "svc"],
    ["rm", "-f", "svc", "other"],
    ["rm", "-f", "-t", "2", "svc"],
    ["rm", "--force", "--time=1", "svc"],
    ["wait", "svc"],
    ["wait", "--condition", "stopped", "--condition", "exited", "svc"],
    ["start", "a"], ["pause", "a"], ["unpause", "a"], ["init", "a"], ["sync", "a"],
    ["checkpoint", "a"], ["restore", "a"],
    ["attach", "svc"],
    ["attach", "--no-stdin", "--detach-keys", "ctrl-a", "svc"],
    ["events"],
    ["events", "--since", "1h", "--until", "now", "--filter", "type=container", "--format", "json",
     "--stream", "false"],
    ["info"],
    ["info", "--format", "json"],
    ["serve", "--root", "/var/lib/x", "--run-root", "/run/x", "--config", "c.toml",
     "--log-level", "debug"],
    ["--socket", "/tmp/s.sock", "ps", "-a"],
    ["--socket=/tmp/s.sock", "run", "--rm", *ROOTFS, "true"],
    ["ps", "--socket", "/tmp/s.sock"],
    ["serve", "--socket", "/tmp/s.sock"],
    ["--socket", "/a", "ps", "--socket", "/b"],
    ["--socket", "/a", "--socket", "/b", "inspect", "x"],
    ["exec", "--socket=/s", "-it", "svc", "sh"],
    # podman's bulk and idempotent forms
    ["rm", "-t", "0", "--all", "--force", "--ignore"],
    ["rm", "-fa"], ["rm", "-f", "-i", "a", "b"], ["rm", "--latest"], ["rm", "--cidfile", "/tmp/c"],
    ["rm", "--filter", "status=exited"],
    ["stop", "-a", "-t", "2"], ["stop", "--ignore", "a", "b"], ["stop", "-l"],
    ["stop", "--filter", "label=x", "-t0"], ["kill", "--all", "-s", "TERM"], ["kill", "-l"],
    ["start", "--all"], ["start", "-a", "svc"], ["start", "-ai", "svc"], ["pause", "-a"],
    ["unpause", "--all"], ["restart", "--all", "--running"], ["wait", "-l"],
    ["wait", "--ignore", "-i", "250ms", "a", "b"], ["init", "-a"],
    # ps, inspect, events, info, version
    ["ps", "--all", "--format", "{{.ID}} {{.Names}}"], ["ps", "-a", "-f", "name=web", "-f", "status=exited"],
    ["ps", "--sort", "names", "-n", "3"], ["ps", "-l", "-q"], ["ps", "-s", "--no-trunc", "-p"],
    ["ps", "--external", "--noheading", "--sync"], ["ps", "--format", "table {{.ID}}\t{{.Status}}"],
    ["inspect", "--format", "{{.State.Status}}", "svc"], ["inspect", "-f", "{{json .}}", "a", "b"],
    ["inspect", "--type", "container", "-s", "svc"], ["inspect", "-l"], ["container", "inspect", "x"],
    ["events", "--stream=false", "--filter", "event=start", "--format", "{{.Status}}"],
    ["info", "-f", "{{.version}}"], ["version"], ["version", "--format", "json"],
    ["--log-level", "debug", "ps"], ["ps", "--log-level=info"], ["--log-level=warn", "rm", "-f", "a"],
    # run/create, everyday flags
    ["run", "--rm", "-d", "--env-host", "-e", "FOO", "--env-file", "e.env", *ROOTFS, "env"],
    ["run", "--cap-add", "NET_ADMIN", "--cap-drop=ALL", "--privileged", "--security-opt",
     "no-new-privileges", *ROOTFS, "sh"],
    ["create", "--ulimit", "nofile=1024:2048", "--sysctl", "net.ipv4.ip_forward=1", "--device",
     "/dev/fuse", "--shm-size", "128m", "--init", "--cidfile", "/tmp/cid", *ROOTFS, "sh"],
    ["run", "--log-driver", "none", "--annotation", "a=b", "--replace", "--name", "x", "--userns",
     "host", "--label-file", "l.txt", *ROOTFS, "true"],
    ["run", "--sig-proxy=false", *ROOTFS, "sleep", "9"], ["attach", "--sig-proxy", "false", "svc"],
    ["attach", "-l"],
]


@pytest.mark.parametrize("argv", COMMON, ids=" ".join)
def test_common_forms_are_parsed_here_exactly_as_argparse_does(argv):
    fast = check_agrees(argv)
    assert fast is not None, f"declined {argv}"


def test_the_namespace_has_argparses_values():
    a = cli.parse_args(["run", "--rm", "-it", "-eK=V", "--stop-timeout", "5", *ROOTFS, "sh", "-c", "x"])
    assert (a.cmd, a.rm, a.tty, a.interactive, a.env, a.stop_timeout, a.command) == (
        "run", True, True, True, ["K=V"], 5, ["sh", "-c", "x"])
    assert a.socket is None and a.label == [] and a.name is None
    a.rm = False  # cmd_run does this
    assert a.rm is False


# -- argparse's corners: declined, or answered like argparse ----------------------------------

CORNERS = [
    [], ["nope"], ["-h"], ["--help"], ["ps", "-h"], ["run", "--help"], ["ps", "-ah"],
    ["--socket"], ["--socket", "ps"], ["--socket", "--", "ps"], ["--", "ps"], ["--sock", "/s", "ps"],
    ["--socket=", "ps"], ["--socket", "", "ps"], ["--socket", "-", "ps"],
    ["ps", "--bogus"], ["ps", "-x"], ["ps", "--form", "json"], ["ps", "--format", "yaml"],
    ["ps", "--format"], ["ps", "-a=1"], ["ps", "--all=1"], ["ps", "-a-q"], ["ps", "-aqz"], ["ps", "extra"],
    ["ps", "--no"], ["ps", "--=x"], ["ps", "-", "-a"],
    ["stop", "-t", "x", "svc"], ["stop", "-t", "-1", "svc"], ["stop", "-t", " 5", "svc"],
    ["stop", "-t", "5_0", "svc"], ["stop", "-t", "+5", "svc"], ["stop", "-t=5", "svc"], ["stop", "-t"],
    ["stop"], ["stop", "-t", "5"], ["stop", "svc", "-t", "5", "other"], ["stop", "a", "--", "b"],
    ["stop", "--", "-t", "5"], ["stop", "-t", "5", "--", "--"], ["stop", "--", "--", "a"],
    ["kill", "-s"], ["kill", "-sHUP", "a"], ["kill", "-s=HUP", "a"], ["kill", "-s", "-9", "a"],
    ["logs"], ["logs", "a", "b"], ["logs", "--", "a"], ["logs", "a", "--"], ["logs", "--", "--"],
    ["logs", "-n", "ten", "a"], ["logs", "-tf", "a"], ["logs", "-fn5", "a"], ["logs", "-fn", "5", "a"],
    ["logs", "-f-n", "5", "a"], ["logs", "-fn=5", "a"], ["logs", "-tail", "a"],
    ["run", "sh"], ["run", *ROOTFS], ["run", "--rootfs"], ["run", "--rootfs", "--rm", "sh"],
    ["run", *ROOTFS, "sh", "--r"], ["run", *ROOTFS, "sh", "--re=1"], ["run", *ROOTFS, "sh", "--h"],
    ["run", *ROOTFS, "sh", "--=x"], ["run", "--r", "x", *ROOTFS, "sh"], ["run", "--rootf", "r", "sh"],
    ["run", *ROOTFS, "--", "--", "sh"], ["run", "--rm", "--", *ROOTFS, "sh"],
    ["run", "--name=--", *ROOTFS, "sh"], ["run", "--name", "-x", *ROOTFS, "sh"],
    ["run", "--name", "x y", *ROOTFS, "sh"], ["run", "-e", "-1", *ROOTFS, "sh"],
    ["run", "-e=K=V", *ROOTFS, "sh"], ["run", "-ie=K=V", *ROOTFS, "sh"], ["run", "-ieK=V", *ROOTFS, "sh"],
    ["run", "-ie", "K=V", *ROOTFS, "sh"], ["run", "-i=t", *ROOTFS, "sh"], ["run", "-e K=V", *ROOTFS, "sh"],
    ["run", "-e", *ROOTFS, "sh"], ["run", "--stop-timeout", "1.5", *ROOTFS, "sh"],
    ["run", *ROOTFS, "-", "x"], ["run", *ROOTFS, "", "x"], ["run", *ROOTFS, "-1", "x"],
    ["run", "--detach-keys=", *ROOTFS, "sh"], ["run", "-w=", *ROOTFS, "sh"], ["run", "-w", "", *ROOTFS, "x"],
    ["create", *ROOTFS, "sh", "-it"], ["create", "-it", *ROOTFS],
    ["exec"], ["exec", "-it"], ["exec", "svc"], ["exec", "svc", "--", "sh"], ["exec", "--", "svc", "sh"],
    ["exec", "svc", "--", "--", "sh"], ["exec", "-i", "--", "svc", "-x"], ["exec", "-", "sh"],
    ["exec", "-1", "sh"], ["exec", "svc", "-it"], ["exec", "-it", "--", "--", "sh"],
    ["rm", "a", "-f", "b"], ["rm", "-f", "--", "-x"], ["rm", "-ft", "3", "a"], ["rm", "-ft3", "a"],
    ["rm", "--", "a", "--", "b"], ["rm", "a", "--", "b", "--"], ["rm", "-tf", "a"],
    ["wait", "--condition", "a"], ["wait", "--cond", "x", "a"],
    ["update"], ["update", "svc"], ["update", "--pids-limit", "-1", "svc"], ["update", "--cpu", "1", "a"],
    ["update", "--pids-limit", "x", "a"], ["update", "-m", "a"], ["update", "--memory", "-5m", "a"],
    ["exec", "--preserve-fds", "x", "svc", "sh"], ["exec", "--preserve-fds", "-1", "svc", "sh"],
    ["exec", "svc", "--preserve-fds", "1", "sh"],
    ["events", "--stream", "maybe"], ["events", "--format=json", "--stream=false"], ["events", "x"],
    ["info", "--format", "yaml"], ["serve", "--log-level"], ["serve", "--run", "/r"],
    ["attach", "--no-stdin"], ["attach", "-", "--no-stdin"],
    ["run", "--cpuset-cpus", "0", *ROOTFS, "sh"], ["run", "--oom-kill-disable", *ROOTFS, "sh"],
    ["run", "--cpuset", "0", *ROOTFS, "sh"], ["run", "--pid", "host", *ROOTFS, "sh"],
    ["create", "--memory-s", "1g", *ROOTFS, "sh"], ["run", "--log-o", "x", *ROOTFS, "sh"],
    ["run", *ROOTFS, "sh", "--rea"], ["run", "--rea", *ROOTFS, "sh"],
    ["run", "--read-only-t", "x", *ROOTFS, "sh"],
    ["ps", "--socket"], ["ps", "--socket=/x", "--socket", "/y"], ["ps", "--soc", "/x"],
    ["--socket", "/s", "--", "ps"], ["--socket=/s", "-h"], ["--socket", "/s", "nope"],
]


@pytest.mark.parametrize("argv", CORNERS, ids=lambda a: " ".join(a) or "(empty)")
def test_corners_are_declined_or_parsed_exactly_as_argparse_does(argv):
    check_agrees(argv)


def test_argparse_errors_are_always_declined():
    for argv in COMMON + CORNERS:
        if isinstance(by_argparse(argv), tuple):
            assert by_fastargs(argv) is None, argv


# -- generated argv: from the recorded declarations themselves -----------------------------

WORDS = ["svc", "a", "/bin/sh", "-c", "x y", "5", "-5", "0", "1.5", "", "-", "--", "K=V", "=x",
         "json", "table", "text", "true", "false", "HUP", "-x", "--x", "-it", "--rm", "--r", "--=", "-h",
         "--socket", "-e", "-eK=V", "-t5"]


def _options(command: str) -> list[tuple[tuple[str, ...], fastargs._Action]]:
    rec = cli.recorded() if command == "" else cli._recorded_command(command)
    seen = {}
    for action in rec.options.values():
        seen[id(action)] = (action.strings, action)
    return list(seen.values())


def _value(draw, action) -> str:
    if action.choices:
        return draw(st.sampled_from([*action.choices, *WORDS]))
    if action.type is int:
        return draw(st.one_of(st.integers(-3, 99999).map(str), st.sampled_from(WORDS)))
    return draw(st.one_of(st.sampled_from(WORDS), st.text("ab=-: ", max_size=4)))


@st.composite
def option_words(draw, command: str) -> list[str]:
    """One option as people write it (or mistype it)."""
    strings, action = draw(st.sampled_from(_options(command)))
    string = draw(st.sampled_from(strings))
    form = draw(st.integers(0, 5))
    if form == 5 and len(string) > 3:  # an abbreviation
        string = string[: draw(st.integers(2, len(string) - 1))]
    if not action.takes_value:
        if form == 4 and len(string) == 2:  # grouped flags, maybe ending in a value option
            others = [s for ss, _ in _options(command) for s in ss if len(s) == 2]
            return [string + "".join(x[1] for x in draw(st.lists(st.sampled_from(others), max_size=3)))]
        return [string + "=x"] if form == 3 else [string]
    value = _value(draw, action)
    if form == 1:
        return [f"{string}={value}"]
    if form == 2 and len(string) == 2:
        return [string + value]
    return [string, value]


@st.composite
def argvs(draw) -> list[str]:
    command = draw(st.sampled_from([*cli.SUBCOMMANDS, "nope"]))
    head = draw(st.lists(option_words(""), max_size=2)) if draw(st.booleans()) else []
    pieces = draw(st.lists(st.one_of(option_words(command) if command != "nope" else st.just(["-x"]),
                                     st.sampled_from(WORDS).map(lambda w: [w])), max_size=7))
    return [w for p in head for w in p] + command.split() + [w for p in pieces for w in p]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argvs())
@example(["run", "--rootfs", "r", "-it", "sh", "--r"])
def test_generated_argv_is_declined_or_parsed_as_argparse_does(argv):
    check_agrees(argv)


@st.composite
def well_formed(draw) -> list[str]:
    """Valid argv in the usual shapes: options with plain values, then the positionals."""
    command = draw(st.sampled_from(list(cli.SUBCOMMANDS)))
    rec = cli._recorded_command(command)
    words: list[str] = []
    plain = st.text("abcxyz019/=.:_", min_size=1, max_size=6)
    for strings, action in draw(st.permutations(_options(command))):
        if action.kind in ("help", "declined") or not (action.required or draw(st.booleans())):
            continue
        string = draw(st.sampled_from(strings))
        if not action.takes_value:
            words.append(string)
            continue
        if action.choices:
            value = draw(st.sampled_from(action.choices))
        elif action.type is int:
            value = str(draw(st.integers(0, 10**6)))
        else:
            value = draw(plain)
        form = draw(st.integers(0, 2))
        if form == 1:
            words.append(f"{string}={value}")
        elif form == 2 and len(string) == 2:
            words.append(string + value)
        else:
            words += [string, value]
    for action in rec.positionals:
        if action.nargs is None:
            words.append(draw(plain))
        elif action.nargs == "+":
            words += draw(st.lists(plain, min_size=1, max_size=3))
        elif action.nargs == "*":
            words += draw(st.lists(plain, max_size=3))
        else:  # the command: a word, then anything (its own options included)
            words.append(draw(plain))
            words += draw(st.lists(st.one_of(plain, st.sampled_from(["-c", "-it", "--rm", "-", "x y"])),
                                   max_size=3))
    if draw(st.booleans()):
        at = draw(st.sampled_from(["before", "after"]))
        words = (["--socket", "/s", *command.split(), *words] if at == "before"
                 else [*command.split(), "--socket=/s", *words])
    else:
        words = [*command.split(), *words]
    return words


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed())
def test_well_formed_argv_is_never_declined(argv):
    assert check_agrees(argv) is not None, argv


@st.composite
def near_misses(draw) -> list[str]:
    """Well-formed argv with a few words inserted, dropped or replaced: argparse's corners."""
    words = draw(well_formed())
    at = next(i for i, w in enumerate(words) if w in cli.SUBCOMMANDS or w in cli.GROUPS)
    command = " ".join(words[at:at + 2]) if words[at] in cli.GROUPS else words[at]
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(words)))
        change = draw(st.sampled_from(["word", "option", "drop", "replace"]))
        if change == "word":
            words[at:at] = [draw(st.sampled_from(WORDS))]
        elif change == "option":
            words[at:at] = draw(option_words(command))
        elif words[at:]:
            words[at : at + 1] = [] if change == "drop" else [draw(st.sampled_from(WORDS))]
    return words


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_misses())
def test_near_misses_are_declined_or_parsed_as_argparse_does(argv):
    check_agrees(argv)


# -- what reaches argparse still gets argparse's help and errors --------------------------------


def _main(argv, capsys) -> tuple[object, str, str]:
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.mark.parametrize(("argv", "code", "text"), [
    (["-h"], 0, "usage: varpod"),
    (["ps", "-h"], 0, "usage: varpod ps"),
    (["container", "ls", "-h"], 0, "usage: varpod container ls"),
    (["container"], 125, "the following arguments are required: COMMAND"),
    (["container", "nope"], 125, "invalid choice: 'nope'"),
    (["run", "--help"], 0, "--rootfs ROOTFS"),
    ([], 125, "the following arguments are required: COMMAND"),
    (["nope"], 125, "invalid choice: 'nope'"),
    (["ps", "--bogus"], 125, "unrecognized arguments: --bogus"),
    (["stop", "-t", "x", "svc"], 125, "invalid int value: 'x'"),
    (["ps", "--sort", "yaml"], 125, "invalid choice: 'yaml'"),
    (["tag", "img"], 125, "the following arguments are required: names"),
    (["logs"], 125, "the following arguments are required: name"),
    (["logs", "-n"], 125, "expected one argument"),
    (["run", *ROOTFS, "sh", "--r"], 125, "ambiguous option: --r could match"),
    (["--version"], 0, "varpod version "),
    (["-v"], 0, "varpod version "),
])
def test_help_and_errors_still_come_from_argparse(argv, code, text, capsys):
    # Errors are podman's: exit 125, "Error: ...", and the help of the command being read.
    got, out, err = _main(argv, capsys)
    assert got == code
    assert text in (out if code == 0 else err)
    if code:
        assert "Error: " in err and "See 'varpod" in err


@pytest.mark.parametrize(("argv", "usage"), [
    (["run", "--rootfs", "r", "--bogus", "sh"], "usage: varpod run "),
    (["ps", "--bogus"], "usage: varpod ps "),
    (["container", "ls", "--bogus"], "usage: varpod container ls "),
    (["stop", "--tim", "x", "a"], "usage: varpod stop "),
])
def test_a_mistyped_option_prints_the_commands_usage(argv, usage, capsys):
    got, _, err = _main(argv, capsys)
    assert got == 125 and err.startswith(usage)


def test_an_abbreviation_is_still_argparses_to_read():
    assert by_fastargs(["ps", "--form", "json"]) is None
    assert cli.parse_args(["ps", "--form", "json"]).format == "json"


def test_a_declaration_it_cannot_follow_makes_it_decline():
    rec = fastargs.Recorder()
    rec.add_argument("--n", nargs=2)
    with pytest.raises(fastargs.Decline):
        fastargs.parse([], rec)


def test_common_commands_never_import_argparse():
    code = (
        "import sys\n"
        "from varpod.rpc import cli\n"
        "cli.parse_args(['run', '--rm', '-it', '-eK=V', '--rootfs', '/r', '/bin/sh'])\n"
        "cli.parse_args(['--socket', '/s', 'exec', '-it', 'svc', 'sh'])\n"
        "cli.parse_args(['logs', '-f', '--tail', '10', 'svc'])\n"
        "print(sorted(m for m in ('argparse', 'gettext', 'locale') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_and_alias_has_its_declaration_and_runner():
    for name in cli.SUBCOMMANDS:
        declare, run = cli.command(name)
        assert callable(declare) and callable(run), name
        assert name.partition(" ")[0] in cli.GROUPS or " " not in name, name


def test_a_group_verb_reads_as_the_command_it_stands_for():
    a = cli.parse_args(["container", "ls", "-a", "--format", "json"])
    assert cli.command_name(a) == "container ls"
    assert cli.command(cli.command_name(a)) == cli.command("ps")
    assert (a.all, a.format) == (True, "json")
    assert check_agrees(["--socket", "/s", "container", "rm", "-f", "a", "b"]) is not None


EXIT_PROBE = """
import sys
from varpod.rpc import cli

def command(client, a):
    sys.stdout.write("x" * 1_000_000)  # more than any buffer: it must all be flushed
    sys.stderr.write("to stderr")
    return 3

cli._run = lambda run, a, log: command(None, a)
if sys.argv[1] == "in-process":
    sys.stdout.write(f"main returned {cli.main(['ps'])}")
else:
    sys.argv = ["varpod", "ps"]
    cli.main()
    sys.stdout.write("not reached: the command's process ends in main")
"""


@pytest.mark.parametrize("how", ["script", "in-process"])
def test_the_cli_ends_its_process_with_its_output_whole(how):
    # As the varpod script, main ends the process itself (os._exit: no interpreter teardown,
    # ~4.5 ms a command); called with an argv, it returns to its caller.
    r = subprocess.run([sys.executable, "-c", EXIT_PROBE, how], capture_output=True, timeout=60)
    tail = b"main returned 3" if how == "in-process" else b""
    assert (r.returncode, r.stdout, r.stderr) == (0 if tail else 3, b"x" * 1_000_000 + tail,
                                                  b"to stderr")
