"""Layer 7: server counters and latency histograms, rendered as Prometheus text.

Written by hand (a few counters and histograms do not need a client library):
requests by final status, tokens in/out, queue depth, batch size and
per-step time, time-to-first-token, inter-token and end-to-end latency.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def render(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.n}')
        lines += [f"{name}_sum {self.total:.6f}", f"{name}_count {self.n}"]
        return lines


class Metrics:
    """Thread-safe: the engine thread and the HTTP handlers both record here."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # final status -> count
        self.http: Counter[tuple[str, int]] = Counter()  # (route, status) -> count
        self.prompt_tokens = 0
        self.generated_tokens = 0
        self.queue_depth = 0
        self.running = 0
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.step_seconds = Histogram(LATENCY_BUCKETS)
        self.ttft = Histogram(LATENCY_BUCKETS)
        self.itl = Histogram(LATENCY_BUCKETS)
        self.e2e = Histogram(LATENCY_BUCKETS)
        self.started = time.time()

    def http_response(self, route: str, status: int) -> None:
        with self.lock:
            self.http[(route, status)] += 1

    def tokens_in(self, n: int) -> None:
        with self.lock:
            self.prompt_tokens += n

    def tokens_out(self, n: int) -> None:
        with self.lock:
            self.generated_tokens += n

    def set_queue_depth(self, n: int) -> None:
        with self.lock:
            self.queue_depth = n

    def rejected_queue_full(self) -> None:
        with self.lock:
            self.requests["rejected_queue_full"] += 1

    def observe_batch(self, size: int, seconds: float) -> None:
        with self.lock:
            self.running = size
            self.batch_size.observe(size)
            self.step_seconds.observe(seconds)

    def observe_ttft(self, seconds: float) -> None:
        with self.lock:
            self.ttft.observe(seconds)

    def observe_itl(self, seconds: float) -> None:
        with self.lock:
            self.itl.observe(seconds)

    def finished(self, status: str, request) -> None:
        with self.lock:
            self.requests[status] += 1
            self.e2e.observe(time.perf_counter() - request.created)

    def render(self) -> str:
        with self.lock:
            lines = ["# HELP llmos_requests_total Engine requests by final status.",
                     "# TYPE llmos_requests_total counter"]
            for status in sorted(set(self.requests) | {"stop", "length", "cancelled"}):
                lines.append(f'llmos_requests_total{{status="{status}"}} {self.requests[status]}')
            lines += ["# HELP llmos_http_responses_total HTTP responses by route and status code.",
                      "# TYPE llmos_http_responses_total counter"]
            for (route, code), count in sorted(self.http.items()):
                lines.append(f'llmos_http_responses_total{{route="{route}",code="{code}"}} {count}')
            lines += [
                "# HELP llmos_prompt_tokens_total Prompt tokens received.",
                "# TYPE llmos_prompt_tokens_total counter",
                f"llmos_prompt_tokens_total {self.prompt_tokens}",
                "# HELP llmos_generation_tokens_total Tokens generated.",
                "# TYPE llmos_generation_tokens_total counter",
                f"llmos_generation_tokens_total {self.generated_tokens}",
                "# HELP llmos_queue_depth Requests waiting for a batch slot.",
                "# TYPE llmos_queue_depth gauge",
                f"llmos_queue_depth {self.queue_depth}",
                "# HELP llmos_running_requests Requests in the last decode batch.",
                "# TYPE llmos_running_requests gauge",
                f"llmos_running_requests {self.running}",
            ]
            lines += self.batch_size.render("llmos_batch_size", "Requests decoded per forward pass.")
            lines += self.step_seconds.render("llmos_decode_step_seconds", "Time per decode step.")
            lines += self.ttft.render("llmos_time_to_first_token_seconds", "Submit to first token.")
            lines += self.itl.render("llmos_inter_token_latency_seconds", "Between consecutive tokens.")
            lines += self.e2e.render("llmos_request_latency_seconds", "Submit to finish.")
        return "\n".join(lines) + "\n"
