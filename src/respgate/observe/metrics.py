"""Prometheus metrics under LiteLLM's names, in a registry of this instance's own.

Names and labels follow LiteLLM's `prometheus` callback where it has the metric (dashboards built for
LiteLLM keep working); respgate adds `respgate_*` for what LiteLLM does not count (cached and reasoning
tokens). Labels are bounded: model groups, deployments, key alias and the first 12 characters of the
key's hash, team, status — never request ids, users' free text or end users.

Counting is on the request path (post_call), so a call does as little as it can there: one dict
lookup finds its label sets (a `_Route`), and its figures (tokens, cost, latency, time to first token)
are appended to that route's list as one tuple. Every `_FOLD_AT` calls, and before any flush, a route
adds its list up column by column (`sum` over `zip`, in C) into plain per-series sums; `flush()` moves
those into prometheus_client's values, at each scrape (`render`) and, with several worker processes,
every second (observe/__init__.py), since each worker's values must reach the shared files. Everything
runs on the event loop's thread, so nothing is lost between adding and flushing.

Several worker processes: set PROMETHEUS_MULTIPROC_DIR (as for LiteLLM) before start; each process
then writes its values to that directory and `/metrics` serves their sum.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..calls import Call, Tokens

# LiteLLM's LATENCY_BUCKETS (seconds), so histograms line up with LiteLLM's dashboards.
LATENCY_BUCKETS: Final = (
    0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5,
    7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0, float("inf"),
)
KEY_PREFIX_CHARS: Final = 12
MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

_USAGE_LABELS = ("requested_model", "model", "hashed_api_key", "api_key_alias", "team")
_PROXY_LABELS = ("requested_model", "model_id", "hashed_api_key", "api_key_alias", "team", "status_code", "status")
_FAILED_LABELS = ("requested_model", "hashed_api_key", "api_key_alias", "team", "exception_status",
                  "exception_class")
_DEPLOYMENT_LABELS = ("requested_model", "litellm_model_name", "model_id", "api_provider")
_EXCEPTION_LABELS = ("exception_status", "exception_class")

Inc = Callable[[float], None]
# positions in a usage series
_REQUESTS, _SPEND, _INPUT, _OUTPUT, _TOTAL, _CACHED, _REASONING = range(7)
_FOLD_AT: Final = 256  # calls a route keeps before adding them up
_bucket_of = partial(bisect_left, LATENCY_BUCKETS)
# One ended call's figures: tokens, cost, seconds to its end, seconds to its first stream event.
Ended = tuple[Tokens | None, float | None, float | None, float | None]


def _inc(child: Any) -> Inc:
    """A counter child's increment without the public method's per-call checks (sums are >= 0)."""
    fast = getattr(getattr(child, "_value", None), "inc", None)
    return fast if callable(fast) else child.inc  # type: ignore[no-any-return]


class _Series:
    """Pending sums of some counters of one label set."""

    __slots__ = ("incs", "pending")

    def __init__(self, children: list[Any]) -> None:
        self.incs = [_inc(c) for c in children]
        self.pending = [0.0] * len(children)

    def flush(self) -> None:
        pending = self.pending
        for i, value in enumerate(pending):
            if value:
                self.incs[i](value)
                pending[i] = 0.0


class _Histogram:
    """Pending observations of one histogram child, by bucket (found by bisect)."""

    __slots__ = ("_buckets", "_child", "_count", "_sum", "counts", "total")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.counts = [0] * len(LATENCY_BUCKETS)
        self.total = 0.0
        try:
            self._buckets: list[Inc] | None = [b.inc for b in child._buckets]
            self._sum: Inc | None = child._sum.inc
        except AttributeError:  # a prometheus_client without these internals: its public observe, at once
            self._buckets = self._sum = None

    def observe_many(self, amounts: Iterable[float | None]) -> None:
        durations = [a for a in amounts if a is not None and a >= 0]  # not NaN, not negative
        if self._buckets is None:
            for a in durations:
                self._child.observe(a)
            return
        counts = self.counts
        for i, n in Tally(map(_bucket_of, durations)).items():
            counts[i] += n
        self.total += sum(durations)

    def flush(self) -> None:
        counts = self.counts
        if self._buckets is None or self._sum is None or not any(counts):
            return
        for i, n in enumerate(counts):
            if n:
                self._buckets[i](n)
                counts[i] = 0
        self._sum(self.total)
        self.total = 0.0


class _Usage:
    __slots__ = ("counters", "latency", "ttft")

    def __init__(self, counters: _Series, latency: _Histogram, ttft: _Histogram) -> None:
        self.counters = counters
        self.latency = latency
        self.ttft = ttft


class _Route:
    """The series one combination of model, deployment, key and outcome counts into, and its calls not
    yet added up. Whether its calls failed, and whether they have a Response, is part of the combination
    (the HTTP status and the Response's status are labels), so it is the route's, not each call's."""

    __slots__ = ("deployment", "deployment_labels", "ended", "failed", "labels", "proxy", "usage")

    def __init__(self, labels: tuple[str, ...], proxy: _Series, deployment: _Series | None,
                 deployment_labels: tuple[str, ...], usage: _Usage | None, failed: bool) -> None:
        self.labels = labels  # the proxy series' labels
        self.proxy = proxy
        self.deployment = deployment
        self.deployment_labels = deployment_labels
        self.usage = usage  # None: its calls have no Response
        self.failed = failed
        self.ended: list[Ended] = []

    def fold(self) -> None:
        """Adds up the calls kept so far."""
        ended, self.ended = self.ended, []
        n = len(ended)
        if not n:
            return
        self.proxy.pending[0] += n
        if self.deployment is not None:
            self.deployment.pending[0] += n
            if not self.failed:
                self.deployment.pending[1] += n
        u = self.usage
        if u is None:
            return
        tokens, costs, latencies, ttfts = zip(*ended, strict=True)
        pending = u.counters.pending
        pending[_REQUESTS] += n
        counted = [t for t in tokens if t is not None]
        if counted:
            inp, out, total, cached, _, reasoning = map(sum, zip(*counted, strict=True))
            pending[_INPUT] += inp
            pending[_OUTPUT] += out
            pending[_TOTAL] += total
            pending[_CACHED] += cached
            pending[_REASONING] += reasoning
        pending[_SPEND] += sum(c for c in costs if c is not None and c > 0)
        u.latency.observe_many(latencies)
        u.ttft.observe_many(ttfts)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def histogram(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(name, doc, labels, registry=r, buckets=LATENCY_BUCKETS)

        self.proxy_requests = counter("litellm_proxy_total_requests_metric",
                                      "Requests made to the proxy, by status", _PROXY_LABELS)
        self.proxy_failed = counter("litellm_proxy_failed_requests_metric",
                                    "Requests that did not end in a successful response", _FAILED_LABELS)
        self._usage_counters = (  # in _Series order: _REQUESTS, _SPEND, _INPUT, ...
            counter("litellm_requests_metric", "Calls that reached a deployment", _USAGE_LABELS),
            counter("litellm_spend_metric", "Spend in USD", _USAGE_LABELS),
            counter("litellm_input_tokens_metric", "Input tokens", _USAGE_LABELS),
            counter("litellm_output_tokens_metric", "Output tokens", _USAGE_LABELS),
            counter("litellm_total_tokens_metric", "Input + output tokens", _USAGE_LABELS),
            counter("respgate_cached_tokens_metric", "Input tokens read from the cache", _USAGE_LABELS),
            counter("respgate_reasoning_tokens_metric", "Reasoning tokens (part of output)", _USAGE_LABELS),
        )
        self.latency = histogram("litellm_request_total_latency_metric",
                                 "Seconds from the request's arrival to its end", _USAGE_LABELS)
        self.ttft = histogram("litellm_llm_api_time_to_first_token_metric",
                              "Seconds to the first stream event (streams only)", _USAGE_LABELS)
        self.deployment_total = counter("litellm_deployment_total_requests", "Calls per deployment",
                                        _DEPLOYMENT_LABELS)
        self.deployment_success = counter("litellm_deployment_success_responses", "Successful calls per deployment",
                                          _DEPLOYMENT_LABELS)
        self.deployment_failure = counter("litellm_deployment_failure_responses", "Failed calls per deployment",
                                          _DEPLOYMENT_LABELS + _EXCEPTION_LABELS)
        self._usage: dict[tuple[str, ...], _Usage] = {}
        self._proxy: dict[tuple[str, ...], _Series] = {}
        self._deployments: dict[tuple[str, ...], _Series] = {}  # total, success
        # (model, deployment id, key, alias, team, HTTP status, status) -> its series: one lookup per call
        self._routes: dict[tuple[Any, ...], _Route] = {}

    def observe(self, call: Call) -> None:
        """Counts one finished call (post_call)."""
        p = call.principal
        d = call.deployment
        error = call.error
        route_key = (call.model, d.id if d is not None else "", p.token, p.key_alias, p.team_id,
                     error.status if error is not None else 200, call.status)
        route = self._routes.get(route_key)
        if route is None:
            route = self._routes[route_key] = self._new_route(call, route_key[-1])
        if route.failed:
            self._count_failure(call, route)
        ended, first = call.ended, call.first_event
        route.ended.append((call.tokens, call.cost, ended - call.started if ended is not None else None,
                            first - call.started if first is not None and call.stream else None))
        if len(route.ended) >= _FOLD_AT:
            route.fold()

    def _count_failure(self, call: Call, route: _Route) -> None:
        exception = _exception(call)
        self.proxy_failed.labels(call.model, *route.labels[2:5], *exception).inc()
        if route.deployment is not None:
            self.deployment_failure.labels(*route.deployment_labels, *exception).inc()

    def _new_route(self, call: Call, status: str) -> _Route:
        """The series a combination of model, deployment, key and outcome counts into (shared with every
        other combination that has the same labels)."""
        p = call.principal
        d = call.deployment
        requested = call.model
        key, alias, team = p.token[:KEY_PREFIX_CHARS], p.key_alias or "", p.team_id or ""
        code = str(call.error.status) if call.error is not None else "200"
        labels = (requested, d.id if d is not None else "", key, alias, team, code, status)
        proxy = self._proxy.get(labels)
        if proxy is None:
            proxy = self._proxy[labels] = _Series([self.proxy_requests.labels(*labels)])
        deployment: _Series | None = None
        deployment_labels: tuple[str, ...] = ()
        if d is not None:
            deployment_labels = (requested, d.upstream_model, d.id, d.provider)
            deployment = self._deployments.get(deployment_labels)
            if deployment is None:
                deployment = self._deployments[deployment_labels] = _Series(
                    [self.deployment_total.labels(*deployment_labels),
                     self.deployment_success.labels(*deployment_labels)])
        usage = None
        if call.response is not None:  # status "error": no Response, no usage series
            usage = self._usage_of((requested, d.upstream_model if d is not None else "", key, alias, team))
        return _Route(labels, proxy, deployment, deployment_labels, usage,
                      failed=call.error is not None or status == "failed")

    def _usage_of(self, labels: tuple[str, ...]) -> _Usage:
        """A usage series, made when the first call with a Response has its labels."""
        usage = self._usage.get(labels)
        if usage is None:
            usage = self._usage[labels] = self._new_usage(labels)
        return usage

    def _new_usage(self, labels: tuple[str, ...]) -> _Usage:
        return _Usage(_Series([c.labels(*labels) for c in self._usage_counters]),
                      _Histogram(self.latency.labels(*labels)), _Histogram(self.ttft.labels(*labels)))

    def flush(self) -> None:
        """Moves what calls added into prometheus_client's values."""
        for route in self._routes.values():
            route.fold()
        for series in self._proxy.values():
            series.flush()
        for series in self._deployments.values():
            series.flush()
        for u in self._usage.values():
            u.counters.flush()
            u.latency.flush()
            u.ttft.flush()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type; the sum over worker processes in multiprocess mode."""
        self.flush()
        if os.environ.get(MULTIPROCESS_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _exception(call: Call) -> tuple[str, str]:
    """(exception_status, exception_class) of a failed call, as LiteLLM labels them."""
    e = call.error
    if e is not None:
        return str(e.status), type(e).__name__
    err = (call.response or {}).get("error")
    code = err.get("code") if isinstance(err, dict) else None
    return "", str(code or "ResponseFailed")
