#!/usr/bin/python3
"""imap_idle_mem.py - server memory per idle IMAP connection.

For each server (--server tern,dovecot,dovecot-hibernate) and each count N
(-n 1000,10000), two phases, each on a freshly started server:

  plain: N plaintext connections that only read the greeting (not logged in);
  idle:  N connections that LOGIN (user01..user60 in turn, so ~N/60
         sessions per user), SELECT INBOX (20 messages) and IDLE;
  compress: the same with COMPRESS DEFLATE (RFC 4978) after LOGIN
         (--modes plain,idle,compress; Tern only).

Before the connections are opened every user logs in, SELECTs and logs
out once (warm caches, LMDB pages, Dovecot indexes), and the server's
memory is read; after all N are open and a settling pause it is read
again. KB per connection = delta / N. Memory is read from /proc: for
ternd VmRSS and RssAnon of its one process; for Dovecot the sum of VmRSS
over the master and every process below it (imap, imap-login, auth, ...),
which counts shared library pages once per process, and the sum of Pss,
which shares them out fairly; both are printed. In the idle phase one
message is then APPENDed to user01's INBOX and the run checks that the
IDLE-ing user01 sessions report it (the connections are live, not just
open).

The bench process raises its own RLIMIT_NOFILE to the hard limit, and the
servers it starts inherit it: ternd does not raise its limit itself and
needs about one descriptor per connection. Connections come from
127.0.0.1 unless --sources K spreads them over 127.0.0.1..127.0.0.K
(neither server here has a per-IP limit once configured as documented).

--massif runs ternd under valgrind massif instead (use with -n 1000 and
--server tern) and prints the top allocation sites at the peak.

Usage: imap_idle_mem.py [--server tern,dovecot] [-n 1000,10000]
No timing or size is asserted.
"""
import argparse
import asyncio
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import imap_common as ic  # noqa: E402


async def open_conns(target, count, mode, sources, inflight):
    """Opens count connections in mode "plain" or "idle"; returns them and
    the user01 idlers."""
    sem = asyncio.Semaphore(inflight)
    conns = []
    user01 = []

    async def one(i):
        async with sem:
            c = ic.Client()
            src = ("127.0.0.%d" % (i % sources + 1), 0) if sources > 1 else None
            await c.connect(target.host, target.port, local_addr=src)
            if mode in ("idle", "compress"):
                login, password = target.users[i % len(target.users)]
                await c.login(login, password)
                if mode == "compress":
                    await c.compress()
                await c.ok("SELECT INBOX")
                c.idle_tag = await c.idle_start()
                if i % len(target.users) == 0:
                    user01.append(c)
            conns.append(c)

    t0 = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    return conns, user01, errors, time.monotonic() - t0


async def warm(target):
    for login, password in target.users:
        c = ic.Client()
        await c.connect(target.host, target.port)
        await c.login(login, password)
        await c.ok("SELECT INBOX")
        await c.logout()


async def check_idlers(target, idlers):
    """APPENDs one message to user01's INBOX; returns how many of the
    IDLE-ing user01 sessions saw an EXISTS within 35 s."""
    if not idlers:
        return 0, 0
    c = ic.Client()
    await c.connect(target.host, target.port)
    await c.login(*target.users[0])
    await c.ok("APPEND INBOX", literal=ic.make_message(random.Random(5), 999))
    await c.logout()

    async def saw(conn):
        while True:
            line = await conn.read_line()
            if line.startswith(b"* ") and line.endswith(b" EXISTS"):
                return True

    # 35 s: Dovecot falls back to polling every 30 s (mailbox_idle_check_interval)
    # when it has no inotify instance left
    got = await asyncio.gather(*(asyncio.wait_for(saw(x), 35) for x in idlers),
                               return_exceptions=True)
    return sum(1 for g in got if g is True), len(idlers)


async def phase(target, count, mode, settle, sources, inflight):
    await warm(target)
    await asyncio.sleep(settle)
    pids = target.pids()
    before = ic.memory(pids)
    conns, idlers, errors, secs = await open_conns(target, count, mode, sources, inflight)
    await asyncio.sleep(settle)
    after = ic.memory(target.pids())
    live = await check_idlers(target, idlers) if mode in ("idle", "compress") else None
    for c in conns:
        c.close()
    await asyncio.sleep(0.5)
    return {"before": before, "after": after, "open": len(conns), "errors": errors,
            "secs": secs, "live": live}


def report_row(name, mode, count, r):
    n = max(1, r["open"])
    b, a = r["before"], r["after"]
    live = ""
    if r["live"] is not None:
        live = "%d/%d" % r["live"]
    procs = ", ".join("%s %d" % kv for kv in sorted(a["names"].items(), key=lambda kv: -kv[1]))
    print("| %s | %s | %d | %d | %.0f | %d → %d | %.1f | %.1f | %.1f | %s | %s |"
          % (name, mode, count, r["open"], r["secs"], b["rss"] // 1024, a["rss"] // 1024,
             (a["rss"] - b["rss"]) / n, (a["anon"] - b["anon"]) / n, (a["pss"] - b["pss"]) / n,
             live, procs))
    for e in r["errors"][:3]:
        print("  error: %r" % e, file=sys.stderr)
    sys.stdout.flush()


def massif(args, count):
    """ternd under valgrind massif with count idle sessions; prints the
    top allocation sites of the peak snapshot."""
    wrapper = os.path.join(os.environ.get("TMPDIR", "/tmp"), "ternd-massif.sh")
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), "ternd.massif")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=massif --massif-out-file=%s "
                "--threshold=0.5 --depth=12 %s \"$@\"\n" % (out, os.path.abspath(args.ternd)))
    os.chmod(wrapper, 0o755)
    args.ternd = wrapper
    for mode in ("plain", "idle"):
        # valgrind cannot reserve the default 1 TB LMDB map
        target = ic.TernTarget(wrapper, users=args.users, storage={"map_size": "4G"})
        try:
            asyncio.run(ic.fill(target, 20))
            r = asyncio.run(phase(target, count, mode, 3, args.sources, 50))
            report_row("tern (massif)", mode, count, r)
            target.check_alive()
        finally:
            target.close()
        print("\n#### massif, %s, %d connections (%s)\n" % (mode, count, out + "." + mode))
        os.replace(out, out + "." + mode)
        txt = subprocess.run(["ms_print", out + "." + mode], capture_output=True,
                             text=True).stdout
        # the detailed peak snapshot follows the graph; print its tree
        i = txt.find("(peak)")
        print("```")
        print(txt[i:i + 12000] if i >= 0 else txt[-12000:])
        print("```")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ic.add_target_args(ap)
    ap.add_argument("-n", "--connections", default="1000,10000")
    ap.add_argument("--modes", default="plain,idle")
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--settle", type=float, default=5.0, help="pause before reading memory")
    ap.add_argument("--sources", type=int, default=1, help="source addresses 127.0.0.1..K")
    ap.add_argument("--inflight", type=int, default=200, help="connections being set up at once")
    ap.add_argument("--dovecot-max", type=int, default=1000,
                    help="plain dovecot (one imap process per session): skip the idle "
                    "phase above this many connections (10,000 processes of ~5 MB RSS)")
    ap.add_argument("--massif", action="store_true")
    ap.add_argument("--inotify-instances", type=int, default=0,
                    help="raise fs.inotify.max_user_instances to this for the run (and "
                    "restore it): every Dovecot imap process of the one mail uid needs an "
                    "inotify instance to notice new mail and to hibernate; the kernel "
                    "default is 128")
    args = ap.parse_args()
    soft, hard = ic.raise_nofile()
    counts = [int(c) for c in args.connections.split(",")]
    print("imap_idle_mem: %s; RLIMIT_NOFILE %d; %s"
          % (time.strftime("%Y-%m-%d %H:%M"), soft, ic.machine()))
    if args.massif:
        massif(args, counts[0])
        return 0
    old_inotify = None
    if args.inotify_instances:
        old_inotify = set_inotify(args.inotify_instances)
        print("fs.inotify.max_user_instances %d -> %d for this run"
              % (old_inotify, args.inotify_instances))
    try:
        return run_all(args, counts)
    finally:
        if old_inotify is not None:
            set_inotify(old_inotify)


INOTIFY = "/proc/sys/fs/inotify/max_user_instances"


def set_inotify(value):
    with open(INOTIFY) as f:
        old = int(f.read())
    with open(INOTIFY, "w") as f:
        f.write("%d\n" % value)
    return old


def run_all(args, counts):
    print()
    print("| server | phase | connections | open | setup (s) | RSS before → after (MB) "
          "| KB/conn (RSS) | KB/conn (anon) | KB/conn (PSS) | IDLE live | processes after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    for kind in args.server.split(","):
        for count in counts:
            for mode in args.modes.split(","):
                if kind == "dovecot" and mode == "idle" and count > args.dovecot_max:
                    print("| dovecot | idle | %d | skipped (--dovecot-max %d) |||||||||"
                          % (count, args.dovecot_max))
                    continue
                target = ic.make_target(kind, args, users=args.users, clients=count)
                try:
                    if not (kind == "external"):
                        asyncio.run(ic.fill(target, 20))
                    r = asyncio.run(phase(target, count, mode, args.settle, args.sources,
                                          args.inflight))
                    report_row(target.name, mode, count, r)
                    failed |= bool(r["errors"])
                    target.check_alive()
                finally:
                    target.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
