"""core/network/cni.py: the CNI protocol, against small plugins written here (the real ones
run in tests/test_networks.py)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import pytest

from varpod.core.errors import CNIFailed, Unsupported
from varpod.core.monitor import Monitor
from varpod.core.network.cni import CNI, Attachment, plugin_config

pytestmark = pytest.mark.anyio

# A plugin that logs what it got and passes the result on with its own name appended;
# FAIL_<TYPE>=1 in its config makes it answer with a CNI error instead.
PLUGIN = textwrap.dedent(f"""\
    #!{sys.executable}
    import json, os, sys
    conf = json.load(sys.stdin)
    with open(os.path.join(os.path.dirname(sys.argv[0]), "log"), "a") as f:
        f.write(json.dumps({{"env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}},
                            "conf": conf}}) + "\\n")
    if conf.get("fail"):
        print(json.dumps({{"cniVersion": "1.0.0", "code": 7, "msg": "bad thing",
                          "details": conf["type"] + " says no"}}))
        sys.exit(1)
    if os.environ["CNI_COMMAND"] == "ADD":
        prev = conf.get("prevResult") or {{"cniVersion": "1.0.0", "chain": []}}
        prev["chain"] = prev["chain"] + [conf["type"]]
        print(json.dumps(prev))
""")


@pytest.fixture
def plugins(tmp_path):
    for name in ("first", "second", "third"):
        path = tmp_path / name
        path.write_text(PLUGIN)
        path.chmod(0o755)
    (tmp_path / "silent").write_text("#!/bin/sh\nexit 3\n")
    (tmp_path / "silent").chmod(0o755)
    (tmp_path / "stuck").write_text("#!/bin/sh\nsleep 60 &\nsleep 60\n")  # a child holds the pipes too
    (tmp_path / "stuck").chmod(0o755)
    return tmp_path


def calls(plugins) -> list[dict]:
    try:
        lines = (plugins / "log").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines]


def conflist(*types: str, **extra: dict) -> dict:
    return {"cniVersion": "1.0.0", "name": "net1",
            "plugins": [{"type": t, **extra.get(t, {})} for t in types]}


ATT = Attachment(container_id="c1", netns="/run/netns/x", ifname="eth0", args={"IgnoreUnknown": "1"},
                 runtime_config={"portMappings": [{"hostPort": 8080}], "mac": "02:00:00:00:00:01"})


def test_plugin_config_takes_the_lists_name_its_capabilities_and_the_previous_result():
    plugin = {"type": "portmap", "capabilities": {"portMappings": True}}
    conf = plugin_config(conflist("portmap"), plugin, ATT.runtime_config, {"ips": []})
    assert conf == {"type": "portmap", "capabilities": {"portMappings": True}, "name": "net1",
                    "cniVersion": "1.0.0", "runtimeConfig": {"portMappings": [{"hostPort": 8080}]},
                    "prevResult": {"ips": []}}
    assert "runtimeConfig" not in plugin_config(conflist("x"), {"type": "x"}, ATT.runtime_config, None)


async def test_add_runs_the_chain_in_order_passing_each_result_on(plugins):
    cni = CNI(Monitor(), [str(plugins)])
    seen = []
    result = await cni.add(conflist("first", "second", "third"), ATT, on_result=seen.append)
    assert result == {"cniVersion": "1.0.0", "chain": ["first", "second", "third"]}
    assert [r["chain"] for r in seen] == [["first"], ["first", "second"], ["first", "second", "third"]]
    log = calls(plugins)
    assert [c["conf"]["type"] for c in log] == ["first", "second", "third"]
    assert "prevResult" not in log[0]["conf"] and log[2]["conf"]["prevResult"]["chain"] == ["first", "second"]
    assert log[0]["env"] == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x",
                             "CNI_IFNAME": "eth0", "CNI_ARGS": "IgnoreUnknown=1", "CNI_PATH": str(plugins)}


async def test_del_runs_in_reverse_with_the_add_result_and_goes_on_past_a_failure(plugins):
    cni = CNI(Monitor(), [str(plugins)])
    chain = conflist("first", "second", "third", second={"fail": True})
    with pytest.raises(CNIFailed) as e:
        await cni.delete(chain, ATT, {"chain": ["done"]})
    assert [c["conf"]["type"] for c in calls(plugins)] == ["third", "second", "first"]
    assert all(c["conf"]["prevResult"] == {"chain": ["done"]} for c in calls(plugins))
    assert all(c["env"]["CNI_COMMAND"] == "DEL" for c in calls(plugins))
    assert (e.value.plugin, e.value.code) == ("second", 7)
    assert "invalid network config" in e.value.message and "bad thing: second says no" in e.value.message


async def test_a_failing_add_stops_the_chain_with_the_plugins_words(plugins):
    cni = CNI(Monitor(), [str(plugins)])
    with pytest.raises(CNIFailed, match="second says no"):
        await cni.add(conflist("first", "second", "third", second={"fail": True}), ATT)
    assert [c["conf"]["type"] for c in calls(plugins)] == ["first", "second"]
    with pytest.raises(CNIFailed, match="exit status 3") as e:
        await cni.add(conflist("silent"), ATT)
    assert e.value.plugin == "silent"


async def test_check_runs_in_order(plugins):
    cni = CNI(Monitor(), [str(plugins)])
    await cni.check(conflist("first", "second"), ATT, {"chain": ["x"]})
    assert [(c["env"]["CNI_COMMAND"], c["conf"]["type"]) for c in calls(plugins)] == \
        [("CHECK", "first"), ("CHECK", "second")]


async def test_missing_or_hostile_plugin_types(plugins, tmp_path):
    cni = CNI(Monitor(), [str(plugins), str(tmp_path / "nowhere")])
    with pytest.raises(Unsupported, match="containernetworking-plugins"):
        await cni.add(conflist("nosuch"), ATT)
    for bad in ("../first", "/bin/true", ".hidden", ""):
        with pytest.raises(CNIFailed):
            cni.find(bad)
    assert os.path.basename(cni.find("first")) == "first"


async def test_a_stuck_plugin_is_killed_with_its_children(plugins):
    cni = CNI(Monitor(), [str(plugins)], timeout=0.3)
    started = time.monotonic()
    with pytest.raises(CNIFailed, match=r"did not finish ADD within 0\.3 s") as e:
        await cni.add(conflist("stuck"), ATT)
    assert e.value.plugin == "stuck" and time.monotonic() - started < 5
