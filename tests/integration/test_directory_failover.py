"""Several directory servers and large answers, against real slapds.

Failover and back: two slapds with the same data (the second is loaded
from the first with slapcat, entryUUIDs included, like a replica);
ternd is given both. When the first is killed, deliveries and logins go
on through the second within the timeout; when it comes back, ternd
returns to it after failback_interval, which the test proves by killing
the second afterwards.

Paged results: a slapd whose sizelimit (5) applies to the service
account too. Lists with more members than that still expand completely
(a static groupOfNames; a dynamic groupOfURLs, whose members come from
one search, which is paged, RFC 2696), and a user who owns more lists
than that may send as every one of them (the send-as search is paged)."""
import os
import shutil
import smtplib
import tempfile
import time

import pytest

import harness
from harness import Slapd, count_token, free_port, make_message, password, unique_token

ORG = harness.org_ldif
TIMEOUT_S = 3  # [directory] timeout in these configs


class Pair:
    def __init__(self, sizelimit=None):
        self.tmp = tempfile.mkdtemp(prefix="tern-dirha-")
        self.cert, self.key = harness.make_cert(self.tmp)
        self.first = Slapd(os.path.join(self.tmp, "ldap1"), sizelimit=sizelimit)
        harness.SLAPDS.append(self.first)
        self.first.start()
        self.second = Slapd(os.path.join(self.tmp, "ldap2"))
        harness.SLAPDS.append(self.second)
        self.second.clone_from(self.first)
        self.second.start()
        self.ternd = None

    def start_ternd(self, uri, **overrides):
        sections = {"directory": {"uri": uri, "timeout": "%ds" % TIMEOUT_S}}
        for k, v in overrides.items():
            sections.setdefault(k, {}).update(v)
        self.ternd = harness.Ternd(self.tmp, uri, self.cert, self.key, sections)
        self.ternd.start()
        return self.ternd

    def close(self):
        err = None
        if self.ternd is not None:
            try:
                self.ternd.stop()
            except AssertionError as e:
                err = e
            if self.ternd in harness.INSTANCES:
                harness.INSTANCES.remove(self.ternd)
        for s in (self.first, self.second):
            s.stop()
            if s in harness.SLAPDS:
                harness.SLAPDS.remove(s)
        if err is not None:
            raise err
        shutil.rmtree(self.tmp, ignore_errors=True)


def deliver(t, login):
    """(code, text, token): the RCPT reply if it was not 250, else the
    final reply of DATA."""
    token = unique_token("ha")
    s = t.smtp()
    try:
        assert s.mail("sender@example.org")[0] == 250
        code, text = s.rcpt("%s@example.test" % login)
        if code == 250:
            code, text = s.data(make_message(token, to="%s@example.test" % login))
        return code, text, token
    finally:
        s.close()


def login_ok(t, login):
    m = t.imap()
    try:
        typ, _ = m.login(login, password(login))
        m.logout()
        return typ == "OK"
    except Exception:
        return False


def until(fn, seconds):
    """Calls fn until it returns a true value or seconds pass; the value."""
    deadline = time.monotonic() + seconds
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


@pytest.fixture()
def pair():
    p = Pair()
    yield p
    p.close()


def test_failover_and_back(pair):
    t = pair.start_ternd("%s, %s" % (pair.first.uri, pair.second.uri),
                         directory={"failback_interval": "2s", "lookup_connections": "2",
                                    "auth_connections": "2"})
    accepted = []
    code, text, token = deliver(t, "user30")
    assert code == 250, text
    accepted.append(("user30", token))
    assert login_ok(t, "user30")
    assert ("connect uri=%s pool=lookup" % pair.first.uri).encode() in t.log()

    pair.first.kill()
    killed = time.monotonic()
    # Within the operation timeout (plus a little), both work again, on
    # the second server; nothing is bounced meanwhile.
    def delivered():
        code, text, token = deliver(t, "user31")
        assert code in (250, 451), (code, text)
        if code == 250:
            accepted.append(("user31", token))
        return code == 250
    assert until(delivered, TIMEOUT_S + 2), t.log_tail()
    assert until(lambda: login_ok(t, "user31"), TIMEOUT_S + 2), t.log_tail()
    assert time.monotonic() - killed < 2 * TIMEOUT_S + 4
    assert ("connect uri=%s" % pair.second.uri).encode() in t.log()
    # Several in a row, with the first still down: no more hiccups.
    for login in ("user32", "user33", "user34"):
        code, text, token = deliver(t, login)
        assert code == 250, text
        accepted.append((login, token))
        assert login_ok(t, login)

    pair.first.start()  # same port, same data
    # Every handle (2 lookup + 2 auth) goes back to the first server.
    needle = ("failback uri=%s" % pair.first.uri).encode()
    assert until(lambda: t.log().count(needle) >= 4, 30), t.log_tail()
    # Proof that ternd uses the first now: the second can go away
    # without a single temporary failure.
    pair.second.kill()
    for login in ("user35", "user36"):
        code, text, token = deliver(t, login)
        assert code == 250, (login, code, text, t.log_tail())
        accepted.append((login, token))
        assert login_ok(t, login)
    # Nothing accepted was lost.
    for login, token in accepted:
        assert count_token(t.mailbox(login), token) == 1, (login, token)
    t.check_alive()


def test_hung_first_server_times_out_to_second(pair):
    # A first server that accepts and never answers (SIGSTOP): the
    # timeout covers connect, bind and each search; ternd moves on.
    t = pair.start_ternd("%s %s" % (pair.first.uri, pair.second.uri))
    assert login_ok(t, "user37")
    os.kill(pair.first.proc.pid, 19)  # SIGSTOP
    try:
        start = time.monotonic()
        def ok():
            code, text, _ = deliver(t, "user38")
            assert code in (250, 451), (code, text)
            return code == 250
        assert until(ok, 3 * TIMEOUT_S + 3), t.log_tail()
        assert time.monotonic() - start < 3 * TIMEOUT_S + 4
        assert until(lambda: login_ok(t, "user38"), 2 * TIMEOUT_S + 2), t.log_tail()
    finally:
        os.kill(pair.first.proc.pid, 18)  # SIGCONT


@pytest.fixture()
def limited():
    p = Pair(sizelimit=5)
    yield p
    p.close()


def test_paged_results_past_the_size_limit(limited):
    first = limited.first
    # The limit is real: a plain search as the service account stops at 5.
    try:
        out = first.ldapsearch(ORG.PEOPLE, "(objectClass=inetOrgPerson)", "dn")
        assert out.count("dn:") <= 5
    except harness.slapd_fixture.SlapdError as e:
        assert "Size limit exceeded" in str(e)

    members = ["user%02d" % i for i in range(10, 22)]  # 12 > 5
    first.modify("dn: cn=big,%s\nchangetype: add\nobjectClass: groupOfNames\n"
                 "objectClass: inetLocalMailRecipient\ncn: big\n"
                 "mailLocalAddress: big@example.test\n%s" %
                 (ORG.GROUPS, "".join("member: uid=%s,%s\n" % (m, ORG.PEOPLE)
                                      for m in members)))
    dynamic = ["user%02d" % i for i in range(22, 34)]  # 12 > 5, found by one search
    first.modify("dn: cn=bigurl,%s\nchangetype: add\nobjectClass: groupOfURLs\n"
                 "objectClass: inetLocalMailRecipient\ncn: bigurl\n"
                 "mailLocalAddress: bigurl@example.test\n"
                 "memberURL: ldap:///%s??one?(|%s)\n" %
                 (ORG.GROUPS, ORG.PEOPLE, "".join("(uid=%s)" % m for m in dynamic)))
    owned = ["owned%d@example.test" % i for i in range(8)]  # 8 > 5
    for i, addr in enumerate(owned):
        first.modify("dn: cn=owned%d,%s\nchangetype: add\nobjectClass: groupOfNames\n"
                     "objectClass: inetLocalMailRecipient\ncn: owned%d\n"
                     "mailLocalAddress: %s\nmember: uid=bob,%s\nowner: uid=alice,%s\n"
                     % (i, ORG.GROUPS, i, addr, ORG.PEOPLE, ORG.PEOPLE))
    sub = free_port()
    t = limited.start_ternd(first.uri, submission={"listen": "127.0.0.1:%d" % sub},
                            outbound={"relayhost": "127.0.0.1:%d" % free_port()})

    token = unique_token("big")
    code, text = t.send("big@example.test", make_message(token, to="big@example.test"))
    assert code == 250, text
    for m in members:
        assert count_token(t.mailbox(m), token) == 1, m
    token = unique_token("bigurl")
    code, text = t.send("bigurl@example.test", make_message(token, to="bigurl@example.test"))
    assert code == 250, text
    for m in dynamic:
        assert count_token(t.mailbox(m), token) == 1, (m, t.log_tail())

    s = smtplib.SMTP("127.0.0.1", sub, local_hostname="client.example.org",
                     timeout=harness.TIMEOUT)
    try:
        s.ehlo()
        s.starttls(context=harness.client_tls_context())
        s.ehlo()
        s.login("alice", password("alice"))
        for addr in owned:
            code, text = s.mail(addr)
            assert code == 250, (addr, code, text, t.log_tail())
            assert s.rset()[0] == 250
    finally:
        s.close()
    assert b"sendas-truncated" not in t.log()
