"""DKIM verification of inbound mail (RFC 6376) and DMARC (RFC 7489) on
[smtp]: ternd's [dns] resolver is a dnsmasq on loopback holding the SPF,
DKIM key and _dmarc records of the test domains below; messages are
signed for the tests by Debian's python3-dkim (dkimpy) with a key made
by `ternd dkim-keygen`, sent from 127.0.0.1, and the stored
Authentication-Results header is read back over IMAP.

Covered: dkim=pass/fail/permerror (no key)/temperror (SERVFAIL)/none;
dmarc=pass through SPF (strict and relaxed alignment) and through DKIM,
strict alignment failing for SPF and DKIM, policy discovery falling back
to the organizational domain with sp=, p=none (recorded only), p=reject
(550 5.7.1), [dmarc] reject = no (delivered, quarantine flag), p=quarantine
(flag logged, policy.dmarc=quarantine), pct=0 (not applied), no record
(dmarc=none), DNS failure (temperror, delivered), several From fields or
From addresses (permerror, delivered); at most 5 signatures verified;
[dkim] verify = no with DMARC on; a dead resolver (bounded wait,
temperror) and a client leaving while the lookups are out."""
import os
import re
import smtplib
import subprocess
import textwrap

import dkim
import pytest

import harness
from harness import DnsServer, unique_token
from test_spf import authres, stored_headers

HOST = harness.HOSTNAME
RCPT = harness.org_ldif.ALICE_ADDRS[0]
SEL = "sel"
SPF_OK = ["v=spf1 ip4:127.0.0.1 -all"]

DMARC = [
    ("_dmarc.a.test", ["v=DMARC1; p=reject; rua=mailto:dmarc@a.test"]),
    ("_dmarc.n.test", ["v=DMARC1; p=none"]),
    ("_dmarc.strict.test", ["v=DMARC1; p=none; aspf=s; adkim=s"]),
    ("_dmarc.org.test", ["v=DMARC1; p=none; sp=reject"]),
    ("_dmarc.q.test", ["v=DMARC1; p=quarantine"]),
    ("_dmarc.pct0.test", ["v=DMARC1; p=quarantine; pct=0"]),
    # not DMARC records: ignored, so no policy
    ("_dmarc.norecord.test", ["v=spf1 -all"]),
]
SPF = [(d, SPF_OK) for d in ("a.test", "bounce.a.test", "bounce.strict.test")]
KEYED = ["a.test", "n.test", "strict.test"]


def keygen(key_dir):
    out = subprocess.run([harness.ternd_path(), "dkim-keygen", "--domain", "k.test",
                          "--selector", SEL, "--type", "rsa", "--key-dir", key_dir],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    txt = "".join(re.findall(r'"([^"]*)"', out.stdout))
    with open(os.path.join(key_dir, "k.test.key"), "rb") as f:
        return f.read(), txt


class World:
    pass


@pytest.fixture(scope="module")
def world():
    w = World()
    e = harness.Env(start_ternd=False)
    w.env = e
    try:
        kd = os.path.join(e.tmp, "keys")
        os.mkdir(kd)
        w.key, txt = keygen(kd)
        chunks = textwrap.wrap(txt, 250, break_on_hyphens=False)
        assert "".join(chunks) == txt
        keys = [("%s._domainkey.%s" % (SEL, d), chunks) for d in KEYED]
        w.dns = DnsServer(e.tmp, txt=DMARC + SPF + keys, servfail=["broken.test"]).start()
        w.ternd = e.new_ternd(overrides={"dns": {"resolver": w.dns.resolver},
                                         "spf": {"check": "yes"},
                                         "dkim": {"verify": "yes"},
                                         "dmarc": {"check": "yes"}})
        yield w
    finally:
        if getattr(w, "dns", None) is not None:
            w.dns.stop()
        e.close()


def message(token, from_hdr, extra=()):
    hdrs = ["From: %s" % from_hdr, "To: <%s>" % RCPT, "Subject: dmarc %s" % token,
            "Message-ID: <%s@test.example.org>" % token,
            "Date: Thu, 01 Jan 2026 00:00:00 +0000"] + list(extra)
    return ("\r\n".join(hdrs) + "\r\n\r\nHello DMARC.\r\nSecond line.\r\n").encode()


def sign(w, msg, domain):
    sig = dkim.sign(msg, SEL.encode(), domain.encode(), w.key,
                    include_headers=[b"from", b"to", b"subject", b"message-id"])
    return sig + msg


def send(t, sender, msg):
    s = smtplib.SMTP("127.0.0.1", t.smtp_port, local_hostname="client.example.org",
                     timeout=30)
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
    return code, text


def results(w, sender, from_hdr, sign_d=None, tamper=False, t=None, extra=(), folder="INBOX"):
    """Delivers and returns {method: [result entry text]} from the one A-R
    of the message, found in folder."""
    t = t or w.ternd
    token = unique_token("dmarc")
    msg = message(token, from_hdr, extra)
    if sign_d is not None:
        msg = sign(w, msg, sign_d)
    if tamper:
        msg = msg.replace(b"Second line.", b"Second line!")
    code, text = send(t, sender, msg)
    assert code == 250, (code, text)
    ars = authres(stored_headers(t, token, folder))
    assert len(ars) == 1, ars
    head, _, rest = ars[0].partition(";")
    assert head == "Authentication-Results: %s" % HOST, ars[0]
    out = {}
    for part in rest.split(";"):
        part = part.strip()
        m = re.match(r"(\w+)=", part)
        assert m, ars[0]
        out.setdefault(m.group(1), []).append(part)
    return out, token


def refused(w, sender, from_hdr, t=None):
    t = t or w.ternd
    code, text = send(t, sender, message(unique_token("dmarc"), from_hdr))
    return code, text


# ---- DKIM ----

def test_dkim_pass_aligned_dmarc_pass(world):
    r, _ = results(world, "x@nospf.test", "<x@a.test>", sign_d="a.test")
    assert r["spf"][0].startswith("spf=none"), r
    dk = r["dkim"]
    assert len(dk) == 1 and dk[0].startswith("dkim=pass "), dk
    assert " header.d=a.test header.s=sel header.b=" in dk[0], dk
    assert re.search(r' header\.b=("[A-Za-z0-9+/]{8}"|[A-Za-z0-9+]{8})$', dk[0]), dk
    assert r["dmarc"] == ["dmarc=pass (aligned DKIM pass, p=reject pct=100) "
                          "header.from=a.test policy.dmarc=none"], r


def test_dkim_fail_tampered(world):
    r, _ = results(world, "x@nospf.test", "<x@n.test>", sign_d="n.test", tamper=True)
    assert r["dkim"][0].startswith("dkim=fail "), r
    assert " header.d=n.test header.s=sel " in r["dkim"][0], r
    assert r["dmarc"][0].startswith("dmarc=fail "), r


def test_dkim_permerror_no_key(world):
    r, _ = results(world, "x@nospf.test", "<x@n.test>", sign_d="nokey.test")
    assert r["dkim"][0].startswith("dkim=permerror "), r
    assert " header.d=nokey.test header.s=sel" in r["dkim"][0], r


def test_dkim_temperror_servfail(world):
    r, _ = results(world, "x@nospf.test", "<x@n.test>", sign_d="x.broken.test")
    assert r["dkim"][0].startswith("dkim=temperror "), r
    assert " header.d=x.broken.test header.s=sel" in r["dkim"][0], r


def test_dkim_none_unsigned(world):
    r, _ = results(world, "x@a.test", "<x@a.test>")
    assert r["dkim"] == ["dkim=none"], r


# ---- DMARC ----

def test_dmarc_pass_spf_aligned(world):
    r, _ = results(world, "x@a.test", "<x@a.test>")
    assert r["spf"][0].startswith("spf=pass "), r
    assert r["dmarc"] == ["dmarc=pass (aligned SPF pass, p=reject pct=100) "
                          "header.from=a.test policy.dmarc=none"], r


def test_dmarc_pass_spf_relaxed(world):
    r, _ = results(world, "x@bounce.a.test", "<x@a.test>")
    assert r["dmarc"][0].startswith("dmarc=pass (aligned SPF pass"), r


def test_dmarc_strict_spf_fails(world):
    r, _ = results(world, "x@bounce.strict.test", "<x@strict.test>")
    assert r["spf"][0].startswith("spf=pass "), r
    assert r["dmarc"] == ["dmarc=fail (no aligned SPF or DKIM pass, p=none pct=100) "
                          "header.from=strict.test policy.dmarc=none"], r


def test_dmarc_strict_dkim_fails_through_org_record(world):
    # _dmarc.news.strict.test does not exist: the org record (adkim=s)
    r, _ = results(world, "x@nospf.test", "<x@news.strict.test>", sign_d="strict.test")
    assert r["dkim"][0].startswith("dkim=pass "), r
    assert r["dmarc"] == ["dmarc=fail (no aligned SPF or DKIM pass, p=none at strict.test "
                          "pct=100) header.from=news.strict.test policy.dmarc=none"], r


def test_dmarc_relaxed_dkim_subdomain_passes(world):
    # d=a.test signs for news.a.test (relaxed, the org record of a.test)
    r, _ = results(world, "x@nospf.test", "<x@news.a.test>", sign_d="a.test")
    assert r["dmarc"][0].startswith("dmarc=pass (aligned DKIM pass, p=reject at a.test"), r


def test_dmarc_org_fallback_sp_reject(world):
    code, text = refused(world, "x@nospf.test", "<x@sub.org.test>")
    assert (code, text) == (550, b"5.7.1 Message rejected by the DMARC policy of sub.org.test")
    # the org domain itself gets p=none: recorded only
    r, _ = results(world, "x@nospf.test", "<x@org.test>")
    assert r["dmarc"] == ["dmarc=fail (no aligned SPF or DKIM pass, p=none pct=100) "
                          "header.from=org.test policy.dmarc=none"], r


def test_dmarc_p_none_fail_recorded(world):
    r, _ = results(world, "x@nospf.test", "<x@n.test>")
    assert r["dmarc"][0].startswith("dmarc=fail "), r
    assert r["dmarc"][0].endswith(" header.from=n.test policy.dmarc=none"), r


def test_dmarc_p_reject(world):
    code, text = refused(world, "x@nospf.test", "Someone <x@a.test>")
    assert (code, text) == (550, b"5.7.1 Message rejected by the DMARC policy of a.test")
    assert "reason=dmarc from=a.test" in world.ternd.log().decode(errors="replace")


def test_dmarc_reject_configured_off(world):
    t = world.env.new_ternd(name="noreject", overrides={
        "dns": {"resolver": world.dns.resolver}, "spf": {"check": "yes"},
        "dkim": {"verify": "yes"}, "dmarc": {"check": "yes", "reject": "no"}})
    try:
        r, _ = results(world, "x@nospf.test", "<x@a.test>", t=t, folder="Junk")
        assert r["dmarc"][0].startswith("dmarc=fail "), r
        assert r["dmarc"][0].endswith(" header.from=a.test policy.dmarc=quarantine"), r
        assert re.search(r"quarantine id=[0-9a-f]{16} reason=dmarc",
                         t.log().decode(errors="replace"))
    finally:
        t.stop()


def test_dmarc_p_quarantine(world):
    before = world.ternd.log().decode(errors="replace").count("reason=dmarc\n")
    # Quarantined: delivered to alice's Junk folder, not INBOX.
    r, token = results(world, "x@nospf.test", "<x@q.test>", folder="Junk")
    assert r["dmarc"] == ["dmarc=fail (no aligned SPF or DKIM pass, p=quarantine pct=100) "
                          "header.from=q.test policy.dmarc=quarantine"], r
    m = world.ternd.imap_login("alice")
    try:
        m.select("INBOX", readonly=True)
        assert m.search(None, "HEADER", "Message-ID", token)[1] == [b""]
    finally:
        m.logout()
    log = world.ternd.log().decode(errors="replace")
    assert log.count("reason=dmarc\n") == before + 1, log[-2000:]


def test_dmarc_pct0_not_applied(world):
    before = world.ternd.log().decode(errors="replace").count("reason=dmarc\n")
    for _ in range(3):
        r, _ = results(world, "x@nospf.test", "<x@pct0.test>")
        assert r["dmarc"] == ["dmarc=fail (no aligned SPF or DKIM pass, p=quarantine pct=0) "
                              "header.from=pct0.test policy.dmarc=none"], r
    assert world.ternd.log().decode(errors="replace").count("reason=dmarc\n") == before


def test_dmarc_no_record(world):
    r, _ = results(world, "x@nospf.test", "<x@norecord.test>")
    assert r["dmarc"] == ["dmarc=none (no policy record) header.from=norecord.test"], r


def test_dmarc_dns_failure_temperror_delivered(world):
    r, _ = results(world, "x@nospf.test", "<x@y.broken.test>")
    assert r["dmarc"] == ["dmarc=temperror (DNS failure for _dmarc.y.broken.test) "
                          "header.from=y.broken.test"], r


def test_dmarc_multiple_from(world):
    r, _ = results(world, "x@nospf.test", "<x@a.test>", extra=["From: <y@evil.test>"])
    assert r["dmarc"] == ["dmarc=permerror (several From authors)"], r
    r, _ = results(world, "x@nospf.test", "<x@a.test>, <y@evil.test>")
    assert r["dmarc"] == ["dmarc=permerror (several From authors)"], r


def test_dead_resolver_temperror_and_disconnect_midway(world):
    # Nothing answers: the message waits only as long as the resolver's
    # own timeout, then is delivered with temperror (never refused); a
    # client that leaves while the lookups are out is cleaned up.
    t = world.env.new_ternd(name="deaddns", overrides={
        "dns": {"resolver": "127.0.0.1:%d" % harness.free_port()},
        "spf": {"check": "no"}, "dkim": {"verify": "yes"}, "dmarc": {"check": "yes"}})
    try:
        s = smtplib.SMTP("127.0.0.1", t.smtp_port, local_hostname="c.example.org", timeout=30)
        s.ehlo()
        assert s.mail("x@a.test")[0] == 250
        assert s.rcpt(RCPT)[0] == 250
        assert s.docmd("DATA")[0] == 354
        msg = sign(world, message(unique_token("dmarc"), "<x@a.test>"), "a.test")
        s.sock.sendall(msg + b".\r\n")
        s.close()
        r, _ = results(world, "x@a.test", "<x@a.test>", sign_d="a.test", t=t)
        assert r["dkim"][0].startswith("dkim=temperror "), r
        assert r["dmarc"] == ["dmarc=temperror (DNS failure for _dmarc.a.test) "
                              "header.from=a.test"], r
        assert "spf" not in r, r
    finally:
        t.stop()


def test_dkim_signature_cap(world):
    # 6 signatures: the top 5 are verified, the 6th skipped and logged
    token = unique_token("dmarc")
    msg = message(token, "<x@n.test>")
    for d in ["nokey.test"] + ["n.test"] * 5:
        msg = sign(world, msg, d)
    code, text = send(world.ternd, "x@nospf.test", msg)
    assert code == 250, (code, text)
    ars = authres(stored_headers(world.ternd, token))
    assert len(ars) == 1, ars
    assert ars[0].count("dkim=pass ") == 5 and "nokey.test" not in ars[0], ars
    assert "dmarc=pass (aligned DKIM pass" in ars[0], ars
    assert "signatures=6 verified=5" in world.ternd.log().decode(errors="replace")


def test_dkim_verify_off_dmarc_still_uses_it(world):
    t = world.env.new_ternd(name="dkimoff", overrides={
        "dns": {"resolver": world.dns.resolver}, "spf": {"check": "yes"},
        "dkim": {"verify": "no"}, "dmarc": {"check": "yes"}})
    try:
        r, _ = results(world, "x@nospf.test", "<x@a.test>", sign_d="a.test", t=t)
        assert "dkim" not in r, r
        assert r["dmarc"][0].startswith("dmarc=pass (aligned DKIM pass"), r
    finally:
        t.stop()


def test_no_report_counts_without_reports(world):
    """[dmarc] reports is off by default: a policy with rua= is applied
    but nothing is counted for aggregate reports (test_dmarc_reports.py)."""
    r, _ = results(world, "x@a.test", "<x@a.test>")
    assert r["dmarc"][0].startswith("dmarc=pass "), r
    out = subprocess.run([harness.ternd_path(), "dmarc-report", "--dry-run", "-c",
                          world.ternd.conf_path], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, "no pending DMARC report data\n"), out.stderr
