#!/usr/bin/python3
"""fts_bench.py - SEARCH TEXT with Tern's full-text index vs Dovecot.

For each size in -n (10000,100000) and each server (--server
tern,dovecot): APPENDs that many messages to user01's INBOX (1-4 KB of
English-like text each, imap_common's generator without the big
attachments so 100,000 messages stay a tractable run; one in a hundred has
"quokka" in its body, one in two hundred the phrase "hazelnut espresso"),
restarts the server, logs in, SELECTs INBOX and times

  SEARCH TEXT quokka                 (single word, ~1 %)
  SEARCH TEXT "hazelnut espresso"    (phrase, ~0.5 %)
  SEARCH TEXT the                    (a word in every message)

the first time and --repeat more times (with --sort also SORT (DATE) and
SORT (SUBJECT) of every message, in the same session). Dovecot runs from Debian's
packages without an fts plugin (it scans, caching nothing of bodies).
Tern indexes in the background (storage/store_fts.c): the run times
the APPENDs (which write nothing to the index), then waits for the
indexer's debug lines to count every message ("catch-up"). The index size
is the store's pages in use (mdb_stat -ef: pages used less free pages)
less the pages of every other database's own tree and the main DB's
(mdb_stat -a): the `fts` tree with its dup-sort sub-pages, which
`mdb_stat -s fts` alone does not count.

--no-indexer starts Tern with [storage] search_indexer = no (nothing is
indexed; every SEARCH scans): the APPEND rate without the indexer's CPU,
like for like.

Usage: fts_bench.py --ternd build/ternd [--server tern,dovecot]
                    [-n 10000,100000] [--repeat 3] [--sort] [--no-indexer]
No timing is asserted; exit status 1 if a hit count differs from the
generated messages.
"""
import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import imap_common as ic  # noqa: E402

SEED = 8088
PHRASE = "hazelnut espresso"


def message_set(count):
    rng = random.Random(SEED)
    out = []
    for i in range(count):
        m = ic.make_message(rng, i, "user01", size=rng.randint(1000, 4000))
        if i % 200 == 7:
            head, _, body = m.partition(b"\r\n\r\n")
            m = head + b"\r\n\r\n" + b"We ordered a " + PHRASE.encode() + b" today.\r\n" + body
        out.append(m)
    return out


def expected(msgs):
    word = sum(ic.RARE_BODY.encode() in m.lower() for m in msgs)
    phrase = sum(PHRASE.encode() in m.lower() for m in msgs)
    return {"SEARCH TEXT quokka": word, 'SEARCH TEXT "%s"' % PHRASE: phrase,
            "SEARCH TEXT the": len(msgs)}


SORTS = ["SORT (DATE) UTF-8 ALL", "SORT (SUBJECT) UTF-8 ALL"]


async def fill(target, msgs, parallel=4):
    t0 = time.monotonic()

    async def part(k):
        c = ic.Client()
        await c.connect(target.host, target.port)
        await c.login(*target.users[0])
        for m in msgs[k::parallel]:
            await c.ok("APPEND INBOX", literal=m)
        await c.logout()

    await asyncio.gather(*(part(k) for k in range(parallel)))
    return time.monotonic() - t0


async def searches(target, keys, repeat):
    c = ic.Client()
    await c.connect(target.host, target.port)
    await c.login(*target.users[0])
    await c.ok("SELECT INBOX")
    out = {}
    for key in keys:
        times, hits = [], None
        for _ in range(1 + repeat):
            t0 = time.perf_counter()
            untagged = await c.ok(key)
            times.append(time.perf_counter() - t0)
            found = [x for x in untagged if x.startswith((b"* SEARCH", b"* SORT"))]
            hits = len(found[0].split()) - 2 if found else 0
        out[key] = (times, hits)
    await c.logout()
    return out


def restart(target):
    if isinstance(target, ic.TernTarget):
        target.env.ternd.stop()
        target.env.ternd.start()
    else:
        target.dc.stop()
        target.dc.start()


def wait_indexed(target, n, timeout=3600):
    """Seconds until the indexer's debug lines have counted n messages."""
    t0 = time.monotonic()
    while True:
        with open(target.env.ternd.log_path, "rb") as f:
            done = sum(int(x) for x in re.findall(rb"fts-indexed messages=(\d+)", f.read()))
        if done >= n:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise SystemExit("indexer stuck at %d of %d" % (done, n))
        time.sleep(0.1)


def tern_sizes(target):
    """(fts bytes, bytes in use, data.mdb bytes)."""
    path = os.path.join(target.env.ternd.state_dir, "mail")
    out = subprocess.run(["mdb_stat", "-efa", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True).stdout
    psize = int(re.search(r"Page size: (\d+)", out).group(1))
    used = int(re.search(r"Number of pages used: (\d+)", out).group(1))
    free = int(re.search(r"Free pages: (\d+)", out).group(1))
    other = 2  # meta pages
    for name, body in re.findall(r"Status of (.+?)\n(.*?)(?=\nStatus of |\Z)", out, re.S):
        if name.strip() != "fts":
            other += sum(int(x) for x in
                         re.findall(r"(?:Branch|Leaf|Overflow) pages: (\d+)", body))
    return (used - free - other) * psize, (used - free) * psize, \
        os.path.getsize(os.path.join(path, "data.mdb"))


def load():
    with open("/proc/loadavg") as f:
        return "load average " + " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ic.add_target_args(ap)
    ap.add_argument("-n", "--messages", default="10000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sort", action="store_true", help="also time SORT (DATE), (SUBJECT)")
    ap.add_argument("--no-indexer", action="store_true",
                    help="tern: [storage] search_indexer = no")
    args = ap.parse_args()
    print("fts_bench: %s; %s" % (time.strftime("%Y-%m-%d %H:%M"), ic.machine()))
    rows, bad = [], False
    for n in [int(x) for x in args.messages.split(",")]:
        msgs = message_set(n)
        want = expected(msgs)
        if args.sort:
            want.update((k, n) for k in SORTS)
        mbytes = sum(len(m) for m in msgs)
        print("%d messages, %.1f MB; expected hits %s" % (n, mbytes / 1e6, want))
        for kind in args.server.split(","):
            if kind == "tern":
                target = ic.TernTarget(args.ternd, users=1, log_level="debug",
                                       storage={"search_indexer": "no"} if args.no_indexer
                                       else None)
            else:
                target = ic.make_target(kind, args, users=1)
            try:
                secs = asyncio.run(fill(target, msgs))
                print("%s: APPENDed %d messages in %.1f s (%.0f APPEND/s); %s"
                      % (target.name, n, secs, n / secs, load()))
                sizes = None
                if kind == "tern" and not args.no_indexer:
                    print("tern: index caught up %.1f s after the last APPEND"
                          % wait_indexed(target, n))
                    sizes = tern_sizes(target)
                restart(target)
                print("%s: queries from %s; %s" % (target.name, time.strftime("%H:%M:%S"), load()))
                r = asyncio.run(searches(target, list(want), args.repeat))
                for key, (times, hits) in r.items():
                    bad |= hits != want[key]
                    rows.append((target.name, n, key, times, hits))
                if sizes:
                    print("tern: fts index %.1f MB = %.2f x the %.1f MB of messages; "
                          "pages in use %.1f MB, data.mdb %.1f MB"
                          % (sizes[0] / 1e6, sizes[0] / mbytes, mbytes / 1e6,
                             sizes[1] / 1e6, sizes[2] / 1e6))
                target.check_alive()
            finally:
                target.close()
    print()
    print("| server | messages | query | first (ms) | repeated (ms) | median of repeats | hits |")
    print("|---|---|---|---|---|---|---|")
    for name, n, key, times, hits in rows:
        rep = sorted(times[1:]) or times
        print("| %s | %d | `%s` | %.1f | %s | %.1f | %d |"
              % (name, n, key, times[0] * 1000,
                 " / ".join("%.1f" % (x * 1000) for x in times[1:]),
                 rep[len(rep) // 2] * 1000, hits))
    if bad:
        print("hit counts differ from the generated messages", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
