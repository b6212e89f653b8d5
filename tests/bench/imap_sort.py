#!/usr/bin/python3
"""imap_sort.py - SORT and THREAD over 10,000 and 100,000 messages.

For each server (--server tern,dovecot): APPENDs the first size of -n
(10000,100000) messages to user01's INBOX, restarts the server so no
in-process state survives (the OS page cache stays warm), logs in,
SELECTs INBOX and times

  SORT (DATE) UTF-8 ALL
  SORT (SUBJECT) UTF-8 ALL
  THREAD REFERENCES UTF-8 ALL

once as the first command of the fresh server, then --repeat more times
in the same session (Dovecot keeps sort and thread data in its index
cache file after the first time; Tern reads the sort-key records it wrote
at delivery every time). Then it APPENDs up to the next size and does the
same again. The messages (imap_sort.make_messages) are small (about 1 KB:
SORT is about headers) with realistic headers: 300 senders with display
names, subjects with "Re:"/"Fwd:"/[list] prefixes and RFC 2047 words,
Date: in several zones, and one in three a reply (Message-ID, In-Reply-To,
References) to an earlier message. The result lengths are checked (the
parallel APPENDs give each server its own message order, so the orders
themselves are not compared here).

--compare N instead APPENDs N of those messages one by one (the same order
in both servers) to Tern and Dovecot and compares the responses of SORT
by every key and THREAD by both algorithms byte for byte.

Usage: imap_sort.py [--server tern,dovecot] [-n 10000,100000] [--repeat 3]
       imap_sort.py --compare 300
No timing is asserted; exit status 1 if a result has the wrong length or
a compared response differs.
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

SEED = 5256
ZONES = ["+0000", "-0500", "+0100", "+0530", "-0800", "+0900", "GMT", "EST"]
PREFIX = ["", "", "", "[dev] ", "Fwd: ", "=?UTF-8?Q?Caf=C3=A9?= "]


def make_messages(seed, count):
    rng = random.Random(seed)
    names = [("%s %s" % (rng.choice(ic.WORDS).title(),
                         rng.choice(ic.WORDS).title()),
              "u%03d@example.org" % i) for i in range(300)]
    msgs, meta = [], []
    t0 = 1767225600  # 2026-01-01
    for i in range(count):
        name, addr = rng.choice(names)
        to = rng.choice(names)
        when = t0 + rng.randrange(365 * 86400)
        zone = rng.choice(ZONES)
        date = time.strftime("%a, %d %b %Y %H:%M:%S ", time.gmtime(when)) + zone
        mid = "<%d.%d@bench.example>" % (i, seed)
        head = ["From: \"%s\" <%s>" % (name, addr), "To: %s <%s>" % to,
                "Date: " + date, "Message-ID: " + mid]
        if i > 0 and rng.random() < 0.33:
            p = rng.randrange(max(0, i - 2000), i)
            psubj, pmid, prefs = meta[p]
            refs = (prefs + [pmid])[-10:]
            subj = "Re: " + psubj
            head += ["In-Reply-To: " + pmid, "References: " + " ".join(refs)]
            meta.append((psubj, mid, refs))
        else:
            base = " ".join(rng.choice(ic.WORDS) for _ in range(rng.randint(2, 6)))
            subj = rng.choice(PREFIX) + base
            meta.append((base, mid, []))
        head.append("Subject: " + subj)
        body = " ".join(rng.choice(ic.BODY_WORDS) for _ in range(rng.randint(40, 200)))
        msgs.append(("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode())
    return msgs


async def fill(target, msgs, parallel=8):
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


COMMANDS = [("SORT (DATE)", "SORT (DATE) UTF-8 ALL", b"* SORT"),
            ("SORT (SUBJECT)", "SORT (SUBJECT) UTF-8 ALL", b"* SORT"),
            ("THREAD REFERENCES", "THREAD REFERENCES UTF-8 ALL", b"* THREAD")]


async def run(target, repeat):
    c = ic.Client()
    await c.connect(target.host, target.port)
    await c.login(*target.users[0])
    await c.ok("SELECT INBOX")
    out = {"exists": c.exists}
    for name, cmd, prefix in COMMANDS:
        times = []
        for _ in range(1 + repeat):
            t0 = time.perf_counter()
            untagged = await c.ok(cmd)
            times.append(time.perf_counter() - t0)
        line = [x for x in untagged if x.startswith(prefix)][0]
        out[name] = times
        if prefix == b"* SORT":
            out[name + " n"] = len(line.split()) - 2
        else:
            out[name + " n"] = line.count(b"(") - line.count(b"((")  # threads, roughly
    await c.logout()
    return out


COMPARED = ["SORT (%s) UTF-8 ALL" % k for k in
            ("ARRIVAL", "DATE", "REVERSE DATE", "SUBJECT", "FROM", "TO", "CC", "SIZE",
             "DISPLAYFROM", "DISPLAYTO", "SUBJECT REVERSE DATE")] + \
           ["THREAD REFERENCES UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL"]


def compare(args, n):
    msgs = make_messages(SEED, n)
    res = {}
    for kind in ("tern", "dovecot"):
        target = ic.make_target(kind, args, users=1)
        try:
            asyncio.run(fill(target, msgs, parallel=1))

            async def go():
                c = ic.Client()
                await c.connect(target.host, target.port)
                await c.login(*target.users[0])
                await c.ok("SELECT INBOX")
                out = []
                for cmd in COMPARED:
                    u = await c.ok(cmd)
                    out.append([x for x in u if x.startswith((b"* SORT", b"* THREAD"))])
                await c.logout()
                return out
            res[kind] = asyncio.run(go())
        finally:
            target.close()
    bad = 0
    for cmd, a, b in zip(COMPARED, res["tern"], res["dovecot"]):
        print("%-40s %s" % (cmd, "same" if a == b else "DIFFERENT"))
        bad += a != b
    return 1 if bad else 0


def restart(target):
    if isinstance(target, ic.TernTarget):
        target.env.ternd.stop()
        target.env.ternd.start()
    elif isinstance(target, ic.DovecotTarget):
        target.dc.stop()
        target.dc.start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ic.add_target_args(ap)
    ap.add_argument("-n", "--messages", default="10000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", type=int, default=0)
    args = ap.parse_args()
    if args.compare:
        return compare(args, args.compare)
    sizes = sorted(int(x) for x in args.messages.split(","))
    print("imap_sort: %s; %s messages; %s"
          % (time.strftime("%Y-%m-%d %H:%M"), args.messages, ic.machine()))
    msgs = make_messages(SEED, sizes[-1])
    print("%d messages, %.1f MB" % (len(msgs), sum(len(m) for m in msgs) / 1e6))
    rows, bad = [], False
    for kind in args.server.split(","):
        target = ic.make_target(kind, args, users=1)
        try:
            have = 0
            for size in sizes:
                secs = asyncio.run(fill(target, msgs[have:size]))
                print("%s: APPENDed %d messages in %.1f s" % (target.name, size - have, secs))
                have = size
                restart(target)
                r = asyncio.run(run(target, args.repeat))
                r["name"] = target.name
                rows.append(r)
                for name, _, _ in COMMANDS[:2]:
                    bad |= r[name + " n"] != size
                target.check_alive()
        finally:
            target.close()
    print()
    print("| server | messages | command | first (ms) | repeated (ms) | result |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        for name, _, _ in COMMANDS:
            print("| %s | %d | %s | %.0f | %s | %s %d |"
                  % (r["name"], r["exists"], name, r[name][0] * 1000,
                     " / ".join("%.0f" % (x * 1000) for x in r[name][1:]),
                     "threads" if name.startswith("THREAD") else "messages", r[name + " n"]))
    if bad:
        print("a SORT result has the wrong length", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
