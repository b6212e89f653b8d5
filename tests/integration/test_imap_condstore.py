"""CONDSTORE and QRESYNC (RFC 7162) on the wire, with exact responses:
ENABLE and CAPABILITY, HIGHESTMODSEQ in SELECT/EXAMINE/STATUS/EXPUNGE,
FETCH MODSEQ and CHANGEDSINCE, SEARCH MODSEQ (plain and ESEARCH), STORE
UNCHANGEDSINCE with [MODIFIED], the MODSEQ of other sessions' flag
changes, VANISHED in place of EXPUNGE once QRESYNC is on (EXPUNGE, UID
EXPUNGE, MOVE, another session's expunge), UID FETCH (CHANGEDSINCE n
VANISHED), and SELECT/EXAMINE (QRESYNC ...) after a client was away while
another session expunged, flagged and got new mail: VANISHED (EARLIER)
and FETCH exactly, with known-uids and seq-match-data; malformed QRESYNC
parameters give BAD.

Every test has a user of its own: n deliveries into a fresh INBOX give
UIDs 1..n with MODSEQs 1..n, and each later change (a flag store, each
expunged message, a new message) takes the next MODSEQ."""
import re

import pytest

import harness
from test_imap_idle import expect, start_idle
from test_imap_msg import Imap, claim, deliver

PERM = ("OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
        "Flags permitted")
FLAGS = "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"


@pytest.fixture(scope="module")
def env():
    e = harness.Env()
    yield e
    e.close()


def uidvalidity(lines):
    for x in lines:
        m = re.fullmatch(r"OK \[UIDVALIDITY (\d+)\] UIDs valid", x)
        if m:
            return int(m.group(1))
    raise AssertionError(lines)


def mailboxid(lines):
    """The RFC 8474 MAILBOXID a SELECT reported."""
    for x in lines:
        m = re.fullmatch(r"OK \[MAILBOXID \(([A-Za-z0-9_-]+)\)\] Ok", x)
        if m:
            return m.group(1)
    raise AssertionError(lines)


def rev2_select(exists, uv, uidnext, hms, mid, box="INBOX"):
    """The untagged lines of a rev2 SELECT with CONDSTORE on."""
    return [FLAGS, PERM, "%d EXISTS" % exists, "OK [UIDVALIDITY %d] UIDs valid" % uv,
            "OK [UIDNEXT %d] Predicted next UID" % uidnext,
            "OK [MAILBOXID (%s)] Ok" % mid,
            "OK [HIGHESTMODSEQ %d] Highest" % hms,
            'LIST (\\HasNoChildren) "/" "%s"' % box]


def qresync_session(t, login):
    c = Imap(t, login, rev2=True)
    assert c.cmd("ENABLE QRESYNC") == (["ENABLED QRESYNC"], "OK ENABLE completed")
    return c


def expunge(t, login, seqs):
    """Another (plain rev2) session deletes and expunges message numbers."""
    o = Imap(t, login, rev2=True)
    o.select()
    o.ok("STORE %s +FLAGS.SILENT (\\Deleted)" % seqs)
    o.ok("EXPUNGE")
    o.cmd("LOGOUT")


# ---- enabling ------------------------------------------------------------------


def test_capability_and_enable(env):
    deliver(env.ternd, "user01", 3)
    c = Imap(env.ternd)
    u, _ = c.cmd("CAPABILITY")
    assert "CONDSTORE" not in u[0].split() and "QRESYNC" not in u[0].split(), u
    c = Imap(env.ternd, "user01")
    u, _ = c.cmd("CAPABILITY")
    assert "CONDSTORE" in u[0].split() and "QRESYNC" in u[0].split(), u
    assert c.cmd("ENABLE CONDSTORE") == (["ENABLED CONDSTORE"], "OK ENABLE completed")
    assert c.cmd("ENABLE CONDSTORE") == (["ENABLED"], "OK ENABLE completed")
    # QRESYNC implies CONDSTORE, which is already on: only QRESYNC is new.
    assert c.cmd("ENABLE QRESYNC CONDSTORE") == (["ENABLED QRESYNC"], "OK ENABLE completed")
    # ENABLE belongs to the authenticated state (RFC 5161 3.1).
    d = Imap(env.ternd, "user01", rev2=True)
    d.select()
    assert d.cmd("ENABLE CONDSTORE")[1].startswith("BAD")
    # A CONDSTORE-enabling command while a mailbox is selected tells its
    # HIGHESTMODSEQ first (RFC 7162 3.1); FETCHes carry UID and MODSEQ.
    assert d.cmd("FETCH 2 (MODSEQ)") == (
        ["OK [HIGHESTMODSEQ 3] Highest", "2 FETCH (UID 2 MODSEQ (2))"], "OK FETCH completed")
    assert d.cmd("STORE 1 +FLAGS (\\Seen)") == (
        ["1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (4))"], "OK STORE completed")
    assert d.cmd("FETCH 3 (FLAGS)") == (
        ["3 FETCH (UID 3 FLAGS () MODSEQ (3))"], "OK FETCH completed")


def test_select_examine_condstore_and_status(env):
    deliver(env.ternd, "user02", 2)
    c = Imap(env.ternd, "user02", rev2=True)
    u, t = c.cmd("SELECT INBOX")
    assert "OK [HIGHESTMODSEQ 2] Highest" not in u  # not enabled yet
    uv = uidvalidity(u)
    mid = mailboxid(u)
    assert c.cmd("SELECT INBOX (CONDSTORE)") == (
        ["OK [CLOSED] Previous mailbox closed"] + rev2_select(2, uv, 3, 2, mid),
        "OK [READ-WRITE] SELECT completed")
    assert c.cmd("EXAMINE INBOX") == (
        ["OK [CLOSED] Previous mailbox closed", FLAGS,
         "OK [PERMANENTFLAGS ()] Read-only mailbox", "2 EXISTS",
         "OK [UIDVALIDITY %d] UIDs valid" % uv, "OK [UIDNEXT 3] Predicted next UID",
         "OK [MAILBOXID (%s)] Ok" % mid, "OK [HIGHESTMODSEQ 2] Highest", 'LIST (\\HasNoChildren) "/" "INBOX"'],
        "OK [READ-ONLY] EXAMINE completed")
    assert c.cmd("SELECT INBOX (CONDSTORE CONDSTORE)")[1].startswith("BAD")
    assert c.cmd("SELECT INBOX (FOO)")[1].startswith("BAD")
    # STATUS HIGHESTMODSEQ, and 0 for a mailbox that never changed
    # (mod-sequence-valzer), whose SELECT still says 1 (never 0).
    assert c.cmd("STATUS INBOX (HIGHESTMODSEQ MESSAGES)") == (
        ['STATUS "INBOX" (HIGHESTMODSEQ 2 MESSAGES 2)'], "OK STATUS completed")
    c.ok("CREATE Empty")
    assert c.cmd("STATUS Empty (HIGHESTMODSEQ)") == (
        ['STATUS "Empty" (HIGHESTMODSEQ 0)'], "OK STATUS completed")
    u, t = c.cmd("SELECT Empty")
    assert "OK [HIGHESTMODSEQ 1] Highest" in u, u


def test_list_status_enables_condstore(env):
    deliver(env.ternd, "user15", 2)
    c = Imap(env.ternd, "user15", rev2=True)
    c.select()
    assert c.cmd('LIST "" INBOX RETURN (STATUS (HIGHESTMODSEQ))') == (
        ["OK [HIGHESTMODSEQ 2] Highest", 'LIST (\\HasNoChildren) "/" "INBOX"',
         'STATUS "INBOX" (HIGHESTMODSEQ 2)'], "OK LIST completed")
    assert c.cmd("FETCH 1 (FLAGS)") == (
        ["1 FETCH (UID 1 FLAGS () MODSEQ (1))"], "OK FETCH completed")


def test_status_enables_condstore(env):
    deliver(env.ternd, "user03", 2)
    c = Imap(env.ternd, "user03", rev2=True)
    c.select()
    # STATUS HIGHESTMODSEQ is a CONDSTORE-enabling command (RFC 7162 3.1).
    assert c.cmd("STATUS INBOX (HIGHESTMODSEQ)") == (
        ["OK [HIGHESTMODSEQ 2] Highest", 'STATUS "INBOX" (HIGHESTMODSEQ 2)'],
        "OK STATUS completed")
    assert c.cmd("STORE 2 +FLAGS (\\Answered)") == (
        ["2 FETCH (UID 2 FLAGS (\\Answered) MODSEQ (3))"], "OK STORE completed")


# ---- FETCH, SEARCH, STORE -----------------------------------------------------------


def test_fetch_modseq_and_changedsince(env):
    deliver(env.ternd, "user04", 4)
    c = Imap(env.ternd, "user04", rev2=True)
    c.select()
    assert c.cmd("FETCH 1:2 (MODSEQ)") == (
        ["OK [HIGHESTMODSEQ 4] Highest", "1 FETCH (UID 1 MODSEQ (1))",
         "2 FETCH (UID 2 MODSEQ (2))"],
        "OK FETCH completed")
    c.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")  # MODSEQ 5
    assert c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE 3)") == (
        ["1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (5))", "4 FETCH (UID 4 FLAGS () MODSEQ (4))"],
        "OK FETCH completed")
    assert c.cmd("UID FETCH 2:3 (FLAGS) (CHANGEDSINCE 4)") == ([], "OK FETCH completed")
    # CHANGEDSINCE takes a mod-sequence-value: 0 and junk are BAD, as is
    # VANISHED without QRESYNC or outside UID FETCH.
    for bad in ["FETCH 1 FLAGS (CHANGEDSINCE 0)", "FETCH 1 FLAGS (CHANGEDSINCE x)",
                "FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)",
                "FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)",
                "UID FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",
                "FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)"]:
        assert c.cmd(bad)[1].startswith("BAD"), bad


def test_search_modseq(env):
    deliver(env.ternd, "user05", 5)
    c = Imap(env.ternd, "user05")  # rev1: SEARCH responses
    claim(env.ternd, "user05")
    c.select()
    assert c.cmd("SEARCH MODSEQ 4") == (
        ["OK [HIGHESTMODSEQ 5] Highest", "SEARCH 4 5 (MODSEQ 5)"], "OK SEARCH completed")
    assert c.cmd("SEARCH MODSEQ 6") == (["SEARCH"], "OK SEARCH completed")
    # MODSEQ 0 matches every message; an entry name is accepted.
    assert c.cmd('UID SEARCH MODSEQ "/flags/\\\\draft" all 0') == (
        ["SEARCH 1 2 3 4 5 (MODSEQ 5)"], "OK UID SEARCH completed")
    # ESEARCH (RFC 7162 3.1.10): MIN alone gives that message's MODSEQ,
    # with COUNT or ALL the highest of all found.
    assert c.cmd("SEARCH RETURN (MIN) MODSEQ 2") == (
        ['ESEARCH (TAG "a%d") MIN 2 MODSEQ 2' % c.n], "OK SEARCH completed")
    assert c.cmd("SEARCH RETURN (MIN COUNT) MODSEQ 2") == (
        ['ESEARCH (TAG "a%d") MIN 2 COUNT 4 MODSEQ 5' % c.n], "OK SEARCH completed")
    assert c.cmd("SEARCH RETURN (ALL) MODSEQ 3")[0] == [
        'ESEARCH (TAG "a%d") ALL 3:5 MODSEQ 5' % c.n]
    assert c.cmd("SEARCH MODSEQ -1")[1].startswith("BAD")


def test_store_unchangedsince_modified(env):
    deliver(env.ternd, "user06", 3)
    a = Imap(env.ternd, "user06", rev2=True)
    b = Imap(env.ternd, "user06", rev2=True)
    a.ok("SELECT INBOX (CONDSTORE)")
    b.select()
    b.ok("STORE 2 +FLAGS (\\Seen)")  # MODSEQ 4, behind a's back
    # a's conditional store: 2 changed after 3 and is refused; the other
    # two get new MODSEQs; 2's change is then reported as well.
    assert a.cmd("STORE 1:3 (UNCHANGEDSINCE 3) +FLAGS (\\Flagged)") == (
        ["1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (5))",
         "3 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (6))",
         "2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (4))"],
        "OK [MODIFIED 2] Conditional STORE failed")
    assert a.cmd("UID STORE 1:3 (UNCHANGEDSINCE 5) -FLAGS.SILENT (\\Flagged)") == (
        ["1 FETCH (UID 1 MODSEQ (7))"], "OK [MODIFIED 3] Conditional STORE failed")
    # UNCHANGEDSINCE 0 fails for every message (each has a MODSEQ).
    assert a.cmd("STORE 1:2 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)") == (
        [], "OK [MODIFIED 1:2] Conditional STORE failed")
    assert a.cmd("STORE 1 (UNCHANGEDSINCE -1) +FLAGS (\\Seen)")[1].startswith("BAD")
    # b (CONDSTORE enabled by the plain UNCHANGEDSINCE) sees a's changes
    # with their MODSEQs; .SILENT still tells the new MODSEQ (3.1.3).
    assert b.cmd("STORE 3 (UNCHANGEDSINCE 100) +FLAGS.SILENT (\\Draft)") == (
        ["OK [HIGHESTMODSEQ 4] Highest",
         "3 FETCH (UID 3 MODSEQ (8))",
         "1 FETCH (UID 1 FLAGS () MODSEQ (7))"],
        "OK STORE completed")


def test_other_session_changes_carry_modseq(env):
    deliver(env.ternd, "user07", 3)
    a = Imap(env.ternd, "user07", rev2=True)
    a.ok("SELECT INBOX (CONDSTORE)")
    b = Imap(env.ternd, "user07", rev2=True)
    b.select()
    b.ok("STORE 2 +FLAGS (\\Flagged $Work)")
    assert a.cmd("NOOP") == (
        [FLAGS[:-1] + " $Work)",
         PERM.replace(" \\*)", " $Work \\*)"),
         "2 FETCH (UID 2 FLAGS (\\Flagged $Work) MODSEQ (4))"],
        "OK NOOP completed")
    b.ok("STORE 2 -FLAGS ($Work)")
    b.ok("STORE 3 +FLAGS (\\Seen)")
    assert a.cmd("NOOP") == (
        ["2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (5))",
         "3 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (6))"], "OK NOOP completed")


# ---- VANISHED -----------------------------------------------------------------


def test_vanished_replaces_expunge(env):
    t = env.ternd
    deliver(t, "user08", 6)
    a = qresync_session(t, "user08")
    a.select()
    expunge(t, "user08", "2,4")  # MODSEQs 7, 8 (store), 9, 10 (expunges)
    assert a.cmd("NOOP") == (["VANISHED 2,4"], "OK NOOP completed")
    # Own EXPUNGE: VANISHED and the new HIGHESTMODSEQ.
    a.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")  # UIDs 1, 3: 11, 12
    assert a.cmd("EXPUNGE") == (["VANISHED 1,3"], "OK [HIGHESTMODSEQ 14] EXPUNGE completed")
    a.ok("UID STORE 5:6 +FLAGS.SILENT (\\Deleted)")  # 15, 16
    assert a.cmd("UID EXPUNGE 6") == (["VANISHED 6"],
                                      "OK [HIGHESTMODSEQ 17] UID EXPUNGE completed")
    # MOVE: COPYUID, then VANISHED (RFC 6851 4.3 with QRESYNC).
    u, tag = a.cmd("UID MOVE 5 Trash")
    assert len(u) == 2 and re.fullmatch(r"OK \[COPYUID \d+ 5 1\] Moved", u[0]) and \
        u[1] == "VANISHED 5", u
    assert tag == "OK MOVE completed"
    assert a.cmd("NOOP") == ([], "OK NOOP completed")
    # FETCH never announces expunges, VANISHED or not: held to the NOOP.
    deliver(t, "user08", 1)  # UID 7, MODSEQ 19
    a.ok("NOOP")
    expunge(t, "user08", "1")
    assert a.cmd("FETCH 1 (UID)") == (
        [], "OK [EXPUNGEISSUED] Some messages were expunged meanwhile")
    assert a.cmd("NOOP") == (["VANISHED 7"], "OK NOOP completed")


def test_uid_fetch_vanished(env):
    t = env.ternd
    deliver(t, "user09", 6)
    a = qresync_session(t, "user09")
    a.select()
    expunge(t, "user09", "2,3,5")  # 7, 8, 9 store; 10, 11, 12 expunges
    b = Imap(t, "user09", rev2=True)
    b.select()
    b.ok("STORE 3 +FLAGS (\\Answered)")  # UID 6: MODSEQ 13
    # The session still has 2, 3 and 5 in its view (a FETCH may not
    # announce expunges): they are not VANISHED (EARLIER) yet, the
    # FETCH skips them ([EXPUNGEISSUED]), and the NOOP tells them. The
    # flag change the FETCH showed is not told again.
    assert a.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12 VANISHED)") == (
        ["6 FETCH (UID 6 FLAGS (\\Answered) MODSEQ (13))"],
        "OK [EXPUNGEISSUED] Some messages were expunged meanwhile")
    assert a.cmd("NOOP") == (["VANISHED 2:3,5"], "OK NOOP completed")
    # Now they are earlier news, before the FETCH responses; only the
    # UIDs of the set, expunged after the mod-sequence given.
    assert a.cmd("UID FETCH 1:4 (FLAGS) (CHANGEDSINCE 1 VANISHED)") == (
        ["VANISHED (EARLIER) 2:3", "2 FETCH (UID 4 FLAGS () MODSEQ (4))"],
        "OK FETCH completed")
    assert a.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 10 VANISHED)") == (
        ["VANISHED (EARLIER) 3,5", "3 FETCH (UID 6 FLAGS (\\Answered) MODSEQ (13))"],
        "OK FETCH completed")
    assert a.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 13 VANISHED)") == (
        [], "OK FETCH completed")
    # "*" reaches the highest UID ever given, and no further.
    assert a.cmd("UID FETCH 5:* (UID) (CHANGEDSINCE 11 VANISHED)") == (
        ["VANISHED (EARLIER) 5", "3 FETCH (UID 6 MODSEQ (13))"], "OK FETCH completed")


def test_idle_with_qresync(env):
    t = env.ternd
    deliver(t, "user14", 3)
    a = qresync_session(t, "user14")
    a.select()
    start_idle(a)
    b = Imap(t, "user14", rev2=True)
    b.select()
    b.ok("STORE 1 +FLAGS.SILENT (\\Seen)")  # 4
    expect(a, ["1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (4))"])
    b.ok("MOVE 2 Trash")  # 5
    expect(a, ["VANISHED 2"])
    a.send("DONE\r\n")
    assert a.readline() == b"idle1 OK IDLE terminated"
    assert a.cmd("NOOP") == ([], "OK NOOP completed")


# ---- SELECT/EXAMINE (QRESYNC ...) -------------------------------------------------------


def test_qresync_after_away(env):
    t = env.ternd
    deliver(t, "user10", 8)  # UIDs 1..8, MODSEQs 1..8
    a = qresync_session(t, "user10")
    u, tag = a.cmd("SELECT INBOX")
    uv = uidvalidity(u)
    mid = mailboxid(u)
    # Nothing changed since 8: the plain answer, no VANISHED, no FETCH.
    assert a.cmd("SELECT INBOX (QRESYNC (%d 8))" % uv) == (
        ["OK [CLOSED] Previous mailbox closed"] + rev2_select(8, uv, 9, 8, mid),
        "OK [READ-WRITE] SELECT completed")
    a.cmd("LOGOUT")

    # While the client is away: a flag change, three expunges, new mail.
    b = Imap(t, "user10", rev2=True)
    b.select()
    b.ok("STORE 3 +FLAGS (\\Flagged)")  # 9
    b.cmd("LOGOUT")
    expunge(t, "user10", "2,5,7")  # 10, 11, 12 store; 13, 14, 15 expunges
    deliver(t, "user10", 1)  # UID 9, MODSEQ 16

    a = qresync_session(t, "user10")
    assert a.cmd("SELECT INBOX (QRESYNC (%d 8))" % uv) == (
        rev2_select(6, uv, 10, 16, mid) +
        ["VANISHED (EARLIER) 2,5,7",
         "2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (9))",
         "6 FETCH (UID 9 FLAGS () MODSEQ (16))"],
        "OK [READ-WRITE] SELECT completed")
    # known-uids limit both (RFC 7162 3.2.5.1); a reselect is [CLOSED].
    assert a.cmd("SELECT INBOX (QRESYNC (%d 8 1:4))" % uv) == (
        ["OK [CLOSED] Previous mailbox closed"] + rev2_select(6, uv, 10, 16, mid) +
        ["VANISHED (EARLIER) 2", "2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (9))"],
        "OK [READ-WRITE] SELECT completed")
    # Only what came after the mod-sequence given: 2 went at 13.
    assert a.cmd("SELECT INBOX (QRESYNC (%d 13))" % uv)[0][-3:] == [
        'LIST (\\HasNoChildren) "/" "INBOX"', "VANISHED (EARLIER) 5,7",
        "6 FETCH (UID 9 FLAGS () MODSEQ (16))"]
    # seq-match-data (with or without known-uids) changes nothing while
    # the store remembers every expunge.
    full = rev2_select(6, uv, 10, 16, mid) + [
        "VANISHED (EARLIER) 2,5,7", "2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (9))",
        "6 FETCH (UID 9 FLAGS () MODSEQ (16))"]
    assert a.cmd("SELECT INBOX (QRESYNC (%d 8 1:8 (2,4,8 2,4,8)))" % uv) == (
        ["OK [CLOSED] Previous mailbox closed"] + full[:-1],  # 9 is not known
        "OK [READ-WRITE] SELECT completed")
    assert a.cmd("SELECT INBOX (QRESYNC (%d 8 (1:3 1,3,4)) CONDSTORE)" % uv) == (
        ["OK [CLOSED] Previous mailbox closed"] + full, "OK [READ-WRITE] SELECT completed")
    # EXAMINE too, read-only.
    u, tag = a.cmd("EXAMINE INBOX (QRESYNC (%d 8 9))" % uv)
    assert u[-2:] == ['LIST (\\HasNoChildren) "/" "INBOX"',
                      "6 FETCH (UID 9 FLAGS () MODSEQ (16))"], u
    assert tag == "OK [READ-ONLY] EXAMINE completed"
    # A UIDVALIDITY that does not hold: QRESYNC is ignored (3.2.5.1).
    assert a.cmd("SELECT INBOX (QRESYNC (%d 8))" % (uv + 1)) == (
        ["OK [CLOSED] Previous mailbox closed"] + rev2_select(6, uv, 10, 16, mid),
        "OK [READ-WRITE] SELECT completed")
    # Then the client is in sync: NOOP says nothing; another session's
    # expunge comes as VANISHED.
    assert a.cmd("NOOP") == ([], "OK NOOP completed")
    expunge(t, "user10", "1")  # 17 store, 18 expunge
    assert a.cmd("NOOP") == (["VANISHED 1"], "OK NOOP completed")
    a.cmd("LOGOUT")
    a = qresync_session(t, "user10")
    assert a.cmd("SELECT INBOX (QRESYNC (%d 16 1:9))" % uv)[0][-1:] == ["VANISHED (EARLIER) 1"]


def test_qresync_rev1_session(env):
    t = env.ternd
    deliver(t, "user11", 3)
    claim(t, "user11")
    a = Imap(t, "user11")
    assert a.cmd("ENABLE QRESYNC") == (["ENABLED QRESYNC"], "OK ENABLE completed")
    u = a.ok("SELECT INBOX")
    uv, mid = uidvalidity(u), mailboxid(u)
    a.cmd("LOGOUT")
    expunge(t, "user11", "1")  # 4 store, 5 expunge
    deliver(t, "user11", 1)  # UID 4, MODSEQ 6
    a = Imap(t, "user11")
    a.ok("ENABLE QRESYNC")
    # rev1: RECENT and UNSEEN as usual; the new message is \Recent here.
    assert a.cmd("SELECT INBOX (QRESYNC (%d 3))" % uv) == (
        [FLAGS, PERM, "3 EXISTS", "1 RECENT", "OK [UNSEEN 1] First unseen",
         "OK [UIDVALIDITY %d] UIDs valid" % uv, "OK [UIDNEXT 5] Predicted next UID",
         "OK [MAILBOXID (%s)] Ok" % mid, "OK [HIGHESTMODSEQ 6] Highest", "VANISHED (EARLIER) 1",
         "3 FETCH (UID 4 FLAGS (\\Recent) MODSEQ (6))"],
        "OK [READ-WRITE] SELECT completed")
    # A rev1 EXPUNGE becomes VANISHED as well.
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")  # 7
    assert a.cmd("EXPUNGE") == (["VANISHED 2"], "OK [HIGHESTMODSEQ 8] EXPUNGE completed")
    # CLOSE sends nothing (RFC 7162 3.2.8).
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert a.cmd("CLOSE") == ([], "OK CLOSE completed")


@pytest.mark.parametrize("param", [
    "(QRESYNC)", "(QRESYNC ())", "(QRESYNC (1))", "(QRESYNC (0 5))", "(QRESYNC (1 0))",
    "(QRESYNC (1 x))", "(QRESYNC (x 1))", "(QRESYNC (1 -1))", "(QRESYNC (1 9223372036854775808))",
    "(QRESYNC (4294967296 1))", "(QRESYNC (1 1 1:*))", "(QRESYNC (1 1 $))", "(QRESYNC (1 1 0:3))",
    "(QRESYNC (1 1 1:3 (1:2 1)))", "(QRESYNC (1 1 1:3 (1:2)))", "(QRESYNC (1 1 (1 1) 1:3))",
    "(QRESYNC (1 1 1:3 (1 1) x))", "(QRESYNC (1 1 1:3 (1:* 1:2)))", "(QRESYNC (1 1 1:3 1:3))",
    "(QRESYNC (1 1 1:3 (1:100000 1:100000)))", "(QRESYNC (1 1) QRESYNC (1 1))",
    "(QRESYNC 1 1)", '(QRESYNC (1 "1"))',
])
def test_qresync_bad_parameters(env, param):
    t = env.ternd
    deliver(t, "user12", 1)
    a = qresync_session(t, "user12")
    a.select()
    u, tag = a.cmd("SELECT INBOX %s" % param)
    assert u == [] and tag.startswith("BAD"), (param, u, tag)
    # The BAD leaves the session as it was: still selected.
    assert a.cmd("NOOP") == ([], "OK NOOP completed")


def test_qresync_needs_enable(env):
    t = env.ternd
    deliver(t, "user13", 1)
    a = Imap(t, "user13", rev2=True)
    a.ok("ENABLE CONDSTORE")
    assert a.cmd("SELECT INBOX (QRESYNC (1 1))") == ([], "BAD QRESYNC is not enabled")
    assert a.cmd("UID FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)")[1].startswith("BAD")
    # Without QRESYNC, expunges stay EXPUNGE even with CONDSTORE.
    a.select()
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert a.cmd("EXPUNGE") == (["1 EXPUNGE"], "OK [HIGHESTMODSEQ 3] EXPUNGE completed")
