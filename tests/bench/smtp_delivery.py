#!/usr/bin/python3
"""smtp_delivery.py - delivery throughput of ternd, for docs/performance.md.

Starts a throwaway slapd and ternd exactly as the integration tests do
(tests/integration/harness.py), sends N messages of SIZE bytes over C
concurrent SMTP connections (threads speaking raw, pipelined SMTP; each
connection sends several messages), and measures messages/s from the
first connect to the last 250, plus the latency from the end of DATA
(the final ".") to its 250, which includes the synced LMDB commit. It
runs twice, with [storage] group_commit = yes and = no, and prints a
Markdown table. Only 127.0.0.1 is used; everything it starts is stopped
by PID before it exits, also on Ctrl-C or an error. A run stops at
--max-seconds and reports what it has (marked "partial").

Usage: smtp_delivery.py --ternd build/ternd [-n 2000] [-c 50] [--size 10240]
       smtp_delivery.py -c 1,10,50 --modes yes   (one row per concurrency)
"""
import argparse
import os
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self):
        while True:
            i = self.buf.find(b"\r\n")
            while i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                if line[3:4] != b"-":
                    return int(line[:3]), line
                i = self.buf.find(b"\r\n")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk

    def expect(self, code):
        got, line = self.reply()
        if got != code:
            raise RuntimeError("expected %d, got %r" % (code, line))


def make_body(size, n):
    head = ("From: <bench@example.org>\r\nTo: <bench@example.test>\r\n"
            "Subject: bench %d\r\nMessage-ID: <bench-%d-%f@example.org>\r\n\r\n"
            % (n, n, time.time())).encode()
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = (line * (size // len(line) + 1))[:max(0, size - len(head) - 2)]
    return head + body + b"\r\n"


def run_once(ternd_path, group_commit, total, conns, size, max_seconds, storage=None):
    os.environ["TERND"] = ternd_path
    env = harness.Env({"storage": dict(storage or {}, group_commit=group_commit),
                       "limits": {"message_size_max": "10M"},
                       "server": {"log_level": "warn"}})
    try:
        port = env.ternd.smtp_port
        lock = threading.Lock()
        counter = {"next": 0}
        latencies = []
        errors = []
        last_ok = [0.0]
        deadline = time.monotonic() + max_seconds
        body_cache = [make_body(size, i) for i in range(64)]

        def worker(wid):
            try:
                c = Conn(port)
                c.expect(220)
                c.sock.sendall(b"EHLO bench.example.org\r\n")
                c.expect(250)
                while time.monotonic() < deadline:
                    with lock:
                        n = counter["next"]
                        if n >= total:
                            break
                        counter["next"] = n + 1
                    rcpt = "user%02d@example.test" % (n % 60 + 1)
                    c.sock.sendall(("MAIL FROM:<bench%d@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                                    % (wid, rcpt)).encode())
                    c.expect(250)
                    c.expect(250)
                    c.expect(354)
                    c.sock.sendall(body_cache[n % len(body_cache)])
                    t0 = time.monotonic()
                    c.sock.sendall(b".\r\n")
                    c.expect(250)
                    t1 = time.monotonic()
                    with lock:
                        latencies.append(t1 - t0)
                        last_ok[0] = max(last_ok[0], t1)
                c.sock.sendall(b"QUIT\r\n")
                c.sock.close()
            except Exception as e:  # reported below
                with lock:
                    errors.append("connection %d: %r" % (wid, e))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
        start = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join(max_seconds + 60)
        done = len(latencies)
        elapsed = (last_ok[0] - start) if done else 0.0
        env.ternd.check_alive()
    finally:
        env.close()
    latencies.sort()

    def pct(p):
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p / 100.0 * len(latencies)))] * 1000

    return {
        "group_commit": group_commit,
        "done": done,
        "partial": done < total,
        "rate": done / elapsed if elapsed > 0 else 0.0,
        "p50": pct(50),
        "p99": pct(99),
        "errors": errors,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ternd", default=os.environ.get("TERND", "build/ternd"))
    ap.add_argument("-n", "--messages", type=int, default=2000)
    ap.add_argument("-c", "--connections", default="50",
                    help="concurrent connections; a comma list runs each")
    ap.add_argument("--size", type=int, default=10 * 1024, help="message size in bytes")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="bound per run")
    ap.add_argument("--modes", default="yes,no", help="group_commit values to run")
    ap.add_argument("--storage", action="append", default=[], metavar="KEY=VALUE",
                    help="extra [storage] settings, e.g. batch_max_ms=0")
    args = ap.parse_args()
    ternd = os.path.abspath(args.ternd)

    conn_counts = [int(c) for c in args.connections.split(",")]
    results = []
    for conns in conn_counts:
        for mode in args.modes.split(","):
            r = run_once(ternd, mode, args.messages, conns, args.size, args.max_seconds,
                         dict(kv.split("=", 1) for kv in args.storage))
            r["conns"] = conns
            results.append(r)
            for e in r["errors"][:5]:
                print("  error (group_commit=%s): %s" % (mode, e), file=sys.stderr)

    print()
    print("%d messages of %d bytes, 127.0.0.1, %d cores"
          % (args.messages, args.size, os.cpu_count() or 0))
    print()
    print("| connections | group_commit | delivered | messages/s | DATA→250 p50 (ms) "
          "| DATA→250 p99 (ms) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print("| %d | %s | %d%s | %.0f | %.1f | %.1f |"
              % (r["conns"], r["group_commit"], r["done"], " (partial)" if r["partial"] else "",
                 r["rate"], r["p50"], r["p99"]))
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
