"""IMAP COMPRESS=DEFLATE (RFC 4978) with a raw-socket client that speaks
raw DEFLATE through Python's zlib (wbits -15), over plain TCP and inside
implicit TLS: the capability, LOGIN then COMPRESS, SELECT, FETCH (a large
message too, which goes through the FETCH flow control), APPEND with a
synchronizing literal and with LITERAL+, IDLE woken by an SMTP delivery,
COMPRESS twice (NO [COMPRESSIONACTIVE]), an unknown algorithm and COMPRESS
before login (BAD), and corrupt compressed input, which closes that
connection with a log line while the server carries on.

Every server burst must be complete after a sync flush: the client reads
with a timeout and never sends more until it has its answer, so a byte
held back by zlib would make these tests hang and fail."""
import os
import socket
import time
import zlib

import pytest

import harness
from harness import make_message, unique_token

WAIT = 2.0 if not harness.SANITIZE else 5.0


@pytest.fixture(scope="module")
def env():
    # Room for the large FETCH (the harness allows 1M).
    e = harness.Env({"limits": {"message_size_max": "8M"}})
    yield e
    e.close()


class ZImap(harness.RawLines):
    """Raw IMAP that can switch both directions to raw DEFLATE."""

    def __init__(self, t, tls=False, login=None):
        super().__init__(t.imaps_port if tls else t.imap_port, tls=tls)
        self.n = 0
        self.comp = self.decomp = None
        self.wire_in = 0  # compressed bytes received
        assert self.readline().startswith(b"* OK")
        if login is not None:
            u, tagged = self.cmd("LOGIN %s %s" % (login, harness.password(login)))
            assert tagged.startswith("OK [CAPABILITY"), tagged

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.comp is not None:
            data = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def readline(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf[:200])
            if self.decomp is not None:
                self.wire_in += len(chunk)
                chunk = self.decomp.decompress(chunk)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_bytes(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            if self.decomp is not None:
                self.wire_in += len(chunk)
                chunk = self.decomp.decompress(chunk)
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def cmd(self, text):
        self.n += 1
        tag = "a%d" % self.n
        untagged, tagged = self.imap(tag, text)
        return [x.decode() for x in untagged], tagged.decode()[len(tag) + 1:]

    def compress(self):
        u, tagged = self.cmd("COMPRESS DEFLATE")
        assert (u, tagged) == ([], "OK DEFLATE active"), (u, tagged)
        self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decomp = zlib.decompressobj(-15)
        # Whatever followed the OK's CRLF is compressed already.
        rest, self.buf = self.buf, b""
        self.buf = self.decomp.decompress(rest)


def deliver(t, login, body=None):
    addr = "%s@example.test" % login
    tok = unique_token("z")
    code, _ = t.send(addr, make_message(tok, body=body, to=addr))
    assert code == 250
    return tok


def session(t, tls, login):
    """LOGIN, COMPRESS, SELECT, FETCH, both APPENDs, IDLE, COMPRESS again,
    LOGOUT: all compressed."""
    tok = deliver(t, login)
    c = ZImap(t, tls=tls, login=login)
    u, tagged = c.cmd("CAPABILITY")
    assert "COMPRESS=DEFLATE" in u[0].split(), u
    c.compress()
    u, tagged = c.cmd("SELECT INBOX")
    assert tagged.startswith("OK [READ-WRITE]"), tagged
    assert "* 1 EXISTS" in u, u
    # FETCH with a literal in the response.
    c.send("f1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    line = c.readline()
    assert line.startswith(b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {"), line
    n = int(line[line.rindex(b"{") + 1:-1])
    assert tok.encode() in c.read_bytes(n)
    assert c.readline() == b")"
    assert c.readline() == b"f1 OK FETCH completed"
    # APPEND with a synchronizing literal: the "+" must arrive before we
    # send the message.
    msg = make_message(unique_token("app"))
    c.send("p1 APPEND INBOX {%d}\r\n" % len(msg))
    assert c.readline().startswith(b"+ ")
    c.send(msg + b"\r\n")
    line = c.readline()
    assert line.startswith(b"* 2 EXISTS") or line.startswith(b"p1 OK [APPENDUID"), line
    while not line.startswith(b"p1 "):
        line = c.readline()
    assert line.startswith(b"p1 OK [APPENDUID"), line
    # LITERAL+
    msg = make_message(unique_token("app"))
    c.send(b"p2 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    line = c.readline()
    while not line.startswith(b"p2 "):
        line = c.readline()
    assert line.startswith(b"p2 OK [APPENDUID"), line
    # IDLE, woken by a delivery.
    u, tagged = c.cmd("NOOP")
    assert tagged == "OK NOOP completed"
    c.send("i1 IDLE\r\n")
    assert c.readline() == b"+ idling"
    deliver(t, login)
    c.sock.settimeout(WAIT)
    got = [c.readline(), c.readline()]
    c.sock.settimeout(harness.TIMEOUT)
    assert got[0] == b"* 4 EXISTS", got
    c.send("DONE\r\n")
    assert c.readline() == b"i1 OK IDLE terminated"
    # Twice is refused, and the stream goes on.
    assert c.cmd("COMPRESS DEFLATE") == (
        [], "NO [COMPRESSIONACTIVE] DEFLATE active via COMPRESS")
    assert c.cmd("COMPRESS deflate") == (
        [], "NO [COMPRESSIONACTIVE] DEFLATE active via COMPRESS")
    u, tagged = c.cmd("NOOP")
    assert tagged == "OK NOOP completed"
    assert c.cmd("LOGOUT") == (["* BYE Logging out"], "OK LOGOUT completed")
    assert c.wire_in > 0
    c.close()
    t.check_alive()


def test_compress_plain(env):
    session(env.ternd, False, "user20")


def test_compress_inside_tls(env):
    session(env.ternd, True, "user21")


def test_large_fetch_through_flow_control(env):
    """A 3 MB message of random hex text, fetched whole: the output is
    produced in pieces as the client reads (conn_on_drain) and all of it
    arrives, byte for byte; and a large compressed APPEND."""
    t = env.ternd
    login = "user22"
    body = b"".join(os.urandom(57).hex().encode() + b"\r\n" for _ in range(26000))
    deliver(t, login, body=body)
    for tls in (False, True):
        c = ZImap(t, tls=tls, login=login)
        c.compress()
        u, tagged = c.cmd("EXAMINE INBOX")
        assert tagged.startswith("OK [READ-ONLY]"), tagged
        c.send("f1 FETCH 1 BODY.PEEK[TEXT]\r\n")
        line = c.readline()
        n = int(line[line.rindex(b"{") + 1:-1])
        data = c.read_bytes(n)
        assert data == body
        assert c.readline() == b")"
        assert c.readline() == b"f1 OK FETCH completed"
        # hex compresses to about half: the server really compressed
        assert c.wire_in < n * 0.75, (c.wire_in, n)
        c.close()
    # Upstream: a 1 MB APPEND literal that deflates to a few KB is
    # inflated piece by piece and stored whole.
    c = ZImap(t, login=login)
    c.compress()
    msg = b"Subject: big\r\n\r\n" + b"z" * (1 << 20) + b"\r\n"
    c.send(b"p1 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    line = c.readline()
    assert line.startswith(b"p1 OK [APPENDUID"), line
    u, tagged = c.cmd("SELECT INBOX")
    assert "* 2 EXISTS" in u, u
    assert c.cmd("FETCH 2 RFC822.SIZE") == (["* 2 FETCH (RFC822.SIZE %d)" % len(msg)],
                                            "OK FETCH completed")
    c.close()


def test_errors_and_states(env):
    t = env.ternd
    c = ZImap(t)
    assert c.cmd("COMPRESS DEFLATE") == ([], "BAD COMPRESS needs authentication first")
    u, tagged = c.cmd("LOGIN user23 %s" % harness.password("user23"))
    assert tagged.startswith("OK"), tagged
    assert c.cmd("COMPRESS LZW") == ([], "BAD Unknown compression algorithm")
    assert c.cmd("COMPRESS") == ([], "BAD COMPRESS takes an algorithm name")
    assert c.cmd("COMPRESS DEFLATE DEFLATE") == ([], "BAD COMPRESS takes an algorithm name")
    assert c.cmd('COMPRESS "DEFLATE"') == ([], "BAD COMPRESS takes an algorithm name")
    # Still uncompressed after the refusals.
    assert c.cmd("NOOP") == ([], "OK NOOP completed")
    c.close()


def test_corrupt_input_closes_cleanly(env):
    t = env.ternd
    c = ZImap(t, login="user24")
    c.compress()
    assert c.cmd("NOOP") == ([], "OK NOOP completed")
    # Not a valid DEFLATE stream: block type 3 is reserved (RFC 1951 3.2.3).
    c.sock.sendall(b"\xff\xff\xff\xff\xff\xff\xff\xff")
    c.sock.settimeout(WAIT)
    with pytest.raises(EOFError):
        while True:
            c.readline()
    c.close()
    deadline = time.monotonic() + WAIT
    while b"compress-error" not in t.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"compress-error ip=127.0.0.1" in t.log()
    assert b'reason="compression error"' in t.log()
    t.check_alive()
    # Others are unaffected.
    c = ZImap(t, login="user24")
    c.compress()
    assert c.cmd("NOOP") == ([], "OK NOOP completed")
    c.close()
