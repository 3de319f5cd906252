"""ChronoTick over MCP: the daemon's stdio MCP server and its ``get_time`` tool.

An MCP round trip takes milliseconds to seconds, far too slow for a worker's receive loop. A
background thread keeps one MCP session open (official MCP Python SDK, stdio transport), calls
``get_time`` every ``poll_s`` and caches the parameters; ``read`` only extrapolates the cached
state with ChronoTick's formula, and its status and ``as_of`` say how old that state is.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
from typing import Any

from skewlab.clocks.base import Reading
from skewlab.clocks.external.chronotick import (
    FLAG_MODELS_READY,
    FLAG_NTP_READY,
    FLAG_VALID,
    SOURCE_CODES,
    ChronoTickParams,
    chronotick_reading,
)
from skewlab.clocks.sync import SyncState
from skewlab.timebase import monotonic_ns, monotonic_s

TOOL = "get_time"
# Fields get_time returns (seconds, s/s, ms, booleans); the formula needs the first seven.
REQUIRED_FIELDS = (
    "system_time",
    "offset_correction",
    "drift_rate",
    "offset_uncertainty",
    "drift_uncertainty",
    "prediction_time",
    "valid_until",
)


class McpReplyError(ValueError):
    """A get_time reply that cannot be turned into ChronoTick parameters."""


def params_from_reply(d: dict[str, Any]) -> ChronoTickParams:
    """Map one get_time reply (a JSON object) onto ChronoTick parameters."""
    missing = [f for f in REQUIRED_FIELDS if f not in d]
    if missing:
        raise McpReplyError(f"get_time reply lacks {', '.join(missing)}")
    flags = 0
    if d.get("is_valid"):
        flags |= FLAG_VALID
    if d.get("is_ntp_ready"):
        flags |= FLAG_NTP_READY
    if d.get("is_models_ready"):
        flags |= FLAG_MODELS_READY
    src = d.get("source", 0)
    code = SOURCE_CODES.get(str(src).lower(), 0) if isinstance(src, str) else int(src)
    try:
        return ChronoTickParams(
            system_timestamp_s=float(d["system_time"]),
            offset_correction_s=float(d["offset_correction"]),
            drift_rate=float(d["drift_rate"]),
            offset_uncertainty_s=float(d["offset_uncertainty"]),
            drift_uncertainty=float(d["drift_uncertainty"]),
            prediction_time_s=float(d["prediction_time"]),
            valid_until_s=float(d["valid_until"]),
            flags=flags,
            source=code,
            confidence=float(d.get("confidence", math.nan)),
        )
    except (TypeError, ValueError) as e:
        raise McpReplyError(f"get_time reply has a non-numeric field: {e}") from None


def _reply_dict(result: Any) -> dict[str, Any]:
    """The JSON object inside a CallToolResult: structured content, else the first text block."""
    if getattr(result, "is_error", False) or getattr(result, "isError", False):
        raise McpReplyError(f"get_time failed: {result.content!r}")
    structured = getattr(result, "structured_content", None)
    if structured is None:
        structured = getattr(result, "structuredContent", None)
    if isinstance(structured, dict):
        # Tools returning a dict may be wrapped as {"result": {...}} by some servers.
        inner = structured.get("result")
        return inner if isinstance(inner, dict) and "system_time" not in structured else structured
    for block in result.content or []:
        text = getattr(block, "text", None)
        if text:
            obj = json.loads(text)
            if isinstance(obj, dict):
                return obj
    raise McpReplyError("get_time returned no JSON object")


def available(command: str | None = None, **_: Any) -> tuple[bool, str]:
    """Whether the MCP SDK is importable and the configured server command exists."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        return False, "the MCP Python SDK (package 'mcp') is not installed"
    if not command:
        return False, "no MCP server configured (source_params.chronotick_mcp.command)"
    if shutil.which(command) is None:
        return False, f"MCP server command {command!r} not found"
    return True, f"MCP server command {command}"


class ChronoTickMcpSource:
    """ChronoTick's bounds from its MCP server, polled in the background and cached.

    Parameters: ``command`` and ``args`` (the stdio server to start), ``poll_s`` (default 1),
    ``timeout_s`` (per call, default 10), ``k`` (σ multiplier, default 3), ``stale_grace_s``.
    Until the first reply arrives every reading is UNSYNCHRONIZED (no value).
    """

    name = "chronotick_mcp"
    bounded = True
    available = staticmethod(available)

    def __init__(
        self,
        state: SyncState | None = None,
        command: str | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        poll_s: float = 1.0,
        timeout_s: float = 10.0,
        k: float = 3.0,
        stale_grace_s: float = 10.0,
        start: bool = True,
        **_: Any,
    ) -> None:
        self.command = command or ""
        self.args = list(args or [])
        self.env = env
        self.poll_s = float(poll_s)
        self.timeout_s = float(timeout_s)
        self.k = float(k)
        self.stale_grace_ns = round(stale_grace_s * 1e9)
        self.replies = 0  # successful get_time calls
        self.failures = 0  # failed calls or sessions
        self.last_error: str | None = None
        self.last_latency_ns: int | None = None  # round trip of the latest successful call
        self._params: ChronoTickParams | None = None  # swapped atomically by the poller
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chronotick-mcp", daemon=True)
        if not command:  # an optional source left unconfigured: it answers nothing, says why
            self.last_error = "no MCP server configured (source_params.chronotick_mcp.command)"
        elif start:
            self._thread.start()

    # -- background poller --------------------------------------------------------------------
    def _run(self) -> None:
        import asyncio  # here: only a process that polls an MCP server pays for asyncio

        while not self._stop.is_set():
            try:
                asyncio.run(self._session())
            except Exception as e:  # a broken session: note it, back off, reconnect
                self.failures += 1
                self.last_error = f"{type(e).__name__}: {e}"
            self._first.set()  # wake waiters: the first attempt has an outcome
            self._stop.wait(min(5.0, max(self.poll_s, 0.5)))

    async def _session(self) -> None:
        import asyncio

        from mcp import Client, StdioServerParameters

        server = StdioServerParameters(command=self.command, args=self.args, env=self.env)
        async with Client(server, read_timeout_seconds=self.timeout_s) as client:
            while not self._stop.is_set():
                t0 = monotonic_ns()
                result = await client.call_tool(TOOL, {}, read_timeout_seconds=self.timeout_s)
                try:
                    self._params = params_from_reply(_reply_dict(result))
                    self.last_latency_ns = monotonic_ns() - t0
                    self.replies += 1
                except (McpReplyError, json.JSONDecodeError) as e:
                    self.failures += 1
                    self.last_error = str(e)
                self._first.set()
                deadline = monotonic_s() + self.poll_s
                while not self._stop.is_set() and monotonic_s() < deadline:
                    await asyncio.sleep(min(0.05, self.poll_s))

    def wait_first(self, timeout_s: float) -> bool:
        """Block (not in a receive loop!) until the first call finished; True if it answered."""
        self._first.wait(timeout_s)
        return self._params is not None

    def close(self) -> None:
        """Stop polling; the SDK closes the server's stdin and reaps it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout_s + 5)

    # -- the cheap part -----------------------------------------------------------------------
    def params(self) -> ChronoTickParams | None:
        return self._params

    def read(self, local_ns: int, host_ns: int | None = None) -> Reading:
        p = self._params
        if p is None:
            return Reading.none()
        return chronotick_reading(p, local_ns, self.k, self.stale_grace_ns)
