"""-v, --mount and --tmpfs as podman reads them: options, defaults, and every refusal named."""

from __future__ import annotations

import pytest

from varpod.core.errors import InvalidMount
from varpod.core.volumes import hostpaths, specs
from varpod.core.volumes.model import BIND, TMPFS, VOLUME


def test_bind_volume_and_anonymous_forms():
    m = specs.parse_volume("/host/dir/:/data/:ro,nosuid")
    assert (m.type, m.source, m.destination, m.rw) == (BIND, "/host/dir", "/data", False)
    assert m.options == ["rbind", "rprivate", "nosuid", "ro"] and m.propagation == "rprivate"
    m = specs.parse_volume("cache:/c")
    assert (m.type, m.source, m.anonymous) == (VOLUME, "cache", False)
    assert m.options == ["rbind", "rprivate", "nosuid", "nodev"] and m.rw
    m = specs.parse_volume("/anon")
    assert (m.type, m.source, m.anonymous, m.destination) == (VOLUME, "", True, "/anon")
    m = specs.parse_volume("/h:/d:rslave,bind,exec,dev,z")
    assert m.options == ["bind", "rslave", "dev", "exec"] and m.propagation == "rslave"
    assert not specs.parse_volume("v:/d:nocopy").copy_up and specs.parse_volume("v:/d:copy").copy_up
    assert specs.parse_volume("v:/d:suid,dev").options == ["rbind", "rprivate", "suid", "dev"]


@pytest.mark.parametrize("spec, words", [
    ("a:b:c:d", "too many colons"),
    (":/data", "empty"),
    ("/h:data", "not an absolute path"),
    ("/h:/", "root directory"),
    ("/h:/d:ro,rw", "conflicts"),
    ("/h:/d:shared,slave", "conflicts"),
    ("/h:/d:bogus", "unknown option"),
    ("/h:/d:U", "U"),
    ("/h:/d:O", "overlay"),
    ("/h:/d:idmap", "idmapped"),
    ("/h:/d:nocopy", "volumes only"),
    ("vol:/d:rshared", "bind mounts only"),
    ("bad$name:/d", "invalid volume name"),
    ("./rel:/d", "relative"),
])
def test_bad_volume_specs_are_named(spec, words):
    with pytest.raises(InvalidMount) as e:
        specs.parse_volume(spec)
    assert words in e.value.message and e.value.spec == spec and e.value.field == "volume"


def test_mount_types():
    m = specs.parse_mount("type=bind,src=/h,target=/t,readonly,bind-propagation=rshared")
    assert (m.type, m.source, m.destination, m.rw, m.propagation) == (BIND, "/h", "/t", False, "rshared")
    assert "ro" in m.options and "rbind" in m.options
    assert "bind" in specs.parse_mount("type=bind,source=/h,dst=/t,bind-nonrecursive").options
    m = specs.parse_mount("type=volume,source=v,destination=/v,ro=true,volume-nocopy")
    assert (m.type, m.source, m.rw, m.copy_up) == (VOLUME, "v", False, False)
    assert specs.parse_mount("type=volume,dst=/v").anonymous
    m = specs.parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=700,notmpcopyup")
    assert (m.type, m.destination) == (TMPFS, "/t")
    assert m.options == ["rw", "noexec", "nosuid", "nodev", "size=1048576", "mode=700"]
    assert specs.parse_mount("type=bind,src=/h,dst=/t,ro=false").rw


@pytest.mark.parametrize("spec, words", [
    ("src=/h,dst=/t", "exactly one type"),
    ("type=bind,type=volume,dst=/t", "exactly one type"),
    ("type=image,source=x,dst=/t", "not supported"),
    ("type=nfs,dst=/t", "unknown mount type"),
    ("type=bind,dst=/t", "needs a source"),
    ("type=bind,src=/h", "destination"),
    ("type=bind,src=/h,dst=/t,ro=maybe", "true or false"),
    ("type=bind,src=/h,dst=/t,bind-propagation=sideways", "bind-propagation"),
    ("type=tmpfs,src=x,dst=/t", "no source"),
    ("type=tmpfs,dst=/t,tmpfs-size=lots", "not a size"),
    ("type=tmpfs,dst=/t,tmpfs-mode=999", "octal"),
    ("type=volume,dst=/t,bind-propagation=shared", "unknown option"),
    ("type=bind,src=/h,dst=/t,chown=true", "owner"),
    ("type=bind,src=/h,dst=/t,,ro", "empty option"),
])
def test_bad_mount_specs_are_named(spec, words):
    with pytest.raises(InvalidMount) as e:
        specs.parse_mount(spec)
    assert words in e.value.message and e.value.field == "mount"


def test_tmpfs_defaults_and_options():
    m = specs.parse_tmpfs("/run")
    assert m.options == ["rw", "noexec", "nosuid", "nodev", "tmpcopyup"] and m.rw
    m = specs.parse_tmpfs("/run:size=64m,mode=1777,exec,ro,uid=5,noatime")
    assert m.options == ["ro", "exec", "nosuid", "nodev", "noatime", "size=67108864", "mode=1777", "uid=5",
                         "tmpcopyup"]
    assert specs.parse_tmpfs("/r:size=50%").options[4] == "size=50%"
    for bad in ("/r:size=0", "/r:mode=abc", "/r:uid=x", "/r:whatever", "run", "/r:size=101%"):
        with pytest.raises(InvalidMount):
            specs.parse_tmpfs(bad)


def test_all_together_refuses_duplicates_and_orders_parents_first():
    mounts = specs.parse_all(["/h/a/b:/a/b", "v:/a"], [], ["/t"])
    assert [m.destination for m in specs.ordered(mounts)] == ["/a", "/t", "/a/b"]
    with pytest.raises(InvalidMount, match="duplicate mount destination"):
        specs.parse_all(["/h:/d"], ["type=tmpfs,dst=/d/"], [])
    with pytest.raises(InvalidMount, match="too many"):
        specs.parse_all(["v:/d"] * 300, [], [])
    with pytest.raises(InvalidMount, match="invalid mount spec"):
        specs.parse_all(["/h:/d\n"], [], [])


def test_client_side_paths(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert hostpaths.absolute_volume("./x:/d:ro") == f"{tmp_path}/x:/d:ro"
    assert hostpaths.absolute_volume("name:/d") == "name:/d"
    assert hostpaths.absolute_volume("/d") == "/d"
    assert hostpaths.absolute_mount("type=bind,src=x,dst=/d") == f"type=bind,src={tmp_path}/x,dst=/d"
    assert hostpaths.absolute_mount("type=volume,src=x,dst=/d") == "type=volume,src=x,dst=/d"


def test_image_volume_paths_are_cleaned():
    assert specs.clean_destination("data/") == "/data"
    assert specs.clean_destination("/var//lib/../log") == "/var/log"
    assert specs.clean_destination("  ") == ""
