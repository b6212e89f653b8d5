"""test_imap_mailbox.py - IMAP mailbox commands against a real ternd:
SELECT/EXAMINE (rev1 and rev2 response sets, [CLOSED]), CREATE (special
use, trailing delimiter), DELETE, RENAME (INBOX too), SUBSCRIBE, LIST with
LIST-EXTENDED and LIST-STATUS, LSUB, STATUS, APPEND/MULTIAPPEND (APPENDUID,
TRYCREATE, quota), CLOSE, UNSELECT, EXPUNGE and UID EXPUNGE, two
sessions seeing each other's changes, and \\Recent shared by the sessions
of a mailbox (RFC 3501 2.3.2). Exact wire responses are checked with
a raw socket; messages written by APPEND are read back over POP3."""
import imaplib
import re
import time

import pytest

import harness

QUOTA_USER = "user59"
QUOTA = 3000  # bytes (roomNumber stands in for the quota attribute)


@pytest.fixture(scope="module")
def env():
    e = harness.Env(overrides={"directory": {"quota_attr": "roomNumber"}}, start_ternd=False)
    try:
        e.slapd.modify("dn: uid=%s,%s\nchangetype: modify\nadd: roomNumber\nroomNumber: %d\n"
                       % (QUOTA_USER, harness.org_ldif.PEOPLE, QUOTA))
        e.ternd = e.new_ternd({"directory": {"quota_attr": "roomNumber"}})
    except BaseException:
        e.close()
        raise
    yield e
    e.close()


class Imap(harness.RawLines):
    """A raw IMAP session: cmd() returns (untagged lines, tagged line) as str."""

    def __init__(self, t, login=None):
        super().__init__(t.imap_port)
        self.n = 0
        greeting = self.readline()
        assert greeting.startswith(b"* OK"), greeting
        if login is not None:
            _, tagged = self.cmd("LOGIN %s %s" % (login, harness.password(login)))
            assert tagged.startswith("OK"), tagged

    def cmd(self, command):
        self.n += 1
        tag = "a%d" % self.n
        untagged, tagged = self.imap(tag, command)
        return ([l.decode() for l in untagged],
                tagged[len(tag) + 1:].decode())

    def cmd_raw(self, data):
        """Sends bytes (a command with LITERAL+ literals) as tag aN."""
        self.n += 1
        tag = "a%d" % self.n
        self.send(("%s " % tag).encode() + data)
        untagged, tagged = self.imap(tag)
        return ([l.decode(errors="replace") for l in untagged],
                tagged[len(tag) + 1:].decode())

    def append(self, mailbox, msg, flags=None, date=None):
        head = "APPEND %s" % mailbox
        if flags is not None:
            head += " (%s)" % flags
        if date is not None:
            head += ' "%s"' % date
        return self.cmd_raw(head.encode() + b" {%d+}\r\n" % len(msg) + msg + b"\r\n")

    def logout(self):
        self.cmd("LOGOUT")
        self.close()


def msg(token, size_pad=0):
    return harness.make_message(token, body=b"x" * size_pad + b"\r\nbody\r\n")


def status(c, box, items):
    u, t = c.cmd("STATUS %s (%s)" % (box, items))
    assert t == "OK STATUS completed", (u, t)
    assert len(u) == 1, u
    m = re.match(r'^\* STATUS \S+ \((.*)\)$', u[0])
    assert m, u
    vals = m.group(1).split()
    return dict(zip(vals[0::2], vals[1::2]))


# ---- new users, LIST basics ------------------------------------------------

def test_new_user_gets_special_use_folders(env):
    c = Imap(env.ternd, "user01")
    u, t = c.cmd('LIST "" "*"')
    assert t == "OK LIST completed"
    assert u == [
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        '* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
        '* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
        '* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
        '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        '* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
    ]
    u, t = c.cmd('LIST (SPECIAL-USE) "" "*"')
    assert t == "OK LIST completed"
    assert [l.split('"/" ')[1] for l in u] == \
        ['"Archive"', '"Drafts"', '"Junk"', '"Sent"', '"Trash"']
    u, t = c.cmd('LSUB "" "*"')
    assert t == "OK LSUB completed"
    assert u == ['* LSUB () "/" "%s"' % n
                 for n in ("INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash")]
    # The hierarchy delimiter form.
    assert c.cmd('LIST "" ""') == (['* LIST (\\Noselect) "/" ""'], "OK LIST completed")
    # Python's imaplib sees the same.
    c.logout()
    m = env.ternd.imap_login("user01")
    typ, data = m.list()
    assert typ == "OK" and len(data) == 6
    m.logout()


def test_new_user_status_and_select_have_uidvalidity(env):
    c = Imap(env.ternd, "user14")
    st = status(c, "INBOX", "UIDVALIDITY MESSAGES UIDNEXT")
    assert int(st["UIDVALIDITY"]) > 0
    assert st["MESSAGES"] == "0" and st["UIDNEXT"] == "1"
    assert list(st) == ["UIDVALIDITY", "MESSAGES", "UIDNEXT"]
    c.logout()
    c = Imap(env.ternd, "user15")
    u, t = c.cmd("SELECT INBOX")
    assert t == "OK [READ-WRITE] SELECT completed"
    uv = [l for l in u if "UIDVALIDITY" in l]
    assert uv and not uv[0].startswith("* OK [UIDVALIDITY 0]"), u
    c.logout()


# ---- SELECT / EXAMINE --------------------------------------------------------

def test_select_rev1_responses(env):
    t = env.ternd
    t.send("user02@example.test", msg(harness.unique_token()))
    t.send("user02@example.test", msg(harness.unique_token()))
    c = Imap(t, "user02")
    u, tag = c.cmd("SELECT INBOX")
    assert tag == "OK [READ-WRITE] SELECT completed"
    # The first SELECT since the deliveries: both are \Recent here.
    assert u[:6] == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
        "Flags permitted",
        "* 2 EXISTS",
        "* 2 RECENT",
        "* OK [UNSEEN 1] First unseen",
        u[5],
    ]
    assert re.match(r"^\* OK \[UIDVALIDITY [1-9]\d*\] UIDs valid$", u[5])
    assert u[6] == "* OK [UIDNEXT 3] Predicted next UID"
    # RFC 8474 4.2: the MAILBOXID, the same as STATUS gives.
    assert len(u) == 8 and re.match(r"^\* OK \[MAILBOXID \(([A-Za-z0-9_-]+)\)\] Ok$", u[7]), u
    mid = re.match(r"^\* OK \[MAILBOXID \(([A-Za-z0-9_-]+)\)\]", u[7]).group(1)
    su, _ = c.cmd("STATUS INBOX (MAILBOXID)")
    assert su == ["* STATUS \"INBOX\" (MAILBOXID (%s))" % mid], su
    # EXAMINE while selected: [CLOSED] first, then a read-only view.
    u, tag = c.cmd("EXAMINE INBOX")
    assert tag == "OK [READ-ONLY] EXAMINE completed"
    assert u[0] == "* OK [CLOSED] Previous mailbox closed"
    assert "* OK [PERMANENTFLAGS ()] Read-only mailbox" in u
    # The SELECT above was told of both first: nothing is recent now.
    assert "* 0 RECENT" in u, u
    c.logout()


def test_select_rev2_responses(env):
    c = Imap(env.ternd, "user03")
    assert c.cmd("ENABLE IMAP4rev2") == (["* ENABLED IMAP4rev2"], "OK ENABLE completed")
    u, tag = c.cmd("SELECT Sent")
    assert tag == "OK [READ-WRITE] SELECT completed"
    assert not any("RECENT" in l or "UNSEEN" in l for l in u), u
    assert "* 0 EXISTS" in u
    assert u[-1] == '* LIST (\\HasNoChildren \\Sent) "/" "Sent"'
    # STATUS of the selected mailbox is allowed.
    assert status(c, "Sent", "MESSAGES") == {"MESSAGES": "0"}
    c.logout()


def test_failed_select_leaves_authenticated_state(env):
    c = Imap(env.ternd, "user16")
    assert c.cmd("SELECT Nope") == ([], "NO [NONEXISTENT] No such mailbox")
    assert c.cmd("CLOSE") == ([], "BAD CLOSE needs a selected mailbox")
    u, tag = c.cmd("SELECT INBOX")
    assert tag == "OK [READ-WRITE] SELECT completed"
    u, tag = c.cmd("SELECT Nope")
    assert (u, tag) == (["* OK [CLOSED] Previous mailbox closed"],
                        "NO [NONEXISTENT] No such mailbox")
    assert c.cmd("UNSELECT") == ([], "BAD UNSELECT needs a selected mailbox")
    assert c.cmd("EXPUNGE") == ([], "BAD EXPUNGE needs a selected mailbox")
    assert c.cmd('SELECT "INBOX" (FOO)')[1].startswith("BAD")
    c.logout()


def test_commands_need_login(env):
    c = Imap(env.ternd)
    assert c.cmd('LIST "" "*"') == ([], "BAD LIST needs authentication first")
    assert c.cmd("SELECT INBOX") == ([], "BAD SELECT needs authentication first")
    c.logout()


# ---- CREATE / DELETE / RENAME --------------------------------------------------

def test_create_delete_rename_hierarchy(env):
    c = Imap(env.ternd, "user04")
    u, t = c.cmd("CREATE Projects/2024/")
    assert u == [] and re.match(r"^OK \[MAILBOXID \([A-Za-z0-9_-]+\)\] CREATE completed$", t), t
    assert c.cmd("CREATE Projects")[1] == "NO [ALREADYEXISTS] Mailbox already exists"
    assert c.cmd("CREATE inbox")[1] == "NO [ALREADYEXISTS] INBOX always exists"
    u, t = c.cmd('LIST "" "Projects*"')
    assert u == ['* LIST (\\HasChildren) "/" "Projects"',
                 '* LIST (\\HasNoChildren) "/" "Projects/2024"']
    # "%" stops at the delimiter; the reference gives the context.
    u, _ = c.cmd('LIST "" "%"')
    assert '* LIST (\\HasChildren) "/" "Projects"' in u
    assert not any("Projects/2024" in l for l in u)
    assert c.cmd('LIST "Projects/" "%"')[0] == ['* LIST (\\HasNoChildren) "/" "Projects/2024"']
    # Special use at creation (RFC 6154).
    assert c.cmd("CREATE Outbox (USE (\\Sent))")[1].startswith("OK [MAILBOXID")
    assert c.cmd('LIST "" Outbox')[0] == ['* LIST (\\HasNoChildren \\Sent) "/" "Outbox"']
    assert c.cmd("CREATE Everything (USE (\\All))")[1] == \
        "NO [USEATTR] Unsupported special-use attribute \\All"
    assert c.cmd("CREATE Bad (USE (Sent))")[1].startswith("BAD")
    assert c.cmd('LIST "" Everything')[0] == []

    # DELETE: a parent with children becomes \Noselect; then it cannot go.
    assert c.cmd("DELETE Projects") == ([], "OK DELETE completed")
    assert c.cmd('LIST "" "Projects"')[0] == ['* LIST (\\Noselect \\HasChildren) "/" "Projects"']
    assert c.cmd("SELECT Projects")[1] == "NO [CANNOT] Mailbox is not selectable"
    assert c.cmd("DELETE Projects")[1] == \
        "NO [HASCHILDREN] Mailbox has children and is not selectable"
    assert c.cmd("DELETE INBOX")[1] == "NO [CANNOT] INBOX cannot be deleted"
    assert c.cmd("DELETE Nope")[1] == "NO [NONEXISTENT] No such mailbox"

    # RENAME moves the children along.
    assert c.cmd("RENAME Projects Work") == ([], "OK RENAME completed")
    u, _ = c.cmd('LIST "" "Work*"')
    assert u == ['* LIST (\\Noselect \\HasChildren) "/" "Work"',
                 '* LIST (\\HasNoChildren) "/" "Work/2024"']
    assert c.cmd('LIST "" "Projects*"')[0] == []
    assert c.cmd("RENAME Nope Other")[1] == "NO [NONEXISTENT] No such mailbox"
    assert c.cmd("RENAME Work/2024 Outbox")[1] == "NO [ALREADYEXISTS] Mailbox already exists"
    assert c.cmd("RENAME Work Work/Inner")[1] == "NO [CANNOT] Cannot rename a mailbox into itself"
    assert c.cmd("CREATE a//b")[1] == "NO [CANNOT] Invalid mailbox name"
    assert c.cmd('CREATE "a*b"')[1] == "NO [CANNOT] Mailbox names cannot contain * or %"
    assert c.cmd("DELETE Work/2024") == ([], "OK DELETE completed")
    # Patterns as atoms and as literals.
    assert c.cmd("LIST \"\" Work/%")[0] == []
    assert c.cmd("LIST \"\" Out*")[0] == ['* LIST (\\HasNoChildren \\Sent) "/" "Outbox"']
    assert c.cmd_raw(b'LIST "" {4+}\r\nOut%\r\n')[0] == \
        ['* LIST (\\HasNoChildren \\Sent) "/" "Outbox"']
    c.logout()


def test_rename_selected_mailbox_keeps_view(env):
    c = Imap(env.ternd, "user17")
    assert c.cmd("CREATE Old")[1].startswith("OK")
    c.append("Old", msg(harness.unique_token()))
    assert c.cmd("SELECT Old")[1] == "OK [READ-WRITE] SELECT completed"
    assert c.cmd("RENAME Old New") == ([], "OK RENAME completed")
    # The second message shows up in the renamed, still selected mailbox
    # (both \Recent here: the first since the SELECT).
    u, t = c.append("New", msg(harness.unique_token()))
    assert u == ["* 2 EXISTS", "* 2 RECENT"], (u, t)
    assert c.cmd("NOOP") == ([], "OK NOOP completed")
    # Deleting the selected mailbox leaves the session authenticated.
    assert c.cmd("DELETE New") == ([], "OK DELETE completed")
    assert c.cmd("CLOSE")[1] == "BAD CLOSE needs a selected mailbox"
    c.logout()


def test_rename_inbox_moves_messages(env):
    t = env.ternd
    tok = harness.unique_token()
    t.send("user05@example.test", msg(tok))
    c = Imap(t, "user05")
    assert c.cmd("RENAME INBOX Saved") == ([], "OK RENAME completed")
    assert status(c, "INBOX", "MESSAGES") == {"MESSAGES": "0"}
    assert status(c, "Saved", "MESSAGES") == {"MESSAGES": "1"}
    assert c.cmd("RENAME Saved INBOX")[1] == "NO [ALREADYEXISTS] INBOX always exists"
    c.logout()
    assert harness.count_token(t.mailbox("user05"), tok) == 0


# ---- LIST-EXTENDED, LSUB, subscriptions ------------------------------------------

def test_subscriptions_lsub_and_list_extended(env):
    c = Imap(env.ternd, "user06")
    for name in ("Fruit/Apple", "Fruit/Banana", "Veg"):
        assert c.cmd("CREATE %s" % name)[1].startswith("OK")
    for name in ("Fruit/Banana", "Ghost"):
        assert c.cmd("SUBSCRIBE %s" % name) == ([], "OK SUBSCRIBE completed")
    assert c.cmd("UNSUBSCRIBE Junk") == ([], "OK UNSUBSCRIBE completed")

    # LSUB with "%": the unsubscribed parent comes back \Noselect.
    u, t = c.cmd('LSUB "" "F%"')
    assert (u, t) == (['* LSUB (\\Noselect) "/" "Fruit"'], "OK LSUB completed")
    u, _ = c.cmd('LSUB "" "*"')
    assert '* LSUB () "/" "Fruit/Banana"' in u
    assert '* LSUB (\\Noselect) "/" "Ghost"' in u
    assert not any('"Junk"' in l for l in u)

    u, t = c.cmd('LIST (SUBSCRIBED) "" "*"')
    assert t == "OK LIST completed"
    assert '* LIST (\\Subscribed \\HasNoChildren) "/" "Fruit/Banana"' in u
    assert '* LIST (\\NonExistent \\Subscribed) "/" "Ghost"' in u
    assert not any('"Fruit/Apple"' in l or '"Junk"' in l for l in u)

    u, _ = c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert '* LIST (\\HasChildren) "/" "Fruit" ("CHILDINFO" ("SUBSCRIBED"))' in u
    assert not any('"Veg"' in l for l in u)
    assert c.cmd('LIST (RECURSIVEMATCH) "" "*"')[1].startswith("BAD")
    assert c.cmd('LIST (BOGUS) "" "*"')[1].startswith("BAD")
    assert c.cmd('LIST "" "*" RETURN (BOGUS)')[1].startswith("BAD")

    # Several patterns, RETURN (SUBSCRIBED CHILDREN).
    u, t = c.cmd('LIST "" ("INBOX" "Fruit/*") RETURN (SUBSCRIBED CHILDREN)')
    assert (u, t) == ([
        '* LIST (\\Subscribed \\HasNoChildren) "/" "INBOX"',
        '* LIST (\\HasNoChildren) "/" "Fruit/Apple"',
        '* LIST (\\Subscribed \\HasNoChildren) "/" "Fruit/Banana"',
    ], "OK LIST completed")

    # LIST-STATUS (RFC 5819): STATUS after each selectable mailbox.
    c.append("Veg", msg(harness.unique_token()))
    u, t = c.cmd('LIST "" "Veg" RETURN (STATUS (MESSAGES UNSEEN))')
    assert (u, t) == (['* LIST (\\HasNoChildren) "/" "Veg"',
                       '* STATUS "Veg" (MESSAGES 1 UNSEEN 1)'], "OK LIST completed")
    # INBOX matches case-insensitively.
    assert c.cmd('LIST "" "inbox"')[0] == ['* LIST (\\HasNoChildren) "/" "INBOX"']
    c.logout()


# ---- names outside ASCII ------------------------------------------------------------

def test_modified_utf7_and_utf8_accept(env):
    c = Imap(env.ternd, "user10")
    assert c.cmd("CREATE Entw&APw-rfe")[1].startswith("OK")
    assert c.cmd('LIST "" "Entw*"')[0] == ['* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"']
    assert c.cmd("CREATE &Jjo")[1] == "BAD Mailbox name is not valid modified UTF-7"
    c.logout()

    c = Imap(env.ternd, "user10")
    assert c.cmd("ENABLE UTF8=ACCEPT")[1] == "OK ENABLE completed"
    u, _ = c.cmd_raw('LIST "" "Entw*"\r\n'.encode())
    assert u == ['* LIST (\\HasNoChildren) "/" "Entwürfe"']
    u, t = c.cmd_raw('CREATE "Größe"\r\n'.encode())
    assert t.startswith("OK"), t
    assert status(c, '"Größe"', "MESSAGES") == {"MESSAGES": "0"}
    c.logout()

    c = Imap(env.ternd, "user10")
    assert c.cmd('LIST "" "Gr*"')[0] == ['* LIST (\\HasNoChildren) "/" "Gr&APYA3w-e"']
    c.logout()


# ---- STATUS ---------------------------------------------------------------------------

def test_status_items(env):
    c = Imap(env.ternd, "user07")
    m1, m2 = msg(harness.unique_token()), msg(harness.unique_token(), 100)
    c.append("INBOX", m1, flags="\\Seen")
    c.append("INBOX", m2, flags="\\Deleted")
    u, t = c.cmd("STATUS INBOX (MESSAGES UIDNEXT UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ "
                 "APPENDLIMIT MAILBOXID)")
    assert t == "OK STATUS completed"
    assert len(u) == 1
    # RECENT: no session was told of the two yet.
    m = re.match(r'^\* STATUS "INBOX" \(MESSAGES 2 UIDNEXT 3 UNSEEN 1 DELETED 1 SIZE (\d+) '
                 r'RECENT 2 HIGHESTMODSEQ [1-9]\d* APPENDLIMIT 1048576 '
                 r'MAILBOXID \([A-Za-z0-9_-]+\)\)$', u[0])
    assert m, u[0]
    assert int(m.group(1)) == len(m1) + len(m2)
    assert c.cmd("STATUS Nope (MESSAGES)")[1] == "NO [NONEXISTENT] No such mailbox"
    assert c.cmd("STATUS INBOX ()")[1].startswith("BAD")
    assert c.cmd("STATUS INBOX (MESSAGES BOGUS)")[1].startswith("BAD")
    assert c.cmd("STATUS INBOX")[1].startswith("BAD")
    c.logout()


# ---- APPEND / MULTIAPPEND --------------------------------------------------------------

def test_append_flags_date_and_pop3(env):
    t = env.ternd
    c = Imap(t, "user08")
    tok = harness.unique_token()
    body = msg(tok)
    # A synchronizing literal: "+" first.
    c.n += 1
    c.send('a%d APPEND Drafts (\\Seen \\Draft $Label) " 5-Mar-2024 10:00:00 +0100" {%d}\r\n'
           % (c.n, len(body)))
    assert c.readline().startswith(b"+ ")
    c.send(body + b"\r\n")
    u, tag = c.imap("a%d" % c.n)
    assert u == []
    m = re.match(rb"^a\d+ OK \[APPENDUID ([1-9]\d*) 1\] APPEND completed$", tag)
    assert m, tag
    uv = status(c, "Drafts", "UIDVALIDITY")["UIDVALIDITY"]
    assert m.group(1).decode() == uv
    assert status(c, "Drafts", "MESSAGES UNSEEN") == {"MESSAGES": "1", "UNSEEN": "0"}

    # Errors.
    assert c.append("Nope", body)[1] == "NO [TRYCREATE] Mailbox does not exist"
    assert c.append("INBOX", body, date="31-Feb-2024 10:00:00 +0000")[1] == \
        "BAD Invalid date-time"
    assert c.append("INBOX", body, date="5-Mar-2024 10:00:00 +0000")[1] == \
        "BAD Invalid date-time"
    assert c.append("INBOX", body, flags="\\Bogus")[1] == "BAD Invalid flag list"
    assert c.append("INBOX", b"")[1] == "NO [CANNOT] Cannot append an empty message"
    assert c.cmd('APPEND INBOX "not a literal"')[1].startswith("BAD")
    u, tg = c.cmd_raw(b"APPEND INBOX UTF8 (~{5+}\r\nhello)\r\n")
    assert tg == "BAD APPEND UTF8 needs ENABLE UTF8=ACCEPT"

    # Into INBOX; POP3 returns the very bytes.
    tok2 = harness.unique_token()
    body2 = msg(tok2)
    assert c.append("INBOX", body2)[1].startswith("OK [APPENDUID ")
    c.logout()
    assert harness.find_token(t.mailbox("user08"), tok2) == body2

    # UTF8 (~{n}) after ENABLE UTF8=ACCEPT (RFC 6855).
    c = Imap(t, "user08")
    c.cmd("ENABLE UTF8=ACCEPT")
    body3 = harness.make_message(harness.unique_token(), subject="Grüße")
    u, tg = c.cmd_raw(b"APPEND INBOX UTF8 (~{%d+}\r\n" % len(body3) + body3 + b")\r\n")
    assert re.match(r"^OK \[APPENDUID \d+ 2\] APPEND completed$", tg), tg
    c.logout()


def test_multiappend_is_atomic(env):
    c = Imap(env.ternd, "user09")
    a, b = msg(harness.unique_token()), msg(harness.unique_token())
    data = (b"APPEND INBOX (\\Seen) {%d+}\r\n" % len(a) + a +
            b' "01-Jan-2025 00:00:00 +0000" {%d+}\r\n' % len(b) + b + b"\r\n")
    u, t = c.cmd_raw(data)
    assert re.match(r"^OK \[APPENDUID \d+ 1:2\] APPEND completed$", t), t
    # A bad second message: nothing of the command is stored.
    data = (b"APPEND INBOX {%d+}\r\n" % len(a) + a + b" (\\Nonsense) {%d+}\r\n" % len(b) + b +
            b"\r\n")
    assert c.cmd_raw(data)[1] == "BAD Invalid flag list"
    assert status(c, "INBOX", "MESSAGES UNSEEN") == {"MESSAGES": "2", "UNSEEN": "1"}
    c.logout()


def test_quota_toobig_overquota_and_atomicity(env):
    c = Imap(env.ternd, QUOTA_USER)
    big = msg(harness.unique_token(), QUOTA + 10)
    assert c.append("INBOX", big)[1] == "NO [TOOBIG] Message is larger than the quota"
    half = msg(harness.unique_token(), QUOTA // 2 - 300)
    assert c.append("INBOX", half)[1].startswith("OK [APPENDUID")
    # Two more halves: the second would not fit, so neither is stored.
    data = (b"APPEND INBOX {%d+}\r\n" % len(half) + half + b" {%d+}\r\n" % len(half) + half +
            b"\r\n")
    assert c.cmd_raw(data)[1] == "NO [OVERQUOTA] Quota exceeded"
    assert status(c, "INBOX", "MESSAGES") == {"MESSAGES": "1"}
    c.logout()


# ---- selected mailbox: APPEND, EXPUNGE, CLOSE, UNSELECT, two sessions -----------------------

def test_append_to_selected_reports_exists(env):
    c = Imap(env.ternd, "user13")
    assert c.cmd("SELECT INBOX")[1] == "OK [READ-WRITE] SELECT completed"
    u, t = c.append("INBOX", msg(harness.unique_token()))
    assert u == ["* 1 EXISTS", "* 1 RECENT"]
    assert re.match(r"^OK \[APPENDUID \d+ 1\] APPEND completed$", t), t
    assert c.cmd("CHECK") == ([], "OK CHECK completed")
    c.logout()


def test_two_sessions_see_append_and_expunge(env):
    a = Imap(env.ternd, "user11")
    b = Imap(env.ternd, "user11")
    a.append("INBOX", msg(harness.unique_token()))
    assert a.cmd("SELECT INBOX")[1] == "OK [READ-WRITE] SELECT completed"
    b.append("INBOX", msg(harness.unique_token()), flags="\\Deleted")
    b.append("INBOX", msg(harness.unique_token()))
    # Message 1 is \Recent in a since its SELECT, 2 and 3 since this NOOP.
    u, t = a.cmd("NOOP")
    assert (u, t) == (["* 3 EXISTS", "* 3 RECENT"], "OK NOOP completed")
    u, t = b.cmd("SELECT INBOX")
    assert t == "OK [READ-WRITE] SELECT completed"
    assert "* 0 RECENT" in u, u
    assert b.cmd("EXPUNGE") == (["* 2 EXPUNGE"], "OK EXPUNGE completed")
    assert a.cmd("NOOP") == (["* 2 EXPUNGE"], "OK NOOP completed")
    # Nothing left to expunge.
    assert b.cmd("EXPUNGE") == ([], "OK EXPUNGE completed")
    a.logout()
    b.logout()


def test_recent_shared_between_sessions(env):
    """\\Recent (RFC 3501 2.3.2, 6.3.1, 6.3.2): a message is recent in the
    one read-write session told of it first, at SELECT or by EXISTS;
    EXAMINE shows what nobody has claimed yet and claims nothing; STATUS
    counts the unclaimed ones (the selected mailbox: its view's); an
    IMAP4rev2 session never shows RECENT or \\Recent."""
    t = env.ternd
    login = "user19"
    addr = "%s@example.test" % login

    def flags(c, seqs):
        return c.cmd("FETCH %s FLAGS" % seqs)

    st = Imap(t, login)  # STATUS only, never selects
    for _ in range(2):
        t.send(addr, msg(harness.unique_token()))
    assert status(st, "INBOX", "MESSAGES RECENT") == {"MESSAGES": "2", "RECENT": "2"}

    # A peeks: both recent to it, and still unclaimed afterwards.
    a = Imap(t, login)
    u, tag = a.cmd("EXAMINE INBOX")
    assert tag == "OK [READ-ONLY] EXAMINE completed"
    assert "* 2 EXISTS" in u and "* 2 RECENT" in u, u
    assert flags(a, "1:2") == (["* 1 FETCH (FLAGS (\\Recent))", "* 2 FETCH (FLAGS (\\Recent))"],
                               "OK FETCH completed")
    assert status(st, "INBOX", "RECENT") == {"RECENT": "2"}
    # An IMAP4rev2 session (peeking too) shows neither RECENT nor \Recent.
    r2 = Imap(t, login)
    assert r2.cmd("ENABLE IMAP4rev2") == (["* ENABLED IMAP4rev2"], "OK ENABLE completed")
    u, tag = r2.cmd("EXAMINE INBOX")
    assert tag == "OK [READ-ONLY] EXAMINE completed"
    assert "* 2 EXISTS" in u and not any("RECENT" in l for l in u), u
    assert flags(r2, "1:2") == (["* 1 FETCH (FLAGS ())", "* 2 FETCH (FLAGS ())"],
                                "OK FETCH completed")

    # B selects: B is the first read-write session told of them.
    b = Imap(t, login)
    u, tag = b.cmd("SELECT INBOX")
    assert tag == "OK [READ-WRITE] SELECT completed"
    assert "* 2 RECENT" in u, u
    assert flags(b, "1:2") == (["* 1 FETCH (FLAGS (\\Recent))", "* 2 FETCH (FLAGS (\\Recent))"],
                               "OK FETCH completed")
    assert status(st, "INBOX", "RECENT") == {"RECENT": "0"}
    # Neither a new EXAMINE nor another SELECT sees them recent now.
    u, tag = a.cmd("EXAMINE INBOX")
    assert tag == "OK [READ-ONLY] EXAMINE completed"
    assert "* 0 RECENT" in u, u
    assert flags(a, "1:2") == (["* 1 FETCH (FLAGS ())", "* 2 FETCH (FLAGS ())"],
                               "OK FETCH completed")
    c = Imap(t, login)
    u, tag = c.cmd("SELECT INBOX")
    assert tag == "OK [READ-WRITE] SELECT completed"
    assert "* 0 RECENT" in u, u
    assert flags(c, "1:2") == (["* 1 FETCH (FLAGS ())", "* 2 FETCH (FLAGS ())"],
                               "OK FETCH completed")

    # A new message while A (EXAMINE), r2 (EXAMINE), B and C have INBOX.
    t.send(addr, msg(harness.unique_token()))
    deadline = time.monotonic() + 5
    while status(st, "INBOX", "MESSAGES")["MESSAGES"] != "3":
        assert time.monotonic() < deadline, "the third message never arrived"
        time.sleep(0.05)
    assert status(st, "INBOX", "RECENT") == {"RECENT": "1"}
    # The peekers are told first: recent to A, hidden from r2, and still
    # unclaimed.
    assert r2.cmd("NOOP") == (["* 3 EXISTS"], "OK NOOP completed")
    assert flags(r2, "3") == (["* 3 FETCH (FLAGS ())"], "OK FETCH completed")
    assert a.cmd("NOOP") == (["* 3 EXISTS", "* 1 RECENT"], "OK NOOP completed")
    assert flags(a, "3") == (["* 3 FETCH (FLAGS (\\Recent))"], "OK FETCH completed")
    assert status(st, "INBOX", "RECENT") == {"RECENT": "1"}
    # B hears of it before C: B's (with 1 and 2 from its SELECT), not C's.
    assert b.cmd("NOOP") == (["* 3 EXISTS", "* 3 RECENT"], "OK NOOP completed")
    assert c.cmd("NOOP") == (["* 3 EXISTS", "* 0 RECENT"], "OK NOOP completed")
    assert flags(b, "3") == (["* 3 FETCH (FLAGS (\\Recent))"], "OK FETCH completed")
    assert flags(c, "3") == (["* 3 FETCH (FLAGS ())"], "OK FETCH completed")
    assert status(st, "INBOX", "RECENT") == {"RECENT": "0"}
    # STATUS of the selected mailbox: the count in the session's view.
    assert status(b, "INBOX", "RECENT") == {"RECENT": "3"}
    assert status(c, "INBOX", "RECENT") == {"RECENT": "0"}
    # B selecting again starts a new view: nothing left to claim.
    u, tag = b.cmd("SELECT INBOX")
    assert tag == "OK [READ-WRITE] SELECT completed"
    assert "* 0 RECENT" in u, u
    assert flags(b, "1:3")[0] == ["* %d FETCH (FLAGS ())" % i for i in (1, 2, 3)]
    for sess in (st, a, r2, b, c):
        sess.logout()


def test_rev2_select_leaves_recent_to_rev1(env):
    """IMAP4rev2 dropped \\Recent (RFC 9051 appendix E): a rev2 session
    that SELECTs, or hears of new mail while selected, claims nothing, so
    a rev1 session of the same user still sees those messages recent."""
    t = env.ternd
    login = "user20"
    addr = "%s@example.test" % login
    t.send(addr, msg(harness.unique_token()))
    r2 = Imap(t, login)
    assert r2.cmd("ENABLE IMAP4rev2") == (["* ENABLED IMAP4rev2"], "OK ENABLE completed")
    u, tag = r2.cmd("SELECT INBOX")
    assert tag == "OK [READ-WRITE] SELECT completed", tag
    assert "* 1 EXISTS" in u and not any("RECENT" in l for l in u), u
    t.send(addr, msg(harness.unique_token()))
    deadline = time.monotonic() + 5
    while True:
        u, tag = r2.cmd("NOOP")
        if "* 2 EXISTS" in u:
            break
        assert time.monotonic() < deadline, "the second message never arrived"
        time.sleep(0.05)
    assert not any("RECENT" in l for l in u), u
    v1 = Imap(t, login)
    u, tag = v1.cmd("SELECT INBOX")
    assert tag == "OK [READ-WRITE] SELECT completed"
    assert "* 2 RECENT" in u, u
    assert v1.cmd("FETCH 1:2 FLAGS")[0] == ["* 1 FETCH (FLAGS (\\Recent))",
                                           "* 2 FETCH (FLAGS (\\Recent))"]
    for sess in (r2, v1):
        sess.logout()


def test_close_unselect_and_uid_expunge(env):
    c = Imap(env.ternd, "user12")
    for flags in ("\\Deleted", None, "\\Deleted", "\\Deleted"):
        c.append("INBOX", msg(harness.unique_token()), flags=flags)
    # UNSELECT never expunges.
    assert c.cmd("SELECT INBOX")[1] == "OK [READ-WRITE] SELECT completed"
    assert c.cmd("UNSELECT") == ([], "OK UNSELECT completed")
    assert status(c, "INBOX", "MESSAGES") == {"MESSAGES": "4"}
    # EXAMINE: no EXPUNGE, and CLOSE does not expunge.
    assert c.cmd("EXAMINE INBOX")[1] == "OK [READ-ONLY] EXAMINE completed"
    assert c.cmd("EXPUNGE") == ([], "NO [READ-ONLY] Mailbox is read-only")
    assert c.cmd("CLOSE") == ([], "OK CLOSE completed")
    assert status(c, "INBOX", "MESSAGES") == {"MESSAGES": "4"}
    # UID EXPUNGE only touches the UIDs named.
    assert c.cmd("SELECT INBOX")[1] == "OK [READ-WRITE] SELECT completed"
    assert c.cmd("UID EXPUNGE 2:3") == (["* 3 EXPUNGE"], "OK UID EXPUNGE completed")
    assert c.cmd("UID EXPUNGE 1:x")[1].startswith("BAD")
    # CLOSE expunges silently and unselects.
    assert c.cmd("CLOSE") == ([], "OK CLOSE completed")
    assert c.cmd("CLOSE")[1] == "BAD CLOSE needs a selected mailbox"
    assert status(c, "INBOX", "MESSAGES DELETED") == {"MESSAGES": "1", "DELETED": "0"}
    c.logout()


def test_imaplib_flow(env):
    """A plain client's round trip: create, append, select, status, delete."""
    m = env.ternd.imap_login("user18")
    assert m.create("Reports")[0] == "OK"
    typ, data = m.append("Reports", "(\\Flagged)", imaplib.Time2Internaldate(1700000000),
                         msg(harness.unique_token()))
    assert typ == "OK" and b"APPENDUID" in data[0]
    typ, data = m.select("Reports")
    assert typ == "OK" and data == [b"1"]
    typ, data = m.status("Reports", "(MESSAGES UIDNEXT)")
    assert data == [b'"Reports" (MESSAGES 1 UIDNEXT 2)']
    m.close()
    assert m.delete("Reports")[0] == "OK"
    assert m.list('""', "Reports") == ("OK", [None])
    m.logout()
