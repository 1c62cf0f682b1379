"""The resource parts of the OCI config: config.json at create, the file for `runc update`."""

from __future__ import annotations

from varpod.core.model import ContainerConfig, Resources, new_id
from varpod.core.spec import oci_config, resource_limits, update_resources

LIMITED = Resources(memory=64 << 20, nano_cpus=500_000_000, pids_limit=100, cpu_shares=512)


def test_create_states_only_the_limits_that_are_set():
    assert resource_limits(Resources()) == {}
    assert resource_limits(LIMITED) == {
        "memory": {"limit": 64 << 20},
        "cpu": {"shares": 512, "quota": 50_000, "period": 100_000},
        "pids": {"limit": 100},
    }
    assert resource_limits(Resources(pids_limit=3)) == {"pids": {"limit": 3}}


def test_update_states_every_limit_with_no_limit_as_minus_one():
    # runc update leaves a 0 or absent value as it is: lifting a limit needs -1.
    assert update_resources(Resources()) == {
        "memory": {"limit": -1},
        "cpu": {"shares": 1024, "quota": -1, "period": 100_000},
        "pids": {"limit": -1},
    }
    assert update_resources(LIMITED) == {"memory": {"limit": 64 << 20}, **resource_limits(LIMITED)}


def test_config_json_carries_the_limits_beside_the_device_rule(tmp_path):
    config = ContainerConfig(id=new_id(), name="web", rootfs=str(tmp_path), command=["/bin/true"],
                             resources=LIMITED)
    resources = oci_config(config, str(tmp_path))["linux"]["resources"]
    assert resources == {"devices": [{"allow": False, "access": "rwm"}], **resource_limits(LIMITED)}
