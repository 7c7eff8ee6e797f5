"""Bot-shaped load on `llmos serve` and on llama.cpp's server, the same GGUF, in one run.

Bots and agents send the same long system prompt (policy, tool descriptions) on every call and
their whole history again at each turn. Each client here holds a chat of --turns turns behind a
system prompt of about --system-tokens tokens, streaming, greedy, --reply-tokens tokens a reply;
all clients start together. Two kinds of load: every client behind the same system prompt
("shared"), and each behind its own ("different"). Servers run one after the other on the same
machine, each started fresh:

- LLMOS: `llmos serve smollm2` with its default flags (the embedded SmolLM2-135M-Instruct GGUF);
- llama.cpp: llama-cpp-python's server (`python -m llama_cpp.server`, built once into
  ~/.cache/llmos/peers by `decode_vs_llamacpp.py`'s builder) on the same file, 2 threads,
  `--interrupt_requests False`, its context --llama-ctx tokens.

Per server and load it prints the wall time, time to first token (p50 / p99 over every turn of
every client), the inter-token gap p99, failures, and the server's memory (RSS) after start and at
its peak. Our goals: shared prompt, 8 clients x 3 turns: wall <= 0.5x llama.cpp's, TTFT p99 <= 1.5 s,
inter-token p99 <= 250 ms; different prompts: wall <= 0.5x llama.cpp's; 32 clients: no failures,
memory within the KV budget; `llmos serve smollm2` with default flags: RSS <= 1 GB after start.

    .venv/bin/python benchmarks/serve_bots.py                        # 8 clients, both loads, both servers
    .venv/bin/python benchmarks/serve_bots.py --clients 1 8 32 --servers llmos
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

POLICY = [
    "You are the support assistant of Northwind Cycles, a bicycle shop with three stores.",
    "Answer in one or two short sentences, in the customer's language, and never invent facts.",
    "Refunds are possible within 30 days with a receipt; store credit is offered after that.",
    "Repairs are booked in 30-minute slots between 9:00 and 17:30, Monday to Saturday.",
    "A standard service costs 49 euros and includes brakes, gears, chain and tyre pressure.",
    "Electric bikes get a battery check and a firmware update at every service.",
    "Never ask for a full card number, a password or a security code.",
    "If a customer is angry, apologise once, then solve the problem or hand over to a person.",
]
TOOLS = [
    ("lookup_order", "Find an order by its number (8 digits) and return its items, status and delivery date."),
    ("check_stock", "Check how many of a part (by name or SKU) each store has, and when more arrive."),
    ("book_repair", "Book a repair slot: the store, the day, the time and a one-line description."),
    ("cancel_booking", "Cancel a booked repair by its booking code (6 letters)."),
    ("store_hours", "Opening hours of a store, including holidays."),
    ("price_quote", "A price for a list of parts and the labour to fit them."),
]
QUESTIONS = [
    ["Do you have 700x28c inner tubes?", "How much is a standard service?", "Can I book it for Saturday?"],
    ["Where is my order 12345678?", "It was due yesterday.", "Can I get a refund then?"],
    ["My e-bike battery drains fast.", "Is the check included in a service?", "Book me in on Tuesday."],
    ["What time do you close today?", "And on Sunday?", "Thanks, see you Monday."],
]


def system_prompt(target_tokens: int, client: int | None) -> str:
    """~target_tokens of policy and tool descriptions; `client` set: a different prompt per client
    (its first words differ, so no prefix is shared)."""
    head = f"Deployment {client}: support bot for store {client % 3 + 1}.\n" if client is not None else ""
    lines = [head + "Policy:"] + [f"- {p}" for p in POLICY] + ["Tools you may call:"]
    lines += [f"- {name}: {what}" for name, what in TOOLS]
    text = "\n".join(lines)
    while len(text.split()) * 1.35 < target_tokens:  # ~1.35 tokens a word for this text
        text += "\n" + "\n".join(f"- {p}" for p in POLICY)
    return text


class Client(threading.Thread):
    def __init__(self, url: str, model: str, system: str, questions: list[str], reply_tokens: int) -> None:
        super().__init__(daemon=True)
        self.url, self.model, self.reply_tokens = url, model, reply_tokens
        self.messages = [{"role": "system", "content": system}]
        self.questions = questions
        self.ttft: list[float] = []
        self.gaps: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        import json

        with httpx.Client(timeout=600) as http:
            for question in self.questions:
                self.messages.append({"role": "user", "content": question})
                body = {"model": self.model, "messages": self.messages, "stream": True, "temperature": 0,
                        "max_tokens": self.reply_tokens}
                reply, start, last = "", time.perf_counter(), None
                try:
                    with http.stream("POST", self.url + "/v1/chat/completions", json=body) as response:
                        if response.status_code != 200:
                            response.read()
                            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                        for line in response.iter_lines():
                            if not line.startswith("data: ") or line == "data: [DONE]":
                                continue
                            choices = json.loads(line[6:]).get("choices") or [{}]
                            piece = (choices[0].get("delta") or {}).get("content")
                            if not piece:
                                continue
                            now = time.perf_counter()
                            if last is None:
                                self.ttft.append(now - start)
                            else:
                                self.gaps.append(now - last)
                            last, reply = now, reply + piece
                except Exception as exc:  # counted, reported
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                self.messages.append({"role": "assistant", "content": reply})


def rss_mb(pid: int) -> float:
    total = 0.0
    for p in [pid, *child_pids(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def child_pids(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in children]


class Server:
    def __init__(self, name: str, command: list[str], port: int, model: str) -> None:
        self.name, self.command, self.port, self.model = name, command, port, model
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Server:
        # stderr to a file: a pipe nobody reads fills up (llama.cpp logs every request) and stalls the server
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=self.log,
                                     env={**os.environ, "OMP_NUM_THREADS": "2"})
        deadline = time.time() + 600
        while True:
            try:
                if httpx.get(self.url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.name} exited: {self.log.read().decode(errors='replace')[-2000:]}")
            if time.time() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.5)
        warm = {"model": self.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                "temperature": 0}
        # first-call costs (LLMOS: the compiled decode step, for one row and for several): one request
        # alone, then four together, before anything is timed
        httpx.post(self.url + "/v1/chat/completions", json=warm, timeout=600)
        together = [threading.Thread(target=httpx.post, args=(self.url + "/v1/chat/completions",),
                                     kwargs={"json": {**warm, "max_tokens": 8}, "timeout": 600}) for _ in range(4)]
        for thread in together:
            thread.start()
        for thread in together:
            thread.join()
        time.sleep(1.0)
        self.rss_start = rss_mb(self.proc.pid)
        self.rss_peak = self.rss_start
        self.watching = True
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def _watch(self) -> None:
        while self.watching:
            self.rss_peak = max(self.rss_peak, rss_mb(self.proc.pid))
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.watching = False
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_load(server: Server, clients: int, shared: bool, args) -> dict:
    threads = [Client(server.url, server.model, system_prompt(args.system_tokens, None if shared else i),
                      QUESTIONS[i % len(QUESTIONS)][:args.turns], args.reply_tokens) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ttft = sorted(x for t in threads for x in t.ttft)
    gaps = sorted(x for t in threads for x in t.gaps)
    failures = [f for t in threads for f in t.failures]

    def pct(values, q):
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    return {"wall": wall, "ttft50": statistics.median(ttft) if ttft else float("nan"), "ttft99": pct(ttft, 0.99),
            "itl99": pct(gaps, 0.99), "failures": failures, "rss_start": server.rss_start,
            "rss_peak": server.rss_peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[8])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--reply-tokens", type=int, default=24)
    parser.add_argument("--system-tokens", type=int, default=530)
    parser.add_argument("--loads", nargs="+", default=["shared", "different"], choices=["shared", "different"])
    parser.add_argument("--servers", nargs="+", default=["llmos", "llama.cpp"], choices=["llmos", "llama.cpp"])
    parser.add_argument("--llama-ctx", type=int, default=4096)
    parser.add_argument("--llmos-args", default="", help="extra flags for llmos serve")
    args = parser.parse_args()

    from decode_vs_llamacpp import llama_cpp_python
    from live_server import free_port

    from llmos.kernels.choice import cpu_name
    from llmos.model_names import resolve_model

    path = resolve_model("smollm2").path
    flags = sorted({f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for f in line.split(":", 1)[1].split() if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16",
                                                                     "amx_int8")})
    print(f"{cpu_name()}, {os.cpu_count()} cores, flags: {' '.join(flags)}; SmolLM2-135M-Instruct ({path.name}); "
          f"system prompt ~{args.system_tokens} tokens, {args.turns} turns x {args.reply_tokens} tokens, greedy, "
          "streaming", flush=True)
    servers = {}
    if "llmos" in args.servers:
        llmos = [str(Path(sys.executable).parent / "llmos"), "serve", "smollm2", *args.llmos_args.split()]
        servers["llmos"] = lambda port: Server("LLMOS", [*llmos, "--port", str(port), "--threads", "2"], port,
                                               "smollm2")
    if "llama.cpp" in args.servers:
        python = llama_cpp_python(build=True, server=True)
        servers["llama.cpp"] = lambda port: Server(
            "llama.cpp", [str(python), "-m", "llama_cpp.server", "--model", str(path), "--model_alias", "smollm2",
                          "--port", str(port), "--n_ctx", str(args.llama_ctx), "--n_threads", "2",
                          "--n_threads_batch", "2", "--interrupt_requests", "False"], port, "smollm2")
    results = {}
    for name, make in servers.items():
        for clients in args.clients:
            for load in args.loads:
                with make(free_port()) as server:
                    results[(name, clients, load)] = r = run_load(server, clients, load == "shared", args)
                print(f"{name:9} {clients:3} clients {load:9}: wall {r['wall']:6.1f} s  TTFT p50 {r['ttft50']:5.2f} "
                      f"/ p99 {r['ttft99']:5.2f} s  inter-token p99 {1000 * r['itl99']:7.0f} ms  failures "
                      f"{len(r['failures'])}  RSS {r['rss_start']:5.0f} -> {r['rss_peak']:5.0f} MB", flush=True)
                for failure in r["failures"][:3]:
                    print("   ", failure)
    print("\nratios against llama.cpp measured in this run (wall time, lower is better):")
    for (name, clients, load), r in results.items():
        peer = results.get(("llama.cpp", clients, load))
        if name != "llama.cpp" and peer:
            print(f"  {clients} clients, {load}: LLMOS {r['wall']:.1f} s / llama.cpp {peer['wall']:.1f} s = "
                  f"{r['wall'] / peer['wall']:.2f}x")


if __name__ == "__main__":
    main()
