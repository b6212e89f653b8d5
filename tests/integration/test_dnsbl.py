"""DNS blocklists (RFC 5782) on [smtp]: ternd asks each [dnsbl] zone for
the client's reversed address at connect (the client is 127.0.0.1, so
1.0.0.127.<zone>) through a dnsmasq on loopback; MAIL waits for the
answers. Covered: listed with [dnsbl] reject = yes (554 5.7.1 at MAIL,
Postfix's wording), listed with reject = no (delivered with an
X-Tern-DNSBL header), not listed (NXDOMAIN, and a 127.255.255.x error
code of a Spamhaus-style list), and a zone whose queries fail (SERVFAIL:
not listed, logged)."""
import smtplib

import pytest

import harness
from harness import DnsServer, make_message, unique_token
from test_spf import stored_headers

RCPT = harness.org_ldif.ALICE_ADDRS[0]
HOSTS = [("1.0.0.127.bl.test", "127.0.0.2"),
         ("1.0.0.127.err.test", "127.255.255.254")]


@pytest.fixture(scope="module")
def env():
    e = harness.Env(start_ternd=False)
    dns = None
    try:
        dns = DnsServer(e.tmp, hosts=HOSTS, servfail=["broken.test"]).start()
        e.dns = dns
        yield e
    finally:
        if dns is not None:
            dns.stop()
        e.close()


def ternd(env, name, zones, reject):
    return env.new_ternd(name=name, overrides={
        "dns": {"resolver": env.dns.resolver},
        "dnsbl": {"zones": zones, "reject": reject}})


def deliver(t):
    token = unique_token("dnsbl")
    s = smtplib.SMTP("127.0.0.1", t.smtp_port, local_hostname="client.example.org", timeout=30)
    try:
        s.ehlo()
        assert s.mail("x@example.net")[0] == 250
        assert s.rcpt(RCPT)[0] == 250
        code, text = s.data(make_message(token))
        assert code == 250, (code, text)
        s.quit()
    finally:
        s.close()
    return stored_headers(t, token)


def test_listed_reject(env):
    t = ternd(env, "blreject", "clean.test, bl.test", "yes")
    try:
        s = smtplib.SMTP("127.0.0.1", t.smtp_port, local_hostname="client.example.org",
                         timeout=30)
        try:
            assert s.ehlo()[0] == 250
            assert s.mail("x@example.net") == (
                554, b"5.7.1 Service unavailable; client [127.0.0.1] blocked using bl.test")
            # and again: the verdict holds for the connection
            assert s.mail("y@example.net")[0] == 554
            assert s.rcpt(RCPT)[0] == 503
            assert s.quit()[0] == 221
        finally:
            s.close()
        log = t.log().decode(errors="replace")
        assert 'dnsbl-listed ip=127.0.0.1 zones="bl.test" action=reject' in log, log[-2000:]
    finally:
        t.stop()


def test_listed_mark(env):
    t = ternd(env, "blmark", "bl.test,clean.test", "no")
    try:
        hdrs = deliver(t)
        assert hdrs.count("X-Tern-DNSBL:") == 1, hdrs
        assert "\r\nX-Tern-DNSBL: bl.test\r\n" in hdrs, hdrs
    finally:
        t.stop()


def test_not_listed(env):
    # NXDOMAIN, and 127.255.255.254 (an error code, not a listing)
    t = ternd(env, "blclean", "clean.test err.test", "yes")
    try:
        hdrs = deliver(t)
        assert "X-Tern-DNSBL" not in hdrs, hdrs
    finally:
        t.stop()


def test_dns_failure_not_listed(env):
    t = ternd(env, "blbroken", "x.broken.test", "yes")
    try:
        hdrs = deliver(t)
        assert "X-Tern-DNSBL" not in hdrs, hdrs
        assert "dnsbl-tempfail ip=127.0.0.1 zones=1" in t.log().decode(errors="replace")
    finally:
        t.stop()


def test_dead_resolver_bounded_and_disconnect_midway(env):
    # Nothing answers: a client leaving while its lookups are out must not
    # upset the session's cleanup, and MAIL waits only as long as the
    # resolver's own timeout, then goes on (not listed).
    t = env.new_ternd(name="bldead", overrides={
        "dns": {"resolver": "127.0.0.1:%d" % harness.free_port()},
        "dnsbl": {"zones": "bl.test", "reject": "yes"}})
    try:
        for _ in range(3):
            s = smtplib.SMTP("127.0.0.1", t.smtp_port, local_hostname="c.example.org",
                             timeout=30)
            s.ehlo()
            s.sock.sendall(b"MAIL FROM:<x@example.net>\r\n")
            s.close()
        hdrs = deliver(t)
        assert "X-Tern-DNSBL" not in hdrs, hdrs
        assert "dnsbl-tempfail ip=127.0.0.1 zones=1" in t.log().decode(errors="replace")
    finally:
        t.stop()
