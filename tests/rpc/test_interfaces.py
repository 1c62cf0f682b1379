"""Each IDL text, parsed by the reference `varlink` package, against the Structs and errors behind it."""

from __future__ import annotations

import typing
from pathlib import Path

import msgspec
import pytest
from msgspec import inspect as mi
from varlink import scanner as vs

from varpod.core.errors import BY_RPC_NAME
from varpod.rpc import interfaces
from varpod.rpc.interfaces import INTERFACES, idl
from varpod.rpc.interfaces import container as C
from varpod.rpc.interfaces import image as I
from varpod.rpc.interfaces import network as N
from varpod.rpc.interfaces import pod as P
from varpod.rpc.interfaces import service as V
from varpod.rpc.interfaces import system as S
from varpod.rpc.interfaces import volume as VOL
from varpod.rpc.registry import Registry
from varpod.rpc.service import Service
from varpod.rpc.service_fs import FsService
from varpod.rpc.service_images import ImageService
from varpod.rpc.service_networks import NetworkService
from varpod.rpc.service_pods import PodService
from varpod.rpc.service_volumes import VolumeService

IDL_DIR = Path(interfaces.__file__).resolve().parent

# The reply Struct of every method, stated here rather than derived: several handlers
# (streams, upgrades, introspection) carry no return annotation. Where a handler does
# have one, test_reply_map_agrees_with_the_handlers checks that it agrees.
REPLIES: dict[str, type] = {
    "org.varlink.service.GetInfo": V.GetInfoReply,
    "org.varlink.service.GetInterfaceDescription": V.GetInterfaceDescriptionReply,
    "io.varpod.System.Ping": S.PingReply,
    "io.varpod.System.Info": S.InfoReply,
    "io.varpod.System.Events": S.EventsReply,
    "io.varpod.Container.Create": C.CreateReply,
    "io.varpod.Container.Init": C.StateReply,
    "io.varpod.Container.Start": C.StateReply,
    "io.varpod.Container.Stop": C.StateReply,
    "io.varpod.Container.Kill": C.StateReply,
    "io.varpod.Container.Pause": C.StateReply,
    "io.varpod.Container.Unpause": C.StateReply,
    "io.varpod.Container.Restart": C.StateReply,
    "io.varpod.Container.Update": C.StateReply,
    "io.varpod.Container.Sync": C.StateReply,
    "io.varpod.Container.Wait": C.WaitReply,
    "io.varpod.Container.Remove": C.RemoveReply,
    "io.varpod.Container.Logs": C.LogsReply,
    "io.varpod.Container.Attach": C.AttachReply,
    "io.varpod.Container.Resize": C.Empty,
    "io.varpod.Container.ExecCreate": C.IdReply,
    "io.varpod.Container.ExecStart": C.AttachReply,  # no annotation, and not named ExecStartReply
    "io.varpod.Container.ExecResize": C.Empty,
    "io.varpod.Container.ExecInspect": C.ExecInspectReply,
    "io.varpod.Container.ExecStop": C.ExecInspectReply,
    "io.varpod.Container.ExecRemove": C.IdReply,
    "io.varpod.Container.ExecList": C.ExecListReply,
    "io.varpod.Container.Inspect": C.InspectReply,
    "io.varpod.Container.List": C.ListReply,
    "io.varpod.Container.DiskUsage": C.DiskUsageReply,
    "io.varpod.Container.Checkpoint": C.IdReply,
    "io.varpod.Container.Restore": C.IdReply,
    "io.varpod.Container.Stats": C.StatsReply,
    "io.varpod.Container.Top": C.TopReply,
    "io.varpod.Container.Mount": C.MountReply,
    "io.varpod.Container.Unmount": C.UnmountReply,
    "io.varpod.Container.MountList": C.MountListReply,
    "io.varpod.Container.Export": C.ExportReply,
    "io.varpod.Container.Stat": C.StatReply,
    "io.varpod.Container.CopyOut": C.CopyOutReply,
    "io.varpod.Container.CopyIn": C.CopyInReply,
    "io.varpod.Container.Diff": C.DiffReply,
    "io.varpod.Container.Commit": C.CommitReply,
    "io.varpod.Container.ArtifactAdd": C.Empty,
    "io.varpod.Container.ArtifactGet": C.ArtifactReply,
    "io.varpod.Container.ArtifactRemove": C.Empty,
    "io.varpod.Container.ArtifactList": C.ArtifactListReply,
    "io.varpod.Pod.Create": P.CreateReply,
    **{f"io.varpod.Pod.{m}": P.IdReply
       for m in ("Start", "Stop", "Kill", "Pause", "Unpause", "Restart", "Remove")},
    "io.varpod.Pod.Inspect": P.InspectReply,
    "io.varpod.Pod.List": P.ListReply,
    "io.varpod.Pod.Stats": C.StatsReply,
    "io.varpod.Pod.Top": C.TopReply,
    "io.varpod.Image.Pull": I.PullReply,
    "io.varpod.Image.Login": I.Empty,
    "io.varpod.Image.Load": I.LoadReply,
    "io.varpod.Image.Save": I.SaveReply,
    "io.varpod.Image.Import": I.ImportReply,
    "io.varpod.Image.List": I.ListReply,
    "io.varpod.Image.Inspect": I.InspectReply,
    "io.varpod.Image.Exists": I.ExistsReply,
    "io.varpod.Image.Tag": I.TagReply,
    "io.varpod.Image.Untag": I.UntagReply,
    "io.varpod.Image.Remove": I.RemoveReply,
    "io.varpod.Image.Prune": I.PruneReply,
    "io.varpod.Network.Create": N.CreateReply,
    "io.varpod.Network.Inspect": N.InspectReply,
    "io.varpod.Network.List": N.ListReply,
    "io.varpod.Network.Exists": N.ExistsReply,
    "io.varpod.Network.Remove": N.RemoveReply,
    "io.varpod.Network.Prune": N.PruneReply,
    "io.varpod.Network.Connect": N.ConnectionReply,
    "io.varpod.Network.Disconnect": N.ConnectionReply,
    "io.varpod.Network.Reload": N.ReloadReply,
    "io.varpod.Network.Ports": N.PortsReply,
    "io.varpod.Volume.Create": VOL.VolumeReply,
    "io.varpod.Volume.Inspect": VOL.VolumeReply,
    "io.varpod.Volume.List": VOL.ListReply,
    "io.varpod.Volume.Exists": VOL.ExistsReply,
    "io.varpod.Volume.Remove": VOL.RemoveReply,
    "io.varpod.Volume.Prune": VOL.PruneReply,
}
MODULES = {"org.varlink.service": V, "io.varpod.System": S, "io.varpod.Container": C,
           "io.varpod.Image": I, "io.varpod.Network": N, "io.varpod.Pod": P, "io.varpod.Volume": VOL}


def _registry() -> tuple[Registry, Service]:
    # As rpc/daemon.py does, minus the engine: only registration is looked at here.
    service = Service(engine=object(), bus=object(), info={})
    registry = Registry()
    service.register(registry)
    PodService(pods=object(), engine=object(), runtimes=object()).register(registry)
    ImageService(images=object(), engine=object(), bus=object()).register(registry)
    NetworkService(engine=object(), networks=object(), bus=object()).register(registry)
    VolumeService(volumes=object(), engine=object()).register(registry)
    FsService(fs=object()).register(registry)
    return registry, service


REGISTRY, SERVICE = _registry()

# Known failures by test parameter; each entry goes once its bug is fixed (strict xfail says when).
KNOWN_BUGS: dict = {}


def with_known_bugs(names) -> list:
    return [pytest.param(n, marks=KNOWN_BUGS[n], id=n) if n in KNOWN_BUGS else n for n in names]
METHODS = {m.name: m for m in REGISTRY.methods()}
PARSED = {name: vs.Interface(idl(name)) for name in INTERFACES}


def member_names(text: str) -> list[str]:
    """Every member in file order: Interface.members is a dict and hides duplicates."""
    sc = vs.Scanner(text)
    sc.expect("interface")
    sc.expect("interface-name")
    names = []
    while not sc.end():
        names.append(sc.read_member().name)
    return names


# -- comparing a varlink type with a msgspec type ----------------------------------------------


def type_problems(iface: vs.Interface, idl_t: object, m_t: mi.Type, path: str, inbound: bool) -> list[str]:
    """Differences between an IDL type and a msgspec type; empty when they match."""
    if isinstance(idl_t, vs._Maybe):
        others = [t for t in getattr(m_t, "types", ()) if not isinstance(t, mi.NoneType)]
        if not isinstance(m_t, mi.UnionType) or len(others) != len(m_t.types) - 1 or len(others) != 1:
            return [f"{path}: IDL ?T but Struct type {m_t} is not `T | None`"]
        return type_problems(iface, idl_t.element_type, others[0], path, inbound)
    if isinstance(m_t, mi.UnionType):
        return [f"{path}: Struct type {m_t} is a union but the IDL type is not optional"]
    if isinstance(idl_t, bool):  # before int: bool is an int subclass
        ok = isinstance(m_t, mi.BoolType)
    elif isinstance(idl_t, int):
        ok = isinstance(m_t, mi.IntType)
    elif isinstance(idl_t, float):
        ok = isinstance(m_t, mi.FloatType)
    elif isinstance(idl_t, str):
        # bytes travel as msgpack bin, and as base64 text in varlink's JSON
        ok = isinstance(m_t, (mi.StrType, mi.BytesType))
    elif isinstance(idl_t, vs._Array):
        if not isinstance(m_t, mi.ListType):
            return [f"{path}: IDL []T but Struct type {m_t}"]
        return type_problems(iface, idl_t.element_type, m_t.item_type, path + "[]", inbound)
    elif isinstance(idl_t, vs._Dict):
        if not (isinstance(m_t, mi.DictType) and isinstance(m_t.key_type, mi.StrType)):
            return [f"{path}: IDL [string]T but Struct type {m_t}"]
        return type_problems(iface, idl_t.element_type, m_t.value_type, path + "[key]", inbound)
    elif isinstance(idl_t, vs._CustomType):
        if not isinstance(m_t, mi.StructType):
            return [f"{path}: IDL type {idl_t.name} but Struct type {m_t}"]
        if m_t.cls.__name__ != idl_t.name:
            return [f"{path}: IDL type {idl_t.name} but Struct {m_t.cls.__name__}"]
        member = iface.members.get(idl_t.name)
        if not (isinstance(member, vs._Alias) and isinstance(member.type, vs._Struct)):
            return [f"{path}: IDL type {idl_t.name} is not declared as a struct type"]
        return struct_problems(iface, member.type, m_t, path, inbound)
    elif isinstance(idl_t, vs._Struct):
        if not isinstance(m_t, mi.StructType):
            return [f"{path}: IDL anonymous struct but Struct type {m_t}"]
        return struct_problems(iface, idl_t, m_t, path, inbound)
    else:
        return [f"{path}: IDL type {type(idl_t).__name__} has no mapping in this test"]
    return [] if ok else [f"{path}: IDL {type(idl_t).__name__} but Struct type {m_t}"]


def struct_problems(iface: vs.Interface, idl_s: vs._Struct, m_t: mi.StructType, path: str,
                    inbound: bool) -> list[str]:
    fields = {f.encode_name: f for f in m_t.fields}
    if set(idl_s.fields) != set(fields):
        return [f"{path or '()'}: IDL fields {sorted(idl_s.fields)} "
                f"but {m_t.cls.__name__} has {sorted(fields)}"]
    problems = []
    for name, idl_t in idl_s.fields.items():
        f = fields[name]
        sub = f"{path}.{name}" if path else name
        optional = isinstance(idl_t, vs._Maybe)
        # Callers may leave out exactly the ?T fields, so those and only those need defaults.
        if inbound and optional != (not f.required):
            problems.append(f"{sub}: IDL {'?T' if optional else 'T'} but the Struct field "
                            f"{'has no default' if f.required else 'has a default'}")
        problems += type_problems(iface, idl_t, f.type, sub, inbound)
    return problems


# -- the files ----------------------------------------------------------------------------------


def test_every_interface_has_its_idl_file():
    assert sorted(p.stem for p in IDL_DIR.glob("*.varlink")) == sorted(INTERFACES)
    for name in INTERFACES:
        assert idl(name) == (IDL_DIR / f"{name}.varlink").read_text()
    with pytest.raises(KeyError):
        idl("io.varpod.Nope")


@pytest.mark.parametrize("name", INTERFACES)
def test_idl_parses_and_names_its_interface(name):
    assert PARSED[name].name == name


@pytest.mark.parametrize("name", with_known_bugs(INTERFACES))
def test_member_names_are_unique_within_an_interface(name):
    names = member_names(idl(name))
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    assert len(names) == len(PARSED[name].members)


def test_served_interfaces_are_the_described_ones():
    assert sorted(REGISTRY.interfaces) == sorted(INTERFACES)
    reply = SERVICE.get_info(V.GetInfoParams(), None)
    assert reply.interfaces == list(INTERFACES)
    for name in INTERFACES:
        description = SERVICE.get_interface_description(V.GetInterfaceDescriptionParams(interface=name), None)
        assert description.description == idl(name)


# -- methods --------------------------------------------------------------------------------------


def idl_method(name: str) -> vs._Method:
    interface, _, member = name.rpartition(".")
    method = PARSED[interface].members.get(member)
    assert isinstance(method, vs._Method), f"{name} is registered but not a method in {interface}.varlink"
    return method


def test_every_idl_method_is_registered():
    described = {f"{iface}.{m.name}" for iface, parsed in PARSED.items()
                 for m in parsed.members.values() if isinstance(m, vs._Method)}
    assert described == set(METHODS)


def test_every_registered_method_has_a_reply_struct():
    assert set(REPLIES) == set(METHODS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_reply_map_agrees_with_the_handlers(name):
    method = METHODS[name]
    hints = typing.get_type_hints(method.handler)
    param_hint = next(v for k, v in hints.items() if k not in ("ctx", "return"))
    assert param_hint is method.params, "the handler takes a different Struct than the one registered"
    interface, _, short = name.rpartition(".")
    by_convention = getattr(MODULES[interface], f"{short}Reply", None)
    if "return" in hints:
        returned = hints["return"]
        # A cached reply may go out pre-encoded: `Reply | msgspec.Raw` names the same Struct.
        options = set(typing.get_args(returned)) - {msgspec.Raw} or {returned}
        assert options == {REPLIES[name]}
    elif by_convention is not None:
        # No annotation (streams, upgrades): a Struct named after the method must be the one.
        assert by_convention is REPLIES[name]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_input_matches_its_params_struct(name):
    method = METHODS[name]
    iface = PARSED[name.rpartition(".")[0]]
    assert struct_problems(iface, idl_method(name).in_type, mi.type_info(method.params), "", True) == []


@pytest.mark.parametrize("name", with_known_bugs(sorted(METHODS)))
def test_method_output_matches_its_reply_struct(name):
    iface = PARSED[name.rpartition(".")[0]]
    reply = REPLIES[name]
    assert struct_problems(iface, idl_method(name).out_type, mi.type_info(reply), "", False) == []


class Probe(msgspec.Struct):
    x: str  # the IDL below says int


class GoodProbeParams(msgspec.Struct):
    b: list[str]
    c: dict[str, Probe]
    a: int | None = None
    d: Probe | None = None


class BadProbeParams(msgspec.Struct):
    a: int  # required, but the IDL says ?int
    b: list[int]
    c: dict[str, Probe]
    d: Probe | None = None


class ExtraProbeParams(GoodProbeParams):
    e: bool = False  # not in the IDL


def test_the_type_comparison_can_fail():
    iface = vs.Interface(
        "interface a.b\n"
        "type Probe (x: int)\n"
        "method M(a: ?int, b: []string, c: [string]Probe, d: ?Probe) -> ()\n"
    )
    in_type = iface.members["M"].in_type
    problems = struct_problems(iface, in_type, mi.type_info(GoodProbeParams), "", True)
    assert [p.split(":")[0] for p in problems] == ["c[key].x", "d.x"]
    problems = struct_problems(iface, in_type, mi.type_info(BadProbeParams), "", True)
    assert [p.split(":")[0] for p in problems] == ["a", "a", "b[]", "c[key].x", "d.x"]
    problems = struct_problems(iface, in_type, mi.type_info(ExtraProbeParams), "", True)
    assert len(problems) == 1 and "ExtraProbeParams has" in problems[0]
    # Outbound, defaults do not matter, only whether None is allowed.
    out = struct_problems(iface, in_type, mi.type_info(BadProbeParams), "", False)
    assert [p.split(":")[0] for p in out] == ["a", "b[]", "c[key].x", "d.x"]


# -- errors ------------------------------------------------------------------------------------------


def idl_errors(interface: str) -> dict[str, vs._Error]:
    return {m.name: m for m in PARSED[interface].members.values() if isinstance(m, vs._Error)}


def classes_of(interface: str) -> dict[str, type]:
    return {name.rpartition(".")[2]: cls for name, cls in BY_RPC_NAME.items()
            if name.rpartition(".")[0] == interface}


VARPOD_INTERFACES = [name for name in INTERFACES if name.startswith("io.varpod.")]


@pytest.mark.parametrize("interface", VARPOD_INTERFACES)
def test_declared_errors_and_error_classes_match(interface):
    assert sorted(idl_errors(interface)) == sorted(classes_of(interface))


@pytest.mark.parametrize("interface", VARPOD_INTERFACES)
def test_error_fields_are_the_class_fields_then_message(interface):
    classes = classes_of(interface)
    for name, err in idl_errors(interface).items():
        assert isinstance(err.type, vs._Struct)
        assert list(err.type.fields) == [*classes[name].fields, "message"], name
        assert isinstance(err.type.fields["message"], str), f"{name}.message is not a string"


def test_standard_varlink_errors_we_raise_are_declared():
    # org.varlink.service's text is fixed by the varlink spec (no `message` there); our
    # classes under that name must still carry exactly its fields.
    declared = idl_errors("org.varlink.service")
    for name, cls in classes_of("org.varlink.service").items():
        assert name in declared
        assert list(declared[name].type.fields) == list(cls.fields), name
