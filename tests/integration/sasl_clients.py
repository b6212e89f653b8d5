"""Client sides of the SASL mechanisms Cyrus runs in ternd, written here
from the RFCs so the tests do not trust the server's own library:
SCRAM-SHA-256 and -PLUS (RFC 5802/7677, channel binding tls-exporter of
RFC 9266), and a small IMAP/POP3/SMTP line client over pyOpenSSL, the one
Python TLS binding on Debian 12 that exports keying material (the
standard ssl module offers only tls-unique)."""
import base64
import hashlib
import hmac
import os
import select
import socket

from OpenSSL import SSL

EXPORTER_LABEL = b"EXPORTER-Channel-Binding"


def scram_verifier(password, salt=None, iterations=4096):
    """The RFC 5803 authPassword value for password."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b = lambda v: base64.b64encode(v).decode()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b(salt), b(stored), b(server_key))


class ScramError(Exception):
    pass


class Scram:
    """One SCRAM-SHA-256 exchange. cb: None (no channel binding, flag
    "n"), ("y", None) (client could bind but thinks the server cannot),
    or ("tls-exporter", bytes)."""

    def __init__(self, user, password, cb=None, nonce=None):
        self.user = user
        self.password = password
        self.cb = cb
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        if cb is None:
            self.gs2 = "n,,"
        elif cb[0] == "y":
            self.gs2 = "y,,"
        else:
            self.gs2 = "p=%s,," % cb[0]
        name = user.replace("=", "=3D").replace(",", "=2C")
        self.first_bare = "n=%s,r=%s" % (name, self.nonce)
        self.server_signature = None

    def first(self):
        return (self.gs2 + self.first_bare).encode()

    def final(self, server_first):
        sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise ScramError("server nonce does not extend ours")
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored = hashlib.sha256(client_key).digest()
        cbind = self.gs2.encode()
        if self.cb is not None and self.cb[0] not in ("y",):
            cbind += self.cb[1]
        without_proof = "c=%s,r=%s" % (base64.b64encode(cbind).decode(), attrs["r"])
        auth_message = ",".join((self.first_bare, sf, without_proof)).encode()
        signature = hmac.new(stored, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return ("%s,p=%s" % (without_proof, base64.b64encode(proof).decode())).encode()

    def check_final(self, server_final):
        sf = server_final.decode()
        if not sf.startswith("v="):
            raise ScramError("server-final is %r" % sf)
        if base64.b64decode(sf[2:]) != self.server_signature:
            raise ScramError("the server does not know the verifier")
        return True


def imaplib_scram(scram):
    """An authobject for imaplib.IMAP4.authenticate() (which answers the
    first, empty "+" itself by calling it)."""
    return scram_steps(scram)


class TlsLines:
    """A line-based client over pyOpenSSL: implicit TLS, or plain then
    start_tls(). Optional client certificate."""

    def __init__(self, port, tls=True, cert=None, key=None, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        # pyOpenSSL treats a socket with a timeout as non-blocking; block,
        # and bound each read with select() instead.
        self.sock.settimeout(None)
        self.timeout = timeout
        self.ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        self.ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
        if cert is not None:
            self.ctx.use_certificate_file(cert)
            self.ctx.use_privatekey_file(key)
        self.conn = None
        self.buf = b""
        if tls:
            self.start_tls()

    def start_tls(self):
        self.conn = SSL.Connection(self.ctx, self.sock)
        self.conn.set_connect_state()
        self.conn.set_tlsext_host_name(b"localhost")
        self.conn.do_handshake()
        self.buf = b""

    def exporter(self):
        return self.conn.export_keying_material(EXPORTER_LABEL, 32, b"")

    def version(self):
        return self.conn.get_protocol_version_name()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.conn is not None:
            self.conn.sendall(data)
        else:
            self.sock.sendall(data)

    def _recv(self):
        if self.conn is None or self.conn.pending() == 0:
            r, _, _ = select.select([self.sock], [], [], self.timeout)
            if not r:
                raise TimeoutError("no answer within %ss; got %r" % (self.timeout, self.buf))
        try:
            return self.conn.recv(65536) if self.conn is not None else self.sock.recv(65536)
        except SSL.WantReadError:
            return self._recv()  # a partial TLS record: wait for the rest
        except SSL.ZeroReturnError:
            return b""

    def readline(self):
        while b"\r\n" not in self.buf:
            chunk = self._recv()
            if not chunk:
                raise EOFError("connection closed; got %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def close(self):
        try:
            if self.conn is not None:
                self.conn.shutdown()
        except SSL.Error:
            pass
        self.sock.close()


def b64e(b):
    return base64.b64encode(b).decode()


def imap_sasl(lines, mech, steps, tag="a1", initial=None):
    """Runs AUTHENTICATE over a TlsLines (greeting already read).
    steps(challenge_bytes) -> response bytes. Returns the tagged line."""
    cmd = "%s AUTHENTICATE %s" % (tag, mech)
    if initial is not None:
        cmd += " " + (b64e(initial) if initial else "=")
    lines.send(cmd + "\r\n")
    while True:
        line = lines.readline()
        if line.startswith(tag + " "):
            return line
        if line.startswith("+"):
            chal = base64.b64decode(line[2:]) if len(line) > 2 else b""
            lines.send(b64e(steps(chal)) + "\r\n")


def smtp_sasl(lines, mech, steps, initial=None):
    """AUTH over a TlsLines after EHLO. Returns the final reply line."""
    cmd = "AUTH %s" % mech
    if initial is not None:
        cmd += " " + (b64e(initial) if initial else "=")
    lines.send(cmd + "\r\n")
    while True:
        line = lines.readline()
        if line.startswith("334"):
            chal = base64.b64decode(line[4:]) if len(line) > 4 else b""
            lines.send(b64e(steps(chal)) + "\r\n")
        elif line[3:4] == " ":
            return line


def pop3_sasl(lines, mech, steps, initial=None):
    cmd = "AUTH %s" % mech
    if initial is not None:
        cmd += " " + (b64e(initial) if initial else "=")
    lines.send(cmd + "\r\n")
    while True:
        line = lines.readline()
        if line.startswith("+ ") or line == "+":
            chal = base64.b64decode(line[2:]) if len(line) > 2 else b""
            lines.send(b64e(steps(chal)) + "\r\n")
        else:
            return line


def scram_steps(scram, skip_first=False):
    """steps() for the *_sasl helpers: client-first on the empty
    challenge (unless it went as the initial response), then the final,
    then the empty answer to the server-final."""
    state = {"n": 1 if skip_first else 0}

    def steps(chal):
        state["n"] += 1
        if state["n"] == 1:
            return scram.first()
        if state["n"] == 2:
            return scram.final(chal)
        scram.check_final(chal)
        return b""
    return steps
