"""Load test for `jielong serve` (standard library only, loopback only, bounded in time).

For each concurrency N, N client threads stream chat completions back to back for a fixed
number of seconds. Reports aggregate generated tokens/s (from the servers' usage chunks), time
to first token and inter-token latency (p50, p99, measured at the client from SSE events), and
errors (0 expected).

    python3 bench/serve_load.py --url http://127.0.0.1:8080 --clients 1,4,16,64 --seconds 10
"""
import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlparse


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def client(host, port, key, max_tokens, deadline, out, i):
    body = json.dumps({
        "messages": [{"role": "user", "content": f"Step {i}: the model reads"}],
        "max_tokens": max_tokens, "temperature": 0.8, "seed": i, "ignore_eos": True,
        "stream": True, "stream_options": {"include_usage": True},
    })
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=120)
            t0 = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", body, headers)
            r = conn.getresponse()
            if r.status != 200:
                out["errors"] += 1
                r.read()
                continue
            last = None
            while True:
                line = r.readline()
                if not line:
                    break
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                now = time.perf_counter()
                if chunk.get("usage"):
                    out["tokens"] += chunk["usage"]["completion_tokens"]
                for c in chunk.get("choices", []):
                    if c.get("delta", {}).get("content"):
                        if last is None:
                            out["ttft"].append(now - t0)
                        else:
                            out["itl"].append(now - last)
                        last = now
            conn.close()
        except (OSError, http.client.HTTPException, ValueError):
            out["errors"] += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--key", default="")
    ap.add_argument("--clients", default="1,4,16,64")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--max-tokens", type=int, default=64)
    a = ap.parse_args()
    u = urlparse(a.url)
    assert u.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
    print("| clients | tokens/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for n in [int(x) for x in a.clients.split(",")]:
        out = {"tokens": 0, "ttft": [], "itl": [], "errors": 0}
        deadline = time.time() + a.seconds
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(u.hostname, u.port, a.key, a.max_tokens, deadline, out, i)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - t0
        ms = lambda x: f"{x * 1000:.1f}"
        print(f"| {n} | {out['tokens'] / took:.0f} | {ms(pct(out['ttft'], 50))} | {ms(pct(out['ttft'], 99))} | "
              f"{ms(pct(out['itl'], 50))} | {ms(pct(out['itl'], 99))} | {out['errors']} |", flush=True)


if __name__ == "__main__":
    main()
