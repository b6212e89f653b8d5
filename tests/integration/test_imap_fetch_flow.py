"""IMAP FETCH output flow control against the real ternd: a FETCH of a
whole mailbox of 1 MB messages to a client that reads slowly must not
queue the mailbox in ternd's memory (its anonymous RSS stays far below
the bytes fetched), over plain TCP, implicit TLS and STARTTLS; every byte
still arrives, in order and exact; a command pipelined behind the FETCH
and a delivery made while it waits are answered only after its last
response; and a client that disconnects in the middle of a big FETCH
leaves ternd serving (and, in the ASan build, leak-free at exit).

The memory figure is RssAnon from /proc/PID/status: the LMDB map is a
file mapping whose pages count in VmRSS as soon as they are read, which
says nothing about what ternd holds."""
import base64
import os
import random
import re
import socket
import struct
import time

import pytest

import harness
from harness import password

MSG_SIZE = 1 << 20
N_PLAIN = 40
N_TLS = 16
USER = "user05"

# ASan keeps freed memory in quarantine (256 MB by default), which would
# measure allocation volume instead of what is live: keep it small.
if harness.SANITIZE:
    os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                  ":quarantine_size_mb=8").lstrip(":")


def make_big(i):
    """A distinct ~1 MB message of base64 lines of random bytes, which
    zstd cannot shrink much (so the store really holds that much)."""
    rnd = random.Random(i)
    head = harness.make_message("flow-%d" % i, body=b"")
    body = base64.encodebytes(rnd.randbytes((MSG_SIZE - len(head)) * 3 // 4 - 2048))
    return head + body.replace(b"\n", b"\r\n")


@pytest.fixture(scope="module")
def env():
    e = harness.Env({"limits": {"message_size_max": "2M"}})
    yield e
    e.close()


@pytest.fixture(scope="module")
def corpus(env):
    """N_PLAIN messages appended to USER's INBOX (pipelined APPENDs with
    LITERAL+); returns the list of message bytes."""
    msgs = [make_big(i) for i in range(N_PLAIN)]
    c = Client(env.ternd.imap_port)
    c.login()
    out = []
    for i, m in enumerate(msgs):
        out.append(b"a%d APPEND INBOX {%d+}\r\n" % (i, len(m)) + m + b"\r\n")
    c.send(b"".join(out))
    for i in range(len(msgs)):
        _, tagged = c.response("a%d" % i)
        assert tagged.startswith(b"a%d OK" % i), tagged
    c.close()
    return msgs


def rss_anon_kb(t):
    with open("/proc/%d/status" % t.proc.pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/%d/status" % t.proc.pid)


class Client:
    """A raw IMAP client with a small receive buffer, so that what the
    client has not read stays in ternd, not in the kernel."""

    def __init__(self, port, tls=False, rcvbuf=64 * 1024):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(harness.TIMEOUT * 3)
        s.connect(("127.0.0.1", port))
        if tls:
            s = harness.client_tls_context().wrap_socket(s)
        self.sock = s
        self.buf = bytearray()
        assert self.readline().startswith(b"* OK"), "no greeting"

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def fill(self, n=65536):
        chunk = self.sock.recv(n)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk
        return len(chunk)

    def readline(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self.fill()

    def response(self, tag, command=None):
        if command is not None:
            self.send("%s %s\r\n" % (tag, command))
        untagged = []
        while True:
            line = self.readline()
            if line.startswith(tag.encode() + b" "):
                return untagged, line
            untagged.append(line)

    def login(self, user=USER):
        _, tagged = self.response("l", "LOGIN %s %s" % (user, password(user)))
        assert tagged.startswith(b"l OK"), tagged

    def starttls(self):
        _, tagged = self.response("t", "STARTTLS")
        assert tagged.startswith(b"t OK"), tagged
        assert not self.buf
        self.sock = harness.client_tls_context().wrap_socket(self.sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


FETCH_RE = re.compile(rb"\* (\d+) FETCH \(BODY\[\] \{(\d+)\}$")


def slow_fetch(t, c, msgs, n, extra_send=None, during_wait=None):
    """Sends FETCH 1:n BODY.PEEK[] (plus extra_send pipelined behind it),
    waits without reading, then reads in small pieces with pauses.
    Returns (peak RssAnon growth in kB, every line/literal event seen)."""
    base = rss_anon_kb(t)
    c.send("f FETCH 1:%d BODY.PEEK[]\r\n%s" % (n, extra_send or ""))
    time.sleep(1.0)  # ternd fills what it may and waits for us
    peak = rss_anon_kb(t) - base
    if during_wait is not None:
        during_wait()
        time.sleep(0.3)
    events = []
    reads = 0
    expect_seq = 1
    done_tags = set()
    wanted_tags = {"f"} | set(re.findall(r"^(\w+) ", extra_send or "", re.M))
    while done_tags != wanted_tags:
        # Small reads with pauses: the client is slower than ternd.
        while b"\r\n" not in c.buf:
            c.fill(32768)
            reads += 1
            if reads % 16 == 0:
                peak = max(peak, rss_anon_kb(t) - base)
                time.sleep(0.005)
        line = c.readline()
        m = FETCH_RE.match(line)
        if m:
            seq, size = int(m.group(1)), int(m.group(2))
            assert seq == expect_seq, (seq, expect_seq)
            while len(c.buf) < size + 3:
                c.fill(32768)
                reads += 1
                if reads % 16 == 0:
                    peak = max(peak, rss_anon_kb(t) - base)
                    time.sleep(0.005)
            data = bytes(c.buf[:size])
            assert data == msgs[seq - 1], "message %d differs" % seq
            assert bytes(c.buf[size:size + 3]) == b")\r\n"
            del c.buf[:size + 3]
            events.append(("fetch", seq))
            expect_seq += 1
            continue
        tag = line.split(b" ", 1)[0].decode()
        if tag in wanted_tags:
            done_tags.add(tag)
        events.append(("line", line))
    assert expect_seq == n + 1, "got %d of %d responses" % (expect_seq - 1, n)
    return peak, events


def test_plain_fetch_is_flow_controlled(env, corpus):
    t = env.ternd
    c = Client(t.imap_port)
    c.login()
    _, tagged = c.response("s", "SELECT INBOX")
    assert tagged.startswith(b"s OK"), tagged
    token = harness.unique_token("late")

    def deliver():
        # Arrives while the FETCH waits for us: its EXISTS must not
        # land inside the FETCH's responses.
        t.send("%s@example.test" % USER, harness.make_message(token))

    peak, events = slow_fetch(t, c, corpus, N_PLAIN, extra_send="n NOOP\r\n",
                              during_wait=deliver)
    total_kb = N_PLAIN * MSG_SIZE // 1024
    assert peak < total_kb // 2, "ternd grew by %d kB for a %d kB FETCH" % (peak, total_kb)
    # Order: every FETCH response, then f's tagged OK, then NOOP's.
    lines = [e[1] for e in events if e[0] == "line"]
    last_fetch = max(i for i, e in enumerate(events) if e[0] == "fetch")
    f_ok = next(i for i, e in enumerate(events) if e[0] == "line" and e[1].startswith(b"f "))
    n_ok = next(i for i, e in enumerate(events) if e[0] == "line" and e[1].startswith(b"n "))
    assert last_fetch < f_ok < n_ok, lines
    assert events[f_ok][1] == b"f OK FETCH completed"
    assert events[n_ok][1].startswith(b"n OK")
    # The delivery is told by NOOP at the latest, never mid-FETCH.
    assert b"* %d EXISTS" % (N_PLAIN + 1) in lines
    c.response("x", "LOGOUT")
    c.close()
    t.check_alive()


@pytest.mark.parametrize("mode", ["imaps", "starttls"])
def test_tls_fetch_is_flow_controlled(env, corpus, mode):
    t = env.ternd
    if mode == "imaps":
        c = Client(t.imaps_port, tls=True)
    else:
        c = Client(t.imap_port)
        c.starttls()
    c.login()
    _, tagged = c.response("s", "EXAMINE INBOX")
    assert tagged.startswith(b"s OK"), tagged
    peak, events = slow_fetch(t, c, corpus, N_TLS)
    total_kb = N_TLS * MSG_SIZE // 1024
    assert peak < total_kb // 2, "ternd grew by %d kB for a %d kB FETCH" % (peak, total_kb)
    assert events[-1] == ("line", b"f OK FETCH completed")
    c.response("x", "LOGOUT")
    c.close()
    t.check_alive()


@pytest.mark.parametrize("tls", [False, True])
def test_disconnect_mid_fetch(env, corpus, tls):
    t = env.ternd
    for _ in range(2):
        c = Client(t.imaps_port if tls else t.imap_port, tls=tls)
        c.login()
        _, tagged = c.response("s", "SELECT INBOX")
        assert tagged.startswith(b"s OK"), tagged
        c.send("f FETCH 1:* BODY[]\r\n")
        got = 0
        while got < 3 * MSG_SIZE:
            got += c.fill()
        # Gone with most of it unread (a reset, not a polite close).
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    time.sleep(0.5)
    t.check_alive()
    # ternd serves on; the aborted FETCH's \Seen was made durable before
    # any byte was sent.
    m = t.imap_login(USER)
    typ, data = m.select("INBOX", readonly=True)
    assert typ == "OK" and int(data[0]) == N_PLAIN + 1
    typ, data = m.fetch("1", "(FLAGS)")
    assert typ == "OK" and b"\\Seen" in data[0], data
    m.logout()
