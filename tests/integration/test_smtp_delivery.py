"""Inbound SMTP against the real ternd and slapd: recipients resolved in
the directory (aliases, lists, forwards, disabled users), what is stored
(read back over POP3, byte for byte), limits, STARTTLS and pipelining."""
import smtplib
import time

import pytest

import harness
from harness import (RawLines, count_token, find_token, header_names, make_message,
                     split_message, unique_token)

ALICE_ADDRS = harness.org_ldif.ALICE_ADDRS


def rcpt_reply(env, rcpt):
    s = env.ternd.smtp()
    try:
        code, text = s.mail("sender@example.org")
        assert code == 250, (code, text)
        return s.rcpt(rcpt)
    finally:
        s.close()


def test_delivery_to_primary_address_and_every_alias(env):
    t = env.ternd
    sent = {}
    for addr in ALICE_ADDRS:
        token = unique_token("alias")
        msg = make_message(token, to=addr)
        code, text = t.send(addr, msg, sender="Sender@Example.org")
        assert code == 250, text
        sent[token] = (addr, msg)
    box = t.mailbox("alice")
    for token, (addr, msg) in sent.items():
        got = find_token(box, token)
        # The stored message is trace headers followed by exactly what was sent.
        assert got.endswith(msg), got[:600]
        trace = got[:len(got) - len(msg)]
        names = header_names(trace)
        assert "return-path" in names, trace
        assert "delivered-to" in names, trace
        assert "received" in names, trace
        assert b"Sender@Example.org" in trace or b"sender@example.org" in trace.lower()
        hdr, _ = split_message(got)
        assert b"Received: from " in hdr


def test_unknown_address_550_511(env):
    code, text = rcpt_reply(env, "nobody-here@example.test")
    assert code == 550, text
    assert text.startswith(b"5.1.1"), text


def test_unknown_address_in_second_local_domain(env):
    code, text = rcpt_reply(env, "nobody-here@example.net")
    assert code == 550, text
    assert text.startswith(b"5.1.1"), text


def test_non_local_domain_relaying_denied(env):
    code, text = rcpt_reply(env, "someone@elsewhere.example")
    assert code == 550, text
    assert text.startswith(b"5.7.1"), text


def test_list_delivers_once_to_each_enabled_member(env):
    t = env.ternd
    token = unique_token("list")
    code, text = t.send("staff@example.test", make_message(token, to="staff@example.test"))
    assert code == 250, text
    for login in ("alice", "bob", "user01"):
        assert count_token(t.mailbox(login), token) == 1, login
    # carol is a member but disabled: she cannot log in to look...
    with pytest.raises(harness.poplib.error_proto):
        t.mailbox("carol")
    # ...so enable her for a moment (the cache TTL is 1s) and look.
    carol = "dn: uid=carol,%s\nchangetype: modify\n" % harness.org_ldif.PEOPLE
    env.slapd.modify(carol + "delete: shadowExpire\n")
    try:
        time.sleep(1.5)
        assert count_token(t.mailbox("carol"), token) == 0
    finally:
        env.slapd.modify(carol + "add: shadowExpire\nshadowExpire: 1\n")
        time.sleep(1.5)
    with pytest.raises(harness.poplib.error_proto):
        t.mailbox("carol")


def test_disabled_user_address_refused(env):
    code, text = rcpt_reply(env, "carol@example.test")
    assert code == 550, text
    assert text.startswith(b"5.1.1"), text


def test_local_forward_lands_at_target(env):
    t = env.ternd
    token = unique_token("dave")
    code, text = t.send("dave@example.test", make_message(token, to="dave@example.test"))
    assert code == 250, text
    assert count_token(t.mailbox("alice"), token) == 1
    assert count_token(t.mailbox("dave"), token) == 0


def test_non_local_forward_accepted_for_the_queue(env):
    # Issue 5: a mailRoutingAddress outside the local domains is accepted
    # and queued for erin@remote.example (it was 551 before the queue).
    code, text = rcpt_reply(env, "erin@example.test")
    assert code == 250, text
    assert b"rcpt to=<erin@example.test> result=ok mailboxes=0 forwards=1" in env.ternd.log()


def test_declared_size_over_limit_552_at_mail(env):
    s = env.ternd.smtp()
    try:
        assert s.has_extn("size")
        code, text = s.mail("sender@example.org", ["SIZE=%d" % (2 * 1024 * 1024)])
        assert code == 552, text
        assert text.startswith(b"5.3.4"), text
    finally:
        s.close()


def test_message_over_limit_552_after_data(env):
    t = env.ternd
    token = unique_token("big")
    line = b"x" * 76 + b"\r\n"
    body = line * (1100 * 1024 // len(line))
    msg = make_message(token, body=body, to="bob@example.test")
    assert len(msg) > 1024 * 1024
    s = t.smtp()
    try:
        assert s.mail("sender@example.org")[0] == 250  # no SIZE declared
        assert s.rcpt("bob@example.test")[0] == 250
        code, text = s.data(msg)
        assert code == 552, text
        assert text.startswith(b"5.3.4"), text
    finally:
        s.close()
    assert count_token(t.mailbox("bob"), token) == 0


def test_message_just_under_limit_accepted(env):
    t = env.ternd
    token = unique_token("fits")
    line = b"y" * 76 + b"\r\n"
    body = line * (1000 * 1024 // len(line))
    msg = make_message(token, body=body, to="user02@example.test")
    assert len(msg) < 1024 * 1024
    code, text = t.send("user02@example.test", msg)
    assert code == 250, text
    assert find_token(t.mailbox("user02"), token).endswith(msg)


def test_dot_stuffed_lines_round_trip(env):
    t = env.ternd
    token = unique_token("dots")
    body = (b".foo\r\n"
            b"..\r\n"
            b".\r\n"
            b"...three\r\n"
            b" . not at start\r\n"
            b"last line\r\n")
    msg = make_message(token, body=body, to="user03@example.test")
    code, text = t.send("user03@example.test", msg)  # smtplib dot-stuffs
    assert code == 250, text
    got = find_token(t.mailbox("user03"), token)
    assert got.endswith(msg), got[-300:]


def test_8bit_body_round_trips(env):
    t = env.ternd
    token = unique_token("8bit")
    body = ("Grüße aus Köln — ½ € ✓\r\n").encode("utf-8") + bytes(range(0x80, 0x100)) + b"\r\n"
    msg = make_message(token, body=body, to="user04@example.test",
                       extra_headers=("MIME-Version: 1.0",
                                      "Content-Type: text/plain; charset=utf-8",
                                      "Content-Transfer-Encoding: 8bit"))
    s = t.smtp()
    try:
        assert s.has_extn("8bitmime")
        assert s.mail("sender@example.org", ["BODY=8BITMIME"])[0] == 250
        assert s.rcpt("user04@example.test")[0] == 250
        code, text = s.data(msg)
        assert code == 250, text
        s.quit()
    finally:
        s.close()
    got = find_token(t.mailbox("user04"), token)
    assert got.endswith(msg)


def test_same_mailbox_twice_in_one_transaction_gets_one_copy(env):
    t = env.ternd
    token = unique_token("dup")
    code, text = t.send(["alice@example.test", "a.smith@example.test", "ALICE@example.net"],
                        make_message(token, to="alice@example.test"))
    assert code == 250, text
    assert count_token(t.mailbox("alice"), token) == 1


def test_starttls_then_delivery(env):
    t = env.ternd
    token = unique_token("tls")
    msg = make_message(token, to="user05@example.test")
    s = t.smtp()
    try:
        assert s.has_extn("starttls")
        code, text = s.starttls(context=harness.client_tls_context())
        assert code == 220, text
        code, _ = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls")  # not offered twice
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt("user05@example.test")[0] == 250
        code, text = s.data(msg)
        assert code == 250, text
        s.quit()
    finally:
        s.close()
    got = find_token(t.mailbox("user05"), token)
    assert got.endswith(msg)
    assert b"ESMTPS" in split_message(got)[0]


def test_pipelined_commands_answered_in_order(env):
    t = env.ternd
    token = unique_token("pipe")
    c = RawLines(t.smtp_port)
    try:
        code, _ = c.smtp_reply()
        assert code == 220
        c.send("EHLO client.example.org\r\n"
               "MAIL FROM:<sender@example.org>\r\n"
               "RCPT TO:<user06@example.test>\r\n"
               "RCPT TO:<no-such-user-xyz@example.test>\r\n"
               "RCPT TO:<user07@example.test>\r\n"
               "DATA\r\n")
        code, lines = c.smtp_reply()
        assert code == 250 and "PIPELINING" in lines
        assert c.smtp_reply()[0] == 250  # MAIL
        assert c.smtp_reply()[0] == 250  # RCPT user06
        code, lines = c.smtp_reply()  # RCPT unknown
        assert code == 550 and lines[0].startswith("5.1.1"), lines
        assert c.smtp_reply()[0] == 250  # RCPT user07
        assert c.smtp_reply()[0] == 354  # DATA
        msg = make_message(token, to="user06@example.test")
        c.send(msg + b".\r\nQUIT\r\n")
        code, lines = c.smtp_reply()
        assert code == 250, lines
        assert c.smtp_reply()[0] == 221
    finally:
        c.close()
    assert count_token(t.mailbox("user06"), token) == 1
    assert count_token(t.mailbox("user07"), token) == 1


def test_command_line_over_limit_500(env):
    c = RawLines(env.ternd.smtp_port)
    try:
        assert c.smtp_reply()[0] == 220
        c.send("EHLO " + "a" * 3000 + "\r\n")
        code, lines = c.smtp_reply()
        assert code == 500, lines
    finally:
        c.close()
    # The server is still fine for everybody else.
    code, text = rcpt_reply(env, "bob@example.test")
    assert code == 250, text


def test_vrfy_252(env):
    s = env.ternd.smtp()
    try:
        code, text = s.verify("alice@example.test")
        assert code == 252, text
        # VRFY must not reveal which addresses exist.
        code2, _ = s.verify("nobody-here@example.test")
        assert code2 == 252
    finally:
        s.close()


def test_rcpt_case_insensitive(env):
    t = env.ternd
    token = unique_token("case")
    code, text = t.send("User08@EXAMPLE.Test", make_message(token, to="User08@EXAMPLE.Test"))
    assert code == 250, text
    assert count_token(t.mailbox("user08"), token) == 1


def test_ternd_still_healthy(env):
    env.ternd.check_alive()


def test_smtplib_sendmail_reports_refusal(env):
    """The usual client path: a refused and an accepted recipient."""
    t = env.ternd
    token = unique_token("mixed")
    s = t.smtp()
    try:
        refused = s.sendmail("sender@example.org", ["user09@example.test", "ghost@example.test"],
                             make_message(token, to="user09@example.test"))
        assert list(refused) == ["ghost@example.test"]
        assert refused["ghost@example.test"][0] == 550
        s.quit()
    except smtplib.SMTPException:
        s.close()
        raise
    assert count_token(t.mailbox("user09"), token) == 1
