"""Kerberos single sign-on: a private MIT KDC on loopback with its own
realm (krb5kdc.py), a user gets a ticket with kinit and logs in to IMAP,
POP3 and submission with SASL GSSAPI (RFC 4752) run by Cyrus in ternd
with the keytab from [sasl]; the principal maps to the directory user of
that login. A principal without a directory user, a disabled user, a
principal with an instance, and an authzid naming someone else are
refused; GSSAPI is not offered without a keytab."""
import imaplib
import poplib
import shutil
import smtplib
import tempfile

import pytest

import harness
import krb5kdc
from harness import Env

pytestmark = pytest.mark.skipif(krb5kdc.missing() is not None, reason=krb5kdc.missing() or "")

PRINCIPALS = {"alice": "alice-krb-pw", "bob": "bob-krb-pw", "ghost": "ghost-krb-pw",
              "carol": "carol-krb-pw", "alice/admin": "alice-admin-krb-pw"}


@pytest.fixture(scope="module")
def lab():
    tmp = tempfile.mkdtemp(prefix="tern-gss-")
    kdc = krb5kdc.Kdc(tmp).setup(PRINCIPALS).start()
    sub = harness.free_port()
    try:
        env = Env(start_ternd=False)
        t = env.new_ternd(overrides={
            "sasl": {"mechanisms": "GSSAPI", "keytab": kdc.keytab, "realms": kdc.realm,
                     "gssapi_hostname": "localhost"},
            "submission": {"listen": "127.0.0.1:%d" % sub, "plaintext_auth": "yes"}},
            start=False)
        # The server's krb5.conf names the realm as the default one.
        t.extra_env = {"KRB5_CONFIG": kdc.krb5_conf}
        t.start()
        env.ternd = t
    except BaseException:
        kdc.stop()
        raise
    env.kdc = kdc
    env.sub_port = sub
    env.tickets = {}
    for p in PRINCIPALS:
        env.tickets[p] = kdc.kinit(p, ccache="%s/cc-%s" % (tmp, p.replace("/", "_")))
    yield env
    env.close()
    kdc.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def client(lab, principal, service="imap", authzid=""):
    return lab.kdc.client(service, ccache=lab.tickets[principal], authzid=authzid)


def test_offered_with_a_keytab(lab):
    m = imaplib.IMAP4("127.0.0.1", lab.ternd.imap_port)
    assert "AUTH=GSSAPI" in m.capabilities
    m.logout()


def test_imap_gssapi_login(lab):
    m = imaplib.IMAP4("127.0.0.1", lab.ternd.imap_port)
    typ, data = m.authenticate("GSSAPI", client(lab, "alice"))
    assert typ == "OK", data
    typ, data = m.select("INBOX")
    assert typ == "OK"
    m.logout()
    assert b'login user="alice" result=ok mech=GSSAPI' in lab.ternd.log()


def test_imap_gssapi_refusals(lab):
    for principal, authzid in (("ghost", ""), ("carol", ""), ("alice/admin", ""),
                               ("alice", "bob")):
        m = imaplib.IMAP4("127.0.0.1", lab.ternd.imap_port)
        with pytest.raises(imaplib.IMAP4.error) as e:
            m.authenticate("GSSAPI", client(lab, principal, authzid=authzid))
        assert "AUTHENTICATIONFAILED" in str(e.value), (principal, e.value)
        m.logout()
    # Its own name as authzid is fine.
    m = imaplib.IMAP4("127.0.0.1", lab.ternd.imap_port)
    assert m.authenticate("GSSAPI", client(lab, "bob", authzid="bob"))[0] == "OK"
    m.logout()


def test_pop3_and_submission_gssapi(lab):
    p = poplib.POP3("127.0.0.1", lab.ternd.pop3_port)
    assert "GSSAPI" in p.capa().get("SASL", [])
    line = krb5kdc.pop3_auth_gssapi(p, client(lab, "alice", service="pop"))
    assert line.startswith(b"+OK"), line
    assert p.stat()[0] >= 0
    p.quit()

    s = smtplib.SMTP("127.0.0.1", lab.sub_port)
    s.ehlo("client.test")
    assert "GSSAPI" in s.esmtp_features.get("auth", "").split()
    code, _ = krb5kdc.smtp_auth_gssapi(s, client(lab, "bob", service="smtp"))
    assert code == 235
    # Authenticated as bob: bob's address is his to send from.
    assert s.mail(harness.org_ldif.BOB_ADDR)[0] == 250
    s.quit()


def test_not_offered_without_gssapi(lab):
    t = lab.new_ternd()
    try:
        m = imaplib.IMAP4("127.0.0.1", t.imap_port)
        assert "AUTH=GSSAPI" not in m.capabilities
        with pytest.raises(imaplib.IMAP4.error):
            m.authenticate("GSSAPI", client(lab, "alice"))
        m.logout()
    finally:
        t.stop()
        lab.ternds.remove(t)
        harness.INSTANCES.remove(t) if t in harness.INSTANCES else None
