"""Outbound delivery against real receiving servers on loopback: ternd's
queue runner resolves through a dnsmasq started here (the only resolver
libunbound is given) and delivers to SmtpSink servers (harness.py) on
127.0.0.x, all on one port ([outbound] port). Mail enters the queue
through authenticated submission.

Covered: MX delivery with the exact bytes and DSN parameters, A/AAAA
fallback without MX, null MX and NXDOMAIN bounces, a 550 bounce in the
sender's INBOX, a far side down then up, a slow far side that does not
hold up another destination, a static route, a smarthost with AUTH over
STARTTLS, connection reuse, mail loops, and a kill -9 with mail pending."""
import os
import re
import smtplib
import subprocess
import time

import pytest

import harness
from harness import DnsServer, SmtpSink, free_port, password, unique_token

SLOW_SECS = 10


class World:
    pass


def _ip(n):
    return "127.0.0.%d" % n


@pytest.fixture(scope="module")
def world():
    w = World()
    w.port = free_port()  # every MX sink listens on this port, each on its own address
    w.sinks = {}
    hosts = {
        "sink": 2, "afb": 3, "reject": 4, "flaky": 5, "slow": 6, "fast": 7, "reuse": 8,
        "pending": 9, "loop": 10, "defer": 13, "seven": 14, "tls": 15, "wrongname": 15,
    }
    mx = []
    a = []
    for name, n in hosts.items():
        if name != "afb":
            mx.append(("%s.test" % name, "mx.%s.test" % name, 10))
            a.append(("mx.%s.test" % name, _ip(n)))
    a.append(("afb.test", _ip(3)))  # no MX: the domain's own address
    w.tmp = None
    e = harness.Env(start_ternd=False)
    w.env = e
    try:
        w.dns = DnsServer(e.tmp, mx=mx, hosts=a, rr=[("nullmx.test", 15, "000000")]).start()

        def reject(addr):
            return (550, "5.1.1 <%s>: no such user here" % addr)

        w.sinks["sink"] = SmtpSink(_ip(2), w.port).start()
        w.sinks["afb"] = SmtpSink(_ip(3), w.port).start()
        w.sinks["reject"] = SmtpSink(_ip(4), w.port, rcpt_reply=reject).start()
        w.sinks["flaky"] = SmtpSink(_ip(5), w.port)  # down until the test starts it
        w.sinks["slow"] = SmtpSink(_ip(6), w.port, delay=SLOW_SECS).start()
        w.sinks["fast"] = SmtpSink(_ip(7), w.port).start()
        w.sinks["reuse"] = SmtpSink(_ip(8), w.port).start()
        w.sinks["pending"] = SmtpSink(_ip(9), w.port)  # down at first
        w.sinks["loop"] = SmtpSink(_ip(10), w.port).start()
        w.sinks["defer"] = SmtpSink(_ip(13), w.port,
                                    rcpt_reply=lambda a: (451, "4.3.2 try later")).start()
        w.sinks["seven"] = SmtpSink(_ip(14), w.port, ehlo=["PIPELINING", "SIZE 1000000"]).start()
        # A certificate for mx.tls.test from a CA only ternd's tls_ca_file knows.
        w.ca, cert, key = make_ca_cert(e.tmp, "mx.tls.test")
        w.sinks["tls"] = SmtpSink(_ip(15), w.port, cert=cert, key=key, ehlo=[
            "PIPELINING", "8BITMIME", "DSN", "REQUIRETLS"]).start()
        w.route_port = free_port()
        w.sinks["routed"] = SmtpSink(_ip(11), w.route_port).start()
        w.sub_port = free_port()
        w.ternd = e.new_ternd(overrides=outbound_overrides(w, w.sub_port))
        yield w
    finally:
        for s in w.sinks.values():
            s.stop()
        if getattr(w, "dns", None) is not None:
            w.dns.stop()
        e.close()


def make_ca_cert(tmp, name):
    """A throwaway CA and a server certificate for name signed by it:
    (ca.pem, cert.pem, key.pem)."""
    d = os.path.join(tmp, "ca")
    os.makedirs(d, exist_ok=True)
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    cert, key, csr = (os.path.join(d, name + ext) for ext in (".pem", ".key", ".csr"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s\n" % name)
    quiet = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=Tern Test CA", "-keyout", ca_key, "-out", ca,
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"], **quiet)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
                    "-keyout", key, "-out", csr], **quiet)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "2", "-out", cert, "-extfile", ext], **quiet)
    return ca, cert, key


def outbound_overrides(w, sub_port, extra=None):
    o = {
        "submission": {"listen": "127.0.0.1:%d" % sub_port, "plaintext_auth": "yes"},
        "outbound": {"port": str(w.port), "retry_initial": "1s", "retry_max": "2s",
                     "connect_timeout": "3s", "command_timeout": "30s",
                     "max_per_destination": "1", "delay_warning": "2s",
                     "tls_ca_file": w.ca},
        "dns": {"resolver": w.dns.resolver},
        "routes": {"routed.test": "%s:%d" % (_ip(11), w.route_port)},
    }
    for k, v in (extra or {}).items():
        o.setdefault(k, {}).update(v)
    return o


def make_message(token, **kw):
    """A test message From: alice, who submits it."""
    kw.setdefault("sender", "alice@example.test")
    return harness.make_message(token, **kw)


def submit(port, rcpts, msg, login="alice", sender="alice@example.test", mail_options=(),
           rcpt_options=()):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org",
                     timeout=harness.TIMEOUT)
    try:
        s.ehlo()
        s.login(login, password(login))
        refused = s.sendmail(sender, rcpts, msg, mail_options=list(mail_options),
                             rcpt_options=list(rcpt_options))
        assert not refused, refused
        s.quit()
    finally:
        s.close()


def wait_log(t, pattern, timeout=30):
    rx = re.compile(pattern.encode())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rx.search(t.log()):
            return
        time.sleep(0.1)
    raise AssertionError("no %r in the log:\n%s" % (pattern, t.log_tail()))


def wait_bounce(t, login, token, timeout=30):
    """The DSN about token in login's INBOX (read over POP3)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in t.mailbox(login):
            if token.encode() in m and b"multipart/report" in m:
                return m
        time.sleep(0.3)
    raise AssertionError("no bounce for %s in %s's INBOX:\n%s" % (token, login, t.log_tail()))


def test_mx_delivery_exact_bytes_and_dsn_params(world):
    tok = unique_token("mx")
    msg = make_message(tok, sender="alice@example.test", to="bob@sink.test",
                       body=b".leading dot\r\nline two\r\n")
    submit(world.sub_port, ["bob@sink.test"], msg, mail_options=["RET=HDRS", "ENVID=env-" + tok],
           rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@sink.test"])
    sink = world.sinks["sink"]
    got = [m for m in sink.wait_messages(1) if tok.encode() in m.data]
    assert len(got) == 1
    m = got[0]
    assert m.mail_from == "alice@example.test"
    assert m.rcpts[0][0] == "bob@sink.test"
    params = m.rcpts[0][1].split()
    assert "NOTIFY=SUCCESS,FAILURE" in params
    assert "ORCPT=rfc822;bob@sink.test" in params
    assert "RET=HDRS" in m.mail_params.split()
    assert "ENVID=env-" + tok in m.mail_params.split()
    # the submitted bytes arrive unchanged behind ternd's trace header;
    # the dot-stuffed line came back as it was
    assert m.data.endswith(msg), m.data[-300:]
    assert m.data.startswith(b"Received: "), m.data[:200]
    assert m.tls is False  # the sink offers no STARTTLS
    # The runner asked only the test resolver, for the MX and its address.
    q = world.dns.queries()
    assert "query[MX] sink.test" in q and "query[A] mx.sink.test" in q


def test_a_fallback_without_mx(world):
    tok = unique_token("afb")
    submit(world.sub_port, ["carl@afb.test"], make_message(tok, to="carl@afb.test"))
    got = [m for m in world.sinks["afb"].wait_messages(1) if tok.encode() in m.data]
    assert len(got) == 1 and got[0].rcpts[0][0] == "carl@afb.test"


def test_null_mx_bounces(world):
    tok = unique_token("nullmx")
    submit(world.sub_port, ["x@nullmx.test"], make_message(tok, to="x@nullmx.test"))
    wait_log(world.ternd, r"rcpt=<x@nullmx\.test> outcome=failed .*5\.1\.10")
    b = wait_bounce(world.ternd, "alice", tok)
    assert b"5.1.10" in b


def test_nxdomain_bounces(world):
    tok = unique_token("nx")
    submit(world.sub_port, ["x@nowhere.test"], make_message(tok, to="x@nowhere.test"))
    wait_log(world.ternd, r"rcpt=<x@nowhere\.test> outcome=failed .*5\.1\.2")


def test_550_bounce_in_sender_inbox(world):
    tok = unique_token("rej")
    submit(world.sub_port, ["nobody@reject.test"], make_message(tok, to="nobody@reject.test"),
           mail_options=["ENVID=env-" + tok])
    b = wait_bounce(world.ternd, "alice", tok)
    hdr, body = harness.split_message(b)
    assert re.search(rb"(?im)^Return-Path: <>", hdr), hdr
    assert re.search(rb"(?i)report-type=\"?delivery-status", hdr + body)
    assert re.search(rb"(?im)^Content-Type: message/delivery-status", body)
    assert re.search(rb"(?im)^Final-Recipient: rfc822; ?nobody@reject\.test", body)
    assert re.search(rb"(?im)^Action: failed", body)
    assert re.search(rb"(?im)^Status: 5\.1\.1", body)
    assert re.search(rb"(?im)^Diagnostic-Code: smtp; ?550", body)
    assert re.search(rb"(?im)^Original-Envelope-Id: env-" + tok.encode(), body)
    assert not world.sinks["reject"].messages
    # no second bounce for the same failure
    time.sleep(2)
    assert harness.count_token([m for m in world.ternd.mailbox("alice")
                                if b"multipart/report" in m], tok) == 1


def test_far_side_down_then_up(world):
    tok = unique_token("flaky")
    sink = world.sinks["flaky"]
    submit(world.sub_port, ["x@flaky.test"], make_message(tok, to="x@flaky.test"))
    wait_log(world.ternd, r"rcpt=<x@flaky\.test> outcome=deferred")
    sink.start()
    got = [m for m in sink.wait_messages(1, timeout=20) if tok.encode() in m.data]
    assert len(got) == 1
    wait_log(world.ternd, r"rcpt=<x@flaky\.test> outcome=delivered")


def test_slow_far_side_does_not_block_others(world):
    slow_tok, fast_tok = unique_token("slow"), unique_token("fast")
    submit(world.sub_port, ["x@slow.test"], make_message(slow_tok, to="x@slow.test"))
    time.sleep(0.5)  # the slow one is now holding its connection
    t0 = time.monotonic()
    submit(world.sub_port, ["y@fast.test"], make_message(fast_tok, to="y@fast.test"))
    world.sinks["fast"].wait_messages(1, timeout=SLOW_SECS)
    assert time.monotonic() - t0 < SLOW_SECS - 2
    assert not [m for m in world.sinks["slow"].messages if slow_tok.encode() in m.data]
    got = world.sinks["slow"].wait_messages(1, timeout=SLOW_SECS + 10)
    assert any(slow_tok.encode() in m.data for m in got)


def test_static_route(world):
    tok = unique_token("route")
    # routed.test has no DNS records at all: only the [routes] entry knows it.
    submit(world.sub_port, ["z@routed.test"], make_message(tok, to="z@routed.test"))
    got = [m for m in world.sinks["routed"].wait_messages(1) if tok.encode() in m.data]
    assert len(got) == 1
    assert "query[MX] routed.test" not in world.dns.queries()


def test_connection_reuse(world):
    sink = world.sinks["reuse"]
    toks = [unique_token("reuse") for _ in range(3)]
    # one submission session, three messages: queued back to back, sent
    # over one connection (max_per_destination = 1), RSET between
    s = smtplib.SMTP("127.0.0.1", world.sub_port, local_hostname="client.example.org",
                     timeout=harness.TIMEOUT)
    s.ehlo()
    s.login("alice", password("alice"))
    for t in toks:
        s.sendmail("alice@example.test", ["r@reuse.test"], make_message(t, to="r@reuse.test"))
    s.quit()
    msgs = sink.wait_messages(3)
    assert {m.conn_no for m in msgs} == {1}, [(m.conn_no) for m in msgs]
    assert sink.connections == 1
    assert any(c == "RSET" for _, c in sink.commands)


def test_mail_loop_is_refused(world):
    tok = unique_token("loop")
    hops = tuple("Received: from hop%d.example by hop%d.example; "
                 "Thu, 01 Jan 2026 00:00:00 +0000" % (i, i + 1) for i in range(51))
    submit(world.sub_port, ["x@loop.test"], make_message(tok, to="x@loop.test",
                                                         extra_headers=hops))
    wait_log(world.ternd, r"rcpt=<x@loop\.test> outcome=failed .*5\.4\.6")
    assert not world.sinks["loop"].messages


def test_restart_with_pending_queue(world):
    tok = unique_token("pending")
    sink = world.sinks["pending"]
    submit(world.sub_port, ["p@pending.test"], make_message(tok, to="p@pending.test"))
    wait_log(world.ternd, r"rcpt=<p@pending\.test> outcome=deferred")
    world.ternd.kill()
    sink.start()
    world.ternd.start()
    got = [m for m in sink.wait_messages(1, timeout=20) if tok.encode() in m.data]
    assert len(got) == 1
    time.sleep(3)  # a second copy would have come by now (retry_max 2s)
    assert len([m for m in sink.messages if tok.encode() in m.data]) == 1


def test_smarthost_with_auth(world):
    e = world.env
    auth_path = e.tmp + "/relay.auth"
    with open(auth_path, "w") as f:
        f.write("relayuser:relay-secret\n")
    import os
    os.chmod(auth_path, 0o600)
    relay_port = free_port()
    relay = SmtpSink(_ip(12), relay_port, cert=e.cert, key=e.key,
                     auth=("relayuser", "relay-secret")).start()
    world.sinks["relay"] = relay
    sub = free_port()
    t = e.new_ternd(name="smart", overrides=outbound_overrides(world, sub, {
        "outbound": {"relayhost": "%s:%d" % (_ip(12), relay_port),
                     "relayhost_auth_file": auth_path, "relayhost_tls": "require"}}))
    tok = unique_token("smart")
    # sink.test has an MX, but everything goes via the smarthost
    submit(sub, ["q@sink.test"], make_message(tok, to="q@sink.test"))
    got = [m for m in relay.wait_messages(1) if tok.encode() in m.data]
    assert len(got) == 1
    assert got[0].tls is True and got[0].auth_user == "relayuser"
    cmds = [c for _, c in relay.commands]
    assert cmds.index("STARTTLS") < min(i for i, c in enumerate(cmds) if c.startswith("AUTH"))
    assert not any("relay-secret" in line for line in t.log().decode(errors="replace").split("\n"))
    t.stop()


def test_delay_warning(world):
    tok = unique_token("delay")
    submit(world.sub_port, ["d@defer.test"], make_message(tok, to="d@defer.test"),
           rcpt_options=["NOTIFY=FAILURE,DELAY"])
    b = wait_bounce(world.ternd, "alice", tok, timeout=20)
    _, body = harness.split_message(b)
    assert re.search(rb"(?im)^Action: delayed", body)
    assert re.search(rb"(?im)^Status: 4\.3\.2", body)
    assert re.search(rb"(?im)^Final-Recipient: rfc822; ?d@defer\.test", body)
    wait_log(world.ternd, r"rcpt=<d@defer\.test> outcome=delay-warned")
    # once only, though the retries go on
    time.sleep(4)
    n = harness.count_token([m for m in world.ternd.mailbox("alice")
                             if b"multipart/report" in m], tok)
    assert n == 1


def test_8bit_to_7bit_server_bounces(world):
    tok = unique_token("eight")
    msg = make_message(tok, to="e@seven.test", body="caf\u00e9 na\u00efve\r\n".encode(),
                       extra_headers=("MIME-Version: 1.0",
                                      "Content-Type: text/plain; charset=utf-8",
                                      "Content-Transfer-Encoding: 8bit"))
    submit(world.sub_port, ["e@seven.test"], msg, mail_options=["BODY=8BITMIME"])
    b = wait_bounce(world.ternd, "alice", tok)
    assert re.search(rb"(?im)^Status: 5\.6\.3", b)
    assert not world.sinks["seven"].messages
    assert not any(c.startswith("MAIL") for _, c in world.sinks["seven"].commands)


def submit_tls(port, rcpts, msg, mail_options=()):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org",
                     timeout=harness.TIMEOUT)
    try:
        s.ehlo()
        s.starttls(context=harness.client_tls_context())
        s.ehlo()
        s.login("alice", password("alice"))
        refused = s.sendmail("alice@example.test", rcpts, msg, mail_options=list(mail_options))
        assert not refused, refused
        s.quit()
    finally:
        s.close()


def test_requiretls(world):
    # verified TLS (CA from tls_ca_file, name = the MX) and REQUIRETLS offered: sent
    ok = unique_token("rtls")
    submit_tls(world.sub_port, ["t@tls.test"], make_message(ok, to="t@tls.test"),
               mail_options=["REQUIRETLS"])
    got = [m for m in world.sinks["tls"].wait_messages(1) if ok.encode() in m.data]
    assert len(got) == 1 and got[0].tls
    assert "REQUIRETLS" in got[0].mail_params.split()
    wait_log(world.ternd, r"tls host=mx\.tls\.test version=\S+ verified=yes")
    # the same server under a name its certificate does not carry, and a
    # server without TLS: never sent, bounced with 5.7.30 (RFC 8689)
    for rcpt in ("w@wrongname.test", "p@sink.test"):
        tok = unique_token("rtls")
        before = len(world.sinks["tls"].messages) + len(world.sinks["sink"].messages)
        submit_tls(world.sub_port, [rcpt], make_message(tok, to=rcpt),
                   mail_options=["REQUIRETLS"])
        b = wait_bounce(world.ternd, "alice", tok)
        assert re.search(rb"(?im)^Status: 5\.7\.30", b), b[-1500:]
        assert len(world.sinks["tls"].messages) + len(world.sinks["sink"].messages) == before
