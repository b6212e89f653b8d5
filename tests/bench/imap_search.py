#!/usr/bin/python3
"""imap_search.py - SEARCH over a 10,000-message mailbox.

For each server (--server tern,dovecot): APPENDs -n messages (10,000) to
user01's INBOX (mostly 2-20 KB of text, one in twenty 200 KB with a base64
attachment; imap_common.make_message), restarts the server so no
in-process state survives (the OS page cache stays warm: the files were
just written), logs in, SELECTs INBOX and times

  SEARCH SUBJECT zanzibar   (in ~1 % of the subjects)
  SEARCH BODY quokka        (in ~1 % of the text bodies)

once as the first search of the fresh server and then --repeat more times
in the same session (Dovecot caches header fields it was asked for in its
index cache file; neither server here has a full-text index: Dovecot runs
without an fts plugin, Tern has none). The hit counts are checked against
the generated messages, so both servers are seen to do the same work.

Usage: imap_search.py [--server tern,dovecot] [-n 10000] [--repeat 3]
No timing is asserted; exit status 1 if a hit count is wrong.
"""
import argparse
import asyncio
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import imap_common as ic  # noqa: E402

SEED = 4242


def expected(msgs):
    subj = body = 0
    for m in msgs:
        head, _, rest = m.partition(b"\r\n\r\n")
        subject = [h for h in head.split(b"\r\n") if h.startswith(b"Subject:")][0]
        subj += ic.RARE_SUBJECT.encode() in subject
        body += ic.RARE_BODY.encode() in rest
    return subj, body


async def fill_one(target, msgs, parallel=8):
    """APPENDs msgs to user01's INBOX over `parallel` connections."""
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


async def searches(target, repeat):
    c = ic.Client()
    await c.connect(target.host, target.port)
    await c.login(*target.users[0])
    t0 = time.perf_counter()
    await c.ok("SELECT INBOX")
    out = {"SELECT": [time.perf_counter() - t0], "exists": c.exists}
    for name, key in (("SUBJECT", "SUBJECT " + ic.RARE_SUBJECT),
                      ("BODY", "BODY " + ic.RARE_BODY)):
        times = []
        hits = None
        for _ in range(1 + repeat):
            t0 = time.perf_counter()
            untagged = await c.ok("SEARCH " + key)
            times.append(time.perf_counter() - t0)
            found = [x for x in untagged if x.startswith(b"* SEARCH")]
            hits = len(found[0].split()) - 2 if found else 0
        out[name] = times
        out[name + " hits"] = hits
    await c.logout()
    return out


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
    ap.add_argument("-n", "--messages", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-fill", action="store_true",
                    help="external: user01's INBOX already holds the messages")
    args = ap.parse_args()
    print("imap_search: %s; %d messages; %s"
          % (time.strftime("%Y-%m-%d %H:%M"), args.messages, ic.machine()))
    msgs = ic.message_set(SEED, args.messages, "user01")
    want_subj, want_body = expected(msgs)
    print("%d messages, %.1f MB; expected hits: SUBJECT %s %d, BODY %s %d"
          % (len(msgs), sum(len(m) for m in msgs) / 1e6, ic.RARE_SUBJECT, want_subj,
             ic.RARE_BODY, want_body))
    rows = []
    bad = False
    for kind in args.server.split(","):
        target = ic.make_target(kind, args, users=1)
        try:
            if not args.no_fill:
                secs = asyncio.run(fill_one(target, msgs))
                print("%s: APPENDed %d messages in %.1f s" % (target.name, len(msgs), secs))
                restart(target)
            r = asyncio.run(searches(target, args.repeat))
            r["name"] = target.name
            rows.append(r)
            if not args.no_fill:
                bad |= r["SUBJECT hits"] != want_subj or r["BODY hits"] != want_body
            target.check_alive()
        finally:
            target.close()
    print()
    print("| server | messages | SELECT (ms) | SEARCH SUBJECT first (ms) | repeated (ms) "
          "| hits | SEARCH BODY first (ms) | repeated (ms) | hits |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %d | %.0f | %.0f | %s | %d | %.0f | %s | %d |"
              % (r["name"], r["exists"], r["SELECT"][0] * 1000, r["SUBJECT"][0] * 1000,
                 " / ".join("%.0f" % (x * 1000) for x in r["SUBJECT"][1:]), r["SUBJECT hits"],
                 r["BODY"][0] * 1000, " / ".join("%.0f" % (x * 1000) for x in r["BODY"][1:]),
                 r["BODY hits"]))
    if bad:
        print("hit counts differ from the generated messages", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
