"""Every error varpod raises on purpose, each with the RPC error name it travels under.

The server replies with ``rpc_name`` and ``parameters()``; the client rebuilds the
same class from ``BY_RPC_NAME``. Messages name the object and the attempt.
"""

from __future__ import annotations


class VarpodError(Exception):
    """Base of every deliberate varpod error."""

    rpc_name = "io.varpod.System.InternalError"
    #: extra wire fields besides ``message`` (IDL order), filled from kwargs
    fields: tuple[str, ...] = ()

    def __init__(self, message: str = "", **fields: object) -> None:
        super().__init__(_valid_text(message or self.__doc__ or self.rpc_name))
        self.message = str(self.args[0])
        for name in self.fields:
            value = fields.get(name, "")
            setattr(self, name, _valid_text(value) if isinstance(value, str) else value)

    def parameters(self) -> dict[str, object]:
        params = {name: getattr(self, name) for name in self.fields}
        params["message"] = self.message
        return params


def _valid_text(text: str) -> str:
    """Text every codec can carry: names from archives and filesystems may hold undecodable
    bytes (as surrogate escapes), which UTF-8 encoders refuse."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


class InternalError(VarpodError):
    """Something unexpected failed inside the daemon; its log has the traceback."""

    rpc_name = "io.varpod.System.InternalError"


class ProtocolError(VarpodError):
    """The peer sent bytes that are not a valid frame or message."""

    rpc_name = "io.varpod.System.ProtocolError"


class FrameTooLarge(ProtocolError):
    """A frame's length prefix is over the configured limit."""

    rpc_name = "io.varpod.System.FrameTooLarge"
    fields = ("limit",)


class TooManyConnections(VarpodError):
    """The daemon is at its connection limit."""

    rpc_name = "io.varpod.System.TooManyConnections"
    fields = ("limit",)


class PermissionDenied(VarpodError):
    """The peer's credentials are not allowed to use this daemon."""

    rpc_name = "io.varpod.System.PermissionDenied"


class RuntimeNotFound(VarpodError):
    """No OCI runtime of that name is configured, or none of its paths exist."""

    rpc_name = "io.varpod.System.RuntimeNotFound"
    fields = ("runtime",)


class RuntimeFailed(VarpodError):
    """The OCI runtime exited with an error; ``message`` carries its last log line."""

    rpc_name = "io.varpod.System.RuntimeFailed"
    fields = ("runtime",)


class ContainerNotInRuntime(RuntimeFailed):
    """The OCI runtime says the container does not exist."""

    rpc_name = "io.varpod.System.ContainerNotInRuntime"


class Unsupported(VarpodError):
    """The feature is not available on this machine or runtime."""

    rpc_name = "io.varpod.System.Unsupported"
    fields = ("feature",)


class EventsOverflow(VarpodError):
    """An events reader fell too far behind and was cut off; resume by sequence number."""

    rpc_name = "io.varpod.System.EventsOverflow"


class DaemonNotRunning(VarpodError):
    """The client could not connect to the daemon's socket."""

    rpc_name = "io.varpod.Client.DaemonNotRunning"


class ShuttingDown(VarpodError):
    """The daemon is shutting down and takes no new work."""

    rpc_name = "io.varpod.System.ShuttingDown"


# -- containers ---------------------------------------------------------------


class NoSuchContainer(VarpodError):
    """No container matches the given name or ID."""

    rpc_name = "io.varpod.Container.NoSuchContainer"
    fields = ("name",)


class AmbiguousName(VarpodError):
    """An ID prefix matches more than one container."""

    rpc_name = "io.varpod.Container.AmbiguousName"
    fields = ("name",)


class NameInUse(VarpodError):
    """Another container already has this name."""

    rpc_name = "io.varpod.Container.NameInUse"
    fields = ("name",)


class InvalidName(VarpodError):
    """A container name breaks the naming rules."""

    rpc_name = "io.varpod.Container.InvalidName"
    fields = ("name",)


class InvalidConfig(VarpodError):
    """A container setting is out of range or inconsistent."""

    rpc_name = "io.varpod.Container.InvalidConfig"
    fields = ("field",)


class RootfsNotFound(InvalidConfig):
    """The root filesystem directory does not exist."""

    rpc_name = "io.varpod.Container.RootfsNotFound"
    fields = ("field", "path")


class InvalidState(VarpodError):
    """The container's state does not allow the operation."""

    rpc_name = "io.varpod.Container.InvalidState"
    fields = ("id", "state")


class ContainerStopped(InvalidState):
    """The container is already stopped (podman's CtrStopped)."""

    rpc_name = "io.varpod.Container.ContainerStopped"


class AlreadyPaused(InvalidState):
    """The container is already paused."""

    rpc_name = "io.varpod.Container.AlreadyPaused"


class NotPaused(InvalidState):
    """The container is not paused."""

    rpc_name = "io.varpod.Container.NotPaused"


class StopTimeout(VarpodError):
    """The container did not exit even after SIGKILL."""

    rpc_name = "io.varpod.Container.StopTimeout"
    fields = ("id",)


class NoSuchExecSession(VarpodError):
    """No exec session has that ID."""

    rpc_name = "io.varpod.Container.NoSuchExecSession"
    fields = ("id",)


class ExecSessionActive(InvalidState):
    """The operation is refused while exec sessions are running."""

    rpc_name = "io.varpod.Container.ExecSessionActive"


# -- pods -----------------------------------------------------------------------


class NoSuchPod(VarpodError):
    """No pod matches the given name or ID."""

    rpc_name = "io.varpod.Pod.NoSuchPod"
    fields = ("name",)


class AmbiguousPodName(VarpodError):
    """An ID prefix matches more than one pod."""

    rpc_name = "io.varpod.Pod.AmbiguousPodName"
    fields = ("name",)


class PodExists(VarpodError):
    """A pod or container already has this name (they share one namespace, as in podman)."""

    rpc_name = "io.varpod.Pod.PodExists"
    fields = ("name",)


class InvalidPodConfig(VarpodError):
    """A pod setting is out of range or inconsistent."""

    rpc_name = "io.varpod.Pod.InvalidPodConfig"
    fields = ("field",)


class PodHasContainers(VarpodError):
    """The pod still has containers; remove them first or remove the pod with force."""

    rpc_name = "io.varpod.Pod.PodHasContainers"
    fields = ("id",)


class PodRemoving(VarpodError):
    """The pod is being removed: no container may join or start in it."""

    rpc_name = "io.varpod.Pod.PodRemoving"
    fields = ("id",)


class PodNamespaceConflict(VarpodError):
    """A member asked for a namespace (or setting of one) of its own that its pod shares."""

    rpc_name = "io.varpod.Pod.PodNamespaceConflict"
    fields = ("namespace",)


class InfraContainerInUse(InvalidState):
    """The infra container holds its pod's namespaces: it stops with the whole pod only."""

    rpc_name = "io.varpod.Pod.InfraContainerInUse"


class PodPartiallyFailed(VarpodError):
    """A pod operation failed for some of its containers; ``errors`` maps ID to message."""

    rpc_name = "io.varpod.Pod.PodPartiallyFailed"
    fields = ("id", "errors")
# -- images -----------------------------------------------------------------------


class NoSuchImage(VarpodError):
    """No local image matches the given name, ID or digest."""

    rpc_name = "io.varpod.Image.NoSuchImage"
    fields = ("name",)


class AmbiguousImage(VarpodError):
    """A short name or ID prefix matches more than one local image."""

    rpc_name = "io.varpod.Image.AmbiguousImage"
    fields = ("name",)


class ImageInUse(VarpodError):
    """Containers use the image; remove them first, or use force."""

    rpc_name = "io.varpod.Image.ImageInUse"
    fields = ("id", "containers")


class InvalidReference(VarpodError):
    """An image reference breaks the reference grammar."""

    rpc_name = "io.varpod.Image.InvalidReference"
    fields = ("reference",)


class ShortNameUnresolved(InvalidReference):
    """A short name could not be resolved to a registry (see registries.conf)."""

    rpc_name = "io.varpod.Image.ShortNameUnresolved"


class RegistryError(VarpodError):
    """The registry refused or failed a request; ``message`` carries its own words."""

    rpc_name = "io.varpod.Image.RegistryError"
    fields = ("registry", "status", "code")


class Unauthorized(RegistryError):
    """The registry wants credentials, or refused the ones given."""

    rpc_name = "io.varpod.Image.Unauthorized"


class RegistryUnreachable(RegistryError):
    """No connection to the registry (refused, TLS, timeout)."""

    rpc_name = "io.varpod.Image.RegistryUnreachable"


class NoMatchingPlatform(VarpodError):
    """A manifest list or image index has no image for the wanted platform."""

    rpc_name = "io.varpod.Image.NoMatchingPlatform"
    fields = ("platform",)


class DigestMismatch(VarpodError):
    """Content does not match the digest it was announced with."""

    rpc_name = "io.varpod.Image.DigestMismatch"
    fields = ("expected", "actual")


class InvalidArchive(VarpodError):
    """An archive or layer is malformed, hostile or of a kind varpod does not read."""

    rpc_name = "io.varpod.Image.InvalidArchive"
    fields = ("entry",)


class InvalidImage(VarpodError):
    """A manifest, index or image config is malformed or inconsistent."""

    rpc_name = "io.varpod.Image.InvalidImage"
    fields = ("digest",)
# -- networks ------------------------------------------------------------------------


class NoSuchNetwork(VarpodError):
    """No network has that name or ID."""

    rpc_name = "io.varpod.Network.NoSuchNetwork"
    fields = ("name",)


class NetworkExists(VarpodError):
    """A network of that name already exists."""

    rpc_name = "io.varpod.Network.NetworkExists"
    fields = ("name",)


class NetworkInUse(VarpodError):
    """Containers are still attached to the network."""

    rpc_name = "io.varpod.Network.NetworkInUse"
    fields = ("name",)


class InvalidNetworkConfig(VarpodError):
    """A network setting (name, subnet, gateway, address, option) is malformed or inconsistent."""

    rpc_name = "io.varpod.Network.InvalidNetworkConfig"
    fields = ("field",)


class SubnetOverlap(InvalidNetworkConfig):
    """The subnet overlaps another network's, or a route of the host."""

    rpc_name = "io.varpod.Network.SubnetOverlap"
    fields = ("field", "subnet", "other")


class InvalidPortSpec(VarpodError):
    """A published port is malformed or out of range."""

    rpc_name = "io.varpod.Network.InvalidPortSpec"
    fields = ("spec",)


class PortInUse(VarpodError):
    """Another program (or container) holds the host port a container publishes."""

    rpc_name = "io.varpod.Network.PortInUse"
    fields = ("host_ip", "port", "protocol")


class NotConnected(VarpodError):
    """The container is not connected to that network."""

    rpc_name = "io.varpod.Network.NotConnected"
    fields = ("name", "container")


class AlreadyConnected(VarpodError):
    """The container is already connected to that network."""

    rpc_name = "io.varpod.Network.AlreadyConnected"
    fields = ("name", "container")


class CNIFailed(VarpodError):
    """A CNI plugin failed; ``message`` carries the plugin's own message."""

    rpc_name = "io.varpod.Network.CNIFailed"
    fields = ("plugin", "code")


class FirewallFailed(VarpodError):
    """iptables failed making or removing a network's own rules (its masquerade);
    ``message`` carries its own words."""

    rpc_name = "io.varpod.Network.FirewallFailed"
    fields = ("command",)


# -- filesystems: mounts, volumes, copies -------------------------------------------


class InvalidMount(InvalidConfig):
    """A -v, --mount or --tmpfs spec is malformed, or asks for an option varpod does not have."""

    rpc_name = "io.varpod.Container.InvalidMount"
    fields = ("field", "spec")


class MountSourceNotFound(InvalidMount):
    """The host path of a bind mount does not exist (podman does not create it either)."""

    rpc_name = "io.varpod.Container.MountSourceNotFound"
    fields = ("field", "spec", "path")


class NoSuchPath(VarpodError):
    """The path does not exist in the container (or its parent does not, for a new one)."""

    rpc_name = "io.varpod.Container.NoSuchPath"
    fields = ("path",)


class InvalidCopy(VarpodError):
    """A copy the rules refuse: a directory onto a file, a file into a missing directory,
    a non-directory over a directory (or the reverse) without overwrite."""

    rpc_name = "io.varpod.Container.InvalidCopy"
    fields = ("path",)


class ReadOnlyPath(VarpodError):
    """The destination is on a read-only root filesystem or mount of the container."""

    rpc_name = "io.varpod.Container.ReadOnlyPath"
    fields = ("path",)


class NoImageRootfs(VarpodError):
    """The container runs from a --rootfs directory: it has no image layers to diff or commit on."""

    rpc_name = "io.varpod.Container.NoImageRootfs"
    fields = ("id",)


class NoSuchArtifact(VarpodError):
    """The container has no artifact of that name."""

    rpc_name = "io.varpod.Container.NoSuchArtifact"
    fields = ("name",)


class InvalidArtifact(VarpodError):
    """An artifact's name breaks the rules, or it (or the container's set) is over its limit."""

    rpc_name = "io.varpod.Container.InvalidArtifact"
    fields = ("name",)


class NoSuchVolume(VarpodError):
    """No volume has that name."""

    rpc_name = "io.varpod.Volume.NoSuchVolume"
    fields = ("name",)


class VolumeExists(VarpodError):
    """A volume of that name already exists."""

    rpc_name = "io.varpod.Volume.VolumeExists"
    fields = ("name",)


class VolumeInUse(VarpodError):
    """Containers use the volume; remove them first, or remove the volume with force."""

    rpc_name = "io.varpod.Volume.VolumeInUse"
    fields = ("name", "containers")


class InvalidVolumeConfig(VarpodError):
    """A volume's name, driver, option or label is invalid or not supported."""

    rpc_name = "io.varpod.Volume.InvalidVolumeConfig"
    fields = ("field",)


# -- varlink service errors (standard names) ----------------------------------


class InterfaceNotFound(VarpodError):
    """The interface is not served here."""

    rpc_name = "org.varlink.service.InterfaceNotFound"
    fields = ("interface",)


class MethodNotFound(VarpodError):
    """The method is not part of its interface."""

    rpc_name = "org.varlink.service.MethodNotFound"
    fields = ("method",)


class MethodNotImplemented(VarpodError):
    """The method exists but does not support the requested call mode."""

    rpc_name = "org.varlink.service.MethodNotImplemented"
    fields = ("method",)


class InvalidParameter(VarpodError):
    """A call parameter is missing or has the wrong type."""

    rpc_name = "org.varlink.service.InvalidParameter"
    fields = ("parameter",)


class ExpectedMore(VarpodError):
    """The method streams replies and must be called with ``more``."""

    rpc_name = "org.varlink.service.ExpectedMore"


# -- streams --------------------------------------------------------------------


class StreamClosed(VarpodError):
    """We closed the stream (detach, container exit, or shutdown)."""

    rpc_name = "io.varpod.Stream.StreamClosed"


class StreamBroken(VarpodError):
    """The peer or the pipe went away mid-stream."""

    rpc_name = "io.varpod.Stream.StreamBroken"


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


ALL_ERRORS: list[type[VarpodError]] = [VarpodError, *_all_subclasses(VarpodError)]
BY_RPC_NAME: dict[str, type[VarpodError]] = {
    cls.rpc_name: cls for cls in ALL_ERRORS if cls is not VarpodError
}


def from_wire(name: str, parameters: dict | None) -> VarpodError:
    """Rebuild the exception a server sent; unknown names stay readable."""
    params = dict(parameters or {})
    cls = BY_RPC_NAME.get(name)
    message = str(params.pop("message", "") or name)
    if cls is None:
        err = VarpodError(f"{name}: {message}")
        err.rpc_name = name
        return err
    fields = {k: v for k, v in params.items() if k in cls.fields}
    return cls(message, **fields)
