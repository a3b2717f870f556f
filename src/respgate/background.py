"""Background responses the gateway runs itself (every provider whose upstream holds no state).

A run is a task that drives the provider's event stream to its end whoever is listening: the
creating client may disconnect, others may attach later. The stored response moves
queued -> in_progress -> completed | failed | incomplete | cancelled and is saved at each status
change and at the end, never per delta.

While a run lives, its events stay in an `EventLog` in this process, so
`GET /v1/responses/{id}?stream=true&starting_after=N` follows it live from any N. At the end the
whole list is saved with the final response, and resuming a finished response reads that list.
Why store the events rather than replay the final state: sequence numbers count deltas, and how
the upstream chunked them is not in the final state (`streaming.replay` merges each part into one
delta), so a client that read 0..N live would skip or repeat events on a replay. The list it
read is the list it resumes.

Memory is bounded: at most `max_runs` runs at once (more: 429) and `max_events` events per run
(more: the run fails); a run's log leaves memory when its final state is stored.

Other processes (another worker on the same SQLite file, another instance on the same PostgreSQL)
see a run through the store: every `checkpoint_seconds` with new events the run stores its events so
far with its current state, which their readers poll (`stored.StoredResponses`); and it reads its own
stored status, so a cancel stored by another process (`cancelled`) stops it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import BadGatewayError, RateLimitError, RespgateError, ServiceUnavailableError
from .events import LIFECYCLE_TYPES, Event
from .streaming import StreamBuilder

log = logging.getLogger(__name__)

Json = dict[str, Any]
#: Saves the response's current state; with its events so far (checkpoints) or all of them (the final one).
SaveState = Callable[[Json, Sequence[bytes] | None], Awaitable[None]]
#: The stored status of the response (another process may have cancelled it); None when unknown.
ReadStatus = Callable[[], Awaitable[str | None]]
StopReason = Literal["cancelled", "shutdown", "deleted"]

SHUTDOWN_ERROR = {"code": "server_error", "message": "The gateway shut down while this response was running."}


class EventLog:
    """A run's events in sequence order (index == sequence_number), followed by any number of readers."""

    __slots__ = ("_wake", "closed", "events")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False
        self._wake = asyncio.Event()

    def append(self, event: Event) -> None:
        self.events.append(event)
        self._notify()

    def close(self) -> None:
        self.closed = True
        self._notify()

    def _notify(self) -> None:
        # One asyncio.Event per generation: every reader waiting on the old one wakes exactly once.
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def follow(self, starting_after: int | None = None) -> AsyncIterator[Event]:
        """The events after `starting_after`, then each new one as it comes, until the log closes."""
        n = 0 if starting_after is None else starting_after + 1
        while True:
            while n < len(self.events):
                yield self.events[n]
                n += 1
            if self.closed:
                return
            await self._wake.wait()


@dataclass(slots=True)
class Run:
    response_id: str
    log: EventLog = field(default_factory=EventLog)
    task: asyncio.Task[None] | None = None
    stop_reason: StopReason | None = None
    finishing: bool = False  # the terminal state is being stored: too late to cancel


class BackgroundRuns:
    """The runs of this process, by response id."""

    def __init__(self, *, max_runs: int = 10_000, max_events: int = 200_000,
                 checkpoint_seconds: float = 0.5) -> None:
        self.max_runs = max_runs
        self.max_events = max_events
        self.checkpoint_seconds = checkpoint_seconds
        self._runs: dict[str, Run] = {}
        self._closing = False

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, response_id: str) -> Run | None:
        return self._runs.get(response_id)

    def check_capacity(self) -> None:
        """Raise before the response is stored when no run could start."""
        if self._closing:
            raise ServiceUnavailableError("The gateway is shutting down; background responses are not accepted.")
        if len(self._runs) >= self.max_runs:
            raise RateLimitError(f"Too many background responses are running ({self.max_runs}); try again later.",
                                 code="rate_limit_exceeded")

    def start(self, response_id: str, events: AsyncIterator[Event], shell: Json, save: SaveState,
              read_status: ReadStatus | None = None) -> Run:
        """Drive `events` (the provider's stream for the response `shell` describes) in a task of its own;
        with `read_status`, checkpoint it for other processes and obey their cancels."""
        self.check_capacity()
        run = Run(response_id)
        self._runs[response_id] = run
        run.task = asyncio.create_task(self._drive(run, events, shell, save, read_status),
                                       name=f"respgate-background-{response_id}")
        return run

    async def stop(self, response_id: str, reason: StopReason) -> bool:
        """Cancel the run (its upstream call is closed) and wait until its final state is stored.
        False when no such run is alive here."""
        run = self._runs.get(response_id)
        if run is None or run.task is None:
            return False
        if run.stop_reason is None and not run.finishing:
            run.stop_reason = reason
            run.task.cancel()
        await asyncio.wait({run.task})  # not `await task`: our own cancellation must not cancel it again
        return True

    async def shutdown(self) -> None:
        """Stop every run as failed (the process is going away) and refuse new ones."""
        self._closing = True
        await asyncio.gather(*(self.stop(rid, "shutdown") for rid in list(self._runs)))

    async def _drive(self, run: Run, events: AsyncIterator[Event], shell: Json, save: SaveState,
                     read_status: ReadStatus | None) -> None:
        driver = _Driver(run, shell, save, self.max_events)
        watcher = (asyncio.create_task(self._watch(run, driver, read_status), name=f"respgate-watch-{run.response_id}")
                   if read_status is not None and self.checkpoint_seconds > 0 else None)
        try:
            await driver.relay(events)
        except asyncio.CancelledError:
            run.finishing = True
            await _aclose(events)  # already closed when the cancel came through the provider's await
            await driver.stopped(run.stop_reason or "shutdown")
        except RespgateError as e:
            run.finishing = True
            await _aclose(events)
            await driver.fail(e.code or "server_error", e.message)
        except Exception as e:  # a bug in a provider must still end the response, never leave it running
            run.finishing = True
            log.error("background response %s raised %s", run.response_id, type(e).__name__, exc_info=e)
            await _aclose(events)
            await driver.fail("server_error", "The server had an error while processing your request.")
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.wait({watcher})
            run.log.close()
            self._runs.pop(run.response_id, None)

    async def _watch(self, run: Run, driver: _Driver, read_status: ReadStatus) -> None:
        """Checkpoints for other processes' readers, and their cancels for this run."""
        stored = 0
        while not run.finishing:
            await asyncio.sleep(self.checkpoint_seconds)
            if run.finishing:
                return
            try:
                status = await read_status()
            except RespgateError:
                continue  # the store is away: try again at the next tick
            if status in ("cancelled", None) and run.stop_reason is None and run.task is not None:
                # another process stored the cancel (or deleted the response): stop here
                run.stop_reason = "cancelled" if status else "deleted"
                run.task.cancel()
                return
            if len(run.log.events) > stored and not run.finishing:
                stored = len(run.log.events)
                await driver.checkpoint()


class _Driver:
    """One run's state: the last response snapshot, the finished output items, the status stored."""

    def __init__(self, run: Run, shell: Json, save: SaveState, max_events: int) -> None:
        self.run = run
        self.shell = shell
        self.save = save
        self.max_events = max_events
        self.snapshot: Json = {**shell, "status": "queued"}
        self.stored_status = "queued"  # the gateway stored the queued response before the run began
        self.done_items: dict[int, Json] = {}

    async def relay(self, events: AsyncIterator[Event]) -> None:
        log_ = self.run.log
        async for ev in events:
            if len(log_.events) >= self.max_events:
                raise BadGatewayError(f"The response exceeded {self.max_events} stream events, the most a "
                                      "background response may keep.")
            if ev.type in LIFECYCLE_TYPES and isinstance(ev.obj.get("response"), dict):
                self.snapshot = ev.obj["response"]
                if ev.is_terminal:
                    await self._finish(ev)
                    return
                if self.snapshot.get("status") != self.stored_status:
                    self.stored_status = str(self.snapshot.get("status"))
                    await self._save_state(self.snapshot)
            elif ev.type == "response.output_item.done":
                self.done_items[int(ev.obj["output_index"])] = ev.obj["item"]
            log_.append(ev)
        raise BadGatewayError("The upstream stream ended before the response finished.")

    async def fail(self, code: str, message: str) -> None:
        if not self.run.log.events:  # nothing sent yet: the whole grammar, from response.created
            *prefix, last = StreamBuilder(self.shell).fail(code, message)
            for e in prefix:
                self.run.log.append(Event.of(e))
            await self._finish(Event.of(last))
            return
        response = self._partial("failed")
        response["error"] = {"code": code, "message": message}
        await self._finish(Event.of({"type": "response.failed", "sequence_number": len(self.run.log.events),
                                     "response": response}))

    async def checkpoint(self) -> None:
        """The events so far with the current state, for readers in other processes."""
        try:
            await self.save(self.snapshot, [e.data for e in self.run.log.events])
        except RespgateError as e:
            log.warning("background response %s: checkpoint failed: %s", self.run.response_id, e.message)

    async def stopped(self, reason: StopReason) -> None:
        if reason == "deleted":  # gone from the store: saving the end would bring it back
            return
        if reason == "shutdown":
            response = self._partial("failed")
            response["error"] = dict(SHUTDOWN_ERROR)
            await self._finish(Event.of({"type": "response.failed", "sequence_number": len(self.run.log.events),
                                         "response": response}))
            return
        # The stream grammar has no event for a cancelled response: the stream just ends.
        await self._save_state(self._partial("cancelled"), final=True)

    def _partial(self, status: str) -> Json:
        """The response as far as it got: the items that finished, in output order."""
        return {**self.snapshot, "status": status,
                "output": [self.done_items[i] for i in sorted(self.done_items)]}

    async def _finish(self, terminal: Event) -> None:
        """Store the final state with every event including `terminal`, then let readers see it, so a
        reader that saw the end can always find it stored."""
        self.run.finishing = True
        self.snapshot = terminal.obj["response"]
        await self._save_state(self.snapshot, final=True, last=terminal)
        self.run.log.append(terminal)

    async def _save_state(self, response: Json, *, final: bool = False, last: Event | None = None) -> None:
        events = None
        if final:
            events = [e.data for e in self.run.log.events] + ([last.data] if last is not None else [])
        try:
            await self.save(response, events)
        except RespgateError as e:  # the store is down: readers still get the stream; a restart fails the row
            log.warning("background response %s: saving status %s failed: %s", self.run.response_id,
                        response.get("status"), e.message)


async def _aclose(events: AsyncIterator[Event]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
