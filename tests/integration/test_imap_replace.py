"""IMAP REPLACE and UID REPLACE (RFC 8508) against the real ternd: the
draft-saving case in the same mailbox, a replacement into another
mailbox with flags and a date, VANISHED with QRESYNC, and every refusal
(message number past the end, unknown UID, a message another session
expunged meanwhile, a missing destination, a read-only view) leaving the
old message where it was. Responses are checked exactly.

The fixture's schemas have no mail quota attribute: employeeNumber
carries the byte quota (as in test_imap_quota.py), so a replacement at
the quota limit is checked too: the old message's bytes are freed before
the new one is counted."""
import re
import time

import pytest

import harness
import org_ldif

OVERRIDES = {"directory": {"quota_attr": "employeeNumber"}}


@pytest.fixture(scope="module")
def env():
    e = harness.Env(OVERRIDES)
    yield e
    e.close()


class Imap(harness.RawLines):
    """cmd() returns (untagged lines without "* ", tagged text without the
    tag), as str."""

    def __init__(self, t, login):
        super().__init__(t.imap_port)
        self.n = 0
        assert self.readline().startswith(b"* OK")
        _, tagged = self.cmd("LOGIN %s %s" % (login, harness.password(login)))
        assert tagged.startswith("OK"), tagged

    def cmd(self, text):
        if isinstance(text, str):
            text = text.encode()
        self.n += 1
        tag = "r%d" % self.n
        self.send(tag.encode() + b" " + text + b"\r\n")
        untagged, tagged = self.imap(tag)
        return [l.decode()[2:] for l in untagged], tagged.decode()[len(tag) + 1:]

    def ok(self, text):
        u, t = self.cmd(text)
        assert t.startswith("OK"), (text, u, t)
        return u

    def append(self, box, data):
        return self.ok(b"APPEND %s {%d+}\r\n" % (box.encode(), len(data)) + data)


def msg(text):
    return ("Subject: %s\r\n\r\n%s\r\n" % (text, text)).encode()


def literal(data):
    return b"{%d+}\r\n" % len(data) + data


def uidvalidity(lines):
    for l in lines:
        m = re.fullmatch(r"OK \[UIDVALIDITY (\d+)\] UIDs valid", l)
        if m:
            return int(m.group(1))
    raise AssertionError(lines)


def test_replace_in_place_and_uid_replace_elsewhere(env):
    c = Imap(env.ternd, "user31")
    c.ok("CREATE Notes")
    c.append("Notes", msg("draft one"))
    c.append("Notes", msg("other"))
    uv = uidvalidity(c.ok("SELECT Notes"))
    caps = c.ok("CAPABILITY")[0].split()
    assert "REPLACE" in caps, caps
    # The draft (message 1, UID 1) saved again: UID 3, then its EXPUNGE
    # and the new EXISTS.
    u, t = c.cmd(b"REPLACE 1 Notes " + literal(msg("draft two")))
    assert (u, t) == (["OK [APPENDUID %d 3] Replacement message ready" % uv,
                       "1 EXPUNGE", "2 EXISTS", "2 RECENT"],
                      "OK REPLACE completed"), (u, t)
    assert c.ok("UID SEARCH ALL") == ["SEARCH 2 3"]
    assert c.ok("UID SEARCH SUBJECT draft") == ["SEARCH 3"]
    # UID REPLACE into another mailbox, with flags and a date: the new
    # message is in Sent, the old one gone from here.
    st = c.ok("STATUS Sent (UIDVALIDITY MESSAGES)")
    m = re.fullmatch(r'STATUS "Sent" \(UIDVALIDITY (\d+) MESSAGES 0\)', st[0])
    assert m, st
    sent_uv = int(m.group(1))
    u, t = c.cmd(b'UID REPLACE 3 Sent (\\Seen $Sent) "01-Feb-2026 10:00:00 +0000" ' +
                 literal(msg("final")))
    assert (u, t) == (["OK [APPENDUID %d 1] Replacement message ready" % sent_uv,
                       "2 EXPUNGE"],
                      "OK UID REPLACE completed"), (u, t)
    assert c.ok("UID SEARCH ALL") == ["SEARCH 2"]
    c.ok("EXAMINE Sent")
    assert c.ok("FETCH 1 (FLAGS INTERNALDATE)") == [
        '1 FETCH (FLAGS (\\Seen \\Recent $Sent) INTERNALDATE "01-Feb-2026 10:00:00 +0000")']
    c.close()


def test_replace_refusals_keep_the_old_message(env):
    c = Imap(env.ternd, "user32")
    c.ok("CREATE Drafts2")
    c.append("Drafts2", msg("keep me"))
    c.ok("SELECT Drafts2")
    new = msg("never")
    # A message number past the end: BAD; an unknown UID: NO.
    u, t = c.cmd(b"REPLACE 2 Drafts2 " + literal(new))
    assert (u, t) == ([], "BAD No message 2 (the mailbox has 1)")
    u, t = c.cmd(b"UID REPLACE 77 Drafts2 " + literal(new))
    assert (u, t) == ([], "NO [NONEXISTENT] No message has UID 77")
    # A destination that does not exist: TRYCREATE, nothing expunged.
    u, t = c.cmd(b"REPLACE 1 NoSuchBox " + literal(new))
    assert (u, t) == ([], "NO [TRYCREATE] Mailbox does not exist")
    assert c.ok("UID SEARCH ALL") == ["SEARCH 1"]
    # Bad syntax: two messages, no literal, a bad message number.
    assert c.cmd(b"REPLACE 1 Drafts2 " + literal(new) + b" " + literal(new))[1].startswith(
        "BAD")
    assert c.cmd(b"REPLACE 1 Drafts2")[1].startswith("BAD")
    assert c.cmd(b"REPLACE x Drafts2 " + literal(new))[1] == "BAD Invalid message number"
    assert c.cmd(b"REPLACE 0 Drafts2 " + literal(new))[1] == "BAD Invalid message number"
    # Read-only: EXAMINE.
    c.ok("EXAMINE Drafts2")
    assert c.cmd(b"REPLACE 1 Drafts2 " + literal(new)) == (
        [], "NO [READ-ONLY] Mailbox is read-only")
    # Another session expunges the message first: this view still
    # has it, the store does not: NO, and the new message is not added.
    c.ok("SELECT Drafts2")
    o = Imap(env.ternd, "user32")
    o.ok("SELECT Drafts2")
    o.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    o.ok("EXPUNGE")
    u, t = c.cmd(b"REPLACE 1 Drafts2 " + literal(new))
    assert (u, t) == (["1 EXPUNGE"],
                      "NO [NONEXISTENT] The message to replace has been expunged"), (u, t)
    assert c.ok("STATUS Drafts2 (MESSAGES)") == ['STATUS "Drafts2" (MESSAGES 0)']
    o.close()
    c.close()


def test_replace_with_qresync_and_at_quota(env):
    t = env.ternd
    c = Imap(t, "user33")
    c.ok("ENABLE QRESYNC")
    c.ok("CREATE Q")
    big = msg("x" * 3000)
    c.append("Q", big)
    c.ok("SELECT Q")
    u, tg = c.cmd(b"UID REPLACE 1 Q " + literal(msg("y" * 3000)))
    assert tg == "OK UID REPLACE completed", (u, tg)
    assert "VANISHED 1" in u and not any(l.endswith("EXPUNGE") for l in u), u
    # At the quota (each message ~6 KB): a limit a little above one lets a
    # same-sized replacement through (the old bytes leave first), while
    # an APPEND of one more is over quota. Limits are read at login.
    c.close()
    env.slapd.modify("dn: uid=user33,%s\nchangetype: modify\n"
                     "replace: employeeNumber\nemployeeNumber: 9000\n" % org_ldif.PEOPLE)
    time.sleep(1.2)  # the directory cache (cache_ttl 1s)
    c = Imap(t, "user33")
    c.ok("SELECT Q")
    u, tg = c.cmd(b"APPEND Q " + literal(msg("z" * 3000)))
    assert tg == "NO [OVERQUOTA] Quota exceeded", (u, tg)
    u, tg = c.cmd(b"REPLACE 1 Q " + literal(msg("z" * 3000)))
    assert tg == "OK REPLACE completed", (u, tg)
    assert c.ok("UID SEARCH ALL") == ["SEARCH 3"]
    c.close()
