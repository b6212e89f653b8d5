"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802/7677, channel binding
tls-exporter of RFC 9266) on IMAP, POP3 and submission, with the
verifiers the test directory holds in authPassword (RFC 5803) for
user01..user03 (org_ldif.SCRAM_USERS). The client side is written in
sasl_clients.py from the RFCs; it checks the server's signature, so a
server that did not know the verifier could not pass. Wrong passwords,
users without a verifier, unknown users, a wrong or foreign channel
binding and a downgrade are refused; the exchange for an unknown user
looks like a real one (stable salt)."""
import base64
import imaplib

import pytest

import harness
from harness import Env, password
from sasl_clients import (Scram, TlsLines, imap_sasl, imaplib_scram, pop3_sasl, scram_steps,
                          smtp_sasl)

ORG = harness.org_ldif
USER = ORG.SCRAM_USERS[0]
NO_VERIFIER = "user10"


@pytest.fixture(scope="module")
def lab():
    sub = harness.free_port()
    env = Env(overrides={
        "sasl": {"mechanisms": "SCRAM-SHA-256"},
        "submission": {"listen": "127.0.0.1:%d" % sub},
    })
    env.sub_port = sub
    yield env
    env.close()


def imaps(lab, greeting=None):
    c = TlsLines(lab.ternd.imaps_port)
    line = c.readline()
    assert line.startswith("* OK")
    if greeting is not None:
        greeting.append(line)
    return c


def caps_of(c):
    c.send("c CAPABILITY\r\n")
    line = c.readline()
    assert c.readline().startswith("c OK")
    return line.split()


def test_advertised(lab):
    m = imaplib.IMAP4("127.0.0.1", lab.ternd.imap_port)
    assert "AUTH=SCRAM-SHA-256" in m.capabilities
    # No TLS, no channel to bind to.
    assert "AUTH=SCRAM-SHA-256-PLUS" not in m.capabilities
    m.logout()
    greeting = []
    c = imaps(lab, greeting)
    assert c.version() == "TLSv1.3"
    # The greeting on implicit TLS is sent after the handshake, so its
    # capabilities already know the channel binding (clients take them
    # without asking again).
    assert "AUTH=SCRAM-SHA-256-PLUS" in greeting[0].replace("]", " ").split(), greeting
    caps = caps_of(c)
    assert "AUTH=SCRAM-SHA-256-PLUS" in caps and "AUTH=SCRAM-SHA-256" in caps, caps
    c.close()


def test_imap_scram_login(lab):
    m = imaplib.IMAP4("127.0.0.1", lab.ternd.imap_port)
    scram = Scram(USER, password(USER))
    typ, _ = m.authenticate("SCRAM-SHA-256", imaplib_scram(scram))
    assert typ == "OK"
    assert scram.server_signature is not None
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    log = lab.ternd.log()
    assert ('login user="%s" result=ok mech=SCRAM-SHA-256' % USER).encode() in log
    assert password(USER).encode() not in log
    assert ORG.scram_verifier_for(USER).split("$", 2)[2].encode() not in log


def test_imap_scram_sasl_ir_and_plus(lab):
    # The client-first message on the command line (SASL-IR), with the
    # tls-exporter binding of this very connection.
    c = imaps(lab)
    scram = Scram(USER, password(USER), cb=("tls-exporter", c.exporter()))
    line = imap_sasl(c, "SCRAM-SHA-256-PLUS", scram_steps(scram, skip_first=True),
                     initial=scram.first())
    assert line.startswith("a1 OK"), line
    c.close()
    # Plain SCRAM over TLS is fine too ("n": the client does not bind).
    c = imaps(lab)
    scram = Scram(USER, password(USER))
    assert imap_sasl(c, "SCRAM-SHA-256", scram_steps(scram)).startswith("a1 OK")
    c.close()


def test_imap_scram_refusals(lab):
    cases = [
        ("wrong password", USER, "not-the-password", None, "SCRAM-SHA-256"),
        ("no verifier", NO_VERIFIER, password(NO_VERIFIER), None, "SCRAM-SHA-256"),
        ("unknown user", "nosuchuser", "whatever", None, "SCRAM-SHA-256"),
        ("disabled user", "carol", password("carol"), None, "SCRAM-SHA-256"),
    ]
    for why, user, pw, cb, mech in cases:
        c = imaps(lab)
        scram = Scram(user, pw, cb=cb)
        line = imap_sasl(c, mech, scram_steps(scram))
        assert line.startswith("a1 NO [AUTHENTICATIONFAILED]"), (why, line)
        c.close()


def test_channel_binding_checked(lab):
    # Another connection's binding, a binding type the server does not
    # use, and "y" (client thinks the server cannot bind) while -PLUS
    # was offered: all refused.
    other = imaps(lab)
    foreign = other.exporter()
    c = imaps(lab)
    for why, cb, mech in (("foreign binding", ("tls-exporter", foreign), "SCRAM-SHA-256-PLUS"),
                          ("tls-unique", ("tls-unique", b"x" * 12), "SCRAM-SHA-256-PLUS"),
                          ("downgrade", ("y", None), "SCRAM-SHA-256")):
        scram = Scram(USER, password(USER), cb=cb)
        line = imap_sasl(c, mech, scram_steps(scram))
        assert line.startswith("a1 NO [AUTHENTICATIONFAILED]"), (why, line)
    other.close()
    c.close()


def first_challenge(lab, user):
    """The server-first message for user, then cancel."""
    c = imaps(lab)
    scram = Scram(user, "x")
    c.send("a1 AUTHENTICATE SCRAM-SHA-256 %s\r\n" % base64.b64encode(scram.first()).decode())
    line = c.readline()
    assert line.startswith("+ "), line
    c.send("*\r\n")
    assert c.readline().startswith("a1 BAD")
    c.close()
    return dict(kv.split("=", 1) for kv in base64.b64decode(line[2:]).decode().split(","))


def test_unknown_user_looks_real(lab):
    # A real user's salt and iteration count come from the directory; an
    # unknown user gets a made-up but stable salt and the same count, so
    # the answer does not tell who exists.
    real = first_challenge(lab, USER)
    assert base64.b64decode(real["s"]) == ORG.scram_salt(USER)
    fake1 = first_challenge(lab, "nosuchuser")
    fake2 = first_challenge(lab, "nosuchuser")
    assert fake1["s"] == fake2["s"] and fake1["i"] == real["i"] == "4096"
    assert len(base64.b64decode(fake1["s"])) == 16
    assert first_challenge(lab, "otheruser")["s"] != fake1["s"]


def test_malformed_client_first(lab):
    c = imaps(lab)
    for bad in (b"n,,u=user01,r=abc", b"nonsense", b"n,,n=us=41er,r=x"):
        c.send("a1 AUTHENTICATE SCRAM-SHA-256 %s\r\n" % base64.b64encode(bad).decode())
        line = c.readline()
        assert line.startswith("a1 BAD"), (bad, line)
    c.close()


def test_pop3_and_submission_scram(lab):
    user = ORG.SCRAM_USERS[1]
    p = TlsLines(lab.ternd.pop3s_port)
    assert p.readline().startswith("+OK")
    scram = Scram(user, password(user), cb=("tls-exporter", p.exporter()))
    line = pop3_sasl(p, "SCRAM-SHA-256-PLUS", scram_steps(scram, skip_first=True),
                     initial=scram.first())
    assert line.startswith("+OK"), line
    p.send("STAT\r\n")
    assert p.readline().startswith("+OK")
    p.close()

    s = TlsLines(lab.sub_port, tls=False)
    assert s.readline().startswith("220")
    s.send("EHLO client.test\r\nSTARTTLS\r\n")
    while not s.readline().startswith("250 "):
        pass
    assert s.readline().startswith("220")
    s.start_tls()
    s.send("EHLO client.test\r\n")
    auth = []
    while True:
        l = s.readline()
        if l[4:].startswith("AUTH "):
            auth = l[9:].split()
        if l.startswith("250 "):
            break
    assert "SCRAM-SHA-256-PLUS" in auth and "SCRAM-SHA-256" in auth, auth
    scram = Scram(user, password(user), cb=("tls-exporter", s.exporter()))
    line = smtp_sasl(s, "SCRAM-SHA-256-PLUS", scram_steps(scram))
    assert line.startswith("235"), line
    s.send("MAIL FROM:<%s@example.test>\r\n" % user)
    assert s.readline().startswith("250")
    s.close()
    # A wrong password on submission: 535.
    s = TlsLines(lab.sub_port, tls=False)
    s.readline()
    s.send("EHLO c\r\nSTARTTLS\r\n")
    while not s.readline().startswith("250 "):
        pass
    s.readline()
    s.start_tls()
    s.send("EHLO c\r\n")
    while not s.readline().startswith("250 "):
        pass
    line = smtp_sasl(s, "SCRAM-SHA-256", scram_steps(Scram(user, "wrong")))
    assert line.startswith("535 5.7.8"), line
    s.close()
