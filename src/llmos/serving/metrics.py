"""Layer 7: server counters, gauges and latency histograms, exposed through prometheus_client.

Requests by final status, HTTP responses by route and code, tokens in/out,
queue depth, requests running now, batch size and per-step time,
time-to-first-token, inter-token and end-to-end latency. Each `Metrics` owns
its own `CollectorRegistry` (never the process-global one), so two servers in
one process count separately.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = CONTENT_TYPE_LATEST
FINAL_STATUSES = ("stop", "length", "cancelled")  # listed at 0 before the first request


class Metrics:
    """Thread-safe (prometheus_client locks each value): the engine thread and the HTTP handlers
    both record here."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("llmos_requests_total", "Engine requests by final status.", ["status"], registry=r)
        for status in FINAL_STATUSES:
            self.requests.labels(status=status)
        self.http = Counter("llmos_http_responses_total", "HTTP responses by route and status code.",
                            ["route", "code"], registry=r)
        self.prompt_tokens = Counter("llmos_prompt_tokens_total", "Prompt tokens received.", registry=r)
        self.cached_prompt_tokens = Counter("llmos_prompt_tokens_cached_total",
                                            "Prompt tokens whose keys and values were found in the prefix "
                                            "cache (not computed again).", registry=r)
        self.generated_tokens = Counter("llmos_generation_tokens_total", "Tokens generated.", registry=r)
        self.queue_depth = Gauge("llmos_queue_depth", "Requests waiting for a batch slot.", registry=r)
        self.running = Gauge("llmos_running_requests", "Requests being decoded now.", registry=r)
        self.running.set_function(lambda: 0)
        self.batch_size = Histogram("llmos_batch_size", "Requests decoded per forward pass.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.step_seconds = Histogram("llmos_decode_step_seconds", "Time per decode step.",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("llmos_time_to_first_token_seconds", "Submit to first token.",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("llmos_inter_token_latency_seconds", "Between consecutive tokens.",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("llmos_request_latency_seconds", "Submit to finish.",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.started = time.time()

    def track_running(self, count: Callable[[], int]) -> None:
        """Read the running-requests gauge from `count` at each scrape (the engine's live rows)."""
        self.running.set_function(count)

    def http_response(self, route: str, status: int) -> None:
        self.http.labels(route=route, code=str(status)).inc()

    def tokens_in(self, n: int) -> None:
        self.prompt_tokens.inc(n)

    def tokens_cached(self, n: int) -> None:
        self.cached_prompt_tokens.inc(n)

    def tokens_out(self, n: int) -> None:
        self.generated_tokens.inc(n)

    def set_queue_depth(self, n: int) -> None:
        self.queue_depth.set(n)

    def rejected_queue_full(self) -> None:
        self.requests.labels(status="rejected_queue_full").inc()

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.step_seconds.observe(seconds)

    def observe_ttft(self, seconds: float) -> None:
        self.ttft.observe(seconds)

    def observe_itl(self, seconds: float) -> None:
        self.itl.observe(seconds)

    def finished(self, status: str, request) -> None:
        self.requests.labels(status=status).inc()
        self.e2e.observe(time.perf_counter() - request.created)

    def render(self) -> str:
        """The Prometheus text exposition of this server's metrics."""
        return generate_latest(self.registry).decode("utf-8")
