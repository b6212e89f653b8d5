"""IMAP QUOTA (RFC 9208) on the wire: the capabilities, GETQUOTA and
GETQUOTAROOT for the user's one quota root "" (STORAGE from [directory]
quota_attr, MESSAGE from [directory] quota_messages_attr, usage from the
store), SETQUOTA refused, [OVERQUOTA] on APPEND and COPY for either
resource while MOVE is allowed, a user without limits (no quota root),
and SMTP delivery refused with 452 4.2.2 once the message limit is
reached.

The fixture's schemas have no mail quota attributes: employeeNumber
carries the byte quota and roomNumber the message quota; each test sets
its user's values with ldapmodify on the real slapd (cache_ttl is 1 s).
A session reads its limits at login."""
import smtplib
import time

import pytest

import harness
from harness import make_message, unique_token
import org_ldif

OVERRIDES = {"directory": {"quota_attr": "employeeNumber",
                           "quota_messages_attr": "roomNumber"}}


@pytest.fixture(scope="module")
def env():
    e = harness.Env(OVERRIDES)
    yield e
    e.close()


class Imap(harness.RawLines):
    """A raw IMAP session: cmd() returns (untagged lines without "* ",
    tagged status text without the tag), as str."""

    def __init__(self, t, login=None):
        super().__init__(t.imap_port)
        self.n = 0
        assert self.readline().startswith(b"* OK")
        if login is not None:
            _, tagged = self.cmd("LOGIN %s %s" % (login, harness.password(login)))
            assert tagged.startswith("OK"), tagged

    def cmd(self, text):
        if isinstance(text, str):
            text = text.encode()
        self.n += 1
        tag = "a%d" % self.n
        self.send(tag.encode() + b" " + text + b"\r\n")
        untagged, tagged = self.imap(tag)
        u = []
        for line in untagged:
            line = line.decode()
            assert line.startswith("* "), line
            u.append(line[2:])
        return u, tagged.decode()[len(tag) + 1:]

    def append(self, box, data):
        return self.cmd(b"APPEND %s {%d+}\r\n" % (box.encode(), len(data)) + data)


def set_limits(env, login, storage=None, messages=None):
    """Replaces (or removes, with None) the user's two quota values."""
    changes = []
    for attr, value in (("employeeNumber", storage), ("roomNumber", messages)):
        if value is None:
            changes.append("replace: %s\n" % attr)
        else:
            changes.append("replace: %s\n%s: %d\n" % (attr, attr, value))
    env.slapd.modify("dn: uid=%s,%s\nchangetype: modify\n%s" %
                     (login, org_ldif.PEOPLE, "-\n".join(changes)))
    time.sleep(1.2)  # the directory cache (cache_ttl 1s)


def message(size):
    """A message of exactly size bytes."""
    head = b"Subject: quota\r\nFrom: a@example.test\r\n\r\n"
    body = b"x" * (size - len(head) - 2) + b"\r\n"
    assert len(head + body) == size
    return head + body


def test_capabilities(env):
    c = Imap(env.ternd, "user10")
    u, tagged = c.cmd("CAPABILITY")
    caps = u[0].split()
    assert tagged == "OK CAPABILITY completed"
    for cap in ("QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"):
        assert cap in caps, caps
    assert "QUOTASET" not in caps
    c.close()


def test_getquota_usage_and_both_limits(env):
    set_limits(env, "user11", storage=10240, messages=3)
    c = Imap(env.ternd, "user11")
    assert c.cmd("GETQUOTAROOT INBOX") == (
        ['QUOTAROOT "INBOX" ""', 'QUOTA "" (STORAGE 0 10 MESSAGE 0 3)'],
        "OK GETQUOTAROOT completed")
    assert c.append("INBOX", message(2048))[1].startswith("OK [APPENDUID")
    assert c.cmd('GETQUOTA ""') == (['QUOTA "" (STORAGE 2 10 MESSAGE 1 3)'],
                                    "OK GETQUOTA completed")
    assert c.append("INBOX", message(1500))[1].startswith("OK [APPENDUID")
    # 3548 bytes: 3 units of 1024, rounded down
    assert c.cmd('GETQUOTA ""') == (['QUOTA "" (STORAGE 3 10 MESSAGE 2 3)'],
                                    "OK GETQUOTA completed")
    # Every mailbox of the user has the same root.
    assert c.cmd("CREATE Work")[1].startswith("OK [MAILBOXID")
    assert c.cmd("GETQUOTAROOT Work") == (
        ['QUOTAROOT "Work" ""', 'QUOTA "" (STORAGE 3 10 MESSAGE 2 3)'],
        "OK GETQUOTAROOT completed")
    assert c.append("INBOX", message(100))[1].startswith("OK [APPENDUID")
    # The message limit is reached: APPEND and COPY are refused, MOVE is not.
    assert c.append("INBOX", message(100)) == ([], "NO [OVERQUOTA] Quota exceeded")
    u, tagged = c.cmd("SELECT INBOX")
    assert tagged.startswith("OK"), tagged
    assert c.cmd("COPY 1 Work") == ([], "NO [OVERQUOTA] Quota exceeded")
    u, tagged = c.cmd("MOVE 3 Work")
    assert tagged == "OK MOVE completed", (u, tagged)
    assert c.cmd('GETQUOTA ""') == (['QUOTA "" (STORAGE 3 10 MESSAGE 3 3)'],
                                    "OK GETQUOTA completed")
    # Expunging frees room.
    u, tagged = c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert tagged == "OK STORE completed", tagged
    u, tagged = c.cmd("EXPUNGE")
    assert tagged == "OK EXPUNGE completed" and u == ["1 EXPUNGE"], (u, tagged)
    assert c.cmd('GETQUOTA ""') == (['QUOTA "" (STORAGE 1 10 MESSAGE 2 3)'],
                                    "OK GETQUOTA completed")
    assert c.cmd("COPY 1 Work")[1].startswith("OK [COPYUID")
    c.close()


def test_storage_limit_alone(env):
    set_limits(env, "user12", storage=4096)
    c = Imap(env.ternd, "user12")
    assert c.cmd("GETQUOTAROOT INBOX") == (
        ['QUOTAROOT "INBOX" ""', 'QUOTA "" (STORAGE 0 4)'], "OK GETQUOTAROOT completed")
    assert c.append("INBOX", message(5000)) == (
        [], "NO [TOOBIG] Message is larger than the quota")
    assert c.append("INBOX", message(3000))[1].startswith("OK [APPENDUID")
    assert c.append("INBOX", message(1500)) == ([], "NO [OVERQUOTA] Quota exceeded")
    assert c.append("INBOX", message(1096))[1].startswith("OK [APPENDUID")  # exactly full
    assert c.cmd('GETQUOTA ""') == (['QUOTA "" (STORAGE 4 4)'], "OK GETQUOTA completed")
    u, tagged = c.cmd("SELECT INBOX")
    assert c.cmd("COPY 2 Archive") == ([], "NO [OVERQUOTA] Quota exceeded")
    c.close()


def test_message_limit_alone_and_limit_change(env):
    set_limits(env, "user13", messages=1)
    c = Imap(env.ternd, "user13")
    assert c.cmd("GETQUOTA \"\"") == (['QUOTA "" (MESSAGE 0 1)'], "OK GETQUOTA completed")
    assert c.append("INBOX", message(500))[1].startswith("OK [APPENDUID")
    assert c.append("INBOX", message(500)) == ([], "NO [OVERQUOTA] Quota exceeded")
    c.close()
    # A new limit applies from the next login.
    set_limits(env, "user13", messages=5)
    c = Imap(env.ternd, "user13")
    assert c.cmd("GETQUOTA \"\"") == (['QUOTA "" (MESSAGE 1 5)'], "OK GETQUOTA completed")
    assert c.append("INBOX", message(500))[1].startswith("OK [APPENDUID")
    c.close()


def test_no_limits_no_root(env):
    c = Imap(env.ternd, "user14")
    assert c.cmd("GETQUOTAROOT INBOX") == (['QUOTAROOT "INBOX"'], "OK GETQUOTAROOT completed")
    assert c.cmd('GETQUOTA ""') == ([], "NO [NONEXISTENT] No such quota root")
    c.close()


def test_errors(env):
    set_limits(env, "user15", storage=1 << 20)
    c = Imap(env.ternd)
    assert c.cmd('GETQUOTA ""') == ([], "BAD GETQUOTA needs authentication first")
    assert c.cmd("GETQUOTAROOT INBOX") == ([], "BAD GETQUOTAROOT needs authentication first")
    c.close()
    c = Imap(env.ternd, "user15")
    assert c.cmd('GETQUOTA "user.other"') == ([], "NO [NONEXISTENT] No such quota root")
    assert c.cmd("GETQUOTAROOT Nosuch") == ([], "NO [NONEXISTENT] No such mailbox")
    assert c.cmd("GETQUOTA") == ([], "BAD GETQUOTA takes a quota root")
    assert c.cmd("GETQUOTAROOT") == ([], "BAD GETQUOTAROOT takes a mailbox name")
    assert c.cmd('GETQUOTA "" extra') == ([], "BAD GETQUOTA takes a quota root")
    assert c.cmd('SETQUOTA "" (STORAGE 512)') == (
        [], "NO [NOPERM] Quotas are set in the directory, not over IMAP")
    assert c.cmd('SETQUOTA ""') == ([], "BAD SETQUOTA takes a quota root and a list of limits")
    # Unchanged by the refused SETQUOTA.
    assert c.cmd("GETQUOTAROOT inbox") == (
        ['QUOTAROOT "INBOX" ""', 'QUOTA "" (STORAGE 0 1024)'], "OK GETQUOTAROOT completed")
    c.close()


def test_smtp_delivery_at_message_limit(env):
    set_limits(env, "user16", messages=1)
    t = env.ternd
    addr = "user16@example.test"
    first = unique_token("q")
    t.send([addr], make_message(first, to=addr))
    s = t.smtp()
    try:
        with pytest.raises(smtplib.SMTPDataError) as ei:
            s.sendmail("sender@example.org", [addr], make_message(unique_token("q"), to=addr))
        assert ei.value.smtp_code == 452
        assert ei.value.smtp_error == b"4.2.2 Mailbox full"
    finally:
        s.close()
    c = Imap(t, "user16")
    assert c.cmd('GETQUOTA ""')[0] == ['QUOTA "" (MESSAGE 1 1)']
    c.close()
