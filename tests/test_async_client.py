"""The AsyncClient: many tasks on one connection, each answered with its own reply."""

from __future__ import annotations

import anyio
import pytest

from varpod.core.errors import NoSuchContainer
from varpod.rpc.client import AsyncClient

pytestmark = pytest.mark.anyio


async def test_concurrent_calls_get_their_own_replies(daemon):
    async with await AsyncClient.connect(daemon.socket) as ac:
        got: dict[int, list[str]] = {}

        async def worker(i: int) -> None:
            # Calls of many tasks leave in batches: each must still get its own answer.
            got[i] = [await ac.ping(f"task {i} call {j}") for j in range(20)]

        async with anyio.create_task_group() as tg:
            for i in range(64):
                tg.start_soon(worker, i)
    assert got == {i: [f"task {i} call {j}" for j in range(20)] for i in range(64)}


async def test_an_error_reaches_only_its_caller(daemon):
    async with await AsyncClient.connect(daemon.socket) as ac:
        results: list[object] = []

        async def good(i: int) -> None:
            results.append(await ac.ping(str(i)))

        async def bad() -> None:
            with pytest.raises(NoSuchContainer):
                await ac.inspect("no-such-container")
            results.append("refused")

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(good, i)
                tg.start_soon(bad)
    assert sorted(r for r in results if r != "refused") == sorted(str(i) for i in range(10))
    assert results.count("refused") == 10
