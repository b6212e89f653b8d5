"""DMARC aggregate reports (RFC 7489 7.2, Appendix C): ternd counts the
messages it evaluates on [smtp] against policies that ask for reports
(rua=), and its report job queues one gzipped XML report per policy
domain; the outbound runner delivers it to a loopback SmtpSink (the
[outbound] relayhost). DNS is a dnsmasq holding the _dmarc, SPF, DKIM
key and _report._dmarc records.

Covered: counts merged per (policy domain, source, results) with aligned
SPF and DKIM passes and a fail, a refused message (disposition reject) and
one sampled out by pct=0 (reason sampled_out); the pending XML printed by `ternd
dmarc-report --dry-run`; the report message (envelope, headers, Subject
and attachment name of 7.2.1.1, application/gzip); the XML's metadata,
policy_published and records; external destination verification (7.1):
a rua in another organizational domain is used only with
<policy-domain>._report._dmarc.<rua-domain> TXT "v=DMARC1", refused (and
the counts dropped) without it, and a rua in the policy's own
organizational domain is used without a query, and a check that meets
SERVFAIL defers the domain (its counts stay); the counts are gone after
the report; counts in memory are written at shutdown; a bad [dmarc]
report_from stops start-up."""
import email
import email.policy
import gzip
import os
import re
import subprocess
import textwrap
import xml.etree.ElementTree as ET

import pytest

import harness
from harness import DnsServer, SmtpSink, unique_token
from test_dmarc import keygen, message, send, sign

SPF_OK = ["v=spf1 ip4:127.0.0.1 -all"]
REPORT_FROM = "dmarc-reports@reporter.example.test"
ORG = "Tern Test Org"

DMARC = [
    ("_dmarc.rep.test", ["v=DMARC1; p=none; rua=mailto:reports@reports.example.net!10m"]),
    # another organizational domain without the authorizing record
    ("_dmarc.ext.test", ["v=DMARC1; p=quarantine; rua=mailto:agg@other.example.net"]),
    # its own organizational domain: no check needed
    ("_dmarc.self.test", ["v=DMARC1; p=none; rua=mailto:Dmarc@Mail.Self.Test"]),
    # no rua: nothing counted
    ("_dmarc.quiet.test", ["v=DMARC1; p=none"]),
    # refused messages count too; pct=0 samples the policy out
    ("_dmarc.rej.test", ["v=DMARC1; p=reject; rua=mailto:d@rej.test"]),
    ("_dmarc.pct0.test", ["v=DMARC1; p=quarantine; pct=0; rua=mailto:d@pct0.test"]),
    # the destination's check fails on DNS (SERVFAIL): counts kept
    ("_dmarc.tf.test", ["v=DMARC1; p=none; rua=mailto:r@servfail.example.net"]),
    # 7.1: reports.example.net accepts reports about rep.test
    ("rep.test._report._dmarc.reports.example.net", ["v=DMARC1"]),
]
SPF = [(d, SPF_OK) for d in ("rep.test", "self.test", "quiet.test")]


class World:
    pass


@pytest.fixture(scope="module")
def world():
    w = World()
    e = harness.Env(start_ternd=False)
    w.env = e
    w.sink = None
    try:
        kd = os.path.join(e.tmp, "keys")
        os.mkdir(kd)
        w.key, txt = keygen(kd)
        chunks = textwrap.wrap(txt, 250, break_on_hyphens=False)
        keys = [("sel._domainkey.rep.test", chunks)]
        w.dns = DnsServer(e.tmp, txt=DMARC + SPF + keys, local=("test", "example.net"),
                          servfail=["servfail.example.net"]).start()
        w.sink = SmtpSink("127.0.0.1").start()
        w.ternd = e.new_ternd(overrides={
            "dns": {"resolver": w.dns.resolver},
            "spf": {"check": "yes"},
            "dkim": {"verify": "yes"},
            "dmarc": {"check": "yes", "reports": "yes", "report_from": REPORT_FROM,
                      "org_name": ORG},
            "outbound": {"relayhost": "127.0.0.1:%d" % w.sink.port,
                         "retry_initial": "1s", "retry_max": "2s"},
        })
        yield w
    finally:
        if w.sink is not None:
            w.sink.stop()
        if getattr(w, "dns", None) is not None:
            w.dns.stop()
        e.close()


def deliver(w, sender, from_hdr, sign_d=None, code=250):
    token = unique_token("rep")
    msg = message(token, from_hdr)
    if sign_d is not None:
        msg = sign(w, msg, sign_d)
    got, text = send(w.ternd, sender, msg)
    assert got == code, (got, text)


def dry_run(t):
    out = subprocess.run([harness.ternd_path(), "dmarc-report", "--dry-run", "-c", t.conf_path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    reports = {}
    for part in re.split(r"^==> ", out.stdout, flags=re.M)[1:]:
        head, _, body = part.partition("\n")
        fields = dict(f.split("=", 1) for f in head.split(" "))
        reports[fields["domain"]] = (fields, body)
    return out.stdout, reports


def raw_header(data):
    """The top header fields as sent, unfolded (RFC 5322 2.2.3)."""
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    fields = {}
    for line in re.sub(r"\r\n(?=[ \t])", "", head).split("\r\n"):
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def text(el, path):
    found = el.find(path)
    return None if found is None else found.text


def records(root):
    """Each <record> as a flat tuple, sorted, for exact comparison."""
    rows = []
    for r in root.findall("record"):
        dkim = tuple((text(d, "domain"), text(d, "selector"), text(d, "result"))
                     for d in r.findall("auth_results/dkim"))
        spf = tuple((text(s, "domain"), text(s, "scope"), text(s, "result"))
                    for s in r.findall("auth_results/spf"))
        rows.append((text(r, "row/source_ip"), int(text(r, "row/count")),
                     text(r, "row/policy_evaluated/disposition"),
                     text(r, "row/policy_evaluated/dkim"), text(r, "row/policy_evaluated/spf"),
                     text(r, "row/policy_evaluated/reason/type"),
                     text(r, "identifiers/envelope_from"), text(r, "identifiers/header_from"),
                     dkim, spf))
    return sorted(rows)


REP_ROWS = sorted([
    # aligned SPF pass, twice: one row, count 2
    ("127.0.0.1", 2, "none", "fail", "pass", None, "rep.test", "rep.test", (),
     (("rep.test", "mfrom", "pass"),)),
    # aligned DKIM pass, SPF of an unaligned domain without a record
    ("127.0.0.1", 1, "none", "pass", "fail", None, "other.test", "rep.test",
     (("rep.test", "sel", "pass"),), (("other.test", "mfrom", "none"),)),
    # neither: DMARC fail, p=none
    ("127.0.0.1", 1, "none", "fail", "fail", None, "other.test", "rep.test", (),
     (("other.test", "mfrom", "none"),)),
])


def test_reports(world):
    w = world
    t = w.ternd
    deliver(w, "bounce@rep.test", "A <a@rep.test>")
    deliver(w, "b@REP.test", "B <b@rep.test>")
    deliver(w, "x@other.test", "C <c@rep.test>", sign_d="rep.test")
    deliver(w, "x@other.test", "D <d@rep.test>")
    deliver(w, "x@other.test", "E <e@ext.test>")  # p=quarantine: Junk
    deliver(w, "s@self.test", "F <f@self.test>")
    deliver(w, "q@quiet.test", "G <g@quiet.test>")
    deliver(w, "x@other.test", "H <h@rej.test>", code=550)
    deliver(w, "x@other.test", "I <i@pct0.test>")
    deliver(w, "x@other.test", "J <j@tf.test>")

    # ---- what is pending, printed by the command line ----
    out, pending = dry_run(t)
    assert sorted(pending) == ["ext.test", "pct0.test", "rej.test", "rep.test", "self.test",
                               "tf.test"], out
    fields, body = pending["rep.test"]
    assert fields["rua"] == "mailto:reports@reports.example.net!10m"
    assert re.fullmatch(r"reporter\.example\.test!rep\.test!\d+!\d+\.xml\.gz", fields["file"])
    root = ET.fromstring(body)
    assert records(root) == REP_ROWS
    ext = ET.fromstring(pending["ext.test"][1])
    assert records(ext) == [
        ("127.0.0.1", 1, "quarantine", "fail", "fail", None, "other.test", "ext.test", (),
         (("other.test", "mfrom", "none"),))]
    assert text(ext, "policy_published/p") == "quarantine"
    assert records(ET.fromstring(pending["rej.test"][1])) == [
        ("127.0.0.1", 1, "reject", "fail", "fail", None, "other.test", "rej.test", (),
         (("other.test", "mfrom", "none"),))]
    assert records(ET.fromstring(pending["pct0.test"][1])) == [
        ("127.0.0.1", 1, "none", "fail", "fail", "sampled_out", "other.test", "pct0.test", (),
         (("other.test", "mfrom", "none"),))]

    # ---- the report run ----
    ans = t.control({"cmd": "dmarc.report"})
    assert ans["ok"] is True, ans
    by = {d["domain"]: d for d in ans["domains"]}
    assert sorted(by) == ["ext.test", "pct0.test", "rej.test", "rep.test", "self.test",
                          "tf.test"], ans
    assert [by[d]["result"] for d in ("rej.test", "pct0.test")] == ["queued", "queued"]
    # the check could not be made: nothing sent, nothing dropped
    assert by["tf.test"]["result"] == "deferred"
    assert by["tf.test"]["to"] == []
    assert by["rep.test"]["result"] == "queued"
    assert by["rep.test"]["to"] == ["reports@reports.example.net"]
    assert by["self.test"]["result"] == "queued"
    assert by["self.test"]["to"] == ["Dmarc@mail.self.test"]
    # 7.1: other.example.net never said it takes reports about ext.test
    assert by["ext.test"]["result"] == "dropped"
    assert by["ext.test"]["to"] == []
    q = w.dns.queries()
    assert "rep.test._report._dmarc.reports.example.net" in q
    assert "ext.test._report._dmarc.other.example.net" in q
    assert "_report._dmarc.mail.self.test" not in q

    msgs = w.sink.wait_messages(4)
    assert len(msgs) == 4
    rep = [m for m in msgs if m.rcpts[0][0] == "reports@reports.example.net"]
    assert len(rep) == 1, [m.rcpts for m in msgs]
    m = rep[0]
    assert m.mail_from == REPORT_FROM
    assert [r[0] for r in m.rcpts] == ["reports@reports.example.net"]
    parsed = email.message_from_bytes(m.data, policy=email.policy.default)
    report_id = by["rep.test"]["report_id"]
    hdr = raw_header(m.data)
    assert hdr["From"] == "<%s>" % REPORT_FROM
    assert hdr["To"] == "<reports@reports.example.net>"
    assert hdr["Subject"] == ("Report Domain: rep.test Submitter: reporter.example.test "
                              "Report-ID: <%s>" % report_id)
    assert hdr["Auto-Submitted"] == "auto-generated"
    assert hdr["Message-ID"] == "<%s>" % report_id
    assert re.fullmatch(r"\d+\.[0-9a-f]{8}@reporter\.example\.test", report_id)
    assert parsed.get_content_type() == "multipart/mixed"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "application/gzip"]
    att = parts[1]
    name = att.get_filename()
    mt = re.fullmatch(r"reporter\.example\.test!rep\.test!(\d+)!(\d+)\.xml\.gz", name)
    assert mt, name
    root = ET.fromstring(gzip.decompress(att.get_content()))
    assert root.tag == "feedback"
    assert text(root, "version") == "1.0"
    assert text(root, "report_metadata/org_name") == ORG
    assert text(root, "report_metadata/email") == REPORT_FROM
    assert text(root, "report_metadata/report_id") == report_id
    assert text(root, "report_metadata/date_range/begin") == mt.group(1)
    assert text(root, "report_metadata/date_range/end") == mt.group(2)
    assert int(mt.group(1)) <= int(mt.group(2))
    assert [(c.tag, c.text) for c in root.find("policy_published")] == [
        ("domain", "rep.test"), ("adkim", "r"), ("aspf", "r"), ("p", "none"), ("sp", "none"),
        ("pct", "100")]
    assert records(root) == REP_ROWS

    # ---- sent or dropped: only the deferred domain is left ----
    out, pending = dry_run(t)
    assert sorted(pending) == ["tf.test"], out
    assert records(ET.fromstring(pending["tf.test"][1]))[0][1] == 1
    ans = t.control({"cmd": "dmarc.report"})
    assert [(d["domain"], d["result"]) for d in ans["domains"]] == [("tf.test", "deferred")]
    assert len(w.sink.messages) == 4


def test_counts_written_at_shutdown(world):
    """The counts kept in memory reach the store when ternd stops; the
    dry run reads them with no ternd running."""
    w = world
    deliver(w, "bounce@rep.test", "A <a@rep.test>")
    w.ternd.stop()
    try:
        out, pending = dry_run(w.ternd)
    finally:
        w.ternd.start()
    assert "rep.test" in pending, out
    assert records(ET.fromstring(pending["rep.test"][1])) == [
        ("127.0.0.1", 1, "none", "fail", "pass", None, "rep.test", "rep.test", (),
         (("rep.test", "mfrom", "pass"),))]


def test_bad_report_from(world):
    t = world.env.new_ternd(overrides={"dmarc": {"report_from": "no address"}}, start=False)
    out = subprocess.run([harness.ternd_path(), "-t", "-c", t.conf_path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert re.search(r":\d+: \[dmarc\] report_from: not a plain address \(local@domain\)",
                     out.stderr), out.stderr
