#!/usr/bin/env python3
"""`make serve-bench`: `nmt serve` under load on loopback, against `nmt translate --batch-size 32`
on the same sentences, and docs/serving.md from the figures.

For 1, 8 and 64 concurrent clients (each a thread with one keep-alive connection, sending one
sentence per request, the next as soon as the last is answered), it measures sentences/s and
the p50/p99 latency over a bounded number of requests (and at most MAX_SECONDS per level).
The sentences are Multi30k's test_2016_flickr German side, from $NMT_CORPORA/multi30k/.
"""
import gzip
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NMT = os.path.abspath(os.environ.get("NMT_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "nmt"))
MODEL = os.environ.get("NMT_SERVE_MODEL", os.path.join(ROOT, "checkpoints", "demo"))
LEVELS = [(1, 150), (8, 600), (64, 1000)]  # (clients, requests)
MAX_SECONDS = 90
THREADS = "2"


def sentences():
    root = os.environ.get("NMT_CORPORA", os.path.join(ROOT, "corpora"))
    path = os.path.join(root, "multi30k", "test_2016_flickr.de.gz")
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: run `make demo` first (it finds or fetches Multi30k)")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def start_server():
    proc = subprocess.Popen([NMT, "serve", "--model", MODEL, "--port", "0", "--threads", THREADS],
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "serving on http://" in line:
            host, port = line.split("serving on http://")[1].split()[0].rsplit(":", 1)
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, host, int(port)
    sys.exit(f"nmt serve did not start (exit {proc.wait()})")


def load(host, port, texts, clients, requests):
    """Sends `requests` single-sentence requests from `clients` threads; (sent/s, latencies)."""
    lock = threading.Lock()
    next_index = [0]
    latencies = []
    deadline = time.monotonic() + MAX_SECONDS

    def client():
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= requests or time.monotonic() > deadline:
                return
            body = json.dumps({"text": texts[i % len(texts)]})
            t0 = time.monotonic()
            conn.request("POST", "/v1/translate", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            took = time.monotonic() - t0
            if resp.status != 200:
                sys.exit(f"HTTP {resp.status}: {data[:200]!r}")
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    return len(latencies) / elapsed, sorted(latencies)


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def cli_rate(texts):
    """Sentences/s of `nmt translate --batch-size 32` on `texts` (model loading subtracted)."""
    with tempfile.TemporaryDirectory() as d:
        def run(lines):
            path = os.path.join(d, "in.de")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            t0 = time.monotonic()
            subprocess.run([NMT, "translate", "--model", MODEL, "--batch-size", "32",
                            "--threads", THREADS, "--input", path], check=True,
                           stdout=subprocess.DEVNULL)
            return time.monotonic() - t0
        startup = run(texts[:1])
        return len(texts) / (run(texts) - startup)


def main():
    if not os.path.isdir(MODEL):
        sys.exit(f"{MODEL} is missing: run `make demo` (or set NMT_SERVE_MODEL to a model folder)")
    texts = sentences()
    proc, host, port = start_server()
    rows = []
    try:
        for clients, requests in LEVELS:
            load(host, port, texts[:clients], clients, clients)  # warm-up
            rate, lat = load(host, port, texts, clients, requests)
            rows.append((clients, len(lat), rate, percentile(lat, 50), percentile(lat, 99)))
            print(f"{clients:>3} clients: {len(lat)} requests, {rate:.1f} sentences/s, "
                  f"p50 {percentile(lat, 50) * 1e3:.0f} ms, p99 {percentile(lat, 99) * 1e3:.0f} ms",
                  flush=True)
    finally:
        proc.terminate()
        proc.wait()
    batch = cli_rate(texts[:LEVELS[-1][1]])
    print(f"nmt translate --batch-size 32: {batch:.1f} sentences/s", flush=True)
    write_doc(rows, batch)


def cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


API = """## The API

`nmt serve --model DIR|org/name [--model ...]` listens on 127.0.0.1:8080 (`--host`, `--port`;
port 0 picks a free one and prints it). The search flags of `nmt translate` (`--beam`,
`--max-len-ratio`, `--length-penalty`, ...) set the defaults a request may override.

| route | answer |
|---|---|
| `POST /v1/translate` | `{"text": "..."}` or `{"texts": ["...", ...]}`, optional `model` (a name from `/v1/models`; default the first), `beam` (1-64), `n_best` (1..beam), `max_len_ratio`, `min_len`, `length_penalty` (`"none"`, `"average"`, `"gnmt"`), `length_alpha`. Answer: `{"model", "translations": [{"text", "score", "hypotheses": [{"text", "score", "log_prob", "tokens"}, ...]}, ...]}`, one entry per text, in order |
| `GET /v1/models` | each model's name, sizes and default search settings |
| `GET /health` | `{"status": "ok", "models": N}` |
| `GET /metrics` | Prometheus text: `nmt_requests_total{route,status}`, the `nmt_request_seconds` histogram, `nmt_sentences_total`, `nmt_sentences_per_second` (last 10 s), `nmt_batches_total`, `nmt_batch_rows_total`, `nmt_queue_depth` |
| `GET /` | a page with a text box that calls the API (no external assets); `/?text=...` translates at once |

A refused request gets a 4xx status and `{"error": {"field": "beam", "message": "..."}}`. The
field is named for an unknown or ill-typed field, a missing text, beam 0, an n-best above
the beam, a text over `--max-text-chars` (2000) or more texts than `--max-texts` (64).
Malformed JSON gets 400 and a body over `--max-body-bytes` (1 MiB) gets 413, both without a
field. A request not answered within `--timeout-s` (30) gets 503; a job that waited past
its deadline is dropped unsearched. SIGTERM or Ctrl-C stops taking connections, answers the
requests in flight, and exits 0. tests/serve.rs checks each of these, and that a request
searched beside others answers as it does alone.
"""


def write_doc(rows, batch):
    lines = [
        "# Serving: `nmt serve` under load",
        "",
        f"Measured by `make serve-bench` (tools/serve_bench.py) on {time.strftime('%Y-%m-%d')}, "
        f"{cpu()}, {os.cpu_count()} cores, `--threads {THREADS}`, on loopback. The model is "
        "`make demo`'s (2 layers, 256 cells, 8k BPE, de->en), beam 5; every request is one "
        "Multi30k test_2016_flickr sentence, and each client sends its next request as soon as "
        "the last is answered.",
        "",
        "| clients | requests | sentences/s | of `translate --batch-size 32` | p50 latency | p99 latency |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for clients, n, rate, p50, p99 in rows:
        lines.append(f"| {clients} | {n} | {rate:.1f} | {rate / batch:.0%} | {p50 * 1e3:.0f} ms | "
                     f"{p99 * 1e3:.0f} ms |")
    lines += [
        "",
        f"`nmt translate --batch-size 32` on the first {LEVELS[-1][1]} of the same sentences, "
        f"model loading subtracted: {batch:.1f} sentences/s.",
        "",
        "Requests that arrive while a search runs wait in the queue and are searched together "
        "next (up to `--batch-size` sentences, after a `--batch-window-ms` wait, 5 ms by "
        "default), so throughput grows with the clients while one client's latency stays one "
        "search. `nmt translate` sorts a whole file by length before batching; the server "
        "batches whatever arrives together, so its batches hold sentences of more mixed "
        "lengths (more padding).",
        "",
        API,
    ]
    path = os.path.join(ROOT, "docs", "serving.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
