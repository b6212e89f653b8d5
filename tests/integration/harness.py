"""harness.py - runs the real ternd against the throwaway slapd for tests.

Everything listens on 127.0.0.1 on ports picked free at run time and
lives in a temp dir of its own, so two test files may run at once
(ctest -j2). Every process started here is a direct child, stopped by
PID: SIGTERM, a bounded wait, then SIGKILL and a failure.

ternd's stderr goes to a file; the pytest hook in conftest.py shows its
tail when a test fails. With TERN_SANITIZE=ON a sanitizer report in that
file fails the test. A ternd that does not exit 0 on SIGTERM always fails
it (DESIGN.md: ternd exits cleanly on SIGTERM).

The client helpers speak the protocols with the standard library
(smtplib, poplib) and, where the exact bytes matter, raw sockets.
"""
import base64
import imaplib
import os
import poplib
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))

import org_ldif  # noqa: E402
import slapd_fixture  # noqa: E402
from slapd_fixture import Slapd, free_port  # noqa: E402,F401

HOSTNAME = "mail.example.test"
SANITIZE = os.environ.get("TERN_SANITIZE", "OFF").upper() in ("ON", "1", "YES", "TRUE")
SANITIZER_MARKS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer", b"runtime error:")
TIMEOUT = 20 if SANITIZE else 10  # client socket timeout, seconds

# Every ternd started and not yet cleaned up (conftest shows their logs
# when a test fails, and kills leftovers at the end of the session).
INSTANCES = []
SLAPDS = []


def ternd_path():
    path = os.environ.get("TERND")
    if not path:
        for cand in ("build/ternd", "build-it/ternd"):
            p = os.path.join(ROOT, cand)
            if os.path.exists(p):
                path = p
                break
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError("set TERND to the ternd binary (got %r)" % path)
    return path


def sanitizer_env():
    """The environment for a daemon: LSAN_OPTIONS gains lsan.supp (known
    leaks inside system libraries, explained there)."""
    env = dict(os.environ)
    if SANITIZE:
        opts = env.get("LSAN_OPTIONS", "")
        if "suppressions=" not in opts:
            supp = "suppressions=%s" % os.path.join(HERE, "lsan.supp")
            env["LSAN_OPTIONS"] = "%s:%s" % (opts, supp) if opts else supp
    return env


def password(login):
    return org_ldif.password_for(login)


def make_cert(directory):
    """A self-signed certificate for CN=localhost; returns (cert, key)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=localhost", "-days", "2",
                        "-keyout", key, "-out", cert],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
        os.chmod(key, 0o600)
    return cert, key


def client_tls_context():
    """Clients accept the self-signed test certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def render_config(sections):
    """sections: list of (name, {key: value}); returns INI text."""
    out = ["; written by tests/integration/harness.py"]
    for name, keys in sections:
        out.append("[%s]" % name)
        for k, v in keys.items():
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


class Ternd:
    """One ternd with its own state dir, ports and config.

    overrides: {section: {key: value}} merged into the default config;
    a section mapped to None is left out, a key mapped to None is dropped.
    """

    def __init__(self, workdir, ldap_uri, cert, key, overrides=None, name="ternd"):
        self.workdir = workdir
        self.name = name
        self.state_dir = os.path.join(workdir, name + "-state")
        self.conf_path = os.path.join(workdir, name + ".conf")
        self.log_path = os.path.join(workdir, name + ".stderr")
        self.secret_path = os.path.join(workdir, "ldap.secret")
        self.smtp_port = free_port()
        self.pop3_port = free_port()
        self.pop3s_port = free_port()
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.proc = None
        self.returncode = None
        self.extra_env = {}  # more environment for the ternd process (KRB5_CONFIG...)
        with open(self.secret_path, "w") as f:
            f.write(org_ldif.SERVICE_PASSWORD + "\n")
        os.chmod(self.secret_path, 0o600)
        sections = [
            ("server", {"hostname": HOSTNAME, "domains": ", ".join(org_ldif.LOCAL_DOMAINS),
                        "state_dir": self.state_dir, "workers": "2", "log_level": "info"}),
            ("tls", {"cert": cert, "key": key}),
            ("directory", {"uri": ldap_uri, "base": org_ldif.SUFFIX,
                           "bind_dn": org_ldif.SERVICE_DN,
                           "bind_password_file": self.secret_path,
                           "profile": "openldap", "cache_ttl": "1s", "negative_ttl": "1s",
                           "timeout": "3s"}),
            ("limits", {"message_size_max": "1M", "auth_fail_delay": "100ms",
                        "max_auth_failures": "3"}),
            ("storage", {"group_commit": "yes"}),
            # The queue runner may only ever ask a loopback resolver; where
            # a test has none (nothing listens on port 9), remote mail just
            # waits in the queue (outbound tests set their own DnsServer).
            ("dns", {"resolver": "127.0.0.1:9"}),
            # SPF on port 25 would wait for that dead resolver (seconds
            # per message); tests of sender authentication turn it on.
            ("spf", {"check": "no"}),
            # Same for DKIM verification and DMARC on port 25.
            ("dkim", {"verify": "no"}),
            ("dmarc", {"check": "no"}),
            ("smtp", {"listen": "127.0.0.1:%d" % self.smtp_port}),
            ("pop3", {"listen": "127.0.0.1:%d" % self.pop3_port, "plaintext_auth": "yes"}),
            ("pop3s", {"listen": "127.0.0.1:%d" % self.pop3s_port}),
            ("imap", {"listen": "127.0.0.1:%d" % self.imap_port, "plaintext_auth": "yes"}),
            ("imaps", {"listen": "127.0.0.1:%d" % self.imaps_port}),
        ]
        overrides = overrides or {}
        merged = []
        seen = set()
        for sname, keys in sections:
            seen.add(sname)
            if sname in overrides:
                if overrides[sname] is None:
                    continue
                keys = dict(keys)
                for k, v in overrides[sname].items():
                    if v is None:
                        keys.pop(k, None)
                    else:
                        keys[k] = v
            merged.append((sname, keys))
        for sname, keys in overrides.items():
            if sname not in seen and keys is not None:
                merged.append((sname, dict(keys)))
        self.sections = merged
        with open(self.conf_path, "w") as f:
            f.write(render_config(merged))

    def listeners(self):
        names = {s for s, _ in self.sections}
        ports = []
        if "smtp" in names:
            ports.append(self.smtp_port)
        if "pop3" in names:
            ports.append(self.pop3_port)
        if "imap" in names:
            ports.append(self.imap_port)
        # pop3s is bound with the others before any is served; probing it
        # with a bare connect only puts a TLS error in the log.
        return ports

    def start(self, timeout=None):
        timeout = timeout or (30 if SANITIZE else 15)
        log = open(self.log_path, "ab")
        try:
            env = sanitizer_env()
            env.update(self.extra_env)
            self.proc = subprocess.Popen([ternd_path(), "-c", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env)
        finally:
            log.close()
        INSTANCES.append(self)
        deadline = time.monotonic() + timeout
        pending = list(self.listeners())
        while pending:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise AssertionError("%s exited with %d during start-up:\n%s"
                                     % (self.name, rc, self.log_tail()))
            try:
                with socket.create_connection(("127.0.0.1", pending[0]), timeout=1):
                    pending.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("%s did not listen within %ss:\n%s"
                                     % (self.name, timeout, self.log_tail()))
            time.sleep(0.02)
        # The control socket comes up after the listeners are bound; a
        # test may talk to it as soon as start() returns.
        while not os.path.exists(self.control_path()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("%s: no control socket:\n%s" % (self.name, self.log_tail()))
            time.sleep(0.02)
        return self

    def control_path(self):
        return os.path.join(self.state_dir, "control")

    def control(self, request, timeout=10):
        """One request on ternd's control socket (core/control.h); the
        decoded answer."""
        return control_call(self.control_path(), request, timeout)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def log_tail(self, nbytes=6000):
        return self.log()[-nbytes:].decode(errors="replace")

    def sanitizer_report(self):
        data = self.log()
        for mark in SANITIZER_MARKS:
            i = data.find(mark)
            if i >= 0:
                return data[max(0, i - 200):i + 4000].decode(errors="replace")
        return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self, timeout=None):
        """SIGTERM and wait; a hang, a non-zero exit or a sanitizer report
        raises AssertionError (after the process is gone)."""
        timeout = timeout or (30 if SANITIZE else 10)
        if self.proc is None:
            return self.returncode
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.proc = None
            raise AssertionError("%s did not exit within %ss of SIGTERM:\n%s"
                                 % (self.name, timeout, self.log_tail()))
        self.proc = None
        self.returncode = proc.returncode
        report = self.sanitizer_report()
        if report is not None:
            raise AssertionError("%s: sanitizer report:\n%s" % (self.name, report))
        if proc.returncode != 0:
            raise AssertionError("%s exited with %d on SIGTERM:\n%s"
                                 % (self.name, proc.returncode, self.log_tail()))
        return 0

    def check_alive(self):
        assert self.proc is not None and self.proc.poll() is None, \
            "%s died:\n%s" % (self.name, self.log_tail())
        report = self.sanitizer_report()
        assert report is None, report

    # ---- SMTP -----------------------------------------------------------
    def smtp(self, ehlo=True):
        s = smtplib.SMTP("127.0.0.1", self.smtp_port, local_hostname="client.example.org",
                         timeout=TIMEOUT)
        if ehlo:
            code, _ = s.ehlo()
            assert code == 250
        return s

    def send(self, rcpts, msg, sender="sender@example.org"):
        """One transaction; every recipient must be accepted. Returns the
        final reply (code, text)."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        if isinstance(msg, str):
            msg = msg.encode()
        s = self.smtp()
        try:
            code, text = s.mail(sender)
            assert code == 250, (code, text)
            for r in rcpts:
                code, text = s.rcpt(r)
                assert code == 250, (r, code, text)
            code, text = s.data(msg)
            s.quit()
            return code, text
        finally:
            s.close()

    # ---- POP3 -----------------------------------------------------------
    def pop3(self):
        return poplib.POP3("127.0.0.1", self.pop3_port, timeout=TIMEOUT)

    def pop3s(self):
        return poplib.POP3_SSL("127.0.0.1", self.pop3s_port, timeout=TIMEOUT,
                               context=client_tls_context())

    # ---- IMAP -----------------------------------------------------------
    def imap(self):
        return imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=TIMEOUT)

    def imaps(self):
        return imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, timeout=TIMEOUT,
                                 ssl_context=client_tls_context())

    def imap_login(self, login, pw=None):
        m = self.imap()
        m.login(login, pw if pw is not None else password(login))
        return m

    def pop3_login(self, login, pw=None):
        p = self.pop3()
        p.user(login)
        p.pass_(pw if pw is not None else password(login))
        return p

    def mailbox(self, login, pw=None):
        """Every message of login's mailbox as bytes (CRLF line ends,
        byte-stuffing removed by poplib). The session ends with QUIT."""
        p = self.pop3_login(login, pw)
        try:
            count, _ = p.stat()
            msgs = []
            for i in range(1, count + 1):
                _, lines, _ = p.retr(i)
                msgs.append(b"".join(l + b"\r\n" for l in lines))
            p.quit()
            return msgs
        except BaseException:
            p.close()
            raise


def unique_token(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex)


def make_message(token, body=None, sender="sender@example.org", to="someone@example.test",
                 subject=None, extra_headers=()):
    """A small RFC 5322 message (bytes, CRLF) with Message-ID <token@test>."""
    if body is None:
        body = b"Hello from the integration tests.\r\nSecond line.\r\n"
    if isinstance(body, str):
        body = body.encode()
    hdrs = [
        "From: <%s>" % sender,
        "To: <%s>" % to,
        "Subject: %s" % (subject or token),
        "Message-ID: <%s@test.example.org>" % token,
        "Date: Thu, 01 Jan 2026 00:00:00 +0000",
    ]
    hdrs.extend(extra_headers)
    return ("\r\n".join(hdrs) + "\r\n\r\n").encode() + body


def count_token(msgs, token):
    t = token.encode()
    return sum(1 for m in msgs if t in m)


def find_token(msgs, token):
    t = token.encode()
    found = [m for m in msgs if t in m]
    assert len(found) == 1, "expected one message with %s, found %d" % (token, len(found))
    return found[0]


def split_message(raw):
    """(header bytes, body bytes) split at the first empty line."""
    i = raw.find(b"\r\n\r\n")
    assert i >= 0, raw[:200]
    return raw[:i + 2], raw[i + 4:]


def header_names(header_bytes):
    names = []
    for line in header_bytes.split(b"\r\n"):
        if line and line[:1] not in (b" ", b"\t") and b":" in line:
            names.append(line.split(b":", 1)[0].decode().lower())
    return names


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def control_call(path, request, timeout=10):
    """Sends one JSON line (request: a dict, or raw bytes sent as they
    are) to a control socket and returns the decoded answer line."""
    import json
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        data = request if isinstance(request, bytes) else json.dumps(request).encode() + b"\n"
        s.sendall(data)
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError("control socket closed; have %r" % buf)
            buf += chunk
        return json.loads(buf.split(b"\n", 1)[0])
    finally:
        s.close()


class RawLines:
    """A raw line-oriented client for tests that check the wire bytes."""

    def __init__(self, port, tls=False, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def readline(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def smtp_reply(self):
        """(code, [text lines]) of one possibly multi-line SMTP reply."""
        lines = []
        while True:
            line = self.readline()
            lines.append(line[4:].decode(errors="replace"))
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def read_multiline(self):
        """A POP3 multi-line body after its +OK line, still byte-stuffed,
        up to and without the terminating '.' line, CRLF line ends."""
        out = b""
        while True:
            line = self.readline()
            if line == b".":
                return out
            out += line + b"\r\n"

    def imap(self, tag, command=None):
        """Sends "tag command" (unless command is None: just reads) and
        returns (untagged lines, tagged line) up to tag's completion."""
        if command is not None:
            self.send("%s %s\r\n" % (tag, command))
        untagged = []
        prefix = tag.encode() + b" "
        while True:
            line = self.readline()
            if line.startswith(prefix):
                return untagged, line
            untagged.append(line)

    def start_tls(self):
        self.sock = client_tls_context().wrap_socket(self.sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Env:
    """A slapd and a ternd in one temp dir, with helpers to stop both."""

    def __init__(self, overrides=None, start_ternd=True, flavour="openldap", slapd_opts=None):
        self.tmp = tempfile.mkdtemp(prefix="tern-it-")
        # flavour "ad": the AD-shaped directory (tests/fixtures/ad.schema);
        # slapd_opts: more Slapd() options (syncprov=False, ...).
        self.slapd = Slapd(os.path.join(self.tmp, "ldap"), flavour=flavour,
                           **(slapd_opts or {}))
        SLAPDS.append(self.slapd)
        self.slapd.start()
        self.cert, self.key = make_cert(self.tmp)
        self.ternds = []
        self.ternd = None
        try:
            if start_ternd:
                self.ternd = self.new_ternd(overrides)
        except BaseException:
            self.slapd.stop()
            raise

    def new_ternd(self, overrides=None, name=None, start=True, ldap_uri=None):
        name = name or "ternd%d" % len(self.ternds)
        t = Ternd(self.tmp, ldap_uri or self.slapd.uri, self.cert, self.key, overrides, name)
        self.ternds.append(t)
        if start:
            t.start()
        return t

    def close(self):
        errors = []
        for t in self.ternds:
            try:
                t.stop()
            except AssertionError as e:
                errors.append(str(e))
        self.slapd.stop()
        for t in self.ternds:
            if t in INSTANCES:
                INSTANCES.remove(t)
        if self.slapd in SLAPDS:
            SLAPDS.remove(self.slapd)
        if not errors:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))


# ---- outbound fixtures: a loopback DNS server and far-side SMTP sinks ----

DNSMASQ = "/usr/sbin/dnsmasq"


class DnsServer:
    """Debian's dnsmasq on 127.0.0.1:<free port>, answering only from the
    records given here (no upstream, no /etc/hosts): every other name
    under the zones in `local` is NXDOMAIN. ternd's [dns] resolver points
    at it, so no query ever leaves loopback.

    mx: [(domain, host, preference)]; hosts: [(name, ipv4)];
    rr: [(name, rrtype number, hex rdata)] for records dnsmasq has no
    option for (null MX: (domain, 15, "000000"));
    txt: [(name, [strings])]: one TXT record of those character-strings
    (several entries for one name make several records);
    servfail: names (zones) whose queries get SERVFAIL: dnsmasq forwards
    them to a server that refuses them."""

    def __init__(self, workdir, mx=(), hosts=(), rr=(), local=("test",), txt=(),
                 servfail=()):
        self.workdir = workdir
        self.port = free_port()
        self.log_path = os.path.join(workdir, "dnsmasq-%d.log" % self.port)
        self.args = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null",
                     "--no-resolv", "--no-hosts", "--no-poll", "--no-negcache",
                     "--listen-address=127.0.0.1", "--bind-interfaces",
                     "--port=%d" % self.port, "--pid-file=", "--user=root",
                     "--log-queries", "--log-facility=" + self.log_path]
        for zone in local:
            self.args.append("--local=/%s/" % zone)
        for domain, host, pref in mx:
            self.args.append("--mx-host=%s,%s,%d" % (domain, host, pref))
        for name, ip in hosts:
            self.args.append("--host-record=%s,%s" % (name, ip))
        for name, rrtype, hexdata in rr:
            self.args.append("--dns-rr=%s,%d,%s" % (name, rrtype, hexdata))
        for name, strings in txt:
            rdata = b""
            for st in strings:
                b = st.encode()
                assert len(b) < 256
                rdata += bytes([len(b)]) + b
            self.args.append("--dns-rr=%s,16,%s" % (name, rdata.hex()))
        for zone in servfail:
            self.args.append("--server=/%s/#" % zone)
        self.proc = None

    @property
    def resolver(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        if not os.access(DNSMASQ, os.X_OK):
            raise RuntimeError("dnsmasq missing: run scripts/install-deps.sh")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                self.proc = None
                raise AssertionError("dnsmasq exited: %s" % err)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("dnsmasq did not listen on %d" % self.port)
                time.sleep(0.02)

    def queries(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


class SinkMessage:
    """One transaction a SmtpSink accepted."""

    def __init__(self, conn_no, mail_from, mail_params, rcpts, data, tls, auth_user):
        self.conn_no = conn_no
        self.mail_from = mail_from
        self.mail_params = mail_params  # "SIZE=12 BODY=8BITMIME" (the text after >)
        self.rcpts = rcpts  # [(address, params text)], accepted ones only
        self.data = data  # bytes as received, dot-unstuffed, without the final "."
        self.tls = tls
        self.auth_user = auth_user


class SmtpSink:
    """A far-side SMTP server in a thread of the test process (asyncio), on
    host:port (127.0.0.x; the port is shared by sinks on other addresses
    so one [outbound] port serves every MX). It records what it accepts
    and can be told how to answer:
      rcpt_reply(address) -> (code, text) or None for 250;
      data_reply(message) -> (code, text) or None for 250;
      delay: seconds to wait before answering the final dot (a slow far
      side); ehlo: the capability lines; cert/key: offer STARTTLS;
      auth: (user, password) required before MAIL."""

    def __init__(self, host="127.0.0.1", port=None, ehlo=None, rcpt_reply=None,
                 data_reply=None, delay=0, cert=None, key=None, auth=None, greeting=None):
        import threading
        self.host = host
        self.port = port or free_port()
        self.ehlo = list(ehlo) if ehlo is not None else [
            "PIPELINING", "SIZE 10485760", "8BITMIME", "SMTPUTF8", "DSN",
            "ENHANCEDSTATUSCODES"]
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.delay = delay
        self.cert, self.key = cert, key
        self.auth = auth
        self.greeting = greeting
        self.messages = []
        self.commands = []  # (conn_no, command line) in arrival order
        self.connections = 0
        self.lock = threading.Lock()
        self.loop = None
        self.server = None
        self.thread = None
        self.threading = threading

    # -- control (test thread) --
    def start(self):
        import asyncio
        ready = self.threading.Event()
        errors = []

        def run():
            self.loop = asyncio.new_event_loop()
            try:
                self.server = self.loop.run_until_complete(
                    asyncio.start_server(self._session, self.host, self.port,
                                         reuse_address=True))
            except OSError as e:
                errors.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

        self.thread = self.threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self):
        """Stops listening and drops every connection (the far side goes
        down); start() brings it back on the same address and port."""
        if self.loop is None:
            return
        import asyncio

        async def shut():
            self.server.close()
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()
            await self.server.wait_closed()

        fut = asyncio.run_coroutine_threadsafe(shut(), self.loop)
        try:
            fut.result(10)
        except Exception:  # noqa: BLE001 - cancelled sessions are expected
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop = None

    def wait_messages(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        with self.lock:
            raise AssertionError("sink %s:%d: %d messages after %ss, wanted %d; commands %r"
                                 % (self.host, self.port, len(self.messages), timeout, n,
                                    self.commands[-20:]))

    # -- the server (sink thread) --
    async def _session(self, reader, writer):
        import asyncio
        with self.lock:
            self.connections += 1
            conn_no = self.connections
        state = {"tls": False, "auth": None}

        async def send(line):
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        async def readline():
            line = await reader.readline()
            if not line:
                raise EOFError
            return line.rstrip(b"\r\n").decode("utf-8", errors="replace")

        try:
            await send(self.greeting or "220 %s ESMTP sink" % self.host)
            mail = None
            rcpts = []
            while True:
                line = await readline()
                with self.lock:
                    self.commands.append((conn_no, line))
                verb = line.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    mail, rcpts = None, []
                    caps = list(self.ehlo)
                    if self.cert and not state["tls"]:
                        caps.append("STARTTLS")
                    if self.auth:
                        caps.append("AUTH PLAIN LOGIN")
                    if verb == "HELO":
                        await send("250 %s" % self.host)
                        continue
                    lines = [self.host] + caps
                    for i, c in enumerate(lines):
                        await send("250%s%s" % ("-" if i < len(lines) - 1 else " ", c))
                elif verb == "STARTTLS" and self.cert and not state["tls"]:
                    await send("220 2.0.0 go ahead")
                    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    ctx.load_cert_chain(self.cert, self.key)
                    await writer.start_tls(ctx)
                    state["tls"] = True
                elif verb == "AUTH":
                    parts = line.split()
                    user = pw = None
                    if len(parts) >= 3 and parts[1].upper() == "PLAIN":
                        dec = base64.b64decode(parts[2]).split(b"\0")
                        user, pw = dec[1].decode(), dec[2].decode()
                    elif len(parts) >= 2 and parts[1].upper() == "LOGIN":
                        await send("334 VXNlcm5hbWU6")
                        user = base64.b64decode(await readline()).decode()
                        await send("334 UGFzc3dvcmQ6")
                        pw = base64.b64decode(await readline()).decode()
                    if self.auth and (user, pw) == tuple(self.auth):
                        state["auth"] = user
                        await send("235 2.7.0 ok")
                    else:
                        await send("535 5.7.8 bad credentials")
                elif verb == "MAIL":
                    if self.auth and state["auth"] is None:
                        await send("530 5.7.0 authentication required")
                        continue
                    addr, params = _split_path(line[10:])
                    mail, rcpts = (addr, params), []
                    await send("250 2.1.0 ok")
                elif verb == "RCPT":
                    if mail is None:
                        await send("503 5.5.1 MAIL first")
                        continue
                    addr, params = _split_path(line[8:])
                    reply = self.rcpt_reply(addr) if self.rcpt_reply else None
                    if reply is None:
                        rcpts.append((addr, params))
                        await send("250 2.1.5 ok")
                    else:
                        await send("%d %s" % reply)
                elif verb == "DATA":
                    if mail is None or not rcpts:
                        await send("554 5.5.1 no valid recipients")
                        continue
                    await send("354 go ahead")
                    data = b""
                    while True:
                        raw = await reader.readline()
                        if not raw:
                            raise EOFError
                        if raw == b".\r\n":
                            break
                        if raw.startswith(b"."):
                            raw = raw[1:]
                        data += raw
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    msg = SinkMessage(conn_no, mail[0], mail[1], rcpts, data, state["tls"],
                                      state["auth"])
                    reply = self.data_reply(msg) if self.data_reply else None
                    if reply is None:
                        with self.lock:
                            self.messages.append(msg)
                        await send("250 2.0.0 queued")
                    else:
                        await send("%d %s" % reply)
                    mail, rcpts = None, []
                elif verb == "RSET":
                    mail, rcpts = None, []
                    await send("250 2.0.0 ok")
                elif verb == "NOOP":
                    await send("250 2.0.0 ok")
                elif verb == "QUIT":
                    await send("221 2.0.0 bye")
                    break
                else:
                    await send("502 5.5.2 unknown command")
        except (EOFError, ConnectionError, asyncio.CancelledError, ssl.SSLError):
            pass
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass


def _split_path(rest):
    """"<a@b> SIZE=1" -> ("a@b", "SIZE=1")."""
    rest = rest.strip()
    if rest.startswith("<"):
        end = rest.find(">")
        return rest[1:end], rest[end + 1:].strip()
    parts = rest.split(" ", 1)
    return parts[0], parts[1] if len(parts) > 1 else ""
