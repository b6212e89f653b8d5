"""IMAP NOTIFY (RFC 5465): after NOTIFY SET a session is told, unsolicited
and without IDLE or NOOP, of what a second session or a delivery changes:
STATUS for the other personal mailboxes, EXISTS and FETCH with the
MessageNew attributes, FETCH FLAGS and EXPUNGE (VANISHED with QRESYNC) for
the selected one, LIST for CREATE/RENAME (OLDNAME)/DELETE and for
SUBSCRIBE, METADATA naming the entries a SETMETADATA changed (mailbox and
server entries). NOTIFY NONE stops it, NOTIFY SET STATUS starts with a
STATUS of each mailbox, SELECTED-DELAYED holds expunges for a command, and
bad event groups get BAD, NO [BADEVENT (...)] or NO [NOTIFICATIONOVERFLOW]."""
import socket

import pytest

import harness

from test_imap_msg import Imap, deliver

SUPPORTED = ("[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange "
             "MailboxMetadataChange ServerMetadataChange)]")
MAIN = ("NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
        "(personal (MessageNew MessageExpunge MailboxName SubscriptionChange))")
# Only a guard against a hang: what is expected arrives long before.
ARRIVE = 20.0


@pytest.fixture(scope="module")
def env():
    e = harness.Env()
    yield e
    e.close()


def expect(c, lines):
    """The next lines c reads, unsolicited, are exactly `lines`."""
    got = []
    c.sock.settimeout(ARRIVE)
    try:
        while len(got) < len(lines):
            got.append(c.readline().decode())
    except socket.timeout:
        raise AssertionError("got %r, want %r" % (got, lines))
    finally:
        c.sock.settimeout(harness.TIMEOUT)
    assert got == ["* " + x for x in lines], got


def quiet(c, seconds=0.5):
    """Nothing unsolicited is waiting (a NOOP's untagged lines tell the
    same thing without waiting, for the selected mailbox)."""
    c.sock.settimeout(seconds)
    try:
        data = c.buf or c.sock.recv(4096)
    except socket.timeout:
        data = b""
    finally:
        c.sock.settimeout(harness.TIMEOUT)
    assert data == b"", data


def uidvalidity(c, box):
    u = c.ok("STATUS %s (UIDVALIDITY)" % box)
    return int(u[0].split("UIDVALIDITY ")[1].rstrip(")"))


def test_capability_and_bad_groups(env):
    t = env.ternd
    deliver(t, "user21", 1)
    c = Imap(t)
    u, tagged = c.cmd("NOTIFY NONE")
    assert tagged == "BAD NOTIFY needs authentication first"
    c = Imap(t, "user21")
    assert "NOTIFY" in c.ok("CAPABILITY")[0].split()
    c.select()
    bad = [
        "NOTIFY",
        "NOTIFY BOGUS",
        "NOTIFY SET",
        "NOTIFY SET STATUS",
        "NOTIFY NONE (personal (MessageNew MessageExpunge))",
        "NOTIFY SET (personal ())",
        "NOTIFY SET (personal MessageNew)",
        "NOTIFY SET (bogus (MessageNew MessageExpunge))",
        "NOTIFY SET (mailboxes (MessageNew MessageExpunge))",
        "NOTIFY SET (subtree () (MessageNew MessageExpunge))",
        # RFC 5465 5: MessageNew and MessageExpunge together; FlagChange
        # and AnnotationChange need both; in every group.
        "NOTIFY SET (selected (MessageNew))",
        "NOTIFY SET (personal (MessageExpunge))",
        "NOTIFY SET (personal (FlagChange))",
        "NOTIFY SET (selected (MessageNew FlagChange))",
        # One selected filter, message events only.
        "NOTIFY SET (selected (MailboxName))",
        "NOTIFY SET (selected-delayed (SubscriptionChange))",
        "NOTIFY SET (selected (MessageNew MessageExpunge)) "
        "(selected-delayed (MessageNew MessageExpunge))",
        # Fetch attributes: for the selected mailbox, and valid ones.
        "NOTIFY SET (personal (MessageNew (UID) MessageExpunge))",
        "NOTIFY SET (selected (MessageNew (BOGUS) MessageExpunge))",
    ]
    for cmd in bad:
        u, tagged = c.cmd(cmd)
        assert tagged.startswith("BAD "), (cmd, tagged)
        assert u == [], (cmd, u)
    # Message annotations (RFC 5257) Tern has not: AnnotationChange is
    # refused, also beside the supported metadata events.
    for cmd in ["NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange))",
                "NOTIFY SET (selected (MessageNew MessageExpunge AnnotationChange))",
                "NOTIFY SET (personal (MailboxMetadataChange)) "
                "(inboxes (MessageNew MessageExpunge AnnotationChange))",
                "NOTIFY SET (inboxes (XUnknownEvent))"]:
        assert c.cmd(cmd) == ([], "NO %s Unsupported NOTIFY event" % SUPPORTED), cmd
    c = Imap(t, "user21")  # a session closes after 20 BADs
    c.select()
    # The metadata events are for mailbox filters, not the selected one.
    for cmd in ["NOTIFY SET (selected (MailboxMetadataChange))",
                "NOTIFY SET (selected-delayed (ServerMetadataChange))"]:
        assert c.cmd(cmd) == ([], "BAD Invalid NOTIFY event group"), cmd
    names = " ".join("box%d" % i for i in range(1001))
    assert c.cmd("NOTIFY SET (mailboxes (%s) (MessageNew MessageExpunge))" % names) == (
        [], "NO [NOTIFICATIONOVERFLOW] Too many mailbox names")
    # A mailbox name that is not modified UTF-7 is the BAD of any command.
    assert c.cmd("NOTIFY SET (mailboxes &Jjo (MessageNew MessageExpunge))")[1] == (
        "BAD Mailbox name is not valid modified UTF-7")
    # The good ones, as the RFC writes them (case-insensitive).
    assert c.cmd(MAIN) == ([], "OK NOTIFY completed")
    assert c.cmd("NOTIFY SET (personal (MailboxMetadataChange)) "
                 "(inboxes (ServerMetadataChange MailboxName))") == ([], "OK NOTIFY completed")
    assert c.cmd("notify set (Selected-Delayed (messagenew messageexpunge flagchange)) "
                 "(subtree (INBOX Archive) (MessageNew MessageExpunge)) "
                 "(mailboxes Sent NONE) (subscribed (MailboxName)) (inboxes NONE)") == (
        [], "OK NOTIFY completed")
    assert c.cmd("NOTIFY NONE") == ([], "OK NOTIFY completed")


def test_unsolicited_without_idle(env):
    t = env.ternd
    login = "user22"
    deliver(t, login, 1)
    c = Imap(t, login, rev2=True)
    assert c.select() == 1
    o = Imap(t, login, rev2=True)
    assert o.select() == 1
    archive = uidvalidity(c, "Archive")
    assert c.cmd(MAIN) == ([], "OK NOTIFY completed")

    # Another mailbox gets a message: STATUS, with no command running.
    o.ok("COPY 1 Archive")
    expect(c, ["STATUS \"Archive\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d UNSEEN 1)" % archive])
    # The selected one: EXISTS, then FETCH with the MessageNew attributes.
    deliver(t, login, 1)
    expect(c, ["2 EXISTS", "2 FETCH (UID 2 FLAGS ())"])
    # Another session's flag change and expunge.
    o.ok("NOOP")
    o.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    expect(c, ["1 FETCH (UID 1 FLAGS (\\Flagged))"])
    o.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    expect(c, ["2 FETCH (UID 2 FLAGS (\\Deleted))"])
    o.ok("EXPUNGE")
    expect(c, ["2 EXPUNGE"])
    # Mailbox names and subscriptions.
    o.ok("CREATE Projects")
    expect(c, ["LIST (\\HasNoChildren) \"/\" \"Projects\""])
    o.ok("RENAME Projects Work")
    expect(c, ["LIST (\\HasNoChildren) \"/\" \"Work\" (\"OLDNAME\" (\"Projects\"))"])
    o.ok("SUBSCRIBE Work")
    expect(c, ["LIST (\\Subscribed \\HasNoChildren) \"/\" \"Work\""])
    o.ok("UNSUBSCRIBE Work")
    expect(c, ["LIST (\\HasNoChildren) \"/\" \"Work\""])
    o.ok("DELETE Work")
    expect(c, ["LIST (\\NonExistent) \"/\" \"Work\""])
    # Nothing else was waiting, and the view is in step.
    quiet(c)
    assert c.ok("NOOP") == []
    assert c.ok("UID SEARCH ALL") == ["ESEARCH (TAG \"a%d\") UID ALL 1" % c.n]

    # NOTIFY NONE: nothing more unsolicited; the selected mailbox is told
    # at the next command, as without NOTIFY.
    assert c.cmd("NOTIFY NONE") == ([], "OK NOTIFY completed")
    o.ok("COPY 1 Archive")
    deliver(t, login, 1)
    o.ok("CREATE Quiet")
    quiet(c)
    assert c.ok("NOOP") == ["2 EXISTS"]

    # NOTIFY SET STATUS: a STATUS for every mailbox it covers but the
    # selected one, before the OK; HIGHESTMODSEQ once CONDSTORE is on.
    c.ok("STATUS INBOX (HIGHESTMODSEQ)")  # enables CONDSTORE (RFC 7162 3.1)
    u, tagged = c.cmd("NOTIFY SET STATUS (personal (MessageNew MessageExpunge))")
    assert tagged == "OK NOTIFY completed"
    assert [x.split(" (")[0] for x in u] == [
        "STATUS \"Archive\"", "STATUS \"Drafts\"", "STATUS \"Junk\"", "STATUS \"Quiet\"",
        "STATUS \"Sent\"", "STATUS \"Trash\""], u
    assert u[0].startswith("STATUS \"Archive\" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY %d UNSEEN 2 "
                           "HIGHESTMODSEQ " % archive), u
    # Without MailboxName, a CREATE is not told.
    o.ok("CREATE Silent")
    o.ok("COPY 1 Silent")
    silent = uidvalidity(o, "Silent")
    # (the view is in step first: the new message above was EXISTS'd)
    c.sock.settimeout(ARRIVE)
    line = c.readline().decode()
    c.sock.settimeout(harness.TIMEOUT)
    assert line.startswith("* STATUS \"Silent\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d UNSEEN 1 "
                           "HIGHESTMODSEQ " % silent), line
    quiet(c)


def test_filters_and_none(env):
    t = env.ternd
    login = "user23"
    deliver(t, login, 1)
    o = Imap(t, login)
    o.select()
    o.ok("CREATE Lists/a")
    o.ok("CREATE Other")
    c = Imap(t, login)  # not selected: message events of INBOX too
    assert c.cmd("NOTIFY SET (mailboxes Trash NONE) (subtree Lists (MessageNew MessageExpunge)) "
                 "(mailboxes (Sent INBOX) (MessageNew MessageExpunge FlagChange))") == (
        [], "OK NOTIFY completed")
    v = {b: uidvalidity(c, b) for b in ("Lists/a", "Sent", "INBOX")}
    o.ok("COPY 1 Trash")   # NONE
    o.ok("COPY 1 Other")   # no filter
    o.ok("COPY 1 Lists/a")
    expect(c, ["STATUS \"Lists/a\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d UNSEEN 1)" % v["Lists/a"]])
    # FlagChange alone: a STATUS too (UNSEEN changed).
    o.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    expect(c, ["STATUS \"INBOX\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d UNSEEN 0)" % v["INBOX"]])
    # The subtree has no FlagChange: nothing.
    o.ok("SELECT Lists/a")
    o.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    o.ok("COPY 1 Sent")
    expect(c, ["STATUS \"Sent\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d UNSEEN 0)" % v["Sent"]])
    quiet(c)


def test_selected_delayed_holds_expunges(env):
    t = env.ternd
    login = "user24"
    deliver(t, login, 2)
    c = Imap(t, login, rev2=True)
    assert c.select() == 2
    o = Imap(t, login, rev2=True)
    o.select()
    assert c.cmd("NOTIFY SET (selected-delayed (MessageNew MessageExpunge FlagChange))") == (
        [], "OK NOTIFY completed")
    o.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    expect(c, ["1 FETCH (UID 1 FLAGS (\\Deleted))"])
    o.ok("EXPUNGE")
    deliver(t, login, 1)
    # The new message is told at once; the expunge waits for a command
    # that may report it (FETCH may not).
    expect(c, ["3 EXISTS"])
    u, tagged = c.cmd("FETCH 1 (FLAGS)")
    assert (u, tagged) == ([], "OK [EXPUNGEISSUED] Some messages were expunged meanwhile")
    assert c.ok("NOOP") == ["1 EXPUNGE"]
    quiet(c)


def test_qresync_vanished_and_idle(env):
    t = env.ternd
    login = "user25"
    deliver(t, login, 2)
    c = Imap(t, login)
    c.ok("ENABLE QRESYNC")
    c.select()
    o = Imap(t, login)
    o.select()
    assert c.cmd("NOTIFY SET (selected (MessageNew MessageExpunge)) "
                 "(personal (MessageNew MessageExpunge))") == ([], "OK NOTIFY completed")
    o.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    o.ok("EXPUNGE")
    # (Flag updates come with the others even without FlagChange: base
    # IMAP allows a FETCH at any time.)
    expect(c, ["1 FETCH (UID 1 FLAGS (\\Deleted \\Recent) MODSEQ (3))", "VANISHED 1"])
    # During IDLE the same notifications come, other mailboxes too.
    c.send("i1 IDLE\r\n")
    assert c.readline() == b"+ idling"
    o.ok("COPY 1 Junk")
    line = None
    c.sock.settimeout(ARRIVE)
    line = c.readline().decode()
    c.sock.settimeout(harness.TIMEOUT)
    assert line.startswith("* STATUS \"Junk\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY "), line
    assert line.endswith(" UNSEEN 1 HIGHESTMODSEQ %s)" % line.split("HIGHESTMODSEQ ")[1][:-1])
    c.send("DONE\r\n")
    assert c.readline() == b"i1 OK IDLE terminated"


def test_metadata_events(env):
    """RFC 5465 5.5, 5.6: METADATA with the names of the entries another
    session changed, no values (RFC 5464 4.4.2), one response per mailbox,
    for the mailboxes the filters cover and for the user's server entries;
    /private entries of a reader of a shared mailbox are the reader's."""
    t = env.ternd
    owner, reader = "user26", "user27"
    c = Imap(t, owner)
    o = Imap(t, owner)
    o.ok("CREATE Box")
    o.ok("CREATE Other")
    assert c.cmd("NOTIFY SET (personal (MailboxMetadataChange ServerMetadataChange))") == (
        [], "OK NOTIFY completed")
    o.ok("SETMETADATA Box (/shared/comment \"hello\")")
    expect(c, ["METADATA \"Box\" /shared/comment"])
    # Several entries of one command: one response; an entry set to the
    # value it has is no change.
    o.ok("SETMETADATA Box (/shared/comment \"hello\" /private/comment \"mine\" "
         "/private/vendor/tern/x \"1\")")
    expect(c, ["METADATA \"Box\" /private/comment /private/vendor/tern/x"])
    # Removal is a change; removing what is absent is none.
    o.ok("SETMETADATA Box (/private/comment NIL /private/none NIL)")
    expect(c, ["METADATA \"Box\" /private/comment"])
    # The user's server entries. Shared ones come from the config and
    # cannot be set, so they never change under a session.
    o.ok("SETMETADATA \"\" (/private/comment \"server\")")
    expect(c, ["METADATA \"\" /private/comment"])
    assert o.cmd("SETMETADATA \"\" (/shared/comment \"x\")") == (
        [], "NO [NOPERM] Shared server annotations are read-only")
    # A session's own change is told to it too (after its tagged reply).
    assert c.cmd("SETMETADATA Other (/shared/comment \"own\")") == (
        [], "OK SETMETADATA completed")
    expect(c, ["METADATA \"Other\" /shared/comment"])
    quiet(c)

    # Only what the filters cover: Box, and no server entries.
    assert c.cmd("NOTIFY SET (mailboxes Box (MailboxMetadataChange))") == (
        [], "OK NOTIFY completed")
    o.ok("SETMETADATA Other (/shared/comment \"not told\")")
    o.ok("SETMETADATA \"\" (/private/comment \"not told\")")
    o.ok("SETMETADATA Box (/shared/comment \"told\")")
    expect(c, ["METADATA \"Box\" /shared/comment"])
    # ServerMetadataChange alone: server entries only.
    assert c.cmd("NOTIFY SET (subtree Nothing (ServerMetadataChange))") == (
        [], "OK NOTIFY completed")
    o.ok("SETMETADATA Box (/shared/comment \"not told\")")
    o.ok("SETMETADATA \"\" (/private/vendor/tern/motd \"hi\")")
    expect(c, ["METADATA \"\" /private/vendor/tern/motd"])
    # Without the metadata events, nothing.
    assert c.cmd("NOTIFY SET (personal (MailboxName))") == ([], "OK NOTIFY completed")
    o.ok("SETMETADATA Box (/shared/comment \"quiet\")")
    o.ok("SETMETADATA \"\" (/private/comment \"quiet\")")
    quiet(c)

    # A reader of the shared mailbox: their /private entries are theirs
    # alone (the owner is not told); a /shared one is the mailbox's.
    assert c.cmd("NOTIFY SET (personal (MailboxMetadataChange))") == (
        [], "OK NOTIFY completed")
    o.ok("SETACL Box %s lrw" % reader)
    r = Imap(t, reader)
    r.ok("SETMETADATA \"Shared/%s/Box\" (/private/comment \"reader's\")" % owner)
    r.ok("SETMETADATA \"Shared/%s/Box\" (/shared/vendor/tern/r \"1\")" % owner)
    expect(c, ["METADATA \"Box\" /shared/vendor/tern/r"])
    quiet(c)
