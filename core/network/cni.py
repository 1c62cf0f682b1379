"""Run a CNI plugin chain as the CNI 1.0 protocol says: argv/env/stdin in, result out.

Each plugin of a conflist is an executable named by its ``type``, found on the plugin
path; it gets its command and the attachment in ``CNI_*`` environment variables, its
own configuration (with the list's name and version, the runtime values its
``capabilities`` ask for, and the previous plugin's result) on stdin, and prints a
result or an error as JSON. ADD runs the chain in order, each plugin passing the result
on; DEL runs it in reverse, every plugin seeing the result ADD ended with; CHECK runs
it in order against that result. Like ``core/runtime.py``: no state decisions here,
and a plugin's own message is carried in ``CNIFailed``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from ..errors import CNIFailed, Unsupported
from ..monitor import Monitor

log = logging.getLogger("varpod.network.cni")

CNI_VERSION = "1.0.0"
DEFAULT_PLUGIN_DIRS = ("/usr/lib/cni", "/usr/libexec/cni", "/opt/cni/bin")
# CNI's well-known error codes, for messages.
ERROR_NAMES = {1: "incompatible CNI version", 2: "unsupported field", 3: "container unknown",
               4: "invalid environment", 5: "I/O failure", 6: "failed to decode content",
               7: "invalid network config", 11: "try again later"}
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A plugin takes milliseconds; one stuck (on the xtables lock, say) fails its container's
# start or removal with CNIFailed after this long, instead of holding its lock for ever.
PLUGIN_TIMEOUT = 120.0


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """Who is attached where: the CNI_* parameters and the runtime values of one call."""

    container_id: str
    netns: str
    ifname: str
    args: dict[str, str] = {}  # CNI_ARGS
    runtime_config: dict[str, Any] = {}  # capability -> value (portMappings, ips, mac)


def plugin_config(conflist: Mapping[str, Any], plugin: Mapping[str, Any],
                  runtime_config: Mapping[str, Any], prev_result: Any) -> dict[str, Any]:
    """What one plugin of the list reads on stdin (the spec's "deriving execution configuration")."""
    conf = dict(plugin)
    conf["name"] = conflist["name"]
    conf["cniVersion"] = conflist["cniVersion"]
    wanted = plugin.get("capabilities") or {}
    values = {k: v for k, v in runtime_config.items() if wanted.get(k)}
    if values:
        conf["runtimeConfig"] = values
    if prev_result is not None:
        conf["prevResult"] = prev_result
    return conf


class CNI:
    """The plugins found on ``plugin_dirs``, run through the daemon's monitor."""

    def __init__(self, monitor: Monitor, plugin_dirs: Sequence[str] = DEFAULT_PLUGIN_DIRS,
                 timeout: float = PLUGIN_TIMEOUT) -> None:
        self._monitor = monitor
        self.plugin_dirs = [d for d in plugin_dirs if d]
        self.timeout = timeout
        self._found: dict[str, str] = {}

    def find(self, plugin: str) -> str:
        path = self._found.get(plugin)
        if path is not None:
            return path
        if not plugin or "/" in plugin or plugin.startswith("."):
            raise CNIFailed(f"invalid CNI plugin type {plugin[:60]!r}", plugin=plugin[:60], code=7)
        for d in self.plugin_dirs:
            candidate = os.path.join(d, plugin)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                self._found[plugin] = candidate
                return candidate
        raise Unsupported(f"CNI plugin {plugin!r} not found in {', '.join(self.plugin_dirs)} "
                          "(Debian: apt-get install containernetworking-plugins)", feature="network")

    def check_installed(self, plugins: Sequence[str]) -> None:
        for plugin in plugins:
            self.find(plugin)

    async def add(self, conflist: Mapping[str, Any], att: Attachment,
                  on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """ADD through the chain; ``on_result`` sees each plugin's result as it comes, so a
        caller can persist how far the chain got (a DEL after a crash then knows)."""
        result: dict[str, Any] | None = None
        for plugin in conflist["plugins"]:
            conf = plugin_config(conflist, plugin, att.runtime_config, result)
            out = await self._exec("ADD", conf, att)
            if out is None:
                raise CNIFailed(f"CNI plugin {plugin['type']} printed no result for ADD",
                                plugin=plugin["type"], code=0)
            result = out
            if on_result is not None:
                on_result(result)
        return result or {}

    async def delete(self, conflist: Mapping[str, Any], att: Attachment,
                     prev_result: dict[str, Any] | None) -> None:
        """DEL through the chain in reverse; every plugin runs even when one fails, and the
        first failure is raised at the end (the others' resources are given back anyway)."""
        first: CNIFailed | None = None
        for plugin in reversed(conflist["plugins"]):
            conf = plugin_config(conflist, plugin, att.runtime_config, prev_result)
            try:
                await self._exec("DEL", conf, att)
            except CNIFailed as e:
                first = first or e
        if first is not None:
            raise first

    async def check(self, conflist: Mapping[str, Any], att: Attachment,
                    prev_result: dict[str, Any] | None) -> None:
        for plugin in conflist["plugins"]:
            conf = plugin_config(conflist, plugin, att.runtime_config, prev_result)
            await self._exec("CHECK", conf, att)

    async def _exec(self, command: str, conf: dict[str, Any], att: Attachment) -> dict[str, Any] | None:
        plugin = str(conf.get("type", ""))
        path = self.find(plugin)
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": att.container_id,
            "CNI_NETNS": att.netns,
            "CNI_IFNAME": att.ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in att.args.items()),
            "CNI_PATH": ":".join(self.plugin_dirs),
            "PATH": os.environ.get("PATH", _PATH) + ":" + _PATH,
        }
        stdin = memfd("cni-config", json.dumps(conf).encode())
        started = time.monotonic()
        try:
            done = await self._monitor.run([path], stdin=stdin, env=env, timeout=self.timeout)
        except TimeoutError:
            raise CNIFailed(f"CNI plugin {plugin} did not finish {command} within {self.timeout:g} s "
                            "and was killed", plugin=plugin, code=0) from None
        finally:
            os.close(stdin)
        log.debug("CNI %s %s of %s (%s): %.1f ms, exit %s", plugin, command, att.container_id[:12],
                  att.ifname, (time.monotonic() - started) * 1e3, done.exit.code)
        if done.ok:
            if not done.stdout.strip():
                return None
            try:
                return json.loads(done.stdout)
            except ValueError:
                raise CNIFailed(f"CNI plugin {plugin} printed no JSON for {command}: "
                                f"{done.stdout[:200]!r}", plugin=plugin, code=6) from None
        raise _plugin_error(plugin, command, done.stdout, done.stderr, done.exit.code)


def _plugin_error(plugin: str, command: str, stdout: bytes, stderr: bytes,
                  status: int | None) -> CNIFailed:
    """The plugin's own words: its JSON error (msg, details), else its stderr."""
    code, text = 0, ""
    try:
        err = json.loads(stdout)
        if isinstance(err, dict):
            code = int(err.get("code") or 0)
            text = str(err.get("msg") or "")
            if err.get("details"):
                text = f"{text}: {err['details']}" if text else str(err["details"])
    except ValueError:
        pass
    text = text or stderr.decode(errors="replace").strip() or f"exit status {status}"
    kind = f" ({ERROR_NAMES[code]})" if code in ERROR_NAMES else ""
    return CNIFailed(f"CNI plugin {plugin} failed on {command}{kind}: {text}", plugin=plugin, code=code)


def memfd(name: str, data: bytes) -> int:
    """A file holding ``data``, to be a helper's stdin."""
    # A file rather than a pipe: the plugin may read its input in its own time, however long.
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
