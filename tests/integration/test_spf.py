"""SPF (RFC 7208) on [smtp] with one Authentication-Results header
(RFC 8601): ternd's [dns] resolver is a dnsmasq on loopback holding the
SPF records of the test domains below; mail is sent from 127.0.0.1 and
the header is read back over IMAP from the stored message.

Covered: pass, fail, softfail, neutral, none, temperror (SERVFAIL; and
a resolver with nothing listening, mail still accepted), permerror
(syntax error, two records, too many lookups, void lookups, include of
a domain without a record), include, redirect, mx, a with CIDR, exists
with a macro, the HELO identity for <>, [spf] reject_fail (550 5.7.23),
and a forged A-R with Tern's authserv-id removed while a foreign one is
kept."""
import re
import smtplib

import pytest

import harness
from harness import DnsServer, make_message, unique_token

HOST = harness.HOSTNAME
RCPT = harness.org_ldif.ALICE_ADDRS[0]

TXT = [
    ("pass.test", ["v=spf1 ip4:127.0.0.1 -all"]),
    ("fail.test", ["v=spf1 ip4:192.0.2.1 -all"]),
    ("softfail.test", ["v=spf1 ~all"]),
    ("neutral.test", ["v=spf1 ?all"]),
    ("nospf.test", ["some other text"]),
    ("syntax.test", ["v=spf1 ip4:127.0.0.300 -all"]),
    ("two.test", ["v=spf1 +all"]),
    ("two.test", ["v=spf1 -all"]),
    # multi-string TXT record joined without a space (3.3)
    ("split.test", ["v=spf1 ip4:127.0.0", ".0/24 -all"]),
    ("include.test", ["v=spf1 include:pass.test -all"]),
    ("include-fail.test", ["v=spf1 include:fail.test ~all"]),
    ("include-none.test", ["v=spf1 include:nospf.test -all"]),
    ("redirect.test", ["v=spf1 redirect=pass.test"]),
    ("redirect-fail.test", ["v=spf1 ip4:10.0.0.1 redirect=fail.test"]),
    ("mx.test", ["v=spf1 mx -all"]),
    ("a.test", ["v=spf1 a:host.a.test/24 -all"]),
    ("exists.test", ["v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all"]),
    ("loop.test", ["v=spf1 " + " ".join("a:x%d.loop.test" % i for i in range(11)) + " -all"]),
    ("void.test", ["v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test +all"]),
    ("broken-inc.test", ["v=spf1 include:x.broken.test -all"]),
    ("helo.test", ["v=spf1 ip4:127.0.0.0/8 -all"]),
]
HOSTS = [("mx1.mx.test", "127.0.0.1"), ("host.a.test", "127.0.0.99"),
         # exists:%{ir}.%{l1r+-}._spf.%{d} for joe-x@exists.test from 127.0.0.1
         ("1.0.0.127.joe._spf.exists.test", "127.0.0.2")]
for i in range(11):
    HOSTS.append(("x%d.loop.test" % i, "192.0.2.%d" % (i + 1)))
MX = [("mx.test", "mx1.mx.test", 10)]


class World:
    pass


@pytest.fixture(scope="module")
def world():
    w = World()
    e = harness.Env(start_ternd=False)
    w.env = e
    try:
        w.dns = DnsServer(e.tmp, mx=MX, hosts=HOSTS, txt=TXT, servfail=["broken.test"]).start()
        w.ternd = e.new_ternd(overrides={"dns": {"resolver": w.dns.resolver},
                                         "spf": {"check": "yes"}})
        yield w
    finally:
        if getattr(w, "dns", None) is not None:
            w.dns.stop()
        e.close()


def stored_headers(t, token, folder="INBOX"):
    """The header section of the message with token, fetched over IMAP."""
    m = t.imap_login("alice")
    try:
        typ, _ = m.select(folder)
        assert typ == "OK"
        typ, data = m.search(None, "HEADER", "Message-ID", token)
        assert typ == "OK"
        nums = data[0].split()
        assert len(nums) == 1, (token, nums)
        typ, data = m.fetch(nums[0], "(BODY.PEEK[HEADER])")
        assert typ == "OK"
        return data[0][1].decode()
    finally:
        m.logout()


def authres(hdrs):
    """Every Authentication-Results field, unfolded."""
    unfolded = re.sub(r"\r\n[ \t]", " ", hdrs)
    return [l for l in unfolded.split("\r\n") if l.lower().startswith("authentication-results:")]


def send(t, sender, extra=(), helo="client.example.org"):
    token = unique_token("spf")
    msg = make_message(token, sender=sender or "x@example.net", extra_headers=extra)
    s = smtplib.SMTP("127.0.0.1", t.smtp_port, local_hostname=helo, timeout=30)
    try:
        s.ehlo()
        code, text = s.mail(sender)
        assert code == 250, (code, text)
        code, text = s.rcpt(RCPT)
        assert code == 250, (code, text)
        code, text = s.data(msg)
        s.quit()
    finally:
        s.close()
    return token, code, text


def check(w, sender, result, helo="client.example.org", reason=None):
    token, code, text = send(w.ternd, sender, helo=helo)
    assert code == 250, (code, text)
    ars = authres(stored_headers(w.ternd, token))
    assert len(ars) == 1, ars
    ar = ars[0]
    assert ar.startswith("Authentication-Results: %s; spf=%s " % (HOST, result)), ar
    if sender:
        assert ar.endswith(" smtp.mailfrom=%s" % sender), ar
    else:
        assert ar.endswith(" smtp.helo=%s" % helo), ar
    if reason is not None:
        assert reason in ar, ar
    return ar


@pytest.mark.parametrize("sender,result,reason", [
    ("a@pass.test", "pass", "ip4 matched in pass.test"),
    ("a@fail.test", "fail", "all matched in fail.test"),
    ("a@softfail.test", "softfail", None),
    ("a@neutral.test", "neutral", None),
    ("a@nospf.test", "none", None),
    ("a@nxdomain.test", "none", None),
    ("a@split.test", "pass", None),
    ("a@include.test", "pass", "include:pass.test matched"),
    ("a@include-fail.test", "softfail", None),
    ("a@redirect.test", "pass", None),
    ("a@redirect-fail.test", "fail", None),
    ("a@mx.test", "pass", "mx matched"),
    ("a@a.test", "pass", "a matched"),
    ("joe-x@exists.test", "pass", "exists matched"),
    ("jane@exists.test", "fail", None),
    ("a@syntax.test", "permerror", "bad SPF record"),
    ("a@two.test", "permerror", "several SPF records"),
    ("a@loop.test", "permerror", "too many DNS lookups"),
    ("a@void.test", "permerror", "too many void DNS lookups"),
    ("a@include-none.test", "permerror", "no SPF record at nospf.test"),
    ("a@x.broken.test", "temperror", None),
    ("a@broken-inc.test", "temperror", None),
])
def test_spf_results(world, sender, result, reason):
    check(world, sender, result, reason=reason)


def test_null_sender_checks_helo(world):
    check(world, "", "pass", helo="helo.test")


def test_forged_authres_removed_foreign_kept(world):
    token = unique_token("spf")
    extra = ["Authentication-Results: %s; spf=pass smtp.mailfrom=forged@pass.test" % HOST,
             "Authentication-Results: (comment) %s;\r\n\tdkim=pass header.d=forged.test"
             % HOST.upper(),
             "Authentication-Results: other.example; spf=fail smtp.mailfrom=x@fail.test"]
    msg = make_message(token, sender="a@fail.test", extra_headers=extra)
    s = smtplib.SMTP("127.0.0.1", world.ternd.smtp_port, local_hostname="c.example",
                     timeout=30)
    try:
        s.ehlo()
        assert s.mail("a@fail.test")[0] == 250
        assert s.rcpt(RCPT)[0] == 250
        code, text = s.data(msg)
        assert code == 250, (code, text)
        s.quit()
    finally:
        s.close()
    hdrs = stored_headers(world.ternd, token)
    ars = authres(hdrs)
    assert len(ars) == 2, ars
    # ours at the top, above our Received (only the store's trace fields,
    # added at delivery, come before it); the foreign one kept
    names = [l.split(":", 1)[0] for l in hdrs.split("\r\n") if l and l[0] not in " \t"]
    assert names[:4] == ["Return-Path", "Delivered-To", "Authentication-Results", "Received"], \
        names
    assert "\r\nAuthentication-Results: %s;\r\n\tspf=fail " % HOST in hdrs, hdrs[:300]
    assert ars[1] == "Authentication-Results: other.example; spf=fail smtp.mailfrom=x@fail.test"
    assert "forged" not in hdrs


def test_dead_resolver_temperror_mail_accepted(world):
    t = world.env.new_ternd(name="deaddns", overrides={
        "dns": {"resolver": "127.0.0.1:%d" % harness.free_port()}, "spf": {"check": "yes"}})
    try:
        token, code, text = send(t, "a@pass.test")
        assert code == 250, (code, text)
        ars = authres(stored_headers(t, token))
        assert len(ars) == 1 and " spf=temperror " in ars[0], ars
    finally:
        t.stop()


def test_reject_fail(world):
    t = world.env.new_ternd(name="rejectfail", overrides={
        "dns": {"resolver": world.dns.resolver},
        "spf": {"check": "yes", "reject_fail": "yes"}})
    try:
        s = t.smtp()
        try:
            assert s.mail("a@fail.test")[0] == 250
            assert s.rcpt(RCPT)[0] == 250
            code, text = s.data(make_message(unique_token("spf")))
            assert (code, text) == (550, b"5.7.23 SPF validation failed")
            # a softfail is only recorded
            assert s.mail("a@softfail.test")[0] == 250
            assert s.rcpt(RCPT)[0] == 250
            assert s.data(make_message(unique_token("spf")))[0] == 250
        finally:
            s.close()
    finally:
        t.stop()
