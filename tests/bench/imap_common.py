"""imap_common.py - what the IMAP benches share.

- Client: a minimal asyncio IMAP client (tagged commands, literals in
  responses, LITERAL+ APPEND, IDLE) that keeps the untagged lines it reads
  so the benches can follow EXISTS and APPENDUID.
- Targets: "tern" starts a throwaway slapd and ternd through
  tests/integration/harness.py (as tests/bench/smtp_delivery.py does),
  "dovecot" a private Dovecot (dovecot_server.py), "external" is any
  server at --connect HOST:PORT with the given logins. Each target knows
  the PIDs whose memory and CPU time the benches read from /proc.
- Messages: deterministic, realistic test mail (mostly 2-20 KB of text,
  about one in twenty 200 KB with a base64 attachment), subjects drawn from
  a small word list so SEARCH SUBJECT finds a few per cent of them.

Everything runs on 127.0.0.1 only; what a target starts it stops by PID.
Nothing here asserts a timing.
"""
import asyncio
import base64
import os
import random
import re
import resource
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402
import dovecot_server  # noqa: E402

WORDS = ("invoice meeting budget report lunch release quarterly travel draft agenda "
         "contract review holiday update backup server deadline roadmap offsite "
         "hiring welcome security training feedback launch").split()
BODY_WORDS = ("the of and to in is that for it as was with be by on not he this are or "
              "his from at which but have an they you were her she there been one all "
              "we their has would when if so no what up out more about into them can "
              "only other new some time could these two may then first any like now "
              "my such make over our even most me state after also made many did must "
              "before back see through way where get much go well your know should").split()
# Words the search bench looks for: RARE_SUBJECT is in ~1 % of subjects,
# RARE_BODY in ~1 % of text bodies; neither is anywhere else.
RARE_SUBJECT = "zanzibar"
RARE_BODY = "quokka"


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def make_message(rng, n, user="user01", size=None, big=False):
    """One message as bytes (CRLF)."""
    subj_words = rng.sample(WORDS, 3)
    if rng.random() < 0.01:
        subj_words[1] = RARE_SUBJECT
    subject = "%s %s %s #%d" % (subj_words[0].capitalize(), subj_words[1], subj_words[2], n)
    if size is None:
        size = rng.randint(2000, 20000)
    words = []
    length = 0
    rare = rng.random() < 0.01
    while length < size:
        w = rng.choice(BODY_WORDS)
        words.append(w)
        length += len(w) + 1
    if rare:
        words.insert(rng.randrange(len(words)), RARE_BODY)
    lines = []
    for i in range(0, len(words), 12):
        lines.append(" ".join(words[i:i + 12]))
    text = ("\r\n".join(lines) + "\r\n").encode()
    sender = rng.choice(WORDS)
    head = ("From: %s <%s@example.org>\r\n"
            "To: %s <%s@example.test>\r\n"
            "Subject: %s\r\n"
            "Date: %s\r\n"
            "Message-ID: <bench-%d-%d@example.org>\r\n"
            "MIME-Version: 1.0\r\n"
            % (sender.capitalize(), sender, user, user, subject,
               time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                             time.gmtime(1767225600 + n * 600)),
               n, rng.randrange(1 << 30)))
    if not big:
        return (head + "Content-Type: text/plain; charset=us-ascii\r\n\r\n").encode() + text
    blob = rng.randbytes(150 * 1024)
    b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    return (head + 'Content-Type: multipart/mixed; boundary="=-bench-%d"\r\n\r\n'
            "--=-bench-%d\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            % (n, n)).encode() + text + (
        "\r\n--=-bench-%d\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n"
        "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" % n).encode() + b64 + (
        "\r\n--=-bench-%d--\r\n" % n).encode()


def message_set(seed, count, user="user01"):
    """count messages for one mailbox; about 1 in 20 is 200 KB."""
    rng = random.Random(seed)
    return [make_message(rng, i, user, big=(rng.random() < 0.05)) for i in range(count)]


class ImapError(Exception):
    pass


LITERAL_RE = re.compile(rb"\{(\d+)\+?\}$")


class Client:
    """One IMAP connection. command() returns (status, tagged line,
    untagged lines); literals are folded into their line as bytes."""

    def __init__(self):
        self.reader = self.writer = None
        self.n = 0
        self.exists = 0
        self.last_untagged = []

    async def connect(self, host, port, local_addr=None, timeout=60):
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local_addr, limit=1 << 20),
            timeout)
        greeting = await asyncio.wait_for(self.reader.readline(), timeout)
        if not greeting.startswith(b"* OK"):
            raise ImapError("greeting %r" % greeting[:100])
        return greeting

    async def read_line(self):
        """One response line with any literals folded in."""
        line = await self.reader.readline()
        if not line:
            raise ImapError("connection closed")
        line = line.rstrip(b"\r\n")
        m = LITERAL_RE.search(line)
        while m:
            data = await self.reader.readexactly(int(m.group(1)))
            rest = (await self.reader.readline()).rstrip(b"\r\n")
            line = line + b"\r\n" + data + rest
            m = LITERAL_RE.search(rest)
        return line

    def _track(self, line):
        parts = line.split(b" ", 3)
        if len(parts) >= 3 and parts[0] == b"*" and parts[1].isdigit():
            word = parts[2].upper()
            if word == b"EXISTS":
                self.exists = int(parts[1])
            elif word == b"EXPUNGE":
                self.exists -= 1

    async def _until_tagged(self, tag):
        untagged = []
        prefix = tag + b" "
        while True:
            line = await self.read_line()
            if line.startswith(prefix):
                status = line[len(prefix):].split(b" ", 1)[0].decode()
                self.last_untagged = untagged
                return status, line, untagged
            if line.startswith(b"* "):
                self._track(line)
            untagged.append(line)

    def _tag(self):
        self.n += 1
        return b"a%d" % self.n

    async def command(self, text, literal=None):
        """text: command after the tag (str or bytes). literal: bytes sent
        as a LITERAL+ literal appended to the command line."""
        tag = self._tag()
        if isinstance(text, str):
            text = text.encode()
        if literal is not None:
            self.writer.write(tag + b" " + text + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        else:
            self.writer.write(tag + b" " + text + b"\r\n")
        return await self._until_tagged(tag)

    async def ok(self, text, literal=None):
        status, line, untagged = await self.command(text, literal)
        if status != "OK":
            raise ImapError("%s -> %r" % (text if isinstance(text, str) else text[:60],
                                          line[:200]))
        return untagged

    async def login(self, user, password):
        return await self.ok("LOGIN %s %s" % (quote(user), quote(password)))

    async def idle_start(self):
        """Sends IDLE and waits for its continuation; returns the tag."""
        tag = self._tag()
        self.writer.write(tag + b" IDLE\r\n")
        while True:
            line = await self.read_line()
            if line.startswith(b"+"):
                return tag
            if line.startswith(tag + b" "):
                raise ImapError("IDLE refused: %r" % line[:200])
            self._track(line)

    async def idle_done(self, tag):
        self.writer.write(b"DONE\r\n")
        return await self._until_tagged(tag)

    async def compress(self):
        """COMPRESS DEFLATE (RFC 4978); from then on both directions go
        through raw DEFLATE (zlib, wbits -15), the replies through a pump
        task that inflates into a fresh StreamReader."""
        await self.ok("COMPRESS DEFLATE")
        raw, inflater = self.reader, zlib.decompressobj(-15)
        self.reader = asyncio.StreamReader(limit=1 << 20)

        async def pump():
            while True:
                chunk = await raw.read(65536)
                if not chunk:
                    self.reader.feed_eof()
                    return
                self.reader.feed_data(inflater.decompress(chunk))

        self.pump = asyncio.ensure_future(pump())
        self.writer = _ZWriter(self.writer)

    async def logout(self):
        try:
            self.writer.write(b"z LOGOUT\r\n")
            await asyncio.wait_for(self.writer.drain(), 5)
        except (OSError, asyncio.TimeoutError):
            pass
        self.close()

    def close(self):
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError:
                pass
            self.writer = None


class _ZWriter:
    """A StreamWriter whose writes are deflated, each with a sync flush."""

    def __init__(self, writer):
        self.raw = writer
        self.z = zlib.compressobj(6, zlib.DEFLATED, -15)

    def write(self, data):
        self.raw.write(self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH))

    async def drain(self):
        await self.raw.drain()

    def close(self):
        self.raw.close()


def quote(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


APPENDUID_RE = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


def appenduid(tagged_line):
    m = APPENDUID_RE.search(tagged_line)
    return int(m.group(2)) if m else None


# ---- targets ------------------------------------------------------------

def fixture_users(count=60):
    return [("user%02d" % i, "user%02d-pw-1" % i) for i in range(1, count + 1)]


class Target:
    """A server to bench: name, host, port, users, pids() and close()."""
    name = "?"
    host = "127.0.0.1"
    port = 0
    users = []
    config = ""

    def pids(self):
        return []

    def close(self):
        pass


class TernTarget(Target):
    name = "tern"

    def __init__(self, ternd, users=60, workers=2, storage=None, log_level="warn"):
        os.environ["TERND"] = os.path.abspath(ternd)
        self.ternd_path = os.path.abspath(ternd)
        self.env = harness.Env({"server": {"log_level": log_level, "workers": str(workers)},
                                "limits": {"message_size_max": "10M"},
                                "storage": dict(storage or {}, group_commit="yes")})
        self.port = self.env.ternd.imap_port
        self.users = fixture_users(users)
        self.config = open(self.env.ternd.conf_path).read()

    def pids(self):
        p = self.env.ternd.proc
        return [p.pid] if p is not None else []

    def slapd_pid(self):
        proc = getattr(self.env.slapd, "proc", None)
        return proc.pid if proc is not None else None

    def check_alive(self):
        self.env.ternd.check_alive()

    def close(self):
        self.env.close()


class DovecotTarget(Target):
    name = "dovecot"

    def __init__(self, users=60, clients=1000, hibernate=False):
        if not dovecot_server.available():
            raise RuntimeError("dovecot is not installed: run scripts/install-bench-deps.sh")
        self.users = fixture_users(users)
        self.dc = dovecot_server.Dovecot(self.users, clients=clients, hibernate=hibernate)
        self.dc.start()
        self.port = self.dc.port
        self.config = open(self.dc.conf_path).read()
        if hibernate:
            self.name = "dovecot+hibernate"

    def pids(self):
        return self.dc.pids()

    def check_alive(self):
        if self.dc.proc is None or self.dc.proc.poll() is not None:
            raise RuntimeError("dovecot died:\n" + self.dc.log_tail())

    def close(self):
        self.dc.close()


class ExternalTarget(Target):
    name = "external"

    def __init__(self, hostport, login_fmt, password_fmt, users, pids=()):
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.users = [(login_fmt % i, password_fmt % i) for i in range(1, users + 1)]
        self._pids = list(pids)

    def pids(self):
        out = []
        for p in self._pids:
            out.extend(dovecot_server.descendants(p))
        return out

    def check_alive(self):
        pass


def add_target_args(ap):
    ap.add_argument("--server", default="tern,dovecot",
                    help="comma list of: tern, dovecot, dovecot-hibernate, external")
    ap.add_argument("--ternd", default=os.environ.get("TERND", "build-bench/ternd"))
    ap.add_argument("--connect", help="external: HOST:PORT")
    ap.add_argument("--login-format", default="user%02d", help="external: login of user i")
    ap.add_argument("--password-format", default="user%02d-pw-1",
                    help="external: password of user i")
    ap.add_argument("--pid", type=int, action="append", default=[],
                    help="external: a server PID whose tree's memory and CPU are read")


def make_target(kind, args, users=60, clients=1000):
    if kind == "tern":
        return TernTarget(args.ternd, users=users)
    if kind == "dovecot":
        return DovecotTarget(users=users, clients=clients)
    if kind == "dovecot-hibernate":
        return DovecotTarget(users=users, clients=clients, hibernate=True)
    if kind == "external":
        if not args.connect:
            raise SystemExit("--server external needs --connect HOST:PORT")
        return ExternalTarget(args.connect, args.login_format, args.password_format, users,
                              args.pid)
    raise SystemExit("unknown server %r" % kind)


# ---- /proc readings ----------------------------------------------------

def proc_status(pid):
    """{field: kB} for VmRSS, RssAnon, RssFile of /proc/PID/status."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(v.split()[0])
                elif k == "Name":
                    out["Name"] = v.strip()
    except OSError:
        pass
    return out


def proc_pss(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(pids):
    """Summed kB over pids: rss, anon, pss; and process count by name."""
    tot = {"rss": 0, "anon": 0, "pss": 0, "procs": 0, "names": {}}
    for p in pids:
        st = proc_status(p)
        if not st:
            continue
        tot["rss"] += st.get("VmRSS", 0)
        tot["anon"] += st.get("RssAnon", 0)
        tot["pss"] += proc_pss(p)
        tot["procs"] += 1
        name = st.get("Name", "?")
        tot["names"][name] = tot["names"].get(name, 0) + 1
    return tot


def cpu_seconds(pids):
    """utime + stime of pids (and their reaped children), seconds."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / hz


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---- filling mailboxes ---------------------------------------------------

async def fill(target, per_user, users=None, seed=1, parallel=None, progress=True):
    """APPENDs per_user messages to each user's INBOX (one connection per
    user, the users in parallel). Returns (messages, bytes, seconds)."""
    users = users if users is not None else target.users
    parallel = parallel or min(len(users), 30)
    sem = asyncio.Semaphore(parallel)
    totals = {"n": 0, "bytes": 0}
    t0 = time.monotonic()

    async def one(idx, login, password):
        async with sem:
            c = Client()
            await c.connect(target.host, target.port)
            await c.login(login, password)
            msgs = message_set(seed * 1000 + idx, per_user, login)
            for m in msgs:
                await c.ok("APPEND INBOX", literal=m)
                totals["n"] += 1
                totals["bytes"] += len(m)
            await c.logout()

    await asyncio.gather(*(one(i, u, p) for i, (u, p) in enumerate(users)))
    return totals["n"], totals["bytes"], time.monotonic() - t0


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d cores (%s), load %.2f" % (os.cpu_count() or 0, model, os.getloadavg()[0])
