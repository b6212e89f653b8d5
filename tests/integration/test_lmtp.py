"""LMTP (RFC 2033) on [lmtp] against the real ternd and slapd: LHLO only,
one reply per accepted recipient after the final dot (and after BDAT
LAST), each 250 sent after the store commit, 452 4.2.2 for a recipient
over quota while the others get the message, no relaying, and swaks
--protocol LMTP as a real client."""
import subprocess

import pytest

import harness
from harness import RawLines, count_token, free_port, make_message, unique_token

QUOTA_USER = "user57"
QUOTA = 3000  # bytes; roomNumber stands in for the quota attribute


@pytest.fixture(scope="module")
def env():
    port = free_port()
    over = {"directory": {"quota_attr": "roomNumber"},
            "lmtp": {"listen": "127.0.0.1:%d" % port}}
    e = harness.Env(overrides=over, start_ternd=False)
    try:
        e.slapd.modify("dn: uid=%s,%s\nchangetype: modify\nadd: roomNumber\nroomNumber: %d\n"
                       % (QUOTA_USER, harness.org_ldif.PEOPLE, QUOTA))
        e.ternd = e.new_ternd(over)
    except BaseException:
        e.close()
        raise
    e.lmtp_port = port
    yield e
    e.close()


def lmtp(env):
    r = RawLines(env.lmtp_port)
    code, lines = r.smtp_reply()
    assert code == 220 and "LMTP" in lines[0], lines
    return r


def test_lhlo_only(env):
    r = lmtp(env)
    try:
        for cmd in ("HELO c.example", "EHLO c.example"):
            r.send(cmd + "\r\n")
            assert r.smtp_reply()[0] == 500
        r.send("LHLO c.example\r\n")
        code, lines = r.smtp_reply()
        assert code == 250
        assert "PIPELINING" in lines and "CHUNKING" in lines and "ENHANCEDSTATUSCODES" in lines
        assert not any(l.startswith("AUTH") for l in lines)
        # no relaying through LMTP
        r.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<y@elsewhere.example>\r\n")
        assert r.smtp_reply()[0] == 250
        code, lines = r.smtp_reply()
        assert code == 550 and lines[0].startswith("5.7.1"), lines
    finally:
        r.close()


def test_per_recipient_replies_and_over_quota(env):
    t = env.ternd
    # fill most of the quota user's mailbox
    fill = make_message(unique_token("fill"), body=b"x" * 2000 + b"\r\n")
    r = lmtp(env)
    try:
        r.send("LHLO c.example\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<%s@example.test>\r\n"
               "DATA\r\n" % QUOTA_USER)
        assert [r.smtp_reply()[0] for _ in range(4)] == [250, 250, 250, 354]
        r.send(fill + b".\r\n")
        assert r.smtp_reply()[0] == 250
        token = unique_token("lmtp")
        msg = make_message(token, body=b"y" * 1500 + b"\r\n")
        r.send("MAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.test>\r\n"
               "RCPT TO:<nobody-x@example.test>\r\nRCPT TO:<%s@example.test>\r\n"
               "RCPT TO:<bob@example.test>\r\nDATA\r\n" % QUOTA_USER)
        codes = [r.smtp_reply()[0] for _ in range(6)]
        assert codes == [250, 250, 550, 250, 250, 354], codes
        r.send(msg + b".\r\n")
        replies = [r.smtp_reply() for _ in range(3)]  # one per accepted RCPT
        assert replies[0][0] == 250 and "alice@example.test" in replies[0][1][0], replies
        assert replies[1][0] == 452 and replies[1][1][0].startswith("4.2.2"), replies
        assert QUOTA_USER in replies[1][1][0]
        assert replies[2][0] == 250 and "bob@example.test" in replies[2][1][0], replies
        r.send("QUIT\r\n")
        assert r.smtp_reply()[0] == 221
    finally:
        r.close()
    assert count_token(t.mailbox("alice"), token) == 1
    assert count_token(t.mailbox("bob"), token) == 1
    assert count_token(t.mailbox(QUOTA_USER), token) == 0


def test_bdat_last_per_recipient(env):
    r = lmtp(env)
    token = unique_token("lbdat")
    msg = make_message(token)
    try:
        r.send("LHLO c.example\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<user05@example.test>\r\n"
               "RCPT TO:<staff@example.test>\r\n")
        assert [r.smtp_reply()[0] for _ in range(4)] == [250, 250, 250, 250]
        r.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        first = r.smtp_reply()
        second = r.smtp_reply()
        assert first[0] == 250 and "user05" in first[1][0], first
        assert second[0] == 250 and "staff" in second[1][0], second
    finally:
        r.close()
    assert count_token(env.ternd.mailbox("user05"), token) == 1
    assert count_token(env.ternd.mailbox("bob"), token) == 1  # via the list


def test_swaks_lmtp(env):
    token = unique_token("swaks-lmtp")
    r = subprocess.run(["swaks", "--protocol", "LMTP", "--server", "127.0.0.1",
                        "--port", str(env.lmtp_port), "--from", "s@remote.example",
                        "--to", "user06@example.test,user07@example.test",
                        "--header", "Subject: " + token, "--body", token],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out[-3000:]
    assert out.count("<-  250 2.1.5 <user0") == 2, out[-3000:]
    assert count_token(env.ternd.mailbox("user06"), token) == 1
    assert count_token(env.ternd.mailbox("user07"), token) == 1
