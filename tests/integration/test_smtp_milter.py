"""Milters on inbound SMTP against the real ternd and slapd: a scripted
test milter (milter_test_server.py) for every action at every stage, a
milter that hangs and one that is down (default_action), two in a chain,
Junk delivery with the per-user switch (checked over IMAP), and Debian's
opendkim in sign mode wired in for real."""
import os
import shutil
import smtplib
import subprocess
import time

import pytest

import harness
from harness import count_token, find_token, make_message, split_message, unique_token
from milter_test_server import MilterServer

ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture(scope="module")
def env():
    e = harness.Env(start_ternd=False)
    yield e
    e.close()


def milter_ternd(env, milters, extra=None, directory=None):
    """A ternd with milters: [(name, MilterServer or socket, {keys})]."""
    ov = {"milter": {"milters": ", ".join(n for n, _, _ in milters)}}
    for name, srv, keys in milters:
        sec = {"socket": srv if isinstance(srv, str) else srv.socket_spec}
        sec.update(keys or {})
        ov["milter." + name] = sec
    if extra:
        ov["milter"].update(extra)
    if directory:
        ov["directory"] = directory
    return env.new_ternd(ov)


def session(t):
    s = smtplib.SMTP("127.0.0.1", t.smtp_port, local_hostname="client.example.org",
                     timeout=30)
    return s


def imap_folder(t, login, folder):
    m = t.imap_login(login)
    try:
        typ, _ = m.select(folder, readonly=True)
        assert typ == "OK", folder
        typ, data = m.search(None, "ALL")
        out = []
        for num in data[0].split():
            typ, d = m.fetch(num, "(BODY.PEEK[])")
            out.append(d[0][1])
        return out
    finally:
        m.logout()


def test_eom_header_and_body_actions(env):
    body = b"Replaced body line 1\r\nline 2\r\n"
    srv = MilterServer({"eom": [
        ("addheader", "X-Added", "added value"),
        ("insheader", 0, "X-Top", "first"),
        ("chgheader", 1, "Subject", "changed subject"),
        ("chgheader", 1, "X-Remove-Me", ""),
        ("addheader", "X-Folded", "a\nb"),
        ("replbody", body),
        ("progress",),
        ("continue",)]})
    t = milter_ternd(env, [("test", srv, {})])
    try:
        token = unique_token("eom")
        msg = make_message(token, to=ALICE).replace(
            b"Subject:", b"X-Remove-Me: yes\r\nSubject:", 1)
        code, text = t.send(ALICE, msg)
        assert code == 250, text
        
        msgs = t.mailbox("alice")
        got = [m for m in msgs if b"X-Added: added value" in m]
        assert len(got) == 1, msgs[-1][:800]
        hdr, stored_body = split_message(got[0])
        assert stored_body == body
        assert b"X-Remove-Me" not in hdr
        assert b"Subject: changed subject\r\n" in hdr
        assert b"X-Folded: a\r\n\tb\r\n" in hdr
        # insheader 0 puts it first among the message's headers, after
        # Tern's own trace headers (Return-Path, Delivered-To, Received).
        lines = hdr.split(b"\r\n")
        names = [l.split(b":")[0] for l in lines if l and l[0:1] not in (b" ", b"\t")]
        assert names.index(b"X-Top") == names.index(b"Received") + 1, names
        assert b"X-Added" in names[-3:] or b"X-Added" in names, names
        # The milter saw headers, EOH, the body and the end, with macros.
        cmds = [c for c, _ in srv.commands()]
        for c in (b"O", b"C", b"H", b"M", b"R", b"T", b"L", b"N", b"B", b"E"):
            assert c in cmds, (c, cmds)
        macros = b"".join(d for c, d in srv.commands(b"D"))
        assert b"{client_addr}\x00127.0.0.1\x00" in macros
        assert b"{rcpt_addr}\x00" + ALICE.encode() in macros
        assert b"i\x00" in macros and b"j\x00mail.example.test" in macros or b"j\x00" in macros
        conn = srv.commands(b"C")[0][1]
        assert conn.startswith(b"[127.0.0.1]\x004")
        assert srv.commands(b"M")[0][1].startswith(b"<sender@example.org>\x00")
    finally:
        t.stop()
        srv.close()


@pytest.mark.parametrize("stage,reply,expect", [
    ("mail", ("reject",), (550, b"5.7.1 Command rejected")),
    ("mail", ("tempfail",), (451, b"4.7.1 Service unavailable - try again later")),
    ("mail", ("replycode", "553 5.7.1 go away"), (553, b"5.7.1 go away")),
])
def test_mail_stage(env, stage, reply, expect):
    srv = MilterServer({stage: [reply]})
    t = milter_ternd(env, [("test", srv, {})])
    try:
        s = session(t)
        s.ehlo()
        assert s.mail("sender@example.org") == expect
        # The session goes on: a second try meets the same milter.
        assert s.mail("sender@example.org") == expect
        s.quit()
    finally:
        t.stop()
        srv.close()


def test_rcpt_reject_refuses_that_recipient_only(env):
    srv = MilterServer({"rcpt": {BOB: [("replycode", "550 5.7.1 not bob")]}})
    t = milter_ternd(env, [("test", srv, {})])
    try:
        s = session(t)
        s.ehlo()
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt(BOB) == (550, b"5.7.1 not bob")
        assert s.rcpt(ALICE)[0] == 250
        token = unique_token("rcpt")
        code, _ = s.data(make_message(token, to=ALICE))
        assert code == 250
        s.quit()
        assert find_token(t.mailbox("alice"), token) is not None
    finally:
        t.stop()
        srv.close()


def test_helo_reject_and_data_tempfail(env):
    srv = MilterServer({"helo": [("reject",)], "data": [("tempfail",)]})
    t = milter_ternd(env, [("test", srv, {})])
    try:
        s = session(t)
        assert s.ehlo() == (550, b"5.7.1 Command rejected")
        s.close()
    finally:
        t.stop()
        srv.close()
    srv = MilterServer({"data": [("tempfail",)]})
    t = milter_ternd(env, [("test", srv, {})])
    try:
        s = session(t)
        s.ehlo()
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt(ALICE)[0] == 250
        code, text = s.docmd("DATA")
        assert (code, text) == (451, b"4.7.1 Service unavailable - try again later")
        # The transaction is over: RCPT needs a new MAIL.
        assert s.rcpt(ALICE)[0] == 503
        s.quit()
        # ABORT told the milter the transaction ended (the milter's
        # thread may log it after our QUIT's reply: wait for it).
        deadline = time.time() + 10
        while not srv.commands(b"A") and time.time() < deadline:
            time.sleep(0.05)
        assert srv.commands(b"A")
    finally:
        t.stop()
        srv.close()


def test_connect_reject_answers_at_mail(env):
    srv = MilterServer({"connect": [("reject",)]})
    t = milter_ternd(env, [("test", srv, {})])
    try:
        s = session(t)
        assert s.ehlo()[0] == 250
        assert s.mail("sender@example.org") == (550, b"5.7.1 Command rejected")
        s.quit()
    finally:
        t.stop()
        srv.close()


def test_discard_accepts_and_drops(env):
    srv = MilterServer({"eom": [("discard",)]})
    t = milter_ternd(env, [("test", srv, {})])
    try:
        token = unique_token("discard")
        code, text = t.send(ALICE, make_message(token, to=ALICE))
        assert code == 250, text
        assert count_token(t.mailbox("alice"), token) == 0
        assert "discarded id=" in t.log().decode(errors="replace")
    finally:
        t.stop()
        srv.close()


def test_eom_reject_with_replycode(env):
    srv = MilterServer({"eom": [("addheader", "X-Never", "x"),
                                ("replycode", "554 5.7.1 virus found")]})
    t = milter_ternd(env, [("test", srv, {})])
    try:
        s = session(t)
        s.ehlo()
        s.mail("sender@example.org")
        s.rcpt(ALICE)
        code, text = s.data(make_message(unique_token("vir"), to=ALICE))
        assert (code, text) == (554, b"5.7.1 virus found")
        s.quit()
    finally:
        t.stop()
        srv.close()


def test_hanging_milter_times_out_to_default(env):
    srv = MilterServer({"mail": [("hang",)]})
    t = milter_ternd(env, [("slow", srv, {"command_timeout": "2s",
                                          "default_action": "accept"})])
    try:
        token = unique_token("hang")
        start = time.time()
        code, text = t.send(ALICE, make_message(token, to=ALICE))
        assert code == 250, text
        assert 1.5 < time.time() - start < 10
        assert find_token(t.mailbox("alice"), token) is not None
        assert "milter-down name=slow" in t.log().decode(errors="replace") and 'reason="timeout"' in t.log().decode(errors="replace")
    finally:
        t.stop()
        srv.close()
    srv = MilterServer({"rcpt": [("hang",)]})
    t = milter_ternd(env, [("slow", srv, {"command_timeout": "1s",
                                          "default_action": "tempfail"})])
    try:
        s = session(t)
        s.ehlo()
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt(ALICE) == (451, b"4.7.1 Service unavailable - try again later")
        s.quit()
    finally:
        t.stop()
        srv.close()


def test_milter_down(env):
    port = harness.free_port()  # nothing listens there
    t = milter_ternd(env, [("gone", "inet:127.0.0.1:%d" % port,
                            {"default_action": "accept"})])
    try:
        token = unique_token("down")
        code, text = t.send(ALICE, make_message(token, to=ALICE))
        assert code == 250, text
        assert find_token(t.mailbox("alice"), token) is not None
    finally:
        t.stop()
    t = milter_ternd(env, [("gone", "unix:/nonexistent/milter.sock", {})])  # tempfail default
    try:
        s = session(t)
        assert s.ehlo()[0] == 250
        assert s.mail("sender@example.org") == (
            451, b"4.7.1 Service unavailable - try again later")
        s.quit()
    finally:
        t.stop()


def test_chain_order_and_second_sees_first(env, tmp_path):
    first = MilterServer({"eom": [("addheader", "X-First", "one")]})
    second = MilterServer({"eom": [("addheader", "X-Second", "two")]},
                          unix_path=str(tmp_path / "m2.sock"))
    t = milter_ternd(env, [("first", first, {}), ("second", second, {})])
    try:
        token = unique_token("chain")
        code, text = t.send(ALICE, make_message(token, to=ALICE))
        assert code == 250, text
        got = find_token(t.mailbox("alice"), token)
        hdr, _ = split_message(got)
        assert hdr.index(b"X-First: one") < hdr.index(b"X-Second: two")
        seen = [d.split(b"\0")[0] for c, d in second.commands(b"L")]
        assert b"X-First" in seen
        assert b"X-First" not in [d.split(b"\0")[0] for c, d in first.commands(b"L")]
    finally:
        t.stop()
        first.close()
        second.close()


def test_protocol_flags_skip_stages(env):
    # NOHDRS | NOBODY | NR_RCPT: no headers, no body, RCPT without reply.
    srv = MilterServer({}, protocol=0x20 | 0x10 | 0x8000)
    t = milter_ternd(env, [("lean", srv, {})])
    try:
        token = unique_token("flags")
        code, text = t.send(ALICE, make_message(token, to=ALICE))
        assert code == 250, text
        cmds = [c for c, _ in srv.commands()]
        assert b"L" not in cmds and b"B" not in cmds
        assert b"R" in cmds and b"E" in cmds
    finally:
        t.stop()
        srv.close()


def test_quarantine_and_spam_header_to_junk_with_user_switch(env):
    srv = MilterServer({"eom": [("quarantine", "looks like spam")]})
    t = milter_ternd(env, [("spam", srv, {})], directory={"junk_attr": "employeeType"})
    try:
        token = unique_token("quar")
        code, text = t.send(ALICE, make_message(token, to=ALICE))
        assert code == 250, text
        assert any(token.encode() in m for m in imap_folder(t, "alice", "Junk"))
        assert not any(token.encode() in m for m in imap_folder(t, "alice", "INBOX"))
        assert "verdict=quarantine" in t.log().decode(errors="replace")
    finally:
        t.stop()
        srv.close()
    srv = MilterServer({"eom": [("addheader", "X-Spam-Flag", "YES")]})
    t = milter_ternd(env, [("spam", srv, {})], directory={"junk_attr": "employeeType"})
    try:
        env.slapd.modify("dn: uid=bob,%s\nchangetype: modify\nreplace: employeeType\n"
                         "employeeType: FALSE\n" % harness.org_ldif.PEOPLE)
        token = unique_token("spam")
        code, text = t.send([ALICE, BOB], make_message(token, to=ALICE))
        assert code == 250, text
        alice_junk = imap_folder(t, "alice", "Junk")
        assert any(token.encode() in m and b"X-Spam-Flag: YES" in m for m in alice_junk)
        # bob turned Junk delivery off: INBOX, with the header.
        bob_inbox = imap_folder(t, "bob", "INBOX")
        assert any(token.encode() in m and b"X-Spam-Flag: YES" in m for m in bob_inbox)
        assert not any(token.encode() in m for m in imap_folder(t, "bob", "Junk"))
    finally:
        env.slapd.modify("dn: uid=bob,%s\nchangetype: modify\ndelete: employeeType\n"
                         % harness.org_ldif.PEOPLE)
        t.stop()
        srv.close()


def test_sender_forged_spam_header_is_not_a_verdict(env):
    srv = MilterServer({})
    t = milter_ternd(env, [("spam", srv, {})])
    try:
        token = unique_token("forged")
        msg = make_message(token, to=ALICE).replace(b"Subject:", b"X-Spam-Flag: YES\r\nSubject:", 1)
        code, text = t.send(ALICE, msg)
        assert code == 250, text
        assert any(token.encode() in m for m in imap_folder(t, "alice", "INBOX"))
    finally:
        t.stop()
        srv.close()


OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"


@pytest.mark.skipif(not os.path.exists(OPENDKIM), reason="opendkim not installed")
def test_opendkim_signs(env, tmp_path):
    keydir = tmp_path / "keys"
    keydir.mkdir()
    subprocess.run(["opendkim-genkey", "-b", "2048", "-d", "example.org", "-s", "sel",
                    "-D", str(keydir)], check=True)
    port = harness.free_port()
    conf = tmp_path / "opendkim.conf"
    conf.write_text(
        "Mode s\nDomain example.org\nSelector sel\nKeyFile %s/sel.private\n"
        "Socket inet:%d@127.0.0.1\nInternalHosts 127.0.0.1\nBackground no\n"
        "Canonicalization relaxed/relaxed\nRequireSafeKeys no\nSyslog no\n"
        "PidFile %s/opendkim.pid\nUserID root\n" % (keydir, port, tmp_path))
    proc = subprocess.Popen([OPENDKIM, "-f", "-x", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        harness_wait_port(port)
        t = milter_ternd(env, [("opendkim", "inet:127.0.0.1:%d" % port, {})])
        try:
            token = unique_token("dkim")
            msg = make_message(token, to=ALICE, sender="sender@example.org")
            code, text = t.send(ALICE, msg, sender="sender@example.org")
            assert code == 250, text
            got = find_token(t.mailbox("alice"), token)
            hdr, _ = split_message(got)
            assert b"DKIM-Signature:" in hdr, hdr
            assert b"d=example.org" in hdr and b"s=sel" in hdr
        finally:
            t.stop()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def harness_wait_port(port, timeout=10):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("opendkim did not listen on %d" % port)


@pytest.mark.parametrize("overrides,needle,why", [
    ({"milter": {"milters": "a"}}, "milters = a", "has no [milter.a] section"),
    ({"milter": {"milters": "a"}, "milter.a": {"socket": "tcp:1.2.3.4:5"}},
     "socket = tcp", "is not inet:ADDRESS:PORT or unix:/PATH"),
    ({"milter": {"milters": "a"}, "milter.a": {"socket": "inet:mx.example:25"}},
     "socket = inet:mx", "is not inet:ADDRESS:PORT"),
    ({"milter": {"milters": "a"}, "milter.a": {"socket": "unix:/x", "default_action": "bounce"}},
     "default_action = bounce", "must be accept or tempfail"),
    ({"milter": {"milters": "a"}, "milter.a": {"socket": "unix:/x", "command_timeout": "0"}},
     "command_timeout = 0", "not a duration"),
    ({"milter": {"milters": "a"}, "milter.a": {"socket": "unix:/x", "colour": "red"}},
     "colour = red", "unknown key"),
    ({"milter.b": {"socket": "unix:/x"}}, "[milter.b]", "not listed in [milter] milters"),
    ({"milter": {"apply_to": "outbound"}}, "apply_to = outbound", "must be inbound or all"),
])
def test_milter_config_errors(env, overrides, needle, why):
    t = harness.Ternd(env.tmp, env.slapd.uri, env.cert, env.key, overrides,
                      name="cfg%s" % unique_token("")[2:10])
    r = subprocess.run([harness.ternd_path(), "-t", "-c", t.conf_path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert r.returncode != 0
    err = r.stderr.decode()
    with open(t.conf_path) as f:
        line = [i for i, l in enumerate(f.read().split("\n"), 1) if needle in l][0]
    assert "%s:%d" % (t.conf_path, line) in err, err
    assert why in err, err


def test_apply_to_inbound_and_all_on_submission(env):
    sub = harness.free_port()
    for apply_to, expect_seen in (("inbound", False), ("all", True)):
        srv = MilterServer({"eom": [("addheader", "X-Milter", "seen")]})
        ov = {"milter": {"milters": "m", "apply_to": apply_to},
              "milter.m": {"socket": srv.socket_spec},
              "submission": {"listen": "127.0.0.1:%d" % sub}}
        t = env.new_ternd(ov)
        try:
            s = smtplib.SMTP("127.0.0.1", sub, local_hostname="client.example.org", timeout=30)
            s.ehlo()
            s.starttls(context=harness.client_tls_context())
            s.ehlo()
            s.login("alice", harness.password("alice"))
            token = unique_token("sub")
            s.sendmail(ALICE, [ALICE], make_message(token, sender=ALICE, to=ALICE))
            s.quit()
            got = find_token(t.mailbox("alice"), token)
            assert (b"X-Milter: seen" in got) == expect_seen
            if expect_seen:
                macros = b"".join(d for c, d in srv.commands(b"D"))
                assert b"{auth_authen}\x00alice\x00" in macros
                assert b"{tls_version}\x00TLS" in macros
        finally:
            t.stop()
            srv.close()


def test_envelope_changes(env):
    """CHGFROM, ADDRCPT and DELRCPT at the end of the message: bob is
    removed, user03 added (and an unknown local address and a remote one),
    the Return-Path is the new sender."""
    srv = MilterServer({"eom": [
        ("delrcpt", "<" + BOB + ">"),
        ("addrcpt", "<User03@Example.TEST>"),
        ("addrcpt_par", "<nobody-here@example.test>", "NOTIFY=NEVER"),
        ("addrcpt", "<friend@remote.example.org>"),
        ("chgfrom", "<bounces@example.org>", "SIZE=100"),
        ("continue",)]})
    t = milter_ternd(env, [("test", srv, {})])
    try:
        token = unique_token("env")
        s = session(t)
        s.ehlo()
        s.mail("sender@example.org")
        assert s.rcpt(ALICE)[0] == 250
        assert s.rcpt(BOB)[0] == 250
        code, text = s.data(make_message(token, to=ALICE))
        assert code == 250, text
        s.quit()
        got = find_token(t.mailbox("alice"), token)
        assert got is not None
        assert got.startswith(b"Return-Path: <bounces@example.org>\r\n"), got[:200]
        added = find_token(t.mailbox("user03"), token)
        assert added is not None
        assert added.startswith(b"Return-Path: <bounces@example.org>\r\n"), added[:200]
        assert count_token(t.mailbox("bob"), token) == 0
        log = t.log().decode(errors="replace")
        assert "milter-delrcpt" in log and "to=<bob@example.test> removed=1" in log
        assert "to=<nobody-here@example.test> result=unknown (dropped)" in log
        assert "to=<friend@remote.example.org> result=queued" in log
        assert "new=<bounces@example.org>" in log
    finally:
        t.stop()
        srv.close()


def test_envelope_every_recipient_removed_and_not_negotiated(env):
    """Removing the only recipient drops the message (250, nothing stored);
    a milter that did not ask for ADDRCPT and sends it anyway is dropped
    for the session (its default action: accept), the change ignored."""
    srv = MilterServer({"eom": [("delrcpt", "<" + ALICE + ">"), ("continue",)]})
    t = milter_ternd(env, [("test", srv, {})])
    try:
        token = unique_token("envall")
        code, text = t.send(ALICE, make_message(token, to=ALICE))
        assert code == 250, text
        assert count_token(t.mailbox("alice"), token) == 0
        assert "every recipient removed" in t.log().decode(errors="replace")
    finally:
        t.stop()
        srv.close()
    srv = MilterServer({"eom": [("addrcpt", "<" + BOB + ">"), ("continue",)]},
                       actions=0x1FF & ~0x04)
    t = milter_ternd(env, [("test", srv, {"default_action": "accept"})])
    try:
        token = unique_token("envneg")
        code, text = t.send(ALICE, make_message(token, to=ALICE))
        assert code == 250, text
        assert count_token(t.mailbox("alice"), token) == 1
        assert count_token(t.mailbox("bob"), token) == 0
        assert "envelope change not negotiated" in t.log().decode(errors="replace")
    finally:
        t.stop()
        srv.close()
