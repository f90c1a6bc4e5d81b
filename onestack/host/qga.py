"""A client of the QEMU guest agent (``qemu-ga`` inside the guest), over the
virtio-serial channel a guest made with ``GuestSpec.guest_agent`` has on its
``qga.sock``.

The protocol is QMP's JSON, one message a line, without a greeting. A
connection may find a half-read command of an earlier client in the agent's
buffer, so each one starts with ``guest-sync-delimited``: a 0xFF byte resets
the agent's parser, and the answer is preceded by 0xFF. When no agent runs in
the guest, QEMU still accepts the connection and nothing answers: the call
times out (:class:`AgentUnresponsive`), as libvirt's "agent unresponsive".
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from onestack.host.errors import HostError


class AgentUnresponsive(HostError):
    """Nothing answered on the guest agent's channel (no agent in the guest)."""


class AgentError(HostError):
    """The guest agent refused a command (its error class and description)."""

    def __init__(self, command: str, error: dict[str, Any]) -> None:
        self.command = command
        self.error_class = str(error.get("class", ""))
        self.desc = str(error.get("desc", ""))
        super().__init__(f"guest agent {command}: {self.error_class}: {self.desc}")


async def _answer(reader: asyncio.StreamReader) -> dict[str, Any]:
    while True:
        line = (await reader.readline()).lstrip(b"\xff").strip()
        if not line:
            if reader.at_eof():
                raise AgentUnresponsive("the guest agent's channel closed")
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue  # the rest of an earlier client's answer
        if isinstance(doc, dict) and ("return" in doc or "error" in doc):
            return doc


async def execute(path: Path, command: str, arguments: dict[str, Any] | None = None,
                  timeout: float = 5.0) -> Any:
    """Runs one guest agent command; its ``return`` value."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                token = random.randrange(1, 1 << 31)
                writer.write(b"\xff" + json.dumps({"execute": "guest-sync-delimited",
                                                   "arguments": {"id": token}}).encode() + b"\n")
                await writer.drain()
                while (await _answer(reader)).get("return") != token:
                    pass
                message: dict[str, Any] = {"execute": command}
                if arguments:
                    message["arguments"] = arguments
                writer.write(json.dumps(message).encode() + b"\n")
                await writer.drain()
                doc = await _answer(reader)
            finally:
                writer.close()
    except TimeoutError:
        raise AgentUnresponsive(f"the guest agent did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise AgentUnresponsive(f"the guest agent's channel is not there: {exc}") from None
    if "error" in doc:
        raise AgentError(command, dict(doc["error"]))
    return doc.get("return")

