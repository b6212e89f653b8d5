"""IMAP STORE, COPY, MOVE and their UID forms, checked on the wire:
flag forms (FLAGS, +FLAGS, -FLAGS, .SILENT, keywords, "*" ranges), the
UNCHANGEDSINCE modifier and [MODIFIED], COPYUID in compact form,
[TRYCREATE], [OVERQUOTA], self-copy, MOVE with its untagged COPYUID and
EXPUNGE order (RFC 6851 4.3), a 500-message MOVE, read-only mailboxes,
and the rev1/rev2 differences (\\Recent, UID in UID STORE replies).

Mail is put in with SMTP; every test uses a user of its own, whose first
delivery creates INBOX (UIDs from 1) and the special-use folders (Archive,
Trash...) used as destinations."""
import re
import time

import pytest

import harness
from harness import make_message, unique_token
import org_ldif

QUOTA_USER = "user40"
QUOTA_BYTES = 10000


@pytest.fixture(scope="module")
def env():
    # The fixture's schemas have no mailQuota; employeeNumber (in
    # inetOrgPerson) carries the quota instead.
    e = harness.Env({"directory": {"quota_attr": "employeeNumber"}})
    yield e
    e.close()


class Imap(harness.RawLines):
    """A raw IMAP session: cmd() returns (untagged lines without "* ",
    tagged status text without the tag), as str."""

    def __init__(self, t, login=None, rev2=False):
        super().__init__(t.imap_port)
        self.n = 0
        assert self.readline().startswith(b"* OK")
        if login is not None:
            _, tagged = self.cmd("LOGIN %s %s" % (login, harness.password(login)))
            assert tagged.startswith("OK"), tagged
            if rev2:
                u, tagged = self.cmd("ENABLE IMAP4rev2")
                assert tagged.startswith("OK") and u == ["ENABLED IMAP4rev2"], (u, tagged)

    def cmd(self, text):
        self.n += 1
        tag = "a%d" % self.n
        untagged, tagged = self.imap(tag, text)
        u = []
        for line in untagged:
            line = line.decode()
            assert line.startswith("* "), line
            u.append(line[2:])
        return u, tagged.decode()[len(tag) + 1:]

    def ok(self, text):
        u, tagged = self.cmd(text)
        assert tagged.startswith("OK"), (text, u, tagged)
        return u

    def select(self, box="INBOX", examine=False):
        u = self.ok("%s %s" % ("EXAMINE" if examine else "SELECT", box))
        exists = [int(x.split()[0]) for x in u if x.endswith(" EXISTS")]
        assert exists, u
        return exists[0]


def deliver(t, login, n, body=None):
    addr = "%s@example.test" % login
    s = t.smtp()
    try:
        for _ in range(n):
            tok = unique_token("msg")
            s.sendmail("sender@example.org", [addr], make_message(tok, body=body, to=addr))
        s.quit()
    finally:
        s.close()


def claim(t, login, box="INBOX"):
    """SELECTs box in a session of its own and logs out: the messages in
    it now were \\Recent in that session alone (RFC 3501 2.3.2), so no
    later session sees them \\Recent."""
    c = Imap(t, login)
    c.select(box)
    c.cmd("LOGOUT")
    c.close()


def session(env, login, nmsgs, rev2=False, total=None, claimed=False):
    """Delivers nmsgs, logs in, selects INBOX (total messages in all).
    claimed: another session selects INBOX first and takes \\Recent."""
    deliver(env.ternd, login, nmsgs)
    if claimed:
        claim(env.ternd, login)
    c = Imap(env.ternd, login, rev2=rev2)
    assert c.select() == (nmsgs if total is None else total)
    return c


def copyuid(tagged_or_line):
    m = re.search(r"\[COPYUID (\d+) ([0-9:,]+) ([0-9:,]+)\]", tagged_or_line)
    assert m, tagged_or_line
    return int(m.group(1)), m.group(2), m.group(3)


# ---- STORE ------------------------------------------------------------------


def test_store_flag_forms(env):
    # Another session has taken \Recent: the flags below are all stored.
    c = session(env, "user01", 4, claimed=True)
    assert c.cmd("STORE 1 FLAGS (\\Seen)") == (["1 FETCH (FLAGS (\\Seen))"], "OK STORE completed")
    assert c.cmd("STORE 1:2 +FLAGS (\\Flagged)") == (
        ["1 FETCH (FLAGS (\\Seen \\Flagged))", "2 FETCH (FLAGS (\\Flagged))"],
        "OK STORE completed")
    # Bare flags (no parentheses), a "*" range; unchanged messages are
    # reported too: their flags are "the new value".
    assert c.cmd("STORE 2:* -FLAGS \\Flagged") == (
        ["2 FETCH (FLAGS ())", "3 FETCH (FLAGS ())", "4 FETCH (FLAGS ())"], "OK STORE completed")
    # .SILENT: nothing back; the next non-silent STORE shows what it did.
    assert c.cmd("STORE 3,4 +FLAGS.SILENT (\\Answered \\Draft)") == ([], "OK STORE completed")
    assert c.cmd("STORE 3 +FLAGS (\\Deleted)") == (
        ["3 FETCH (FLAGS (\\Answered \\Deleted \\Draft))"], "OK STORE completed")
    assert c.cmd("STORE 4 FLAGS.SILENT ()") == ([], "OK STORE completed")
    assert c.cmd("store 4 +flags (\\SEEN)") == (["4 FETCH (FLAGS (\\Seen))"], "OK STORE completed")
    # Keywords, matched without regard to case.
    # Keywords new to the mailbox are announced in FLAGS and PERMANENTFLAGS
    # before the FETCH that shows them.
    assert c.cmd("STORE 1 +FLAGS ($Label1 Junk)") == (
        ["FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 Junk)",
         "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 Junk \\*)] "
         "Flags permitted",
         "1 FETCH (FLAGS (\\Seen \\Flagged $Label1 Junk))"], "OK STORE completed")
    assert c.cmd("STORE 1 +FLAGS ($label1)") == (
        ["1 FETCH (FLAGS (\\Seen \\Flagged $Label1 Junk))"], "OK STORE completed")
    assert c.cmd("STORE 1 -FLAGS ($LABEL1)") == (
        ["1 FETCH (FLAGS (\\Seen \\Flagged Junk))"], "OK STORE completed")
    assert c.cmd("STORE 1 FLAGS (NonJunk)") == (
        ["FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 Junk NonJunk)",
         "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 Junk NonJunk "
         "\\*)] Flags permitted",
         "1 FETCH (FLAGS (NonJunk))"], "OK STORE completed")
    # UID STORE: UID in every FETCH; UIDs that do not exist are skipped.
    assert c.cmd("UID STORE 2,3,999 +FLAGS (\\Seen)") == (
        ["2 FETCH (UID 2 FLAGS (\\Seen))", "3 FETCH (UID 3 FLAGS (\\Seen \\Answered \\Deleted \\Draft))"],
        "OK STORE completed")
    assert c.cmd("UID STORE 999 +FLAGS (\\Seen)") == ([], "OK STORE completed")
    assert c.cmd("UID STORE 2:* FLAGS.SILENT (\\Flagged)") == ([], "OK STORE completed")
    assert c.cmd("UID STORE 4 -FLAGS (\\Seen)") == (
        ["4 FETCH (UID 4 FLAGS (\\Flagged))"], "OK STORE completed")

    # Another session sees the final flags at its next NOOP, and only once.
    d = Imap(env.ternd, "user01")
    d.select()
    assert d.cmd("STORE 1 +FLAGS (\\Answered)")[1] == "OK STORE completed"
    assert c.cmd("NOOP") == (["1 FETCH (FLAGS (\\Answered NonJunk))"], "OK NOOP completed")
    assert c.cmd("NOOP") == ([], "OK NOOP completed")
    c.close()
    d.close()


def test_store_errors(env):
    c = Imap(env.ternd, "user02")
    # Not selected: the dispatcher refuses.
    assert c.cmd("STORE 1 FLAGS (\\Seen)")[1].startswith("BAD")
    c.close()
    c = session(env, "user02", 2)
    assert c.cmd("NOOP")[1] == "OK NOOP completed"
    bad = [
        "STORE 1 FLAGS (\\Recent)",
        "STORE 1 +FLAGS \\Recent",
        "STORE 1 FLAGS (\\Foo)",
        "STORE 1 FLAGS (\\Seen \\Bogus)",
        "STORE 1 FLAGS (a%b)",
        "STORE 1 FLAGS (a]b)",
        "STORE 1 FLAGS (\"quoted\")",
        "STORE 1 FLAGS ((\\Seen))",
        "STORE 1 XFLAGS (\\Seen)",
        "STORE 1 FLAGS.LOUD (\\Seen)",
        "STORE 1 FLAGS",
        "STORE 1",
        "STORE 1 FLAGS (\\Seen) \\Flagged",
        "STORE 3 FLAGS (\\Seen)",
        "STORE 0 FLAGS (\\Seen)",
        "STORE 1:x FLAGS (\\Seen)",
        "STORE 1 (FOO 1) FLAGS (\\Seen)",
        "STORE 1 (UNCHANGEDSINCE) FLAGS (\\Seen)",
        "STORE 1 (UNCHANGEDSINCE -1) FLAGS (\\Seen)",
        "STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) FLAGS (\\Seen)",
        "UID STORE 1 FLAGS (\\Draft) extra",
    ]
    for i, cmd in enumerate(bad):
        if i % 10 == 9:
            # IMAP_MAX_ERRORS BADs end a session: start another.
            c.close()
            c = session(env, "user02", 0, total=2)
        u, tagged = c.cmd(cmd)
        assert tagged.startswith("BAD "), (cmd, tagged)
        assert u == [], (cmd, u)
    c.close()
    c = session(env, "user02", 0, total=2)
    assert c.cmd("STORE 1 FLAGS (\\Recent)")[1] == "BAD \\Recent cannot be stored"
    assert c.cmd("STORE 1 FLAGS (\\Foo)")[1] == "BAD Unknown system flag \\Foo"
    # A keyword over the store's 100-byte limit.
    u, tagged = c.cmd("STORE 1 FLAGS (%s)" % ("k" * 101))
    assert u == [] and tagged.startswith("NO [LIMIT] "), tagged
    # Nothing above changed a flag.
    assert c.cmd("STORE 1:2 +FLAGS ()") == (["1 FETCH (FLAGS ())", "2 FETCH (FLAGS ())"],
                                            "OK STORE completed")
    c.close()


def test_store_read_only(env):
    c = Imap(env.ternd, "user03")
    deliver(env.ternd, "user03", 2)
    assert c.select(examine=True) == 2
    assert c.cmd("STORE 1 +FLAGS (\\Seen)") == ([], "NO Mailbox is read-only")
    assert c.cmd("UID STORE 1 +FLAGS.SILENT (\\Seen)") == ([], "NO Mailbox is read-only")
    assert c.cmd("MOVE 1 Archive") == ([], "NO Mailbox is read-only")
    # COPY only reads the source.
    u, tagged = c.cmd("COPY 1:2 Archive")
    assert u == [] and tagged.startswith("OK [COPYUID "), tagged
    assert copyuid(tagged)[1:] == ("1:2", "1:2")
    c.close()


def test_store_rev1_recent_and_rev2(env):
    # The first SELECT: the two delivered are \Recent in this session.
    c = session(env, "user04", 2)
    # Self-copy: the new messages are \Recent to this session (rev1) too.
    u, tagged = c.cmd("COPY 1:2 INBOX")
    assert u == ["4 EXISTS", "4 RECENT"], u
    assert copyuid(tagged)[1:] == ("1:2", "3:4")
    assert c.cmd("STORE 3 +FLAGS (\\Seen)") == (["3 FETCH (FLAGS (\\Seen \\Recent))"],
                                               "OK STORE completed")
    assert c.cmd("STORE 3 FLAGS ()") == (["3 FETCH (FLAGS (\\Recent))"], "OK STORE completed")
    assert c.cmd("STORE 1 +FLAGS (\\Seen)") == (["1 FETCH (FLAGS (\\Seen \\Recent))"],
                                               "OK STORE completed")
    c.close()
    # Another rev1 session: none is \Recent in it any more.
    c = Imap(env.ternd, "user04")
    assert "0 RECENT" in c.ok("SELECT INBOX")
    assert c.cmd("FETCH 3 FLAGS") == (["3 FETCH (FLAGS ())"], "OK FETCH completed")
    assert c.cmd("STORE 1 +FLAGS (\\Draft)") == (["1 FETCH (FLAGS (\\Seen \\Draft))"],
                                                "OK STORE completed")
    c.close()

    # IMAP4rev2 has no \Recent; non-UID STORE carries no UID.
    c = Imap(env.ternd, "user04", rev2=True)
    assert c.select() == 4
    assert c.cmd("STORE 3 +FLAGS (\\Seen)") == (["3 FETCH (FLAGS (\\Seen))"], "OK STORE completed")
    assert c.cmd("UID STORE 4 +FLAGS ($Work)") == (
        ["FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
         "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] "
         "Flags permitted",
         "4 FETCH (UID 4 FLAGS ($Work))"], "OK STORE completed")
    # .SILENT means silent in rev2 too (RFC 9051 6.4.6).
    assert c.cmd("UID STORE 1:* +FLAGS.SILENT (\\Flagged)") == ([], "OK STORE completed")
    c.close()


def test_store_unchangedsince(env):
    c = session(env, "user05", 3, claimed=True)
    # UNCHANGEDSINCE 0 fails for every message (RFC 7162 3.1.3); as the
    # first CONDSTORE-enabling command it tells HIGHESTMODSEQ (3.1).
    assert c.cmd("STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)") == (
        ["OK [HIGHESTMODSEQ 3] Highest"], "OK [MODIFIED 1:3] Conditional STORE failed")
    assert c.cmd("UID STORE 1,3 (UNCHANGEDSINCE 0) FLAGS (\\Seen)") == (
        [], "OK [MODIFIED 1,3] Conditional STORE failed")
    # CONDSTORE is now on: STORE replies carry UID and MODSEQ (RFC 7162 3.1).
    u, tagged = c.cmd("STORE 1 +FLAGS (\\Flagged)")
    assert tagged == "OK STORE completed"
    m = re.fullmatch(r"1 FETCH \(UID 1 FLAGS \(\\Flagged\) MODSEQ \((\d+)\)\)", u[0])
    assert m and len(u) == 1, u
    m1 = int(m.group(1))
    # Another session changes message 2 after m1.
    d = Imap(env.ternd, "user05")
    d.select()
    assert d.cmd("STORE 2 +FLAGS (\\Answered)")[1] == "OK STORE completed"
    u, tagged = c.cmd("STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % m1)
    assert tagged == "OK [MODIFIED 2] Conditional STORE failed", tagged
    # Silent, but CONDSTORE wants the new MODSEQs; the other session's
    # change to 2 is reported as well.
    mine = [x for x in u if "FLAGS" not in x]
    assert [x.split()[0] for x in mine] == ["1", "3"], u
    for x in mine:
        m = re.fullmatch(r"(\d) FETCH \(UID (\d) MODSEQ \((\d+)\)\)", x)
        assert m and m.group(1) == m.group(2), u
        m = re.fullmatch(r".*MODSEQ \((\d+)\)\)", x)
        assert m and int(m.group(1)) > m1, u
    assert [x for x in u if "FLAGS" in x][0].startswith("2 FETCH (UID 2 FLAGS (\\Answered) MODSEQ ("), u
    # The UID form names UIDs; nothing was changed for the refused one.
    u, tagged = c.cmd("UID STORE 2 (UNCHANGEDSINCE %d) FLAGS (\\Deleted)" % m1)
    assert (u, tagged) == ([], "OK [MODIFIED 2] Conditional STORE failed")
    assert c.cmd("NOOP") == ([], "OK NOOP completed")
    # A high enough UNCHANGEDSINCE passes.
    u, tagged = c.cmd("UID STORE 2 (UNCHANGEDSINCE 9000000000000000000) FLAGS (\\Deleted)")
    assert tagged == "OK STORE completed"
    assert re.fullmatch(r"2 FETCH \(UID 2 FLAGS \(\\Deleted\) MODSEQ \(\d+\)\)", u[0]), u
    c.close()
    d.close()


# ---- COPY -------------------------------------------------------------------


def test_copy(env):
    c = session(env, "user06", 4)
    u, tagged = c.cmd("COPY 1:2 Archive")
    assert u == [] and re.fullmatch(r"OK \[COPYUID \d+ 1:2 1:2\] COPY completed", tagged), tagged
    v1 = copyuid(tagged)[0]
    u, tagged = c.cmd("COPY 1,3:4 Archive")
    assert copyuid(tagged) == (v1, "1,3:4", "3:5")
    u, tagged = c.cmd("UID COPY 4,2,999 Archive")
    assert copyuid(tagged) == (v1, "2,4", "6:7")
    # Nothing to copy: OK without COPYUID.
    assert c.cmd("UID COPY 999 Archive") == ([], "OK COPY completed")
    # Missing destination: TRYCREATE, whatever the set.
    assert c.cmd("COPY 1 Missing") == ([], "NO [TRYCREATE] No such mailbox")
    assert c.cmd("UID COPY 1:* Missing/Child") == ([], "NO [TRYCREATE] No such mailbox")
    assert c.cmd("UID COPY 999 Missing") == ([], "NO [TRYCREATE] No such mailbox")
    # Errors of syntax.
    for cmd in ["COPY 1", "COPY", "COPY 5 Archive", "COPY 1 Archive extra", "COPY x Archive",
                "COPY 1 (Archive)"]:
        u, tagged = c.cmd(cmd)
        assert tagged.startswith("BAD") and u == [], (cmd, tagged)
    # The copies keep flags and are there to read.
    assert c.cmd("STORE 1 +FLAGS.SILENT (\\Flagged $Keep)")[1] == "OK STORE completed"
    u, tagged = c.cmd("COPY 1 \"Archive\"")
    assert copyuid(tagged)[2] == "8"
    # The copies are new to the mailbox: \Recent in the first session
    # told of them (RFC 3501 6.4.7), this one.
    assert c.select("Archive") == 8
    assert c.cmd("STORE 8 +FLAGS (\\Seen)") == (
        ["8 FETCH (FLAGS (\\Seen \\Flagged \\Recent $Keep))"], "OK STORE completed")
    # Self-copy: eight more, all sixteen \Recent here.
    u, tagged = c.cmd("COPY 1:* Archive")
    assert u == ["16 EXISTS", "16 RECENT"], u
    assert copyuid(tagged) == (v1, "1:8", "9:16")
    c.close()


def test_copy_over_quota(env):
    env.slapd.modify("dn: uid=%s,%s\nchangetype: modify\nadd: employeeNumber\n"
                     "employeeNumber: %d\n" % (QUOTA_USER, org_ldif.PEOPLE, QUOTA_BYTES))
    time.sleep(1.2)  # the directory cache (cache_ttl 1s)
    body = ("x" * 70 + "\r\n") * 40  # about 2.9 kB: two fit, four do not
    deliver(env.ternd, QUOTA_USER, 2, body=body)
    c = Imap(env.ternd, QUOTA_USER)
    assert c.select() == 2
    assert c.cmd("COPY 1:2 Archive") == ([], "NO [OVERQUOTA] Quota exceeded")
    assert c.cmd("UID COPY 1:* Archive") == ([], "NO [OVERQUOTA] Quota exceeded")
    assert c.select("Archive") == 0
    # MOVE adds nothing to the usage: allowed.
    c.select()
    u, tagged = c.cmd("MOVE 1:2 Archive")
    assert tagged == "OK MOVE completed", tagged
    assert u[1:] == ["1 EXPUNGE", "1 EXPUNGE"], u
    assert c.select("Archive") == 2
    c.close()


# ---- MOVE -------------------------------------------------------------------


def test_move(env):
    c = session(env, "user07", 5)
    other = Imap(env.ternd, "user07")
    assert other.select() == 5
    u, tagged = c.cmd("MOVE 2:3 Trash")
    # RFC 6851 4.3: untagged COPYUID first, then the EXPUNGEs.
    assert tagged == "OK MOVE completed"
    assert len(u) == 3 and re.fullmatch(r"OK \[COPYUID \d+ 2:3 1:2\] Moved", u[0]), u
    assert u[1:] == ["2 EXPUNGE", "2 EXPUNGE"]
    vt = copyuid(u[0])[0]
    u, tagged = c.cmd("UID MOVE 5 Trash")
    assert (u, tagged) == (["OK [COPYUID %d 5 3] Moved" % vt, "3 EXPUNGE"], "OK MOVE completed")
    # Missing destination: nothing moves.
    assert c.cmd("MOVE 1 Missing") == ([], "NO [TRYCREATE] No such mailbox")
    assert c.cmd("UID MOVE 1:* Missing") == ([], "NO [TRYCREATE] No such mailbox")
    assert c.cmd("UID MOVE 999 Trash") == ([], "OK MOVE completed")
    assert c.cmd("MOVE 3 Trash")[1].startswith("BAD")
    # MOVE into the selected mailbox: a new UID, the old one expunged.
    u, tagged = c.cmd("MOVE 1 INBOX")
    assert tagged == "OK MOVE completed"
    assert re.fullmatch(r"OK \[COPYUID \d+ 1 6\] Moved", u[0]), u
    # UID 4 has been \Recent here since SELECT, UID 6 is new.
    assert u[1:] == ["1 EXPUNGE", "2 EXISTS", "2 RECENT"], u
    assert c.cmd("NOOP") == ([], "OK NOOP completed")
    # The other session learns of it all at NOOP, in order; c was told of
    # UID 6 first, so it is not \Recent here.
    u, tagged = other.cmd("NOOP")
    # (UIDs 1, 2, 3, 5 in UID order, each number as it is at that point.)
    assert u == ["1 EXPUNGE", "1 EXPUNGE", "1 EXPUNGE", "2 EXPUNGE", "2 EXISTS", "0 RECENT"], u
    assert c.select("Trash") == 3
    c.close()
    other.close()


def test_move_500(env):
    c = session(env, "user08", 5)
    # Self-copies double the mailbox: 5 -> 640.
    n = 5
    while n < 500:
        u, tagged = c.cmd("COPY 1:* INBOX")
        assert copyuid(tagged)[1:] == ("1:%d" % n, "%d:%d" % (n + 1, 2 * n)), tagged
        n *= 2
        assert u[0] == "%d EXISTS" % n, u
    start = time.monotonic()
    u, tagged = c.cmd("MOVE 1:500 Archive")
    elapsed = time.monotonic() - start
    assert tagged == "OK MOVE completed"
    assert u[0] == "OK [COPYUID %d 1:500 1:500] Moved" % copyuid(u[0])[0], u[0]
    assert u[1:] == ["1 EXPUNGE"] * 500
    assert elapsed < (20 if harness.SANITIZE else 5), elapsed
    u, tagged = c.cmd("UID MOVE 501:* Trash")
    assert u[0] == "OK [COPYUID %d 501:640 1:140] Moved" % copyuid(u[0])[0], u[0]
    assert u[1:] == ["1 EXPUNGE"] * 140
    assert c.cmd("NOOP") == ([], "OK NOOP completed")
    assert c.select("Archive") == 500
    assert c.select("Trash") == 140
    assert c.select("INBOX") == 0
    c.close()
    env.ternd.check_alive()


def test_imaplib_flow(env):
    """The same commands through Python's imaplib, as a client uses them."""
    deliver(env.ternd, "user09", 3)
    m = env.ternd.imap_login("user09")
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    # imaplib's SELECT is the first: all three are \Recent in it.
    assert m.untagged_responses.get("RECENT") == [b"3"], m.untagged_responses
    typ, data = m.store("1:2", "+FLAGS", "(\\Seen $Important)")
    assert typ == "OK"
    assert data == [b"1 (FLAGS (\\Seen \\Recent $Important))",
                    b"2 (FLAGS (\\Seen \\Recent $Important))"]
    typ, data = m.uid("STORE", "3", "+FLAGS.SILENT", "(\\Flagged)")
    assert typ == "OK" and data == [None]
    typ, data = m.copy("1:3", "Archive")
    assert typ == "OK" and re.fullmatch(rb"\[COPYUID \d+ 1:3 1:3\] COPY completed", data[0])
    typ, data = m.uid("MOVE", "2:3", "Trash")
    assert typ == "OK", data
    assert m.untagged_responses.get("EXPUNGE") == [b"2", b"2"], m.untagged_responses
    typ, data = m.copy("1", "Nowhere")
    assert typ == "NO" and data == [b"[TRYCREATE] No such mailbox"]
    typ, data = m.select("Trash")
    assert typ == "OK" and data == [b"2"]
    m.logout()
