"""The state rule every filesystem operation shares (seed 002): anything but a container being removed."""

from __future__ import annotations

import pytest

from varpod.core.containerfs.fs import ContainerFS
from varpod.core.errors import InvalidState
from varpod.core.model import ContainerConfig, ContainerRecord, ContainerState
from varpod.core.states import State


@pytest.mark.parametrize("state", list(State))
def test_every_state_but_removing_may_mount_copy_export(state):
    rec = ContainerRecord(ContainerConfig(id="a" * 64, name="c", rootfs="/r", command=["x"]),
                          ContainerState(state=state))
    if state is State.REMOVING:
        with pytest.raises(InvalidState) as e:
            ContainerFS.check(rec)
        assert e.value.id == rec.id and e.value.state == "removing"
    else:
        ContainerFS.check(rec)
