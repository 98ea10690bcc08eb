#!/usr/bin/env python3
"""Load test for `d2c serve` (Python standard library only).

Starts `target/release/d2c serve` on a free port with the shipped model (unless --base-url is
given), sends N concurrent clients x M requests of the task language (completions, a mix of
policies), checks every answer against the task's exact answer, and compares the throughput
with the same requests sent one at a time. Prints a Markdown table; `batch` is the mean over
requests of the most requests that shared a forward with each.

    cargo build --release && python3 scripts/bench-serve.py --clients 32 --requests 8
"""
import argparse, json, random, statistics, subprocess, sys, threading, time, urllib.request

KINDS = ["add", "sort", "reverse", "copy"]


def task(rng):
    kind = rng.choice(KINDS)
    if kind == "add":
        a, b = rng.randrange(100), rng.randrange(100)
        return f"{a:02} + {b:02} =", f"{a + b:03}"
    if kind == "sort":
        xs = [rng.randrange(10) for _ in range(5)]
        return "sort " + " ".join(map(str, xs)) + " =", " ".join(map(str, sorted(xs)))
    xs = [rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5)]
    out = xs[::-1] if kind == "reverse" else xs
    return f"{kind} " + " ".join(xs) + " =", " ".join(out)


def post(base, body):
    req = urllib.request.Request(base + "/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        v = json.load(r)
    return v, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=8, help="per client")
    ap.add_argument("--policies", default="d2cache,vanilla,fast-dllm-dual")
    ap.add_argument("--base-url", default=None, help="a running server (default: start one)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    server = None
    base = a.base_url
    if base is None:
        server = subprocess.Popen(["target/release/d2c", "serve", "--port", "0", "--queue", str(a.clients * 2)], stderr=subprocess.PIPE, text=True)
        line = server.stderr.readline()
        base = "http://" + line.split("http://")[1].split()[0]
    policies = a.policies.split(",")
    rng = random.Random(a.seed)
    jobs = [[(task(rng), policies[(c + r) % len(policies)]) for r in range(a.requests)] for c in range(a.clients)]
    results, lock = [], threading.Lock()

    def client(my):
        for (prompt, want), policy in my:
            try:
                v, dt = post(base, {"prompt": prompt, "policy": policy})
                got, shared = v["choices"][0]["text"], v["d2c"]["batch"]
            except Exception as e:  # counted as lost
                got, dt, shared = f"error: {e}", float("nan"), 0
            with lock:
                results.append((policy, got == want, dt, shared))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    concurrent_s = time.perf_counter() - t0
    # The same requests one at a time (the first 64, to keep the run short).
    flat = [x for j in jobs for x in j][:64]
    t0 = time.perf_counter()
    for (prompt, _), policy in flat:
        post(base, {"prompt": prompt, "policy": policy})
    seq_rps = len(flat) / (time.perf_counter() - t0)
    total = a.clients * a.requests
    ok = sum(1 for _, c, _, _ in results if c)
    lat = sorted(dt for _, _, dt, _ in results if dt == dt)
    shared = [b for _, _, _, b in results if b]
    batch = sum(shared) / max(1, len(shared))
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    rps = total / concurrent_s
    print(f"| clients x requests | policies | answered | correct | lost | req/s concurrent | req/s sequential | ratio | p50 latency | p99 latency | batch |")
    print(f"|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {a.clients} x {a.requests} | {len(policies)} | {len(results)} | {ok} | {total - len(results)} | {rps:.1f} | {seq_rps:.1f} | {rps / seq_rps:.2f}x | {p(0.5) * 1000:.0f} ms | {p(0.99) * 1000:.0f} ms | {batch:.1f} |")
    if server:
        server.terminate()
        server.wait(timeout=60)
    sys.exit(0 if ok == total else 1)


if __name__ == "__main__":
    main()
