"""The guest agent client against an agent on a unix socket: the delimited
sync first, a command's answer or error, and the silence of a guest without
an agent (QEMU accepts the channel's connection; nobody answers)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from onestack.host import qga


async def _agent(path: Path, seen: list[dict[str, Any]], *, silent: bool = False,
                 stale: bytes = b"") -> asyncio.AbstractServer:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        while not reader.at_eof():
            chunk = await reader.read(4096)
            if not chunk:
                break
            data += chunk
            while b"\n" in data:
                line, data = data.split(b"\n", 1)
                doc = json.loads(line.lstrip(b"\xff"))
                seen.append(doc)
                if silent:
                    continue
                if doc["execute"] == "guest-sync-delimited":
                    writer.write(stale + b"\xff" + json.dumps(
                        {"return": doc["arguments"]["id"]}).encode() + b"\n")
                elif doc["arguments"]["username"] == "nobody":
                    writer.write(json.dumps({"error": {
                        "class": "GenericError", "desc": "user nobody unknown"}}).encode() + b"\n")
                else:
                    writer.write(b'{"return": {}}\n')
                await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(serve, str(path))


def test_a_command_after_the_sync(tmp_path: Path) -> None:
    async def go() -> None:
        seen: list[dict[str, Any]] = []
        sock = tmp_path / "qga.sock"
        server = await _agent(sock, seen, stale=b'{"return": 7}\n')  # an earlier client's
        async with server:
            args = {"username": "root", "password": "cGFzcw==", "crypted": False}
            assert await qga.execute(sock, "guest-set-user-password", args) == {}
            assert seen[0]["execute"] == "guest-sync-delimited"
            assert seen[1] == {"execute": "guest-set-user-password", "arguments": args}
            with pytest.raises(qga.AgentError, match="user nobody unknown"):
                await qga.execute(sock, "guest-set-user-password", {**args, "username": "nobody"})

    asyncio.run(go())


def test_no_agent_is_unresponsive(tmp_path: Path) -> None:
    async def go() -> None:
        sock = tmp_path / "qga.sock"
        server = await _agent(sock, [], silent=True)
        async with server:
            with pytest.raises(qga.AgentUnresponsive, match="did not answer within 0.3 s"):
                await qga.execute(sock, "guest-info", timeout=0.3)
        with pytest.raises(qga.AgentUnresponsive, match="channel is not there"):
            await qga.execute(tmp_path / "gone.sock", "guest-info")

    asyncio.run(go())
