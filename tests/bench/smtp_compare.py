#!/usr/bin/python3
"""smtp_compare.py - inbound and outbound SMTP throughput, ternd against
a private Postfix, in one run, for docs/performance.md.

For each server (--server tern,postfix), each phase on a fresh instance:

inbound   N messages of SIZE bytes over C concurrent connections, each to
          one of the 60 local users (user01..user60@example.test), raw
          pipelined SMTP (MAIL, RCPT, DATA in one write, then the body).
          Reported: messages/s from the first connect to the last 250.
          ternd sends 250 once the message is in the user's mailbox (a
          synced LMDB commit); Postfix once it is in its queue (fsynced
          queue file), so for Postfix the time until every message is a
          file in the users' Maildirs (virtual(8)) is measured too.
outbound  N messages to rcptK@remote.example over C connections; the
          server relays them through its queue to Postfix's smtp-sink on
          127.0.0.1 (which writes each transaction to a file on tmpfs).
          ternd: authenticated submission (AUTH PLAIN as userNN over
          [submission], plaintext_auth = yes as in the integration tests),
          remote.example routed to the sink with [routes]. Postfix:
          relayhost = [127.0.0.1]:SINKPORT, loopback is in mynetworks.
          Reported: messages/s from the first connect to the last message
          the sink received (newest capture file), the submission rate
          (last 250), what the sink got and how many were duplicates.
ceilings  (once, unless --no-sink-check) this client straight into
          smtp-sink, and Postfix's C load generator smtp-source into it:
          what client and sink manage alone on this machine, to show that
          neither is the limit of the server figures.

Every message has a unique X-Bench-Id header; the sink's files are read
back to count distinct ones. Everything listens on 127.0.0.1 only; every
process started is stopped by PID, also on errors and Ctrl-C. Each phase
stops at --max-seconds and reports what it has ("partial"). No timing is
asserted: this is a measurement.

Usage: smtp_compare.py --ternd build/ternd [-n 2000] [-c 50] [--size 4096]
       [--server tern,postfix] [--passes 2] [--strace]
"""
import argparse
import asyncio
import base64
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import postfix_server  # noqa: E402
from harness import free_port  # noqa: E402

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
LOCAL_USERS = ["user%02d" % i for i in range(1, 61)]
REMOTE_DOMAIN = "remote.example"

# What each server is allowed for outbound, recorded in the output.
TERN_OUTBOUND = {"max_connections": "50", "max_per_destination": "50"}
POSTFIX_TUNING = {
    "default_destination_concurrency_limit": "50",
    "smtp_destination_concurrency_limit": "50",
    "virtual_destination_concurrency_limit": "50",
    "default_process_limit": "150",
}


# ---- the sink -------------------------------------------------------------

class Sink:
    """Postfix's smtp-sink on 127.0.0.1:port, one capture file per
    transaction in a tmpfs directory (-d), run as nobody."""

    def __init__(self, workdir):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else workdir
        self.dir = tempfile.mkdtemp(prefix="tern-bench-sink-", dir=base)
        pw = pwd.getpwnam("nobody")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self.proc = None

    def start(self):
        # %H%M%S plus smtp-sink's random hex: no two captures share a name.
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-4", "-u", "nobody", "-m", "512", "-h", "sink.remote.example",
             "-d", os.path.join(self.dir, "%H%M%S."), "127.0.0.1:%d" % self.port, "1000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        import socket
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                self.proc = None
                raise RuntimeError("smtp-sink exited: %s" % err)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(5)
                    s.recv(200)
                    s.sendall(b"QUIT\r\n")
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("smtp-sink did not listen")
                time.sleep(0.02)

    def count(self):
        try:
            return len(os.listdir(self.dir))
        except FileNotFoundError:
            return 0

    def collect(self, tag):
        """(transactions with tag, distinct ids, newest mtime in time.time())."""
        ids = set()
        got = 0
        newest = 0.0
        needle = b"X-Bench-Id: " + tag.encode()
        for e in os.scandir(self.dir):
            with open(e.path, "rb") as f:
                data = f.read()
            i = data.find(needle)
            if i < 0:
                continue
            j = data.find(b"\n", i)
            got += 1
            ids.add(data[i + 12:j].strip())
            newest = max(newest, e.stat().st_mtime_ns / 1e9)
        return got, len(ids), newest

    def clear(self):
        for e in os.scandir(self.dir):
            os.unlink(e.path)

    def stop(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the load client --------------------------------------------------------

def make_body(size, tag, n, sender, rcpt):
    head = ("From: <%s>\r\nTo: <%s>\r\n"
            "Subject: bench %d\r\nMessage-ID: <%s-%d@bench.example.org>\r\n"
            "X-Bench-Id: %s-%d\r\n\r\n" % (sender, rcpt, n, tag, n, tag, n)).encode()
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = (line * (size // len(line) + 1))[:max(0, size - len(head) - 2)]
    return head + body + b"\r\n.\r\n"


async def read_reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError("server closed the connection")
        if line[3:4] != b"-":
            return int(line[:3]), line.rstrip()


async def expect(reader, code):
    got, line = await read_reply(reader)
    if got != code:
        raise RuntimeError("expected %d, got %r" % (code, line))


async def load(port, total, conns, size, tag, rcpt_for, deadline, auth=None, sender_for=None):
    """Sends total messages over conns connections. auth(wid) -> (login,
    password) or None. Returns (start, last_250, done, errors)."""
    state = {"next": 0, "done": 0, "last": 0.0}
    errors = []

    async def worker(wid):
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await expect(reader, 220)
            writer.write(b"EHLO client.bench.example\r\n")
            await expect(reader, 250)
            sender = "bench%d@example.org" % wid
            if auth is not None:
                login, pw = auth(wid)
                tok = base64.b64encode(("\0%s\0%s" % (login, pw)).encode()).decode()
                writer.write(("AUTH PLAIN %s\r\n" % tok).encode())
                await expect(reader, 235)
                sender = sender_for(login)
            while time.monotonic() < deadline:
                n = state["next"]
                if n >= total:
                    break
                state["next"] = n + 1
                rcpt = rcpt_for(n)
                writer.write(("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n"
                              % (sender, rcpt)).encode())
                await expect(reader, 250)
                await expect(reader, 250)
                await expect(reader, 354)
                writer.write(make_body(size, tag, n, sender, rcpt))
                await expect(reader, 250)
                state["done"] += 1
                state["last"] = time.time()
            writer.write(b"QUIT\r\n")
            await writer.drain()
        except Exception as e:  # noqa: BLE001 - reported with the figures
            errors.append("connection %d: %r" % (wid, e))
        finally:
            if writer is not None:
                writer.close()

    start = time.time()
    await asyncio.gather(*(worker(i) for i in range(conns)))
    return start, state["last"], state["done"], errors


def run_load(port, total, conns, size, tag, rcpt_for, max_seconds, **kw):
    deadline = time.monotonic() + max_seconds
    return asyncio.run(load(port, total, conns, size, tag, rcpt_for, deadline, **kw))


def wait_until(pred, max_seconds, poll=0.01):
    """Polls pred() until true; the time.time() it first was, or None."""
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        if pred():
            return time.time()
        time.sleep(poll)
    return None


def inbound_rcpt(n):
    return "%s@example.test" % LOCAL_USERS[n % len(LOCAL_USERS)]


def outbound_rcpt(n):
    return "rcpt%d@%s" % (n, REMOTE_DOMAIN)


# ---- syscall counts (--strace) ----------------------------------------------

class Strace:
    """strace -f -c attached to the server's processes for one phase."""

    SYSCALLS = "fsync,fdatasync,msync,sync_file_range,rename,renameat,renameat2,link,unlink"

    def __init__(self, pids, workdir, name):
        self.out = os.path.join(workdir, "strace-%s.txt" % name)
        args = ["strace", "-f", "-c", "-o", self.out, "-e", "trace=" + self.SYSCALLS]
        for p in pids:
            args += ["-p", str(p)]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attach

    def finish(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        counts = {}
        try:
            with open(self.out) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 5 and parts[-1] in self.SYSCALLS.split(","):
                        calls = parts[3]
                        counts[parts[-1]] = int(calls)
        except OSError:
            pass
        return counts


# ---- the phases -------------------------------------------------------------

def result(server, phase, total, start, last, done, errors, **extra):
    elapsed = last - start if done and last > start else 0.0
    r = {"server": server, "phase": phase, "total": total, "done": done,
         "rate": done / elapsed if elapsed > 0 else 0.0, "errors": errors}
    r.update(extra)
    return r


def tern_env(ternd, sink_port):
    os.environ["TERND"] = ternd
    sub_port = free_port()
    env = harness.Env({
        "server": {"log_level": "info"},
        "limits": {"message_size_max": "10M"},
        "submission": {"listen": "127.0.0.1:%d" % sub_port, "plaintext_auth": "yes"},
        "outbound": dict(TERN_OUTBOUND, retry_initial="1s", retry_max="2s",
                         connect_timeout="5s"),
        "routes": {REMOTE_DOMAIN: "127.0.0.1:%d" % sink_port},
    })
    env.sub_port = sub_port
    return env


def tern_phase(args, phase, sink, tag):
    env = tern_env(args.ternd, sink.port)
    st = None
    try:
        t = env.ternd
        if args.strace:
            st = Strace([t.proc.pid], env.tmp, "tern-" + phase)
        if phase == "inbound":
            start, last, done, errors = run_load(t.smtp_port, args.messages, args.connections,
                                                 args.size, tag, inbound_rcpt, args.max_seconds)
            r = result("tern", phase, args.messages, start, last, done, errors)
        else:
            start, last, done, errors = run_load(
                env.sub_port, args.messages, args.connections, args.size, tag, outbound_rcpt,
                args.max_seconds, auth=lambda w: (LOCAL_USERS[w % 60],
                                                  harness.password(LOCAL_USERS[w % 60])),
                sender_for=lambda login: "%s@example.test" % login)
            r = sink_result("tern", args, sink, tag, start, last, done, errors)
        t.check_alive()
        if st is not None:
            r["syscalls"] = st.finish()
            st = None
    finally:
        if st is not None:
            st.finish()
        env.close()
    return r


def sink_result(server, args, sink, tag, start, last, done, errors):
    """Waits for the sink to have every message the server accepted."""
    wait_until(lambda: sink.count() >= done, args.max_seconds, poll=0.02)
    time.sleep(0.5)  # a late duplicate would show up here
    got, distinct, newest = sink.collect(tag)
    return result(server, "outbound", args.messages, start, newest if got else 0.0, got, errors,
                  submitted=done, submit_rate=done / (last - start) if last > start else 0.0,
                  distinct=distinct, duplicates=got - distinct)


def postfix_phase(args, phase, sink, tag):
    pf = postfix_server.Postfix(LOCAL_USERS, sink_port=sink.port, tuning=POSTFIX_TUNING)
    st = None
    try:
        pf.start()
        if args.strace:
            st = Strace([pf.proc.pid], pf.tmp, "postfix-" + phase)
        if phase == "inbound":
            start, last, done, errors = run_load(pf.port, args.messages, args.connections,
                                                 args.size, tag, inbound_rcpt, args.max_seconds)
            in_maildir = wait_until(lambda: pf.count_delivered() >= done, args.max_seconds)
            r = result("postfix", phase, args.messages, start, last, done, errors)
            r["delivered"] = pf.count_delivered()
            r["maildir_rate"] = (r["delivered"] / (in_maildir - start)
                                 if in_maildir else 0.0)
        else:
            start, last, done, errors = run_load(pf.port, args.messages, args.connections,
                                                 args.size, tag, outbound_rcpt, args.max_seconds,
                                                 auth=None)
            r = sink_result("postfix", args, sink, tag, start, last, done, errors)
        if pf.proc is None or pf.proc.poll() is not None:
            raise RuntimeError("postfix died:\n%s" % pf.log_tail())
        if st is not None:
            r["syscalls"] = st.finish()
            st = None
    finally:
        if st is not None:
            st.finish()
        pf.close(keep=args.keep)
    return r


def sink_phase(args, sink, tag):
    """The ceilings: this client into smtp-sink, then Postfix's C load
    generator smtp-source (-d: many messages per connection, as the client
    does) into smtp-sink: what the sink alone can take."""
    start, last, done, errors = run_load(sink.port, args.messages, args.connections, args.size,
                                         tag, outbound_rcpt, args.max_seconds)
    out = [sink_result("(this client → smtp-sink)", args, sink, tag, start, last, done, errors)]
    sink.clear()
    start = time.time()
    p = subprocess.run([SMTP_SOURCE, "-4", "-d", "-s", str(args.connections),
                        "-m", str(args.messages), "-l", str(args.size), "-f", "bench@example.org",
                        "-t", "rcpt@" + REMOTE_DOMAIN, "-M", "client.bench.example",
                        "127.0.0.1:%d" % sink.port],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=args.max_seconds + 30)
    last = time.time()
    got = sink.count()
    newest = max((e.stat().st_mtime_ns / 1e9 for e in os.scandir(sink.dir)), default=0.0)
    errors = [p.stderr.strip()] if p.returncode != 0 else []
    out.append(result("(smtp-source → smtp-sink)", "outbound", args.messages, start, newest, got,
                      errors, submitted=got, submit_rate=got / (last - start),
                      distinct=got, duplicates=0))
    sink.clear()
    return out


# ---- output -----------------------------------------------------------------

def fmt(r):
    partial = " (partial)" if r["done"] < r["total"] else ""
    if r["phase"] == "inbound":
        extra = ""
        if "maildir_rate" in r:
            extra = "; all %d in Maildirs: %.0f/s" % (r["delivered"], r["maildir_rate"])
        return "| %s | %s | %d%s | %.0f | %s | durable 250%s |" % (
            r["server"], r["phase"], r["done"], partial, r["rate"], r.get("load", "-"), extra)
    return ("| %s | %s | %d%s | %.0f | %s | submitted %d at %.0f/s; "
            "%d distinct, %d duplicates |" % (
                r["server"], r["phase"], r["done"], partial, r["rate"], r.get("load", "-"),
                r["submitted"], r["submit_rate"], r["distinct"], r["duplicates"]))


def loadavg(n=1):
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:n])


def keep_client_heap():
    """glibc trims the heap top back to the kernel whenever more than
    M_TRIM_THRESHOLD (128 KB until a large mmap'd block is freed) is free,
    and the client's 4 KB bodies then fault the same pages in again: on
    this VM a first-touch fault costs ~50 us, which made whichever phase
    ran first half as fast (16,000 faults, 0.8 s of system time for 4,000
    messages). Fixed thresholds keep the heap for the whole run."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def main():
    keep_client_heap()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ternd", default=os.environ.get("TERND", "build/ternd"))
    ap.add_argument("-n", "--messages", type=int, default=2000)
    ap.add_argument("-c", "--connections", type=int, default=50)
    ap.add_argument("--size", type=int, default=4096, help="message size in bytes")
    ap.add_argument("--server", default="tern,postfix")
    ap.add_argument("--phase", default="inbound,outbound")
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=180.0, help="bound per phase")
    ap.add_argument("--no-sink-check", action="store_true",
                    help="skip the client → smtp-sink ceiling run")
    ap.add_argument("--strace", action="store_true",
                    help="count fsync/rename/... per server with strace -f -c "
                         "(slows the servers: figures of such a run are not rates)")
    ap.add_argument("--keep", action="store_true", help="keep Postfix's temp dir")
    ap.add_argument("--postfix-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra main.cf settings for Postfix, e.g. in_flow_delay=0s")
    args = ap.parse_args()
    args.ternd = os.path.abspath(args.ternd)
    servers = args.server.split(",")
    POSTFIX_TUNING.update(kv.split("=", 1) for kv in args.postfix_set)
    phases = args.phase.split(",")
    if "postfix" in servers and not postfix_server.available():
        sys.exit("postfix missing: run scripts/install-bench-deps.sh")

    sink = Sink(tempfile.gettempdir())
    results = []
    try:
        sink.start()
        if not args.no_sink_check:
            load1 = loadavg()
            results.extend(dict(r, load=load1) for r in sink_phase(args, sink, "sink"))
        for p in range(args.passes):
            for phase in phases:
                for server in servers:
                    tag = "%s-%s-%d" % (server, phase, p)
                    fn = tern_phase if server == "tern" else postfix_phase
                    load1 = loadavg()
                    r = fn(args, phase, sink, tag)
                    r["load"] = load1
                    r["pass"] = p + 1
                    results.append(r)
                    print("  pass %d %s %s: %.0f/s" % (p + 1, server, phase, r["rate"]),
                          file=sys.stderr)
                    for e in r["errors"][:5]:
                        print("  error (%s %s): %s" % (server, phase, e), file=sys.stderr)
                    sink.clear()
    finally:
        sink.close()

    print()
    print("%d messages of %d bytes, %d connections, 127.0.0.1, %d cores, "
          "Postfix %s; load average at end: %s"
          % (args.messages, args.size, args.connections, os.cpu_count() or 0,
             postfix_server.version(), loadavg(3)))
    print("Tern [outbound]: %s; Postfix: %s" % (
        ", ".join("%s = %s" % kv for kv in TERN_OUTBOUND.items()),
        ", ".join("%s = %s" % kv for kv in POSTFIX_TUNING.items())))
    print()
    print("| server | phase | messages | messages/s | load avg (1 min) | notes |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(fmt(r) if "pass" not in r or args.passes == 1 else
              fmt(dict(r, server="%s (pass %d)" % (r["server"], r["pass"]))))
    if args.strace:
        print()
        print("| server | phase | syscalls during the phase (strace -f -c) |")
        print("|---|---|---|")
        for r in results:
            if "syscalls" in r:
                print("| %s | %s | %s |" % (r["server"], r["phase"], ", ".join(
                    "%s %d" % kv for kv in sorted(r["syscalls"].items()))))
    print()
    print("command: %s" % " ".join(["python3"] + sys.argv))
    print("load average (1, 5, 15 min) at the end: %s" % loadavg(3))
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
