"""A container's files: `mount`, `unmount`/`umount`, `export`, `cp`, `diff`, `commit`.

The host side of a copy is this client's, as with podman-remote: its paths (relative ones
against this directory), its permissions. ``cp`` into a container packs the source with
GNU tar here and hands the daemon the pipe; ``cp`` out of one hands the daemon a pipe and
unpacks what comes with GNU tar here (``-`` is stdin's or stdout's tar stream as it is);
``export`` hands the daemon the output file or stdout. The bytes never pass through this
process.
"""

from __future__ import annotations

import os
import stat
import sys

from ...core.errors import VarpodError
from ..fastargs import REMAINDER
from .common import EXIT_ERROR, CLIError, error, out, to_json

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client
    from . import Args, Parser

TAR_CREATE = ("--create", "--file=-", "--numeric-owner", "--xattrs", "--xattrs-include=*")
TAR_EXTRACT = ("--extract", "--file=-", "--numeric-owner", "--preserve-permissions", "--xattrs",
               "--xattrs-include=*", "--no-overwrite-dir")


# -- mount / unmount ---------------------------------------------------------------------------


def _mount_args(p: Parser) -> None:
    p.add_argument("--format", help="json, or a Go template (listing)")
    p.add_argument("--no-trunc", "--notruncate", action="store_true", help="full container IDs")
    p.add_argument("names", nargs="*", default=[], metavar="CONTAINER")


def cmd_mount(client: Client, a: Args) -> int:
    if a.names:
        rc = 0
        for name in a.names:
            try:
                out(client.mount(name))
            except VarpodError as e:
                error(e.message)
                rc = EXIT_ERROR
        return rc
    rows = [{"ID": m["id"], "Names": m["names"], "Mountpoint": m["path"]} for m in client.mount_list()]
    if a.format and a.format.strip() not in ("", "table"):
        from .common import render

        render(a.format, rows, [], name="mount")
        return 0
    for r in rows:
        out(f"{r['ID'] if a.no_trunc else r['ID'][:12]}  {r['Mountpoint']}")
    return 0


def _unmount_args(p: Parser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="every mounted container")
    p.add_argument("-f", "--force", action="store_true", help="all of a container's mounts, not one")
    p.add_argument("names", nargs="*", default=[], metavar="CONTAINER")


def cmd_unmount(client: Client, a: Args) -> int:
    names = list(a.names)
    if a.all == bool(names):
        raise CLIError("give containers or --all")
    if a.all:
        names = [m["id"] for m in client.mount_list()]
    rc = 0
    for name in names:
        try:
            client.unmount(name, force=a.force or a.all)
            out(name)
        except VarpodError as e:
            error(e.message)
            rc = EXIT_ERROR
    return rc


# -- export ---------------------------------------------------------------------------------------


def _export_args(p: Parser) -> None:
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    p.add_argument("name", metavar="CONTAINER")


def cmd_export(client: Client, a: Args) -> int:
    if a.output is None:
        if os.isatty(1):
            raise CLIError("refusing to export to terminal. Use -o flag or redirect")
        sys.stdout.flush()
        _to_stdout(lambda: client.export(a.name, 1))
    else:
        client.export(a.name, a.output)
    return 0


def _to_stdout(call: Any) -> None:
    """A tar the daemon writes into our stdout: a reader that went away (``| head``) ends us as
    it ends any program writing there (the CLI dies of SIGPIPE), not with an error."""
    from ...core.errors import StreamBroken

    try:
        call()
    except StreamBroken:
        raise BrokenPipeError from None


# -- cp ---------------------------------------------------------------------------------------------


def _cp_args(p: Parser) -> None:
    p.add_argument("-a", "--archive", choices=("true", "false"), default="true",
                   help="true (default): copied files get the container user's owner; false: they keep "
                        "the archive's")
    p.add_argument("--overwrite", action="store_true",
                   help="let a directory replace a non-directory and the reverse")
    p.add_argument("paths", nargs=REMAINDER, metavar="SRC DEST",
                   help="[CONTAINER:]SRC_PATH [CONTAINER:]DEST_PATH; - is a tar stream on stdin or stdout")


def split_target(arg: str) -> tuple[str | None, str]:
    """``CTR:PATH`` -> (CTR, PATH); a host path (``-``, or starting with / or .) -> (None, path)."""
    if arg == "-" or arg.startswith(("/", ".")):
        return None, arg
    ctr, sep, path = arg.partition(":")
    if not sep or not ctr:
        return None, arg
    return ctr, path or "/"


def cmd_cp(client: Client, a: Args) -> int:
    if len(a.paths) != 2:
        raise CLIError("cp takes exactly two arguments: [CONTAINER:]SRC_PATH [CONTAINER:]DEST_PATH")
    (sctr, spath), (dctr, dpath) = split_target(a.paths[0]), split_target(a.paths[1])
    chown = a.archive == "true"
    if sctr and dctr:
        return _between(client, sctr, spath, dctr, dpath, chown, a.overwrite)
    if sctr:
        return _copy_out(client, sctr, spath, dpath, a.overwrite)
    if dctr:
        return _copy_in(client, spath, dctr, dpath, chown, a.overwrite)
    raise CLIError("copying between two host paths is not what cp does: name a container on one side "
                   "(CONTAINER:PATH)")


def _contents(path: str) -> bool:
    """``dir/.`` (and ``.``): the directory's entries, not the directory (podman's rule)."""
    return path == "." or path.endswith("/.")


def _base(path: str) -> str:
    trimmed = path.rstrip("/")
    if trimmed.endswith("/.") or trimmed == ".":
        trimmed = trimmed[:-1].rstrip("/")
    return os.path.basename(trimmed) or "/"


def _spawn_tar(args: list[str], *, stdin: int | None = None, stdout: int | None = None) -> int:
    actions = []
    if stdin is not None:
        actions.append((os.POSIX_SPAWN_DUP2, stdin, 0))
    if stdout is not None:
        actions.append((os.POSIX_SPAWN_DUP2, stdout, 1))
    try:
        return os.posix_spawnp("tar", ["tar", *args], os.environ, file_actions=actions)
    except OSError as e:
        raise CLIError(f"cannot run tar: {e.strerror}") from None


def _wait_tar(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise CLIError(f"tar exited with status {code} (its message is above)")


def _copy_in(client: Client, spath: str, ctr: str, dpath: str, chown: bool, overwrite: bool) -> int:
    if spath == "-":  # a tar stream on stdin, unpacked into the directory dpath
        client.copy_in(ctr, dpath, 0, chown=chown, overwrite=overwrite)
        return 0
    try:
        st = os.stat(spath)  # a symlink's target is what is copied, as podman does
    except OSError as e:
        raise CLIError(f"{spath}: {e.strerror}") from None
    real = os.path.realpath(spath)
    directory = stat.S_ISDIR(st.st_mode)
    if directory:  # the directory's entries, placed under the name the daemon works out
        args, name = ["--directory", real, "--", "."], "."
    else:
        name = os.path.basename(real)
        args = ["--directory", os.path.dirname(real), "--", name]
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = _spawn_tar([*TAR_CREATE, *args], stdout=w)
    finally:
        os.close(w)
    try:
        client.copy_in(ctr, dpath, r, source_name=name, target_name=_base(spath), directory=directory,
                       contents=directory and _contents(spath), chown=chown, overwrite=overwrite)
    finally:
        os.close(r)
        _wait_tar(pid)
    return 0


def _copy_out(client: Client, ctr: str, spath: str, dpath: str, overwrite: bool) -> int:
    if dpath == "-":
        sys.stdout.flush()
        _to_stdout(lambda: client.copy_out(ctr, spath, 1))
        return 0
    info = client.path_stat(ctr, spath)
    directory = stat.S_ISDIR(info["mode"])
    contents = directory and (_contents(spath) or info["path"] == "/")
    rename: str | None = None
    try:
        dst = os.stat(dpath)
    except FileNotFoundError:
        dst = None
    except OSError as e:
        raise CLIError(f"{dpath}: {e.strerror}") from None
    if dst is not None and stat.S_ISDIR(dst.st_mode):
        into = dpath
        rename = None if contents else _base(spath)
    elif dst is not None:
        if directory and not overwrite:
            raise CLIError(f"cannot copy a directory to the file {dpath} (use --overwrite)")
        into, rename, contents = os.path.dirname(os.path.abspath(dpath)), os.path.basename(dpath), False
    else:
        if dpath.endswith("/") and not directory:
            raise CLIError(f"{dpath}: no such directory")
        into = os.path.dirname(os.path.abspath(dpath.rstrip("/")))
        if not os.path.isdir(into):
            raise CLIError(f"{into}: no such directory (the destination's parent must exist)")
        rename, contents = os.path.basename(dpath.rstrip("/")), False
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = _spawn_tar([*TAR_EXTRACT, "--directory", into], stdin=r)
    finally:
        os.close(r)
    try:
        client.copy_out(ctr, spath, w, rename=rename, contents=contents)
    finally:
        os.close(w)
        _wait_tar(pid)
    return 0


def _between(client: Client, sctr: str, spath: str, dctr: str, dpath: str, chown: bool,
             overwrite: bool) -> int:
    """Container to container: the daemon writes one into a pipe and reads the other from it."""
    import threading

    info = client.path_stat(sctr, spath)
    directory = stat.S_ISDIR(info["mode"])
    contents = directory and (_contents(spath) or info["path"] == "/")
    r, w = os.pipe2(os.O_CLOEXEC)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            from ..client import Client

            with Client(client.path, raw=True) as other:
                other.copy_out(sctr, spath, w, contents=directory)
        except BaseException as e:
            failure.append(e)
        finally:
            os.close(w)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        client.copy_in(dctr, dpath, r, source_name="." if directory else info["name"],
                       target_name=_base(spath), directory=directory, contents=contents, chown=chown,
                       overwrite=overwrite)
    finally:
        os.close(r)
        thread.join()
    if failure:
        raise failure[0]
    return 0


# -- diff / commit -------------------------------------------------------------------------------------


def _diff_args(p: Parser) -> None:
    p.add_argument("--format", help="json")
    p.add_argument("name", metavar="CONTAINER")


def cmd_diff(client: Client, a: Args) -> int:
    found = client.diff(a.name)
    if a.format is not None:
        if a.format.strip() != "json":
            raise CLIError(f"diff --format {a.format!r}: only json is supported (as podman)")
        kinds = {"A": "added", "C": "changed", "D": "deleted"}
        doc: dict[str, Any] = {}
        for c in found:
            doc.setdefault(kinds[c["Kind"]], []).append(c["Path"])
        out(to_json(doc))
        return 0
    for c in found:
        out(f"{c['Kind']} {c['Path']}")
    return 0


def _commit_args(p: Parser) -> None:
    p.add_argument("-a", "--author", help="the image's author")
    p.add_argument("-m", "--message", help="the commit message (the history's comment)")
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                   help="a Dockerfile line: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, "
                        "VOLUME, WORKDIR")
    p.add_argument("-p", "--pause", choices=("true", "false"), default="true",
                   help="pause the container while committing (default true)")
    p.add_argument("-f", "--format", help="oci (the only one)")
    p.add_argument("-q", "--quiet", action="store_true", help="accepted: only the ID is printed anyway")
    p.add_argument("--iidfile", metavar="FILE", help="write the image ID to FILE")
    p.add_argument("--squash", action="store_true", help="refused: varpod does not squash layers")
    p.add_argument("--include-volumes", action="store_true",
                   help="refused: volumes are not made image VOLUMEs")
    p.add_argument("args", nargs=REMAINDER, metavar="CONTAINER [IMAGE]")


def cmd_commit(client: Client, a: Args) -> int:
    if not 1 <= len(a.args) <= 2:
        raise CLIError("commit takes a container and, optionally, an image name")
    for flag, given in (("--squash", a.squash), ("--include-volumes", a.include_volumes)):
        if given:
            raise CLIError(f"{flag} is not supported by varpod")
    iidfile = os.path.abspath(a.iidfile) if a.iidfile else None
    reply = client.commit(a.args[0], a.args[1] if len(a.args) == 2 else None, author=a.author,
                          message=a.message, changes=a.change or None, pause=a.pause == "true",
                          format=a.format)
    if iidfile is not None:
        with open(iidfile, "w") as f:
            f.write("sha256:" + reply["id"])
    out(reply["id"])
    return 0


# command -> (how its arguments are declared, what runs it)
COMMANDS = {
    "mount": (_mount_args, cmd_mount),
    "unmount": (_unmount_args, cmd_unmount),
    "export": (_export_args, cmd_export),
    "cp": (_cp_args, cmd_cp),
    "diff": (_diff_args, cmd_diff),
    "commit": (_commit_args, cmd_commit),
}
