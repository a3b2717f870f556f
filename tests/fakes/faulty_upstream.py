"""An upstream that misbehaves at the TCP and HTTP level, on cue: `FaultyUpstream` sits in front of one
of the other fakes and, request by request, relays its answer faithfully or breaks it.

Each connection takes the next scripted `Fault` (none left: the answer passes through untouched):

    status(429, retry_after="7")  an error answer of its own; the fake is not asked
    hang()                        reads the request, never answers (the caller's timeout must end it)
    reset()                       reads the request, then a TCP reset
    body(b'{"id": ')              a 200 with this body instead of the fake's (malformed JSON, wrong shapes)
    cut(after=2)                  the fake's answer up to `after` events and half of the next, then the
                                  connection closes inside a chunk (a truncated chunked body)
    end(after=2)                  `after` events, then a proper end of the body: cut off, but cleanly
    stall(after=2)                `after` events, then silence until the caller hangs up
    drip(piece=3, pause=0.001)    the whole answer, `piece` bytes at a time
    trickle(after=1, pause=0.05)  `after` events, then one byte of the next every `pause`, forever
    garbage(after=1, [b"data: {not json\\n\\n"])  `after` events, these lines, then the rest

"Events" are SSE frames (split at blank lines) or AWS event-stream frames (split by their length
prelude); a JSON body is one event. Answers always carry `Connection: close`, so one request is one
connection and one fault. `exchanges` records what happened on each: `client_left` is set when the
caller closed the connection before the fault was done with it (a cancelled upstream call).

`TcpGate` is the same idea one layer down: a TCP forwarder (to PostgreSQL, say) that can go down --
every connection reset, new ones refused -- and come back up on the same port.

Both run their own event loop in a thread; `stop()` closes every socket they opened. Imports nothing
from respgate.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

_HEAD_END = b"\r\n\r\n"
_SSE_BOUNDARY = re.compile(rb"\r?\n\r?\n")
_DROPPED_HEADERS = frozenset({b"connection", b"transfer-encoding", b"content-length", b"keep-alive"})


@dataclass(frozen=True)
class Fault:
    kind: str
    after: int = 0
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    lines: tuple[bytes, ...] = ()
    piece: int = 1
    pause: float = 0.0


def status(code: int, body: bytes | None = None, *, retry_after: str | None = None,
           headers: tuple[tuple[str, str], ...] = ()) -> Fault:
    if body is None:
        body = (b'{"error": {"message": "Upstream says %d.", "type": "server_error", "param": null, "code": null}}'
                % code)
    extra = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Fault("status", status=code, body=body, headers=(("Content-Type", "application/json"), *headers, *extra))


def hang() -> Fault:
    return Fault("hang")


def reset() -> Fault:
    return Fault("reset")


def body(raw: bytes, *, code: int = 200, content_type: str = "application/json") -> Fault:
    return Fault("status", status=code, body=raw, headers=(("Content-Type", content_type),))


def cut(after: int) -> Fault:
    return Fault("cut", after=after)


def end(after: int) -> Fault:
    return Fault("end", after=after)


def stall(after: int) -> Fault:
    return Fault("stall", after=after)


def drip(piece: int = 3, pause: float = 0.0) -> Fault:
    return Fault("drip", piece=piece, pause=pause)


def trickle(after: int, pause: float = 0.05) -> Fault:
    return Fault("trickle", after=after, pause=pause)


def garbage(after: int, lines: list[bytes]) -> Fault:
    return Fault("garbage", after=after, lines=tuple(lines))


@dataclass
class Exchange:
    """One connection: the fault it got, the request line, and how it ended."""

    fault: Fault | None
    request_line: str = ""
    client_left: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Answer:
    status_line: bytes
    headers: list[tuple[bytes, bytes]]
    events: list[bytes]
    streamed: bool


class FaultyUpstream:
    """`with FaultyUpstream(fake_url) as up: up.push(cut(2)); ... up.url` (see the module docstring)."""

    def __init__(self, backend_url: str | None = None) -> None:
        self._backend: tuple[str, int] | None = None
        if backend_url is not None:
            parts = urlsplit(backend_url)
            self._backend = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    # ---- from the test thread

    def push(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def pending(self) -> int:
        with self._lock:
            return len(self._faults)

    def start(self) -> FaultyUpstream:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="faulty-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the faulty upstream did not start")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop.close()

    def __enter__(self) -> FaultyUpstream:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- on the server's loop

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        exchange = Exchange(fault)
        self.exchanges.append(exchange)
        try:
            request = await _read_request(reader)
            if request is None:
                return
            exchange.request_line = request.split(b"\r\n", 1)[0].decode("latin-1")
            await self._serve(fault, request, reader, writer, exchange)
        except (ConnectionError, asyncio.IncompleteReadError):
            exchange.client_left.set()
        finally:
            exchange.done.set()
            if fault is None or fault.kind != "reset":
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _serve(self, fault: Fault | None, request: bytes, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, exchange: Exchange) -> None:
        kind = fault.kind if fault is not None else "pass"
        if kind == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if kind == "hang":
            await _until_closed(reader, exchange)
            return
        if kind == "status":
            assert fault is not None
            head = _head(f"HTTP/1.1 {fault.status} Fault".encode(),
                         [(k.encode(), v.encode()) for k, v in fault.headers], len(fault.body))
            writer.write(head + fault.body)
            await writer.drain()
            return
        answer = await self._fetch(request)
        if not answer.streamed:
            await self._send_plain(fault, answer, reader, writer, exchange)
            return
        writer.write(_head(answer.status_line, answer.headers, None))
        events = answer.events
        after = fault.after if fault is not None else len(events)
        if kind == "drip":
            assert fault is not None
            whole = b"".join(events)
            for start in range(0, len(whole), fault.piece):
                writer.write(_chunk(whole[start:start + fault.piece]))
                await writer.drain()
                if fault.pause:
                    await asyncio.sleep(fault.pause)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return
        for event in events[:after]:
            writer.write(_chunk(event))
        await writer.drain()
        rest = events[after:]
        if kind in ("pass", "end"):
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        elif kind == "cut":
            nxt = rest[0] if rest else b"data: {\"trunc"
            half = nxt[: max(1, len(nxt) // 2)]
            # A chunk that announces the whole event but carries half of it, then the connection ends.
            writer.write(f"{len(nxt):x}\r\n".encode() + half)
            await writer.drain()
            writer.transport.abort()
        elif kind == "stall":
            await _until_closed(reader, exchange)
        elif kind == "trickle":
            assert fault is not None
            await self._trickle(fault, rest, reader, writer, exchange)
        elif kind == "garbage":
            assert fault is not None
            for line in fault.lines:
                writer.write(_chunk(line))
            for event in rest:
                writer.write(_chunk(event))
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def _send_plain(self, fault: Fault | None, answer: _Answer, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter, exchange: Exchange) -> None:
        """A JSON answer (Content-Length): cut and stall act halfway through the body."""
        whole = b"".join(answer.events)
        kind = fault.kind if fault is not None else "pass"
        writer.write(_head(answer.status_line, answer.headers, len(whole)))
        if kind in ("cut", "stall"):
            writer.write(whole[: len(whole) // 2])
            await writer.drain()
            if kind == "cut":
                writer.transport.abort()
            else:
                await _until_closed(reader, exchange)
            return
        piece = fault.piece if fault is not None and kind == "drip" else len(whole) or 1
        for start in range(0, len(whole), piece):
            writer.write(whole[start:start + piece])
            await writer.drain()
            if fault is not None and fault.pause:
                await asyncio.sleep(fault.pause)
        await writer.drain()

    async def _trickle(self, fault: Fault, rest: list[bytes], reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, exchange: Exchange) -> None:
        """One byte at a time of an event that never ends, until the caller gives up."""
        source = (rest[0] if rest else b"data: ").rstrip(b"\r\n") or b"x"
        closed = asyncio.ensure_future(_until_closed(reader, exchange))
        try:
            i = 0
            while not closed.done():
                writer.write(_chunk(source[i % len(source): i % len(source) + 1]))
                await writer.drain()
                i += 1
                await asyncio.wait([closed], timeout=fault.pause)
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closed

    async def _fetch(self, request: bytes) -> _Answer:
        """The fake's whole answer to `request` (sent with Connection: close), de-chunked and split."""
        if self._backend is None:
            raise RuntimeError("this FaultyUpstream has no fake behind it: script a status/body/hang/reset")
        head, _, payload = request.partition(_HEAD_END)
        lines = head.split(b"\r\n")
        kept = [line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() != b"connection"]
        upstream = b"\r\n".join([lines[0], *kept, b"Connection: close"]) + _HEAD_END + payload
        r, w = await asyncio.open_connection(*self._backend)
        try:
            w.write(upstream)
            await w.drain()
            raw = await r.read()
        finally:
            w.close()
            with contextlib.suppress(ConnectionError, OSError):
                await w.wait_closed()
        head, _, data = raw.partition(_HEAD_END)
        head_lines = head.split(b"\r\n")
        headers = []
        chunked = False
        for line in head_lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            headers.append((name, value.strip()))
        if chunked:
            data = _dechunk(data)
        content_type = dict(headers).get(b"content-type", b"")
        if b"event-stream" in content_type and b"amazon" not in content_type:
            events = _sse_events(data)
        elif b"amazon.eventstream" in content_type:
            events = _aws_frames(data)
        else:
            return _Answer(head_lines[0], headers, [data], streamed=False)
        return _Answer(head_lines[0], headers, events, streamed=True)


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(_HEAD_END)
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + (await reader.readexactly(length) if length else b"")


async def _until_closed(reader: asyncio.StreamReader, exchange: Exchange) -> None:
    """Wait for the caller to hang up (it sends nothing more after its request)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass
    exchange.client_left.set()


def _head(status_line: bytes, headers: list[tuple[bytes, bytes]], length: int | None) -> bytes:
    out = [status_line]
    out += [name + b": " + value for name, value in headers if name.lower() not in _DROPPED_HEADERS]
    out.append(b"Connection: close")
    out.append(b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length)
    return b"\r\n".join(out) + _HEAD_END


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n" if data else b""


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2:end + 2 + size]
        pos = end + 2 + size + 2


def _sse_events(data: bytes) -> list[bytes]:
    events = []
    pos = 0
    for m in _SSE_BOUNDARY.finditer(data):
        events.append(data[pos:m.end()])
        pos = m.end()
    if pos < len(data):
        events.append(data[pos:])
    return events


def _aws_frames(data: bytes) -> list[bytes]:
    frames = []
    pos = 0
    while pos + 4 <= len(data):
        (total,) = struct.unpack(">I", data[pos:pos + 4])
        frames.append(data[pos:pos + total])
        pos += total
    return frames


class TcpGate:
    """A plain TCP forwarder to `backend` (say PostgreSQL) that can go down and come back on the same port:
    `down()` resets every open connection and stops listening (new ones are refused), `up()` listens again.
    `with TcpGate(("127.0.0.1", 5432)) as gate: dsn = f"postgresql://...@127.0.0.1:{gate.port}/..."`."""

    def __init__(self, backend: tuple[str, int]) -> None:
        self._backend = backend
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # connections and their pipes
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def start(self) -> TcpGate:
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-gate", daemon=True)
        self._thread.start()
        self.up()
        return self

    def up(self) -> None:
        self._call(self._listen())

    def down(self) -> None:
        self._call(self._close_all())

    def stop(self) -> None:
        if self._thread is None:
            return
        self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop.close()

    def __enter__(self) -> TcpGate:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _call(self, work: Any) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._tasks.add(me)  # type: ignore[arg-type]
        self._writers.add(writer)
        pipes: list[asyncio.Task[None]] = []
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._backend)
            self._writers.add(up_writer)
            pipes = [asyncio.ensure_future(_pipe(reader, up_writer)), asyncio.ensure_future(_pipe(up_reader, writer))]
            self._tasks.update(pipes)
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._tasks.difference_update(pipes)
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()
            self._tasks.discard(me)  # type: ignore[arg-type]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
