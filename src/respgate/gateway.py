"""The Gateway: one request's path, the same for the proxy and the SDK.

    state    previous_response_id -> the chain from the store (owner checked)
    route    the model group -> a deployment (the router issue grows this step)
    call     the deployment's provider: create, or stream
    persist  the store, before the client receives the last byte
    background  non-native providers: the run is a task of `background.BackgroundRuns`; the
             create call answers `queued` once that state is stored
    account  the platform's hooks (platform.py) around each `Call`: pre_call before any work,
             post_call exactly once at its end (JSON: before the bytes return; stream: after the
             terminal event or when the client left; background: at the run's final state)

Responses leave the gateway as JSON bytes (one serialisation, shared by the store and the wire)
or as `Event`s; the proxy and the SDK only frame them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import aiohttp
import orjson

from .accounting import accounted, defer_accounting, hooked
from .background import BackgroundRuns, Run
from .calls import Call, Principal
from .config import Config
from .conversations import Conversations
from .deployments import Deployment, ModelRegistry
from .errors import BadGatewayError, InvalidRequestError, RespgateError, ServiceUnavailableError
from .events import Event
from .history import (
    chain_items,
    compact_locally,
    compact_with_summary,
    expand_compactions,
    has_local_compaction,
    resolve_references,
    summary_request,
)
from .ids import decode_response_id, encode_response_id, new_local_response_id
from .platform import Platform
from .prompts import build as build_prompts
from .providers.base import Provider, ProviderRequest, StatefulProvider
from .providers.mock import count_tokens
from .providers.registry import STATEFUL_PROVIDERS, build_providers
from .request import normalize_input, validate_create, validate_passthrough
from .retention import DAY, RetentionSweeper
from .router import Router, json_tokens, parse_router_settings
from .shell import response_shell
from .store.base import ResponseRecord, Store
from .store.factory import DatabaseTarget
from .stored import LIFECYCLE, NON_TERMINAL, StoredResponses
from .tools import build as build_tools
from .truncation import fit_window


class Gateway(StoredResponses):
    def __init__(self, config: Config, store: Store, *, http: aiohttp.ClientSession | None = None,
                 database: DatabaseTarget | None = None, sdk: bool = False) -> None:
        self.config = config
        self.store = store
        self.registry = ModelRegistry(config.deployments)
        self.providers = build_providers({d.provider for d in config.deployments})
        self._http = http
        self._own_http = http is None
        self.background = BackgroundRuns()
        self.conversations = Conversations(store)
        days = config.general.response_retention_days
        self.retention = RetentionSweeper(store, days * DAY if days is not None else None,
                                          interval=config.general.retention_sweep_interval_seconds)
        litellm = {**config.litellm_settings.extra, "num_retries": config.litellm_settings.num_retries}
        self.router = Router(self.registry, parse_router_settings(config.router_settings, litellm))
        database = database or DatabaseTarget("memory")
        self.platform = Platform(config, database, sdk=sdk)
        self.prompts = build_prompts(config, database)
        self.tools = build_tools(config)
        self._saves_failing = False  # the last save failed: check the store before the next request

    async def start(self) -> None:
        await self.store.open()
        await self.platform.start()
        await self.prompts.start()
        await self.tools.start()
        # Only what this gateway was running died with it; an upstream's background work goes on.
        await self.store.mark_unfinished_failed(keep_providers=STATEFUL_PROVIDERS)
        self.retention.start()
        if self._http is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300,
                                             keepalive_timeout=60)
            self._http = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",),
                                               auto_decompress=True)

    async def close(self) -> None:
        # Running background responses end as failed and are stored while the store is still open.
        await self.background.shutdown()
        await self.tools.close()
        await self.prompts.close()
        await self.platform.close()  # after the runs' final post_calls; flushes spend and counters
        await self.router.close()
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None
        await self.retention.stop()
        await self.store.close()

    # -- create --------------------------------------------------------------------------------------

    async def create(self, body: Any, principal: Principal, deployment: Deployment | None = None,
                     call: Call | None = None) -> bytes:
        """A non-streaming `POST /v1/responses`: the Response as JSON bytes. `deployment` skips routing
        (the SDK's direct calls); `call` is the caller's record of this request (the proxy's, with its
        request id), filled in here."""
        call = call or Call(principal, body)
        async with hooked(self.platform.hooks, call):
            body = call.body
            if deployment is None and self.router.takes(body):
                return await self.router.run(body, lambda d, b: self._create_on(b, principal, d, call),
                                             tokens_of=json_tokens)
            return await self._create_on(body, principal, deployment, call)

    async def _create_on(self, body: Any, principal: Principal, deployment: Deployment | None,
                         call: Call) -> bytes:
        """One attempt at `create` on `deployment` (None: the registry's pick)."""
        req, provider = await self._prepare(body, principal, deployment, call)
        if _runs_here(req, provider):
            queued, _ = await self._start_background(req, provider, principal, call)
            return orjson.dumps(queued)
        await self._check_store(req)
        if provider.holds_state:
            result = await provider.create(req)
            self._rewrite_upstream(result, req)
        else:
            result = await provider.create(req)
        if self.platform.hooks.wants_responses:  # output guardrails: may mask, or refuse with a 4xx
            await self.platform.hooks.on_response(call, result)
        raw = orjson.dumps(result)
        await self._persist(req, result, principal)
        call.response_id = req.response_id
        call.response = result
        return raw

    async def stream(self, body: Any, principal: Principal, deployment: Deployment | None = None,
                     call: Call | None = None) -> AsyncIterator[Event]:
        """A streaming `POST /v1/responses`. Errors before the first event raise (the client gets an
        HTTP error, after the router's retries and fallbacks); after it they end the stream with
        `response.failed`."""
        call = call or Call(principal, body, stream=True)
        async with hooked(self.platform.hooks, call, streaming=True):
            body = call.body
            if deployment is None and self.router.takes(body):
                events = await self.router.run(body, lambda d, b: self._stream_on(b, principal, d, call),
                                               stream=True)
            else:
                events = await self._stream_on(body, principal, deployment, call)
        return accounted(self.platform.hooks, events, call) if self.platform.hooks.active else events

    async def _stream_on(self, body: Any, principal: Principal, deployment: Deployment | None,
                         call: Call) -> AsyncIterator[Event]:
        """One attempt at `stream` on `deployment`, up to the first event."""
        req, provider = await self._prepare(body, principal, deployment, call)
        if _runs_here(req, provider):
            # The creating client follows the run like any later reader; leaving does not stop it.
            _, run = await self._start_background(req, provider, principal, call)
            return run.log.follow()
        await self._check_store(req)
        events = provider.stream(req)
        first = await anext(events, None)  # errors up to here become HTTP errors
        if first is None:
            raise BadGatewayError(f"The upstream for model `{req.body['model']}` sent an empty stream.")
        return self._relay(first, events, req, provider, principal)

    async def _start_background(self, req: ProviderRequest, provider: Provider, principal: Principal,
                                call: Call) -> tuple[dict[str, Any], Run]:
        """Store the response as queued (durable before the client hears of it), then start its run.
        The call is accounted when the run reaches its final state, not when `queued` is answered."""
        self.background.check_capacity()
        queued = {**req.shell, "status": "queued"}
        await self._persist(req, queued, principal)
        call.response_id = req.response_id
        defer_accounting(call)

        async def save(response: dict[str, Any], events: Sequence[bytes] | None) -> None:
            await self._persist(req, response, principal, events)
            if response.get("status") not in NON_TERMINAL and call.ended is None:
                call.response = response
                await self.platform.hooks.post_call(call)

        async def read_status() -> str | None:
            record = await self.store.get(req.response_id)
            return record.status if record is not None else None

        return queued, self.background.start(req.response_id, provider.stream(req), req.shell, save, read_status)

    async def _relay(self, first: Event, events: AsyncIterator[Event], req: ProviderRequest,
                     provider: Provider, principal: Principal) -> AsyncIterator[Event]:
        last_response: dict[str, Any] | None = None
        # An upstream's background response must be findable after this client leaves: store it at once.
        stored_early = not (provider.holds_state and req.body.get("background"))
        sent = 0  # events relayed; sequence numbers run 0, 1, 2, ... so this is the next one
        done_items: list[dict[str, Any]] = []  # finished output items, for a client that leaves midway
        ended = False
        ev: Event | None = first
        try:
            while ev is not None:
                if ev.type in LIFECYCLE:  # only these carry the response; deltas pass untouched
                    resp = ev.obj.get("response")
                    if isinstance(resp, dict):
                        if provider.holds_state:
                            self._rewrite_upstream(resp, req)
                            ev.changed()
                        last_response = resp
                        if ev.is_terminal or not stored_early:
                            await self._persist(req, resp, principal)
                            stored_early = True
                elif ev.type == "response.output_item.done":
                    done_items.append(ev.obj["item"])
                ended = ev.is_terminal
                yield ev
                sent += 1
                if ended:
                    return
                ev = await anext(events, None)
        except RespgateError as e:
            failed = self._failed_event(req, last_response, sent, e)
            await self._persist_failed(req, failed.obj["response"], principal)
            ended = True
            yield failed
            return
        finally:
            if not ended and last_response is not None:
                # The client left (or was cut off) after being told the response's id: it must still be
                # retrievable. Shielded, so the cancellation that ended the stream cannot stop the save.
                partial = self._left_midway(req, provider, last_response, done_items)
                with contextlib.suppress(asyncio.CancelledError, ServiceUnavailableError):
                    await asyncio.shield(self._persist(req, partial, principal))
            await _aclose(events)
        # The upstream ended without a terminal event: the client must still learn how it ended.
        failed = self._failed_event(req, last_response, sent,
                                    BadGatewayError("The upstream stream ended before the response finished."))
        await self._persist_failed(req, failed.obj["response"], principal)
        yield failed

    async def _persist_failed(self, req: ProviderRequest, response: dict[str, Any], principal: Principal) -> None:
        """Store a stream's failed end. When the store is what failed (the terminal save raised), the
        client still gets its response.failed saying so, unstored: a broken connection would tell it less."""
        with contextlib.suppress(ServiceUnavailableError):
            await self._persist(req, response, principal)

    @staticmethod
    def _left_midway(req: ProviderRequest, provider: Provider, snapshot: dict[str, Any],
                     done_items: list[dict[str, Any]]) -> dict[str, Any]:
        """What is stored when a streaming client leaves before the end. A stateful upstream keeps going
        and holds the result (GET asks it while the record says in_progress); a response this gateway was
        making stops here, `incomplete`, with the items that had finished."""
        if provider.holds_state:
            return snapshot
        partial = dict(snapshot)
        partial["status"] = "incomplete"
        partial["output"] = list(done_items)
        return partial

    def _failed_event(self, req: ProviderRequest, snapshot: dict[str, Any] | None, seq: int,
                      err: RespgateError) -> Event:
        resp = dict(snapshot or req.shell)
        resp["status"] = "failed"
        resp["error"] = {"code": err.code or "server_error", "message": err.message}
        return Event.of({"type": "response.failed", "sequence_number": seq, "response": resp})

    # -- the shared preparation of create / stream -------------------------------------------------

    async def _prepare(self, body: Any, principal: Principal, deployment: Deployment | None,
                       call: Call | None = None) -> tuple[ProviderRequest, Provider]:
        if not isinstance(body, dict):
            raise InvalidRequestError("The request body must be a JSON object.", param=None, code="invalid_json")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            validate_passthrough(body)  # raises the precise missing/invalid `model` error
        deployment = deployment or self.registry.pick(cast(str, model))
        if call is not None:
            call.deployment = deployment
        provider = self.provider_for(deployment)
        prompt = self.prompts.echo_of(body)  # `prompt` (or LiteLLM's prompt_id): the Response echoes it
        if prompt is not None:
            body = await self.prompts.resolve(body, native=provider.holds_state, principal=principal)
        if provider.holds_state:
            body = validate_passthrough(body)
        else:
            body = validate_create(body, drop_params=self.config.litellm_settings.drop_params)
            if body.get("background") and body.get("store") is False:  # OpenAI's answer, word for word
                raise InvalidRequestError("Background mode requires 'store' to be true.", param="background")
        req = ProviderRequest(deployment=deployment, body=body, response_id="", shell={}, http=self._http,
                              drop_params=bool(deployment.extra.get("drop_params",
                                                                    self.config.litellm_settings.drop_params)))

        in_conversation = await self.conversations.history(body, principal.owner)
        chain = await self._chain(req, provider, principal)
        req.turn_items = normalize_input(body.get("input"))
        if has_local_compaction(req.turn_items):  # our own compaction window: the items it folded, unfolded
            req.turn_items = expand_compactions(req.turn_items)
            if provider.holds_state:  # a foreign encrypted blob would be refused upstream
                req.body = body = {**body, "input": req.turn_items}
        if not provider.holds_state or chain or in_conversation is not None:
            history = chain_items(chain) if in_conversation is None else in_conversation[1]
            turn = resolve_references(req.turn_items, history)
            if in_conversation is not None:
                req.turn_items = turn  # the conversation keeps the items themselves, not references
            req.input_items = fit_window(history, turn, body, deployment) + turn
        if provider.holds_state and in_conversation is not None:
            # The upstream does not know our conversation ids: it gets the items as input instead, and
            # the shell (unused by passthrough otherwise) remembers the conversation to echo and append to.
            req.body = {**{k: v for k, v in body.items() if k != "conversation"}, "input": req.input_items}
            req.shell = {"conversation": {"id": in_conversation[0]}}
        if not provider.holds_state:
            req.response_id = new_local_response_id(deployment.id)
            req.shell = response_shell(body if prompt is None else {**body, "prompt": prompt},
                                       response_id=req.response_id, model=model or "", created_at=time.time())
        elif prompt is not None and "prompt" not in body:  # a registry prompt the upstream never saw
            req.shell["prompt"] = prompt
        if call is not None:
            call.response_id = req.response_id
        return req, self.tools.wrap(provider, req, principal)

    async def _chain(self, req: ProviderRequest, provider: Provider, principal: Principal) -> list[ResponseRecord]:
        """Resolve `previous_response_id`: the upstream's own id when that upstream holds the chain
        (set on `req`), else the stored chain to replay, oldest first."""
        prev_id = req.body.get("previous_response_id")
        if prev_id is None:
            return []
        prev = await self.store.get(prev_id)
        if prev is None or prev.owner != principal.owner:
            raise InvalidRequestError(f"Previous response with id '{prev_id}' not found.",
                                      param="previous_response_id", code="previous_response_not_found")
        ref = decode_response_id(prev_id)
        if provider.holds_state and ref is not None and ref.deployment_id == req.deployment.id:
            req.previous_upstream_id = ref.upstream_id
            return []
        return await self.store.chain(prev_id)

    def _rewrite_upstream(self, resp: dict[str, Any], req: ProviderRequest) -> None:
        """Upstream ids -> ours; the model name the client asked for. Nothing else changes."""
        upstream_id = resp.get("id")
        if isinstance(upstream_id, str) and upstream_id:
            if not req.response_id:  # made once: every event of a stream carries the same id
                req.response_id = encode_response_id(req.deployment.id, upstream_id)
            resp["id"] = req.response_id
        if "model" in resp:
            resp["model"] = req.body["model"]
        if resp.get("previous_response_id") is not None:
            resp["previous_response_id"] = req.body.get("previous_response_id")
        if "conversation" in req.shell:
            resp["conversation"] = req.shell["conversation"]
        if "prompt" in req.shell:
            resp["prompt"] = req.shell["prompt"]

    async def _persist(self, req: ProviderRequest, response: dict[str, Any], principal: Principal,
                       events: Sequence[bytes] | None = None) -> None:
        if req.response_id and "conversation" in req.shell:  # even with store=false: the conversation is state
            await self.conversations.append_turn(req.shell["conversation"]["id"], req.turn_items, response)
        if req.body.get("store") is False or not req.response_id:
            return
        try:
            await self.store.save(self._record(req, response, principal), events)
        except ServiceUnavailableError:
            self._saves_failing = True
            raise
        self._saves_failing = False

    async def _check_store(self, req: ProviderRequest) -> None:
        """While saves are failing, a request that will be stored first checks that the store takes a
        write: a 503 before any upstream work, rather than a stream that must end in response.failed."""
        if self._saves_failing and req.response_id and req.body.get("store") is not False:
            await self.store.check_writable()
            self._saves_failing = False

    @staticmethod
    def _record(req: ProviderRequest, response: dict[str, Any], principal: Principal) -> ResponseRecord:
        return ResponseRecord(
            id=req.response_id, owner=principal.owner, model=req.body["model"],
            deployment_id=req.deployment.id, provider=req.deployment.provider,
            status=str(response.get("status") or "completed"), created_at=float(response.get("created_at") or 0),
            previous_response_id=req.body.get("previous_response_id"), response=response,
            input_items=req.turn_items, background=bool(req.body.get("background")),
        )

    def provider_for(self, deployment: Deployment) -> Provider:
        provider = self.providers.get(deployment.provider)
        if provider is None:
            provider = build_providers({deployment.provider})[deployment.provider]
            self.providers[deployment.provider] = provider
        return provider

    # -- compaction and token counting -------------------------------------------------------------

    async def compact(self, body: Any, principal: Principal, deployment: Deployment | None = None,
                      call: Call | None = None) -> dict[str, Any]:
        call = call or Call(principal, body, route="responses.compact")
        async with hooked(self.platform.hooks, call):
            body = call.body
            if deployment is None and self.router.takes(body):
                result: dict[str, Any] = await self.router.run(
                    body, lambda d, b: self._compact(b, principal, d, call))
            else:
                result = await self._compact(body, principal, deployment, call)
            call.response = result
            return result

    async def _compact(self, body: Any, principal: Principal, deployment: Deployment | None,
                       call: Call) -> dict[str, Any]:
        req, provider = await self._prepare_aux(body, principal, deployment, call)
        if provider.holds_state:
            upstream = dict(req.body)
            upstream["model"] = req.deployment.upstream_model
            if req.previous_upstream_id:
                upstream["previous_response_id"] = req.previous_upstream_id
            elif "previous_response_id" in upstream:
                del upstream["previous_response_id"]
                upstream["input"] = req.input_items
            return await cast(StatefulProvider, provider).compact(req.deployment, upstream, self._require_http())
        general = self.config.general
        if general.compaction_mode == "lossless" or not req.input_items:
            return compact_locally(req.input_items)
        # A model writes the summary: the configured one, else the model asked (on the same deployment).
        model = general.compaction_model or req.body["model"]
        summary = await self.create(summary_request(req.input_items, model), principal,
                                    None if general.compaction_model else deployment)
        return compact_with_summary(req.input_items, orjson.loads(summary))

    async def input_tokens(self, body: Any, principal: Principal, deployment: Deployment | None = None,
                           call: Call | None = None) -> dict[str, Any]:
        call = call or Call(principal, body, route="responses.input_tokens")
        async with hooked(self.platform.hooks, call):
            body = call.body
            if deployment is None and self.router.takes(body):
                counted: dict[str, Any] = await self.router.run(
                    body, lambda d, b: self._input_tokens(b, principal, d, call))
                return counted
            return await self._input_tokens(body, principal, deployment, call)

    async def _input_tokens(self, body: Any, principal: Principal, deployment: Deployment | None,
                            call: Call) -> dict[str, Any]:
        req, provider = await self._prepare_aux(body, principal, deployment, call)
        if provider.holds_state:
            upstream = dict(req.body)
            upstream["model"] = req.deployment.upstream_model
            if req.previous_upstream_id:
                upstream["previous_response_id"] = req.previous_upstream_id
            return await cast(StatefulProvider, provider).input_tokens(req.deployment, upstream,
                                                                       self._require_http())
        return {"object": "response.input_tokens", "input_tokens": count_tokens(req.input_items)}

    async def _prepare_aux(self, body: Any, principal: Principal, deployment: Deployment | None,
                           call: Call) -> tuple[ProviderRequest, Provider]:
        """compact / input_tokens take a subset of create's body; the chain is resolved the same way."""
        if not isinstance(body, dict):
            raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
        body = validate_passthrough(body)
        deployment = deployment or self.registry.pick(body["model"])
        call.deployment = deployment
        provider = self.provider_for(deployment)
        req = ProviderRequest(deployment=deployment, body=body, response_id="", shell={}, http=self._http)
        in_conversation = await self.conversations.history(body, principal.owner)
        chain = await self._chain(req, provider, principal)
        history = chain_items(chain) if in_conversation is None else in_conversation[1]
        req.input_items = history + normalize_input(body.get("input"))
        if in_conversation is not None and provider.holds_state:
            # The upstream does not know our conversation ids: it gets the conversation's items instead.
            req.body = {**{k: v for k, v in body.items() if k != "conversation"}, "input": req.input_items}
        return req, provider

    # -- listing -------------------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        return [{"id": name, "object": "model", "created": 0, "owned_by": group[0].provider}
                for name, group in self.registry.groups().items() if "*" not in name]

    def _require_http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("Gateway.start() was not called")
        return self._http


def _runs_here(req: ProviderRequest, provider: Provider) -> bool:
    """A background response the gateway runs itself (a native upstream runs its own)."""
    return bool(req.body.get("background")) and not provider.holds_state


async def _aclose(it: AsyncIterator[Event]) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()
