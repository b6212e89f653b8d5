#!/usr/bin/python3
"""imap_load.py - IMAP command throughput and latency under a client mix.

For each server (--server tern,dovecot; or external at --connect
HOST:PORT): fills every test user's INBOX with -n messages by APPEND
(mostly 2-20 KB of text, one in twenty 200 KB with a base64 attachment),
then for each client count C (-c 10,100) logs in C clients (user01..
user60, several sessions per user when C > 60), each SELECTs INBOX, and
for -t seconds every client runs a closed loop (no think time) of a
realistic mix drawn at random with these weights:

  SELECT INBOX 3 | FETCH a:b (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE),
  50 messages, or 1:* one time in ten 10 | FETCH a:b BODY.PEEK[HEADER], 20
  messages 8 | FETCH n BODY.PEEK[] 20 | STORE n +FLAGS (\\Seen) 6 |
  STORE n -FLAGS (\\Seen) 4 | SEARCH UNSEEN 4 | SEARCH SUBJECT word 4 |
  APPEND 3, then UID STORE uid +FLAGS (\\Deleted) and UID EXPUNGE uid of
  the message just appended | IDLE held 20 ms then DONE 2

and reports commands per second (all and per command) and per-command
latency p50/p99 from sending the command to its tagged reply (IDLE: to
the continuation, plus DONE to the tagged OK; the 20 ms held is not
counted). It also reads the CPU time the client and the server used in
the window: on a 2-core machine they share the cores, so the figures are a
floor for the server.

The client is one asyncio process. Measured on the bench machine it stays
well below one core at the rates these servers reach (see the client CPU
column), so a C client was not needed; if that column nears 100 %, the
client is the limit and the run says so.

Usage: imap_load.py [--server tern,dovecot] [--ternd build-bench/ternd]
                    [-c 10,100] [-t 30] [-n 200]
       imap_load.py --server external --connect 127.0.0.1:143 \\
                    --login-format user%02d --password-format user%02d-pw-1
No timing is asserted; exit status 1 only if commands failed.
"""
import argparse
import asyncio
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import imap_common as ic  # noqa: E402

MIX = [
    ("SELECT", 3),
    ("FETCH ENVELOPE", 10),
    ("FETCH HEADER", 8),
    ("FETCH BODY", 20),
    ("STORE +Seen", 6),
    ("STORE -Seen", 4),
    ("SEARCH UNSEEN", 4),
    ("SEARCH SUBJECT", 4),
    ("APPEND", 3),  # followed by UID STORE +Deleted and UID EXPUNGE
    ("IDLE", 2),
]
REPORT_ORDER = ["SELECT", "FETCH ENVELOPE", "FETCH HEADER", "FETCH BODY", "STORE +Seen",
                "STORE -Seen", "SEARCH UNSEEN", "SEARCH SUBJECT", "APPEND",
                "UID STORE +Deleted", "UID EXPUNGE", "IDLE"]
IDLE_HOLD = 0.02  # short: a longer hold is think time and caps a closed loop


class Stats:
    def __init__(self):
        self.lat = {}
        self.errors = {}
        self.failures = []

    def add(self, kind, seconds):
        self.lat.setdefault(kind, []).append(seconds)

    def error(self, kind, line):
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.failures) < 10:
            self.failures.append("%s: %r" % (kind, line[:160]))


async def timed(c, stats, kind, text, literal=None):
    t0 = time.perf_counter()
    status, line, untagged = await c.command(text, literal)
    stats.add(kind, time.perf_counter() - t0)
    if status != "OK":
        stats.error(kind, line)
    return status, line, untagged


async def client_loop(idx, target, per_user, stop_at, start_evt, ready, stats, pool):
    login, password = target.users[idx % len(target.users)]
    rng = random.Random(idx * 7919 + 1)
    c = ic.Client()
    await c.connect(target.host, target.port)
    await c.login(login, password)
    await c.ok("SELECT INBOX")
    ready.append(idx)
    await start_evt.wait()
    names = [m[0] for m in MIX]
    weights = [m[1] for m in MIX]
    n = per_user
    try:
        while time.monotonic() < stop_at[0]:
            op = rng.choices(names, weights)[0]
            if op == "SELECT":
                await timed(c, stats, op, "SELECT INBOX")
            elif op == "FETCH ENVELOPE":
                if rng.random() < 0.1 or n <= 50:
                    rng_set = "1:*"
                else:
                    a = rng.randint(1, n - 49)
                    rng_set = "%d:%d" % (a, a + 49)
                await timed(c, stats, op, "FETCH %s (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"
                            % rng_set)
            elif op == "FETCH HEADER":
                a = rng.randint(1, max(1, n - 19))
                await timed(c, stats, op, "FETCH %d:%d BODY.PEEK[HEADER]" % (a, min(n, a + 19)))
            elif op == "FETCH BODY":
                await timed(c, stats, op, "FETCH %d BODY.PEEK[]" % rng.randint(1, n))
            elif op == "STORE +Seen":
                await timed(c, stats, op, "STORE %d +FLAGS (\\Seen)" % rng.randint(1, n))
            elif op == "STORE -Seen":
                await timed(c, stats, op, "STORE %d -FLAGS (\\Seen)" % rng.randint(1, n))
            elif op == "SEARCH UNSEEN":
                await timed(c, stats, op, "SEARCH UNSEEN")
            elif op == "SEARCH SUBJECT":
                await timed(c, stats, op, "SEARCH SUBJECT %s" % rng.choice(ic.WORDS))
            elif op == "APPEND":
                msg = pool[rng.randrange(len(pool))]
                status, line, _ = await timed(c, stats, op, "APPEND INBOX", literal=msg)
                uid = ic.appenduid(line) if status == "OK" else None
                if uid is None:
                    if status == "OK":
                        stats.error(op, b"no APPENDUID: " + line)
                    continue
                await timed(c, stats, "UID STORE +Deleted",
                            "UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
                await timed(c, stats, "UID EXPUNGE", "UID EXPUNGE %d" % uid)
            elif op == "IDLE":
                t0 = time.perf_counter()
                tag = await c.idle_start()
                t1 = time.perf_counter()
                await asyncio.sleep(IDLE_HOLD)
                t2 = time.perf_counter()
                status, line, _ = await c.idle_done(tag)
                stats.add(op, (t1 - t0) + (time.perf_counter() - t2))
                if status != "OK":
                    stats.error(op, line)
    finally:
        await c.logout()


async def run_load(target, clients, seconds, per_user):
    stats = Stats()
    start_evt = asyncio.Event()
    ready = []
    stop_at = [float("inf")]
    pool = ic.message_set(99, 40, "user01")
    tasks = [asyncio.create_task(client_loop(i, target, per_user, stop_at, start_evt, ready,
                                             stats, pool))
             for i in range(clients)]
    # every client logged in and SELECTed before the clock starts
    deadline = time.monotonic() + 120
    while len(ready) < clients:
        done = [t for t in tasks if t.done()]
        for t in done:
            if t.exception() is not None:
                for other in tasks:
                    other.cancel()
                raise t.exception()
        if time.monotonic() > deadline:
            raise RuntimeError("only %d of %d clients logged in" % (len(ready), clients))
        await asyncio.sleep(0.05)
    pids = target.pids()
    srv0, cli0 = ic.cpu_seconds(pids), ic.self_cpu()
    t0 = time.monotonic()
    stop_at[0] = t0 + seconds
    start_evt.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - t0
    srv = ic.cpu_seconds(target.pids()) - srv0
    cli = ic.self_cpu() - cli0
    for r in results:
        if isinstance(r, BaseException):
            stats.failures.append("client: %r" % r)
    return {"stats": stats, "elapsed": elapsed, "server_cpu": srv / elapsed,
            "client_cpu": cli / elapsed, "clients": clients}


def report(target, r):
    st = r["stats"]
    total = sum(len(v) for v in st.lat.values())
    print()
    print("### %s, %d clients, %.0f s: %.0f commands/s; server CPU %.0f %%, client CPU %.0f %%"
          % (target.name, r["clients"], r["elapsed"], total / r["elapsed"],
             r["server_cpu"] * 100, r["client_cpu"] * 100))
    print()
    print("| command | count | commands/s | p50 (ms) | p99 (ms) | errors |")
    print("|---|---|---|---|---|---|")
    for kind in REPORT_ORDER:
        v = st.lat.get(kind, [])
        print("| %s | %d | %.0f | %.2f | %.2f | %d |"
              % (kind, len(v), len(v) / r["elapsed"], ic.pct(v, 50) * 1000,
                 ic.pct(v, 99) * 1000, st.errors.get(kind, 0)))
    allv = [x for v in st.lat.values() for x in v]
    print("| **all** | %d | %.0f | %.2f | %.2f | %d |"
          % (total, total / r["elapsed"], ic.pct(allv, 50) * 1000, ic.pct(allv, 99) * 1000,
             sum(st.errors.values())))
    for f in st.failures:
        print("  failure: %s" % f, file=sys.stderr)
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ic.add_target_args(ap)
    ap.add_argument("-c", "--clients", default="10,100", help="comma list of client counts")
    ap.add_argument("-t", "--seconds", type=float, default=30.0)
    ap.add_argument("-n", "--messages", type=int, default=200, help="messages per INBOX")
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--no-fill", action="store_true",
                    help="external: mailboxes already hold -n messages")
    args = ap.parse_args()
    ic.raise_nofile()
    counts = [int(c) for c in args.clients.split(",")]
    print("imap_load: %s; %d messages per INBOX, %d users; %s"
          % (time.strftime("%Y-%m-%d %H:%M"), args.messages, args.users, ic.machine()))
    failed = False
    for kind in args.server.split(","):
        target = ic.make_target(kind, args, users=args.users, clients=max(counts))
        try:
            if not args.no_fill:
                n, nbytes, secs = asyncio.run(ic.fill(target, args.messages))
                print("%s: filled %d messages (%.1f MB) in %.1f s (%.0f APPEND/s)"
                      % (target.name, n, nbytes / 1e6, secs, n / secs))
            for c in counts:
                r = asyncio.run(run_load(target, c, args.seconds, args.messages))
                report(target, r)
                failed |= bool(r["stats"].failures or r["stats"].errors)
            target.check_alive()
        finally:
            target.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
