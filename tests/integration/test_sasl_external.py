"""SASL EXTERNAL with TLS client certificates (RFC 4422 appendix A): a
certificate signed by [tls] client_ca whose e-mail address (or CN) equals
a directory attribute logs that user in on IMAP, POP3 and submission;
a certificate from another CA, one naming nobody, a disabled user, or a
request to act as someone else is refused; without a verified
certificate EXTERNAL is not even offered. Real slapd, real ternd, real
certificates made here with openssl."""
import os
import shutil
import subprocess
import tempfile

import pytest

import harness
from harness import Env
from sasl_clients import TlsLines, imap_sasl, pop3_sasl, smtp_sasl

ORG = harness.org_ldif


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


class Pki:
    def __init__(self, d):
        self.d = d
        for ca in ("ca", "other"):
            self.key(ca)
            openssl("req", "-x509", "-new", "-key", self.p(ca + ".key"), "-days", "2",
                    "-subj", "/CN=Tern client %s" % ca,
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", self.p(ca + ".pem"))

    def p(self, name):
        return os.path.join(self.d, name)

    def key(self, name):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", self.p(name + ".key"))

    def client(self, name, cn, email=None, ca="ca"):
        self.key(name)
        ext = self.p(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
                    "keyUsage=digitalSignature\n")
            if email:
                f.write("subjectAltName=email:%s\n" % email)
        openssl("req", "-new", "-key", self.p(name + ".key"), "-subj", "/CN=%s" % cn,
                "-out", self.p(name + ".csr"))
        openssl("x509", "-req", "-in", self.p(name + ".csr"), "-CA", self.p(ca + ".pem"),
                "-CAkey", self.p(ca + ".key"), "-CAcreateserial", "-days", "2",
                "-extfile", ext, "-out", self.p(name + ".pem"))
        return self.p(name + ".pem"), self.p(name + ".key")


@pytest.fixture(scope="module")
def lab():
    tmp = tempfile.mkdtemp(prefix="tern-ext-")
    pki = Pki(tmp)
    certs = {
        "user01": pki.client("user01", "user01", "user01@example.test"),
        "carol": pki.client("carol", "carol", ORG.CAROL_ADDR),  # disabled
        "nobody": pki.client("nobody", "nobody", "nobody@example.test"),
        "other": pki.client("otherca", "user02", "user02@example.test", ca="other"),
        "nomail": pki.client("nomail", "user03"),
    }
    env = Env(overrides={
        "tls": {"client_ca": pki.p("ca.pem")},
        "sasl": {"mechanisms": "EXTERNAL", "external_field": "email",
                 "external_attribute": "mail"},
        "submission": {"listen": "127.0.0.1:%d" % harness.free_port()},
    })
    env.pki = pki
    env.certs = certs
    yield env
    env.close()
    shutil.rmtree(tmp, ignore_errors=True)


def imap_conn(env, who=None, greeting=None):
    cert, key = env.certs[who] if who else (None, None)
    c = TlsLines(env.ternd.imaps_port, cert=cert, key=key)
    line = c.readline()
    assert line.startswith("* OK")
    if greeting is not None:
        greeting.append(line)
    return c


def imap_caps(c):
    c.send("c CAPABILITY\r\n")
    caps = c.readline()
    assert c.readline().startswith("c OK")
    return caps.split()


def test_offered_only_with_a_verified_certificate(lab):
    greeting = []
    c = imap_conn(lab, "user01", greeting)
    assert "AUTH=EXTERNAL" in imap_caps(c)
    # The implicit-TLS greeting already lists it (sent after the handshake).
    assert "AUTH=EXTERNAL" in greeting[0].replace("]", " ").split(), greeting
    c.close()
    for who in (None, "other"):
        c = imap_conn(lab, who)
        caps = imap_caps(c)
        assert "AUTH=EXTERNAL" not in caps, (who, caps)
        assert "AUTH=PLAIN" in caps
        # Asking anyway is an unknown mechanism here, not a login.
        line = imap_sasl(c, "EXTERNAL", lambda ch: b"", initial=b"")
        assert line.startswith("a1 NO"), line
        c.close()


def test_imap_external_logs_in_the_certificate_owner(lab):
    for initial in (b"", None):  # SASL-IR empty, and the empty response after "+"
        c = imap_conn(lab, "user01")
        line = imap_sasl(c, "EXTERNAL", lambda ch: b"", initial=initial)
        assert line.startswith("a1 OK"), line
        c.send("b SELECT INBOX\r\n")
        while True:
            l = c.readline()
            if l.startswith("b "):
                break
        assert l.startswith("b OK"), l
        c.close()
    assert b'login user="user01" result=ok mech=EXTERNAL' in lab.ternd.log()


def test_imap_external_authzid(lab):
    # Its own login as authzid is fine; anybody else's is refused.
    c = imap_conn(lab, "user01")
    assert imap_sasl(c, "EXTERNAL", lambda ch: b"", initial=b"user01").startswith("a1 OK")
    c.close()
    c = imap_conn(lab, "user01")
    line = imap_sasl(c, "EXTERNAL", lambda ch: b"", initial=b"user02")
    assert line.startswith("a1 NO [AUTHENTICATIONFAILED]"), line
    c.close()


def test_imap_external_refusals(lab):
    for who in ("nobody", "carol"):
        c = imap_conn(lab, who)
        assert "AUTH=EXTERNAL" in imap_caps(c)  # verified, but names nobody usable
        line = imap_sasl(c, "EXTERNAL", lambda ch: b"", initial=b"")
        assert line.startswith("a1 NO [AUTHENTICATIONFAILED]"), (who, line)
        c.close()
    # A CA-signed certificate without an e-mail address has no identity.
    c = imap_conn(lab, "nomail")
    assert "AUTH=EXTERNAL" not in imap_caps(c)
    c.close()


def test_pop3_and_submission_external(lab):
    cert, key = lab.certs["user01"]
    p = TlsLines(lab.ternd.pop3s_port, cert=cert, key=key)
    assert p.readline().startswith("+OK")
    p.send("CAPA\r\n")
    caps = []
    while True:
        l = p.readline()
        if l == ".":
            break
        caps.append(l)
    assert any(l.startswith("SASL ") and "EXTERNAL" in l.split() for l in caps), caps
    assert pop3_sasl(p, "EXTERNAL", lambda ch: b"", initial=b"").startswith("+OK"), caps
    p.close()

    port = [v for s, keys in lab.ternd.sections if s == "submission"
            for k, v in keys.items() if k == "listen"][0].rsplit(":", 1)[1]
    s = TlsLines(int(port), tls=False, cert=cert, key=key)
    assert s.readline().startswith("220")
    s.send("EHLO client.test\r\n")
    while not s.readline().startswith("250 "):
        pass
    s.send("STARTTLS\r\n")
    assert s.readline().startswith("220")
    s.start_tls()
    s.send("EHLO client.test\r\n")
    auth = None
    while True:
        l = s.readline()
        if l[4:].startswith("AUTH "):
            auth = l[9:].split()
        if l.startswith("250 "):
            break
    assert auth is not None and "EXTERNAL" in auth, auth
    line = smtp_sasl(s, "EXTERNAL", lambda ch: b"", initial=b"")
    assert line.startswith("235"), line
    # Authenticated as user01: may send as user01's address.
    s.send("MAIL FROM:<user01@example.test>\r\n")
    assert s.readline().startswith("250")
    s.close()
