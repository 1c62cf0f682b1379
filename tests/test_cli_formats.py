"""--format on pod ps, network ls, stats and pod stats: podman's fields and headers through the
shared renderer, json, and a bad template refused before anything prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from varpod.rpc.cli import networks, pods, stats
from varpod.rpc.cli.template import render

POD = {"Id": "a" * 64, "Name": "web", "Status": "Running", "Created": "2024-05-01T10:00:00.5Z",
       "InfraId": "b" * 64, "Cgroup": "/varpod", "Labels": {"tier": "front", "app": "shop"},
       "Networks": ["n1", "n2"],
       "Containers": [{"Id": "b" * 64, "Names": "aaaaaaaaaaaa-infra", "Status": "running"},
                      {"Id": "c" * 64, "Names": "app", "Status": "exited"}]}

NETWORK = {"name": "web", "id": "d" * 64, "driver": "bridge", "network_interface": "varpod1",
           "created": "2024-05-01T10:00:00Z",
           "subnets": [{"subnet": "10.89.1.0/24", "gateway": "10.89.1.1"}],
           "ipv6_enabled": False, "internal": True, "dns_enabled": True,
           "labels": {"team": "a", "env": "prod"}, "options": {"isolate": "true"},
           "ipam_options": {"driver": "host-local"}}

STATS = {"ContainerID": "e" * 64, "Name": "app", "Pod": "a" * 64, "CPU": 12.3456, "AvgCPU": 1.5,
         "CPUNano": 1_500_000_000, "SystemNano": 1, "UpTime": 90 * 10**9, "MemUsage": 2_000_000,
         "MemLimit": 1_000_000_000, "MemPerc": 0.2, "PIDs": 3, "BlockInput": 0,
         "BlockOutput": 4096, "NetInput": 1500, "NetOutput": 0}


def show(fmt: str, rows: list, headers: dict | None = None, name: str = "t") -> str:
    return render(fmt, rows, name=name, headers=headers)


# -- the views, as podman's reporters have them -------------------------------------------------


def test_a_pod_as_pod_ps_templates_see_it():
    v = pods.pod_view(POD, False, now=time.time())
    assert show("{{.ID}} {{.Id}} {{.InfraID}} {{.NumberOfContainers}} {{.Networks}} {{.Cgroup}}",
                [v]) == f"{'a' * 12} {'a' * 12} {'b' * 12} 2 n1,n2 /varpod\n"
    assert show('{{.ContainerIds}} {{.ContainerNames}} {{.ContainerStatuses}} {{.Label "tier"}}',
                [v]) == f"{'b' * 12},{'c' * 12} aaaaaaaaaaaa-infra,app running,exited front\n"
    assert show("{{.Labels}} {{.Created}}", [v]).startswith("map[app:shop tier:front] ")
    assert show("{{.Created}}", [v]).endswith(" ago\n")
    full = pods.pod_view(POD, True, now=time.time())
    assert show("{{.ID}} {{.InfraId}}", [full]) == f"{'a' * 64} {'b' * 64}\n"
    table = show("table {{.ID}} {{.Name}} {{.InfraID}} {{.NumberOfContainers}} {{.ContainerNames}}",
                 [v], pods.PS_HEADERS).splitlines()
    assert table[0].split() == ["POD", "ID", "NAME", "INFRA", "ID", "#", "OF", "CONTAINERS", "NAMES"]


def test_a_network_as_network_ls_templates_see_it():
    v = networks.network_view(NETWORK, False)
    assert show("{{.ID}} {{.Name}} {{.Driver}} {{.NetworkInterface}} {{.Labels}}", [v]) == \
        f"{'d' * 12} web bridge varpod1 env=prod,team=a\n"
    assert show("{{.IPv6Enabled}} {{.Internal}} {{.DNSEnabled}} {{.Options}} {{.IPAMOptions}}",
                [v]) == "false true true map[isolate:true] map[driver:host-local]\n"
    assert show("{{range .Subnets}}{{.Subnet}} via {{.Gateway}}{{end}}", [v]) == \
        "10.89.1.0/24 via 10.89.1.1\n"
    assert show("{{json .Subnets}}", [v]) == '[{"subnet":"10.89.1.0/24","gateway":"10.89.1.1"}]\n'
    assert show("{{json .Created}}", [v]) == '"2024-05-01T10:00:00Z"\n'
    assert show("{{.ID}}", [networks.network_view(NETWORK, True)]) == "d" * 64 + "\n"
    table = show("table {{.ID}} {{.Name}} {{.DNSEnabled}}", [v], networks.LS_HEADERS).splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DNS", "ENABLED"]


def test_a_containers_stats_as_stats_templates_see_them():
    v = stats.container_view(STATS, True)
    assert show("{{.ID}} {{.Name}} {{.CPUPerc}} {{.AVGCPU}} {{.MemPerc}} {{.PIDS}} {{.PIDs}}",
                [v]) == f"{'e' * 12} app 12.35% 1.50% 0.20% 3 3\n"
    assert show("{{.MemUsage}}|{{.MemUsageBytes}}|{{.NetIO}}|{{.BlockIO}}", [v]) == \
        "2MB / 1GB|1.907MiB / 953.7MiB|1.5kB / 0B|0B / 4.096kB\n"
    # podman's UpTime is the CPU time used (its CPU TIME column), not the wall time
    assert show("{{.UpTime}} {{.Up}} {{.CPUNano}} {{.MemLimit}} {{.CPU}}", [v]) == \
        "1.5s 1.5s 1500000000 1000000000 12.3456\n"
    assert show("{{.ContainerStats.MemUsage}} {{.ContainerID}}", [v]) == f"2000000 {'e' * 64}\n"
    table = show("table {{.ID}} {{.CPUPerc}} {{.MemUsage}} {{.MemPerc}} {{.UpTime}} {{.AVGCPU}}",
                 [v], stats.HEADERS).splitlines()
    assert table[0].split() == ["ID", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%", "CPU",
                                "TIME", "AVG", "CPU", "%"]


def test_a_pods_stats_as_pod_stats_templates_see_them():
    row = stats.pod_rows([STATS], True)[0]
    assert row == {"CPU": "12.35%", "MemUsage": "2MB / 1GB", "MemUsageBytes": "1.907MiB / 953.7MiB",
                   "Mem": "0.20%", "NetIO": "1.5kB / 0B", "BlockIO": "0B / 4.096kB", "PIDS": "3",
                   "Pod": "a" * 12, "CID": "e" * 12, "Name": "app"}
    table = show("table {{.Pod}} {{.CPU}} {{.MemUsage}} {{.Mem}} {{.BlockIO}}", [row],
                 stats.POD_HEADERS).splitlines()
    # MEM, not MEM %: podman's own override misses the field's name
    assert table[0].split() == ["POD", "CPU", "%", "MEM", "USAGE/", "LIMIT", "MEM", "BLOCK", "IO"]


# -- the command line, against a daemon ---------------------------------------------------------


def ok(r) -> str:
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def refused(r, text: bytes) -> None:
    assert r.returncode == 125 and r.stdout == b"" and r.stderr.startswith(b"Error: "), r
    assert text in r.stderr, r.stderr


def test_pod_ps_formats(varpod, client, rootfs):
    pid = ok(varpod("pod", "create", "--name", "fmt", "--label", "tier=front")).strip()
    cid = ok(varpod("create", "--pod", "fmt", "--name", "fmt-app", "--rootfs", rootfs, "true")).strip()
    infra = client.pod_inspect("fmt").InfraContainerID
    rows = ok(varpod("pod", "ps", "--format",
                     '{{.Name}} {{.ID}} {{.Status}} {{.InfraID}} {{.NumberOfContainers}} '
                     '{{.Label "tier"}} {{.Labels}}'))
    assert rows == f"fmt {pid[:12]} Created {infra[:12]} 2 front map[tier:front]\n"
    names = ok(varpod("pod", "ps", "--no-trunc", "--format", "{{.ContainerIds}}|{{.ContainerNames}}"))
    assert sorted(names.strip().split("|")[0].split(",")) == sorted([infra, cid])
    assert sorted(names.strip().split("|")[1].split(",")) == sorted([f"{pid[:12]}-infra", "fmt-app"])
    table = ok(varpod("pod", "ps", "--format", "table {{.ID}} {{.Name}} {{.NumberOfContainers}}"))
    assert [line.split() for line in table.splitlines()] == [
        ["POD", "ID", "NAME", "#", "OF", "CONTAINERS"], [pid[:12], "fmt", "2"]]
    assert ok(varpod("pod", "ps", "--noheading", "--format", "table {{.Name}}")).split() == ["fmt"]
    default = ok(varpod("pod", "ps", "--ctr-names")).splitlines()
    assert default[0].split() == ["POD", "ID", "NAME", "STATUS", "CREATED", "INFRA", "ID", "NAMES"]
    assert ok(varpod("pod", "ps", "-n")).split()[:3] == [pid[:12], "fmt", "Created"]
    for fmt in ("json", "{{json .}}"):
        listed = json.loads(ok(varpod("pod", "ps", "--format", fmt)))
        assert [(p["Id"], p["Labels"]) for p in listed] == [(pid, {"tier": "front"})]
    refused(varpod("pod", "ps", "--format", "{{.Name}} {{.Nope}}"), b"can't evaluate field Nope")
    refused(varpod("pod", "ps", "--format", "{{.Name"), b"template: pod ps")
    refused(varpod("pod", "ps", "-q", "--format", "{{.Name}}"), b"quiet and format")
    assert ok(varpod("pod", "inspect", "--format", "{{.Name}} {{.Id}} {{.NumContainers}}", "fmt")) == \
        f"fmt {pid} 2\n"
    assert json.loads(ok(varpod("pod", "inspect", "-f", "json", "fmt")))["Id"] == pid  # one pod: an object
    refused(varpod("pod", "inspect", "--format", "{{.Nope}}", "fmt"), b"can't evaluate field Nope")


def test_network_ls_formats(net_daemon):
    env = {**os.environ, "VARPOD_SOCKET": net_daemon.socket}

    def varpod(*args):
        return subprocess.run([sys.executable, "-m", "varpod.rpc.cli", *args], env=env,
                              capture_output=True, timeout=60, check=False)

    ok(varpod("network", "create", "--subnet", "10.89.7.0/24", "--label", "team=a", "--internal",
              "fmtnet"))
    try:
        nid = json.loads(ok(varpod("network", "inspect", "fmtnet")))[0]["id"]
        rows = ok(varpod("network", "ls", "--filter", "name=fmtnet", "--format",
                         "{{.Name}} {{.ID}} {{.Driver}} {{.Labels}} {{.Internal}} {{.DNSEnabled}} "
                         "{{range .Subnets}}{{.Subnet}}>{{.Gateway}}{{end}}"))
        assert rows == f"fmtnet {nid[:12]} bridge team=a true true 10.89.7.0/24>10.89.7.1\n"
        assert f"fmtnet={nid}" in ok(varpod("network", "ls", "--no-trunc", "--format",
                                            "{{.Name}}={{.ID}}")).split()
        names = ok(varpod("network", "ls", "--format", "{{.Name}}")).split()
        assert names == sorted(names) and "fmtnet" in names
        table = ok(varpod("network", "ls", "--format", "table {{.ID}} {{.Name}} {{.Internal}}"))
        lines = [line.split() for line in table.splitlines()]
        assert lines[0] == ["NETWORK", "ID", "NAME", "INTERNAL"]
        assert [nid[:12], "fmtnet", "true"] in lines[1:]
        bare = ok(varpod("network", "ls", "-n")).splitlines()
        assert [line.split()[1:] for line in bare if "fmtnet" in line] == [["fmtnet", "bridge"]]
        assert not any(line.startswith("NETWORK") for line in bare)
        assert "fmtnet" in ok(varpod("network", "ls", "--noheading", "--format", "table {{.Name}}"))
        listed = json.loads(ok(varpod("network", "ls", "--format", "json")))
        assert [n["name"] for n in listed] == names
        refused(varpod("network", "ls", "--format", "{{.Nope}}"), b"can't evaluate field Nope")
        refused(varpod("network", "ls", "--format", "{{if}}"), b"template: network ls")
        fmt = "{{.Name}} {{.ID}} {{.Driver}} {{.Labels}} {{range .Subnets}}{{.Subnet}}{{end}}"
        want = f"fmtnet {nid} bridge map[team:a] 10.89.7.0/24\n"  # types.Network's Go fields
        assert ok(varpod("network", "inspect", "--format", fmt, "fmtnet")) == want
        assert ok(varpod("inspect", "--type", "network", "--format", fmt, "fmtnet")) == want
    finally:
        ok(varpod("network", "rm", "fmtnet"))


def test_stats_and_pod_stats_formats(varpod, client, rootfs):
    pid = ok(varpod("pod", "create", "--name", "fmts")).strip()
    cid = ok(varpod("run", "-d", "--pod", "fmts", "--name", "fmts-app", "--rootfs", rootfs,
                    "sleep", "1000")).strip()
    rows = ok(varpod("stats", "--no-stream", "--format",
                     "{{.Name}} {{.ID}} {{.PIDs}} {{.PIDS}} {{.CPUPerc}}|{{.MemUsage}}", "fmts-app"))
    name, ident, pids, pids2, rest = rows.split(" ", 4)
    assert (name, ident, pids, pids2) == ("fmts-app", cid[:12], "1", "1")
    cpu, mem = rest.strip().split("|")
    assert cpu.endswith("%") and " / " in mem
    table = ok(varpod("stats", "--no-stream", "fmts-app", "--format",
                      "table {{.ID}} {{.CPUPerc}} {{.MemUsage}} {{.NetIO}} {{.PIDS}}")).splitlines()
    assert table[0].split() == ["ID", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "NET", "IO", "PIDS"]
    assert table[1].split()[0] == cid[:12] and len(table) == 2
    listed = json.loads(ok(varpod("stats", "--no-stream", "--format", "json", "fmts-app")))
    assert [(s["id"], s["name"], s["pids"]) for s in listed] == [(cid[:12], "fmts-app", "1")]
    refused(varpod("stats", "--no-stream", "--format", "{{.Nope}}", "fmts-app"),
            b"can't evaluate field Nope in type containers.containerStats")
    # A template that does not parse fails at once, also when stats would stream.
    refused(varpod("stats", "--format", "{{.Name", timeout=10), b"template: stats")

    prow = ok(varpod("pod", "stats", "--no-stream", "--format",
                     "{{.Pod}} {{.CID}} {{.Name}} {{.PIDS}} {{.CPU}} {{.Mem}}", "fmts"))
    rows = sorted(line.split() for line in prow.splitlines())
    infra = client.pod_inspect("fmts").InfraContainerID
    assert [r[:4] for r in rows] == sorted([[pid[:12], cid[:12], "fmts-app", "1"],
                                             [pid[:12], infra[:12], f"{pid[:12]}-infra", "1"]])
    assert all(r[4].endswith("%") and r[5].endswith("%") for r in rows)
    ptable = ok(varpod("pod", "stats", "--no-stream", "--format",
                       "table {{.Name}} {{.CPU}} {{.MemUsage}} {{.BlockIO}}", "fmts")).splitlines()
    assert ptable[0].split() == ["NAME", "CPU", "%", "MEM", "USAGE/", "LIMIT", "BLOCK", "IO"]
    assert len(ptable) == 3
    plisted = json.loads(ok(varpod("pod", "stats", "--no-stream", "--format", "json", "fmts")))
    assert {s["Name"] for s in plisted} == {"fmts-app", f"{pid[:12]}-infra"}
    refused(varpod("pod", "stats", "--no-stream", "--format", "{{.Nope}}", "fmts"),
            b"can't evaluate field Nope")
    refused(varpod("pod", "stats", "--format", "{{end}}", "fmts", timeout=10), b"template: pod stats")


@pytest.mark.parametrize("argv", [["pod", "ps", "--format", "{{.Name}}", "-n"],
                                  ["network", "ls", "--format=table {{.Name}}", "--noheading"],
                                  ["stats", "--no-stream", "--format", "{{.Name}}", "a"],
                                  ["stats", "a", "--format", "{{.Name}}", "--no-stream"],
                                  ["pod", "stats", "--format", "table {{.Pod}}", "p"]])
def test_templates_are_parsed_as_argparse_does(argv):
    from test_cli_parse import by_argparse, check_agrees

    assert check_agrees(argv) is not None and "format" in by_argparse(argv)
