"""Image commands: pull, login, logout, load, save, import, images, tag, untag, rmi, image ... .

Files named on the command line (``load -i``, ``save -o``, ``import FILE``) are
opened here, with the user's permissions, and handed to the daemon as file
descriptors; ``-`` (or no ``-i``/``-o`` with a redirected stdin/stdout) is the
CLI's own stdin or stdout. Credentials are the user's: login checks them
through the daemon and writes the user's auth file; pull sends what that file
holds. Progress goes to stderr: redrawn bars on a terminal, plain lines
otherwise; what a script wants (IDs, "Loaded image: ...") goes to stdout.
"""

from __future__ import annotations

import os
import sys

from ...core.errors import VarpodError
from .common import EXIT_ERROR, ago, inspect_args, is_json, out, render, to_json

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client
    from . import Args, Parser

PULL_POLICIES = ("always", "missing", "never", "newer")
# fastargs.REMAINDER, for optional positionals (nargs="?" would send argv to argparse)
REMAINDER_ONE = "..."


# -- run/create: the image positional and its flags ------------------------------------------


def image_flags(p: Parser) -> None:
    """What run/create add for images (the IMAGE itself is the first word of the command)."""
    p.add_argument("--entrypoint", help="replace the image's entrypoint: a command or a JSON list; "
                                        "'' clears it")
    p.add_argument("--pull", choices=PULL_POLICIES, default="missing",
                   help="pull the image: always, missing (default), never, newer")
    p.add_argument("--platform", help="os/arch[/variant] to pull (default: this machine's)")
    p.add_argument("--tls-verify", choices=("true", "false"), help="verify the registry's TLS "
                                                                   "(false: allow plain HTTP)")


def entrypoint(text: str | None) -> list[str] | None:
    """podman's --entrypoint: a JSON list, or one command word; "" clears the image's."""
    if text is None:
        return None
    if text.startswith("["):
        import json

        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SystemExit(f"Error: --entrypoint {text!r} is not a JSON list of strings")
        return value
    return [text]


def ensure_image(client: Client, image: str, a: Args) -> None:
    """Apply --pull before create: pull (with progress on stderr) unless policy says not to."""
    policy = getattr(a, "pull", "missing") or "missing"
    if policy == "never":
        return
    if policy == "missing" and client.image_exists(image):
        return
    try:
        _pull(client, image, platform=getattr(a, "platform", None),
              tls_verify=_bool(getattr(a, "tls_verify", None)), quiet=False, id_out=False)
    except VarpodError:
        if policy == "newer" and client.image_exists(image):
            return  # "newer": the registry could not be asked; the local one will do
        raise


def _bool(text: str | None) -> bool | None:
    return None if text is None else text == "true"


# -- pull ---------------------------------------------------------------------------------


def _pull_args(p: Parser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, only the image ID")
    p.add_argument("--tls-verify", choices=("true", "false"), help="verify TLS (false: allow plain HTTP)")
    p.add_argument("--platform", help="os/arch[/variant] (default: this machine's)")
    p.add_argument("--creds", help="user[:password] for the registry")
    p.add_argument("--authfile", help="auth file to read credentials from")
    p.add_argument("reference")


def cmd_pull(client: Client, a: Args) -> int:
    _pull(client, a.reference, platform=a.platform, tls_verify=_bool(a.tls_verify), quiet=a.quiet,
          credentials=_creds(a.creds), authfile=a.authfile)
    return 0


def _creds(text: str | None) -> str | None:
    if text is None:
        return None
    if ":" not in text:
        import getpass

        text = f"{text}:{getpass.getpass('Password: ')}"
    return text


def _pull(client: Client, ref: str, *, platform: str | None = None, tls_verify: bool | None = None,
          quiet: bool = False, credentials: str | None = None, authfile: str | None = None,
          id_out: bool = True) -> str:
    from .progress import Display

    display = Display(sys.stderr, quiet)
    final = None
    try:
        for reply in client.pull_progress(ref, platform=platform, tls_verify=tls_verify,
                                          credentials=credentials, authfile=authfile):
            if reply.get("progress"):
                display.feed(reply["progress"])
            else:
                final = reply
    finally:
        display.close()
    if final is None:
        raise VarpodError("the daemon ended the pull without a result")
    if id_out:
        out(final["id"])
    return final["id"]


# -- login / logout ------------------------------------------------------------------------


def _login_args(p: Parser) -> None:
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--tls-verify", choices=("true", "false"), help="verify TLS (false: allow plain HTTP)")
    p.add_argument("--authfile", help="auth file to write (default: $REGISTRY_AUTH_FILE or "
                                      "$XDG_RUNTIME_DIR/containers/auth.json)")
    p.add_argument("registry")


def cmd_login(client: Client, a: Args) -> int:
    from ..api_images import store_login

    registry = _registry_of(a.registry)
    user = a.username
    if user is None:
        if not sys.stdin.isatty():
            raise SystemExit("Error: give --username (-u): stdin is not a terminal to ask on")
        user = input("Username: ")
    password = a.password
    if a.password_stdin:
        if password is not None:
            raise SystemExit("Error: --password and --password-stdin cannot be combined")
        password = sys.stdin.readline().rstrip("\n")
    elif password is None:
        import getpass

        password = getpass.getpass("Password: ")
    client.login(registry, user, password, tls_verify=_bool(a.tls_verify))
    store_login(registry, user, password, a.authfile)
    out("Login Succeeded!")
    return 0


def _registry_of(text: str) -> str:
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text.rstrip("/")


def _logout_args(p: Parser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="forget every registry")
    p.add_argument("--authfile", help="auth file to change")
    p.add_argument("registry", nargs=REMAINDER_ONE)


def cmd_logout(client: Client | None, a: Args) -> int:
    from ...core.images.auth import remove

    if a.all:
        remove(None, a.authfile)
        out("Removed login credentials for all registries")
        return 0
    if len(a.registry) != 1:
        raise SystemExit("Error: give one registry, or --all")
    registry = _registry_of(a.registry[0])
    if not remove(registry, a.authfile):
        print(f"Error: not logged into {registry}", file=sys.stderr)
        return EXIT_ERROR
    out(f"Removed login credentials for {registry}")
    return 0


# -- archives ---------------------------------------------------------------------------------


def _load_args(p: Parser) -> None:
    p.add_argument("-i", "--input", help="archive to read (default: stdin)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")


def cmd_load(client: Client, a: Args) -> int:
    from .progress import Display

    source: Any = a.input
    if source in (None, "-"):
        if sys.stdin.isatty():
            raise SystemExit("Error: cannot read an archive from a terminal: use -i FILE or redirect stdin")
        source = sys.stdin.fileno()
    display = Display(sys.stderr, a.quiet)
    loaded = None
    try:
        for reply in client.load_progress(source):
            if reply.get("progress"):
                display.feed(reply["progress"], quiet_images=True)
            else:
                loaded = reply["images"]
    finally:
        display.close()
    for image in loaded or []:
        for name in image["names"] or [f"sha256:{image['id']}"]:
            out(f"Loaded image: {name}")
    return 0


def _save_args(p: Parser) -> None:
    p.add_argument("-o", "--output", help="file to write (default: stdout, if not a terminal)")
    p.add_argument("--format", choices=("docker-archive", "oci-archive"), default="docker-archive")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.add_argument("image")


def cmd_save(client: Client, a: Args) -> int:
    if a.output in (None, "-"):
        if sys.stdout.isatty():
            raise SystemExit("Error: refusing to write an archive to a terminal: use -o FILE or redirect "
                             "stdout")
        sys.stdout.flush()
        client.save(a.image, sys.stdout.fileno(), format=a.format)
        return 0
    created = not os.path.exists(a.output)
    try:
        client.save(a.image, a.output, format=a.format)
    except BaseException:
        if created:
            try:
                os.unlink(a.output)  # no half archive left behind
            except OSError:
                pass
        raise
    return 0


def _import_args(p: Parser) -> None:
    p.add_argument("-c", "--change", action="append", default=[],
                   help="a Dockerfile instruction for the config (CMD, ENTRYPOINT, ENV, ...)")
    p.add_argument("-m", "--message", help="a commit message")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.add_argument("source", help="a root filesystem tar (plain, gzip or zstd), or - for stdin")
    p.add_argument("reference", nargs=REMAINDER_ONE)


def cmd_import(client: Client, a: Args) -> int:
    from .progress import Display

    if len(a.reference) > 1:
        raise SystemExit("Error: import takes a file and at most one name")
    if "://" in a.source:
        raise SystemExit("Error: varpod imports files, not URLs: download it first")
    source: Any = a.source
    if source == "-":
        source = sys.stdin.fileno()
    display = Display(sys.stderr, a.quiet)
    final = None
    try:
        for reply in client.import_progress(source, a.reference[0] if a.reference else None,
                                            changes=a.change or None, message=a.message):
            if reply.get("progress"):
                display.feed(reply["progress"], quiet_images=True)
            else:
                final = reply
    finally:
        display.close()
    if final is not None:
        out(final["id"])
    return 0


# -- listing and inspecting ---------------------------------------------------------------------


def _images_args(p: Parser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="all images (there are no intermediate "
                                                             "ones: the same list)")
    p.add_argument("-q", "--quiet", action="store_true", help="only IDs")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("--format", help="table (default), json, or a Go template such as "
                                    "'{{.Repository}}:{{.Tag}} {{.ID}}'")
    p.add_argument("-n", "--noheading", action="store_true")


# podman's image fields -> the header a `table` template shows for them
IMAGE_HEADERS = {"ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                 "ReadOnly": "R/O"}


def cmd_images(client: Client, a: Args) -> int:
    images = client.images(all=a.all)
    if a.format is not None and is_json(a.format):
        out(to_json(images))
        return 0
    short = (lambda i: i) if a.no_trunc else (lambda i: i[:12])
    if a.quiet:
        seen = []
        for img in images:
            if short(img["Id"]) not in seen:
                seen.append(short(img["Id"]))
        if seen:
            out("\n".join(seen))
        return 0
    import time

    now = time.time()
    # One row per name, as podman lists them; an image without names is <none>:<none>.
    rows = [{**img, "Repository": repo, "Tag": tag}
            for img in images for repo, _, tag in
            (name.rpartition(":") for name in (img["RepoTags"] or ["<none>:<none>"]))]

    def created(r: dict) -> str:
        return ago(now - r["Created"]) if r["Created"] else "<unknown>"

    columns = [("REPOSITORY", lambda r: r["Repository"]), ("TAG", lambda r: r["Tag"]),
               *([("DIGEST", lambda r: r["Digest"])] if a.digests else []),
               ("IMAGE ID", lambda r: short(r["Id"])), ("CREATED", created),
               ("SIZE", lambda r: human_size(r["Size"]))]

    def view(r: dict) -> Any:
        from .template import GoMap, GoTime, View

        return View(r, {"ID": short(r["Id"]), "Repository": r["Repository"], "Tag": r["Tag"],
                        "Digest": r["Digest"], "CreatedSince": created(r),
                        "CreatedAt": GoTime(r["Created"] * 10**9), "Size": human_size(r["Size"]),
                        "Containers": str(r["Containers"]), "Labels": GoMap(r["Labels"] or {}),
                        "ReadOnly": False}, "images.imageReporter")

    render(a.format, rows, columns, view=view, headers=IMAGE_HEADERS, name="images",
           noheading=a.noheading)
    return 0


def human_size(n: int) -> str:
    """As podman shows sizes: SI units, three significant digits."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.3g} {unit}"
        size /= 1000
    return f"{n} B"


def cmd_image_inspect(client: Client, a: Args) -> int:
    from .inspect import inspect_objects

    return inspect_objects(client, a.names, "image", a.format)


def _exists_args(p: Parser) -> None:
    p.add_argument("name")


def cmd_exists(client: Client, a: Args) -> int:
    return 0 if client.image_exists(a.name) else 1


# -- names and removal --------------------------------------------------------------------------


def _tag_args(p: Parser) -> None:
    p.add_argument("image")
    p.add_argument("names", nargs="+")


def cmd_tag(client: Client, a: Args) -> int:
    for name in a.names:
        client.tag(a.image, name)
    return 0


def _untag_args(p: Parser) -> None:
    p.add_argument("image")
    p.add_argument("names", nargs=REMAINDER_ONE)


def cmd_untag(client: Client, a: Args) -> int:
    client.untag(a.image, a.names or None)
    return 0


def _rmi_args(p: Parser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="remove the containers using it too")
    p.add_argument("-a", "--all", action="store_true", help="every image")
    p.add_argument("names", nargs=REMAINDER_ONE)


def cmd_rmi(client: Client, a: Args) -> int:
    names = list(a.names)
    if a.all:
        names += [img["Id"] for img in client.images()]
    if not names:
        raise SystemExit("Error: give an image, or --all")
    rc = 0
    for name in names:
        try:
            reply = client.image_remove(name, force=a.force)
        except VarpodError as e:
            if a.all and type(e).__name__ == "NoSuchImage":
                continue  # went with an earlier one
            print(f"Error: {e.message}", file=sys.stderr)
            rc = EXIT_ERROR
            continue
        for step in reply["steps"]:
            out(f"{step['action']}: {step['value']}")
    return rc


def _prune_args(p: Parser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses, not only "
                                                             "untagged ones")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (varpod never asks)")


def cmd_prune(client: Client, a: Args) -> int:
    for iid in client.image_prune(all=a.all):
        out(iid)
    return 0


# command -> (how its arguments are declared, what runs it)
def _files(run: Any) -> Any:
    """A command whose own files may be missing or unwritable: say so as podman does."""
    def wrapped(client: Any, a: Any) -> int:
        try:
            return run(client, a)
        except OSError as e:
            print(f"Error: {e.filename or ''}: {e.strerror}" if e.filename else f"Error: {e}",
                  file=sys.stderr)
            return EXIT_ERROR

    return wrapped


COMMANDS = {
    "pull": (_pull_args, cmd_pull),
    "login": (_login_args, cmd_login),
    "logout": (_logout_args, cmd_logout),
    "load": (_load_args, _files(cmd_load)),
    "save": (_save_args, _files(cmd_save)),
    "import": (_import_args, _files(cmd_import)),
    "images": (_images_args, cmd_images),
    "tag": (_tag_args, cmd_tag),
    "untag": (_untag_args, cmd_untag),
    "rmi": (_rmi_args, cmd_rmi),
    "image prune": (_prune_args, cmd_prune),
    "image inspect": (inspect_args("IMAGE", "{{.Id}}"), cmd_image_inspect),
    "image exists": (_exists_args, cmd_exists),
}

# `varpod image VERB` for the commands above (podman's names): verb -> command
IMAGE_VERBS = {"ls": "images", "list": "images", "rm": "rmi", "pull": "pull", "tag": "tag",
               "untag": "untag", "save": "save", "load": "load", "import": "import"}
