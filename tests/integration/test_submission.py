"""Submission on 587 (STARTTLS, then AUTH) and 465 (implicit TLS) against
the real ternd and slapd: AUTH PLAIN/LOGIN, wrong passwords, AUTH before
TLS, sender checks on the envelope and on From:, send-as for a list the
user owns, ESMTP parameters (SMTPUTF8, DSN, REQUIRETLS), BDAT over a raw
socket, a whole pipelined transaction in one write, and the rate limits.
Mail to remote recipients goes into the outbound queue (storage/queue.h)."""
import re
import smtplib
import subprocess

import pytest

import harness
from harness import (RawLines, b64, count_token, free_port, make_message, password,
                     unique_token)

ORG = harness.org_ldif
LIST_DN = "cn=sales,%s" % ORG.GROUPS


@pytest.fixture(scope="module")
def env():
    sub, subs = free_port(), free_port()
    e = harness.Env(overrides={
        "submission": {"listen": "127.0.0.1:%d" % sub},
        "submissions": {"listen": "127.0.0.1:%d" % subs},
        "limits": {"user_messages_per_hour": "25"},
        # Queued mail must never leave loopback: a smarthost nobody
        # listens on, and a resolver on loopback.
        "outbound": {"relayhost": "127.0.0.1:%d" % free_port()},
        "dns": {"resolver": "127.0.0.1:%d" % free_port()},
    })
    e.sub_port, e.subs_port = sub, subs
    # A list alice owns: she may send as it.
    e.slapd.modify("dn: %s\nchangetype: add\nobjectClass: groupOfNames\n"
                   "objectClass: inetLocalMailRecipient\ncn: sales\n"
                   "mailLocalAddress: sales@example.test\nmember: uid=bob,%s\n"
                   "owner: uid=alice,%s\n" % (LIST_DN, ORG.PEOPLE, ORG.PEOPLE))
    yield e
    e.close()


def sub587(env, login=None):
    s = smtplib.SMTP("127.0.0.1", env.sub_port, local_hostname="client.example.org",
                     timeout=harness.TIMEOUT)
    s.ehlo()
    s.starttls(context=harness.client_tls_context())
    s.ehlo()
    if login:
        s.login(login, password(login))
    return s


def sub465(env, login=None):
    s = smtplib.SMTP_SSL("127.0.0.1", env.subs_port, local_hostname="client.example.org",
                         timeout=harness.TIMEOUT, context=harness.client_tls_context())
    s.ehlo()
    if login:
        s.login(login, password(login))
    return s


def test_auth_not_offered_before_starttls(env):
    s = smtplib.SMTP("127.0.0.1", env.sub_port, timeout=harness.TIMEOUT)
    try:
        s.ehlo()
        assert not s.has_extn("auth")
        assert s.has_extn("starttls")
        code, text = s.docmd("AUTH", "PLAIN " + b64("\0alice\0" + password("alice")))
        assert code == 530 and text.startswith(b"5.7.0"), (code, text)
        assert b"STARTTLS" in text
        code, text = s.mail("alice@example.test")
        assert code == 530 and text.startswith(b"5.7.0"), (code, text)
    finally:
        s.close()


def test_extensions_after_tls(env):
    s = sub587(env)
    try:
        for ext in ("auth", "pipelining", "size", "8bitmime", "smtputf8", "chunking", "dsn",
                    "enhancedstatuscodes", "requiretls"):
            assert s.has_extn(ext), ext
        assert not s.has_extn("starttls")
        assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]
        code, text = s.mail("alice@example.test")
        assert code == 530, (code, text)
        assert b"Authentication required" in text
    finally:
        s.close()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_login_and_local_delivery_587(env, mech):
    s = sub587(env)
    try:
        s.user, s.password = "alice", password("alice")
        code, text = s.auth(mech, getattr(s, "auth_" + mech.lower()))
        assert code == 235, (code, text)
        token = unique_token("sub")
        s.sendmail("alice@example.test", ["bob@example.test"],
                   make_message(token, sender="alice@example.test", to="bob@example.test"))
        s.quit()
    finally:
        s.close()
    got = harness.find_token(env.ternd.mailbox("bob"), token)
    assert b"with ESMTPSA" in got


def test_login_465_and_alias_sender(env):
    s = sub465(env, "alice")
    try:
        token = unique_token("alias")
        s.sendmail("a.smith@example.test", ["bob@example.test"],
                   make_message(token, sender="A.Smith@Example.TEST", to="bob@example.test"))
        s.quit()
    finally:
        s.close()
    assert count_token(env.ternd.mailbox("bob"), token) == 1


def test_wrong_password_535(env):
    s = sub587(env)
    try:
        with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
            s.login("alice", "not-her-password")
        assert ei.value.smtp_code == 535
        assert ei.value.smtp_error.startswith(b"5.7.8")
    finally:
        s.close()


def test_auth_cancel_and_unknown_mech(env):
    r = RawLines(env.subs_port, tls=True)
    try:
        assert r.smtp_reply()[0] == 220
        r.send("EHLO c.example\r\n")
        assert r.smtp_reply()[0] == 250
        r.send("AUTH LOGIN\r\n")
        code, lines = r.smtp_reply()
        assert code == 334 and lines[0] == "VXNlcm5hbWU6"
        r.send("*\r\n")
        code, lines = r.smtp_reply()
        assert code == 501, lines
        r.send("AUTH CRAM-XYZ\r\n")
        assert r.smtp_reply()[0] == 504
        # PLAIN with an empty initial challenge, then the response
        r.send("AUTH PLAIN\r\n")
        code, lines = r.smtp_reply()
        assert code == 334
        r.send(b64("\0bob\0" + password("bob")) + "\r\n")
        assert r.smtp_reply()[0] == 235
        r.send("AUTH PLAIN %s\r\n" % b64("\0bob\0" + password("bob")))
        assert r.smtp_reply()[0] == 503
    finally:
        r.close()


def test_forged_envelope_sender_553(env):
    s = sub587(env, "bob")
    try:
        for forged in ("alice@example.test", "boss@elsewhere.example", "sales@example.test"):
            code, text = s.mail(forged)
            assert code == 553, (forged, code, text)
            assert text.startswith(b"5.7.1"), text
            s.rset()
    finally:
        s.close()


def test_forged_from_header_553(env):
    s = sub587(env, "bob")
    try:
        assert s.mail("bob@example.test")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        token = unique_token("forged")
        code, text = s.data(make_message(token, sender="alice@example.test"))
        assert code == 553, (code, text)
        assert text.startswith(b"5.7.1")
        # a display name and a comment around his own address are fine
        msg = make_message(token + "ok", sender="x@y").replace(
            b"From: <x@y>", b'From: "Bob (the builder)" <bob@example.test> (work)')
        assert s.mail("bob@example.test")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        code, text = s.data(msg)
        assert code == 250, (code, text)
    finally:
        s.close()
    box = env.ternd.mailbox("alice")
    assert count_token(box, token + "ok") == 1
    assert count_token(box, token) == 1  # only the good one


def test_send_as_owned_list(env):
    s = sub587(env, "alice")
    try:
        token = unique_token("sendas")
        s.sendmail("sales@example.test", ["bob@example.test"],
                   make_message(token, sender="sales@example.test", to="bob@example.test"))
        s.quit()
    finally:
        s.close()
    assert count_token(env.ternd.mailbox("bob"), token) == 1


def test_swaks_587_and_465(env):
    token = unique_token("swaks")
    for args in (["--port", str(env.sub_port), "--tls"],
                 ["--port", str(env.subs_port), "--tlsc"]):
        r = subprocess.run(["swaks", "--server", "127.0.0.1"] + args +
                           ["--auth", "PLAIN", "--auth-user", "bob",
                            "--auth-password", password("bob"),
                            "--from", "bob@example.test", "--to", "alice@example.test",
                            "--header", "From: bob@example.test",
                            "--header", "Subject: " + token, "--body", token],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        assert r.returncode == 0, r.stdout.decode(errors="replace")[-3000:]
    assert count_token(env.ternd.mailbox("alice"), token) == 2
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(env.sub_port),
                        "--tls", "--auth", "LOGIN", "--auth-user", "bob",
                        "--auth-password", "wrong", "--from", "bob@example.test",
                        "--to", "alice@example.test"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode != 0
    assert b"535 5.7.8" in r.stdout


def test_bdat_raw(env):
    r = RawLines(env.subs_port, tls=True)
    token = unique_token("bdat")
    msg = make_message(token, sender="bob@example.test", to="alice@example.test")
    try:
        assert r.smtp_reply()[0] == 220
        r.send("EHLO c.example\r\n")
        assert r.smtp_reply()[0] == 250
        r.send("AUTH PLAIN %s\r\n" % b64("\0bob\0" + password("bob")))
        assert r.smtp_reply()[0] == 235
        # BDAT without a transaction: the chunk is swallowed, 503
        r.send(b"BDAT 5\r\nhello")
        assert r.smtp_reply()[0] == 503
        r.send("MAIL FROM:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\n")
        assert r.smtp_reply()[0] == 250
        assert r.smtp_reply()[0] == 250
        half = len(msg) // 2
        r.send(b"BDAT %d\r\n" % half + msg[:half])
        code, lines = r.smtp_reply()
        assert code == 250, lines
        # DATA inside a BDAT transaction is refused
        r.send("DATA\r\n")
        assert r.smtp_reply()[0] == 503
        r.send(b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
        code, lines = r.smtp_reply()
        assert code == 250, lines
        # BDAT 0 LAST on its own ends an empty-chunk transaction
        r.send("MAIL FROM:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\n")
        assert r.smtp_reply()[0] == 250
        assert r.smtp_reply()[0] == 250
        tok2 = unique_token("bdat0")
        m2 = make_message(tok2, sender="bob@example.test")
        r.send(b"BDAT %d\r\n" % len(m2) + m2 + b"BDAT 0 LAST\r\n")
        assert r.smtp_reply()[0] == 250
        assert r.smtp_reply()[0] == 250
    finally:
        r.close()
    box = env.ternd.mailbox("alice")
    got = harness.find_token(box, token)
    assert got.endswith(msg)
    assert count_token(box, tok2) == 1


def test_pipelined_transaction_in_one_write(env):
    r = RawLines(env.subs_port, tls=True)
    token = unique_token("pipe")
    msg = make_message(token, sender="bob@example.test", to="alice@example.test")
    try:
        assert r.smtp_reply()[0] == 220
        r.send(("EHLO c.example\r\nAUTH PLAIN %s\r\nMAIL FROM:<bob@example.test>\r\n"
                "RCPT TO:<alice@example.test>\r\nRCPT TO:<nobody-x@example.test>\r\n"
                "RCPT TO:<user02@example.test>\r\nDATA\r\n"
                % b64("\0bob\0" + password("bob"))).encode() + msg + b".\r\nQUIT\r\n")
        codes = [r.smtp_reply()[0] for _ in range(9)]
        assert codes == [250, 235, 250, 250, 550, 250, 354, 250, 221], codes
    finally:
        r.close()
    assert count_token(env.ternd.mailbox("alice"), token) == 1
    assert count_token(env.ternd.mailbox("user02"), token) == 1


def test_dsn_parameters(env):
    s = sub587(env, "bob")
    try:
        code, text = s.mail("bob@example.test", ["RET=HDRS", "ENVID=QQ+2B314"])
        assert code == 250, (code, text)
        code, text = s.rcpt("alice@example.test",
                            ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;alice+2Bx@example.test"])
        assert code == 250, (code, text)
        s.rset()
        bad_mail = [["RET=ALL"], ["RET=FULL", "RET=HDRS"], ["ENVID=a+zz"], ["ENVID=" + "x" * 101],
                    ["SMTPUTF8=yes"], ["BODY=BINARYMIME"], ["FOO=bar"]]
        for params in bad_mail:
            code, text = s.mail("bob@example.test", params)
            assert code in (501, 555), (params, code, text)
            s.rset()
    finally:
        s.close()
    # ten mistakes end a session: the RCPT cases get a fresh one
    s = sub587(env, "bob")
    try:
        assert s.mail("bob@example.test", ["AUTH=<>", "REQUIRETLS"])[0] == 250
        for params in (["NOTIFY=NEVER,SUCCESS"], ["NOTIFY="], ["NOTIFY=SOMETIMES"],
                       ["ORCPT=rfc822"], ["ORCPT=rfc822;no-at-sign"], ["ORCPT=;x@y"],
                       ["NOTIFY=DELAY", "NOTIFY=DELAY"]):
            code, text = s.rcpt("alice@example.test", params)
            assert code in (501, 555), (params, code, text)
    finally:
        s.close()


def test_requiretls_needs_tls(env):
    # port 25 in the clear
    s = env.ternd.smtp()
    try:
        assert not s.has_extn("requiretls")
        code, text = s.mail("x@elsewhere.example", ["REQUIRETLS"])
        assert code == 530 and text.startswith(b"5.7.10"), (code, text)
    finally:
        s.close()


def test_smtputf8(env):
    s = sub587(env, "bob")
    try:
        # without SMTPUTF8, a UTF-8 address is refused
        assert s.mail("bob@example.test")[0] == 250
        s.send("RCPT TO:<j\u00f6rg@example.test>\r\n".encode())
        code, text = s.getreply()
        assert code == 553 and text.startswith(b"5.6.7"), (code, text)
        s.rset()
        # with it, a UTF-8 local address is looked up (unknown here)
        s.putcmd("MAIL", "FROM:<bob@example.test> SMTPUTF8")
        assert s.getreply()[0] == 250
        s.send("RCPT TO:<j\u00f6rg@example.test>\r\n".encode())
        code, text = s.getreply()
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
    finally:
        s.close()


def test_remote_recipient_queued(env):
    s = sub587(env, "bob")
    try:
        assert s.mail("bob@example.test", ["SMTPUTF8"])[0] == 250
        s.send("RCPT TO:<m\u00fcller@b\u00fccher.example> NOTIFY=FAILURE\r\n".encode())
        code, text = s.getreply()
        assert code == 250, (code, text)
        code, text = s.rcpt("carl@remote.example")
        assert code == 250, (code, text)
        code, text = s.rcpt("alice@example.test")
        assert code == 250, (code, text)
        token = unique_token("remote")
        code, text = s.data(make_message(token, sender="bob@example.test"))
        assert code == 250, (code, text)
    finally:
        s.close()
    assert count_token(env.ternd.mailbox("alice"), token) == 1
    # one store transaction: alice's copy and the two queued recipients
    m = re.search(rb"delivered id=\w+ size=\d+ rcpts=1 queued=2 queue_id=(\d+)",
                  env.ternd.log())
    assert m, env.ternd.log_tail()
    assert int(m.group(1)) != 0, "the store did not queue the remote recipients"


def test_rate_limit_user_messages(env):
    # [limits] user_messages_per_hour = 25: user03 sends until refused.
    s = sub465(env, "user03")
    try:
        codes = []
        for _ in range(30):
            code, _ = s.mail("user03@example.test")
            codes.append(code)
            s.rset()
        assert codes[:25] == [250] * 25, codes
        assert codes[25:] == [451] * 5, codes
        code, text = s.mail("user03@example.test")
        assert text.startswith(b"4.7.1")
    finally:
        s.close()
    # another user is not affected
    s = sub465(env, "user04")
    try:
        assert s.mail("user04@example.test")[0] == 250
    finally:
        s.close()


def test_list_post_members_and_bad_value():
    sub = free_port()
    e = harness.Env(overrides={"submission": {"listen": "127.0.0.1:%d" % sub},
                               "directory": {"list_post": "members"}})
    try:
        e.sub_port = sub
        # a member (bob) may post to staff through submission
        s = sub587(e, "bob")
        try:
            assert s.mail("bob@example.test")[0] == 250
            assert s.rcpt("staff@example.test")[0] == 250
            s.rset()
        finally:
            s.close()
        # user05 is not a member
        s = sub587(e, "user05")
        try:
            assert s.mail("user05@example.test")[0] == 250
            code, text = s.rcpt("staff@example.test")
            assert code == 550 and text.startswith(b"5.7.1"), (code, text)
            assert s.rcpt("bob@example.test")[0] == 250  # plain users are fine
        finally:
            s.close()
        # on port 25 nobody proves who they are
        s = e.ternd.smtp()
        try:
            assert s.mail("bob@example.test")[0] == 250
            code, text = s.rcpt("staff@example.test")
            assert code == 550 and text.startswith(b"5.7.1"), (code, text)
        finally:
            s.close()
        # a bad value stops start-up with FILE:LINE
        t = e.new_ternd({"directory": {"list_post": "everyone"}}, start=False)
        r = subprocess.run([harness.ternd_path(), "-t", "-c", t.conf_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert r.returncode != 0
        assert (t.conf_path + ":").encode() in r.stderr and b"list_post" in r.stderr, r.stderr
    finally:
        e.close()
