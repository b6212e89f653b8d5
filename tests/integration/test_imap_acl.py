"""IMAP ACL (RFC 4314) and shared mailboxes on the wire: the ACL
capabilities and the shared namespace, exact SETACL / DELETEACL / GETACL /
LISTRIGHTS / MYRIGHTS responses, LIST of what others share, access with
and without rights ([NOPERM], [NONEXISTENT]), negative rights, a grant to
a directory group ("$name", a groupOfNames added with ldapmodify) that an
ldapmodify removing the member revokes within [directory] cache_ttl (1 s
here) for LIST, SELECT and an already-selected mailbox, persistence across
a ternd restart, and DELETE dropping the ACL.

CREATE, DELETE and RENAME inside another user's folder by the "k" and "x"
rights, the ACL a new mailbox inherits, LIST of a partly hidden shared
hierarchy, \\Recent and NOTIFY for shared mailboxes.

Owner user21, grantees user22..user27; owner user28 with user29, user30
(fresh logins nobody else uses)."""
import time

import pytest

import harness
import org_ldif

OWNER, BOB, CAROL, DAVE = "user21", "user22", "user23", "user24"
TEAM_DN = "cn=acl-team," + org_ldif.GROUPS
MSG = b"Subject: shared\r\nFrom: a@example.test\r\n\r\nhello team\r\n"


@pytest.fixture(scope="module")
def env():
    e = harness.Env()
    yield e
    e.close()


class Imap(harness.RawLines):
    """A raw IMAP session: cmd() returns (untagged lines without "* ",
    tagged status text without the tag)."""

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
        tag = "a%d" % self.n
        self.send(tag.encode() + b" " + text + b"\r\n")
        untagged, tagged = self.imap(tag)
        u = [line.decode()[2:] for line in untagged]
        return u, tagged.decode()[len(tag) + 1:]

    def ok(self, text):
        u, t = self.cmd(text)
        assert t.startswith("OK"), (text, t)
        return u

    def append(self, box, data):
        return self.cmd(b"APPEND %s {%d+}\r\n" % (box.encode(), len(data)) + data)


def shared_lines(untagged):
    return [line for line in untagged if "Shared" in line]


def test_capability_and_namespace(env):
    c = Imap(env.ternd, OWNER)
    caps = c.ok("CAPABILITY")[0].split()
    assert "ACL" in caps and "RIGHTS=texk" in caps
    assert c.cmd("NAMESPACE") == (['NAMESPACE (("" "/")) NIL (("Shared/" "/"))'],
                                  "OK NAMESPACE completed")
    c.close()


def test_acl_commands_exact(env):
    c = Imap(env.ternd, OWNER)
    c.ok("CREATE Projects")
    assert c.cmd("GETACL Projects") == (['ACL "Projects" user21 lrswipkxtecda'],
                                        "OK GETACL completed")
    assert c.cmd("SETACL Projects user22 lr") == ([], "OK SETACL completed")
    assert c.cmd("GETACL Projects")[0] == ['ACL "Projects" user21 lrswipkxtecda user22 lr']
    c.ok("SETACL Projects user22 +w")
    assert c.cmd("GETACL Projects")[0] == ['ACL "Projects" user21 lrswipkxtecda user22 lrw']
    c.ok("SETACL Projects user22 -r")
    assert c.cmd("GETACL Projects")[0] == ['ACL "Projects" user21 lrswipkxtecda user22 lw']
    # The obsolete "c" is "k" and "x", "d" is "t" and "e" (RFC 4314 2.1.1).
    c.ok("SETACL Projects user22 lrd")
    assert c.cmd("GETACL Projects")[0] == ['ACL "Projects" user21 lrswipkxtecda user22 lrted']
    assert c.cmd("LISTRIGHTS Projects user22") == (
        ['LISTRIGHTS "Projects" user22 "" l r s w i p k x t e a'], "OK LISTRIGHTS completed")
    assert c.cmd("LISTRIGHTS Projects user21") == (
        ['LISTRIGHTS "Projects" user21 lrswipkxtecda'], "OK LISTRIGHTS completed")
    assert c.cmd("MYRIGHTS Projects") == (['MYRIGHTS "Projects" lrswipkxtecda'],
                                          "OK MYRIGHTS completed")
    assert c.cmd("DELETEACL Projects user22") == ([], "OK DELETEACL completed")
    assert c.cmd("GETACL Projects")[0] == ['ACL "Projects" user21 lrswipkxtecda']
    # Errors.
    assert c.cmd("SETACL Projects nosuchuser lr") == (
        [], 'NO Unknown identifier "nosuchuser": no such user in the directory')
    assert c.cmd("SETACL Projects user22 lrz")[1].startswith("BAD Invalid rights")
    assert c.cmd("SETACL Projects user21 lr") == (
        [], "NO [CANNOT] The owner always has every right")
    assert c.cmd("GETACL Nonexistent") == ([], "NO [NONEXISTENT] No such mailbox")
    assert c.cmd("SETACL Projects")[1].startswith("BAD")
    assert c.cmd("CREATE Shared") == (
        [], 'NO [CANNOT] "Shared" is the shared namespace: not for your own mailboxes')
    assert c.cmd("CREATE Shared/x")[1].startswith("NO [CANNOT]")
    c.close()


def test_shared_access_by_rights(env):
    o = Imap(env.ternd, OWNER)
    o.ok("CREATE Reports")
    assert o.append("Reports", MSG)[1].startswith("OK [APPENDUID")
    o.ok("SETACL Reports user22 lr")
    b = Imap(env.ternd, BOB)
    lines = shared_lines(b.ok('LIST "" "*"'))
    assert 'LIST (\\Noselect \\HasChildren) "/" "Shared"' in lines
    assert 'LIST (\\Noselect \\HasChildren) "/" "Shared/user21"' in lines
    assert 'LIST (\\HasNoChildren) "/" "Shared/user21/Reports"' in lines
    assert b.cmd('MYRIGHTS "Shared/user21/Reports"') == (
        ['MYRIGHTS "Shared/user21/Reports" lr'], "OK MYRIGHTS completed")
    u, t = b.cmd('SELECT "Shared/user21/Reports"')
    assert t == "OK [READ-ONLY] SELECT completed"
    assert "1 EXISTS" in u
    u, t = b.cmd("FETCH 1 (BODY[TEXT] FLAGS)")
    assert t == "OK FETCH completed"
    # No "s" right: reading does not set \Seen (the message is \Recent
    # to the first session that selects it).
    assert b.cmd("FETCH 1 (FLAGS)")[0] == ["1 FETCH (FLAGS (\\Recent))"]
    assert b.cmd("STORE 1 +FLAGS (\\Flagged)") == ([], "NO Mailbox is read-only")
    assert b.cmd('GETACL "Shared/user21/Reports"') == (
        [], 'NO [NOPERM] You lack the "a" right on this mailbox')
    assert b.append("Shared/user21/Reports", MSG) == (
        [], 'NO [NOPERM] You lack the "i" right on this mailbox')
    # A user with no right sees nothing.
    c = Imap(env.ternd, CAROL)
    assert shared_lines(c.ok('LIST "" "*"')) == []
    assert c.cmd('SELECT "Shared/user21/Reports"') == ([], "NO [NONEXISTENT] No such mailbox")
    assert c.cmd('STATUS "Shared/user21/Reports" (MESSAGES)') == (
        [], "NO [NONEXISTENT] No such mailbox")
    # More rights: read-write, \Seen and insert, but neither \Deleted nor
    # EXPUNGE.
    o.ok("SETACL Reports user22 lrswi")
    u, t = b.cmd('SELECT "Shared/user21/Reports"')
    assert t == "OK [READ-WRITE] SELECT completed"
    # PERMANENTFLAGS: what "w" and "s" allow, not \Deleted (no "t").
    assert "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Seen \\Draft \\*)] Flags permitted" in u, u
    assert b.cmd("STORE 1 +FLAGS (\\Seen)") == (["1 FETCH (FLAGS (\\Seen \\Recent))"],
                                                 "OK STORE completed")
    assert b.cmd("STORE 1 +FLAGS (\\Deleted)") == (
        [], "NO [NOPERM] You lack the rights to change these flags")
    assert b.cmd("EXPUNGE") == ([], 'NO [NOPERM] You lack the "e" right on this mailbox')
    assert b.cmd('STATUS "Shared/user21/Reports" (MESSAGES UNSEEN)') == (
        ['STATUS "Shared/user21/Reports" (MESSAGES 1 UNSEEN 0)'], "OK STATUS completed")
    assert b.append("Shared/user21/Reports", MSG)[1].startswith("OK [APPENDUID")
    # The owner sees the grantee's changes.
    assert o.cmd("STATUS Reports (MESSAGES UNSEEN)")[0] == [
        'STATUS "Reports" (MESSAGES 2 UNSEEN 1)']
    # COPY out of the shared mailbox into the grantee's own.
    u, t = b.cmd("COPY 1 INBOX")
    assert t.startswith("OK [COPYUID"), t
    assert b.cmd("STATUS INBOX (MESSAGES)")[0] == ['STATUS "INBOX" (MESSAGES 1)']
    # MOVE needs "t" and "e" on the source.
    assert b.cmd("MOVE 1 INBOX") == ([], 'NO [NOPERM] You lack the "te" rights on the '
                                         'selected mailbox')
    for s in (o, b, c):
        s.close()


def test_negative_rights(env):
    o = Imap(env.ternd, OWNER)
    o.ok("CREATE Notices")
    o.ok("SETACL Notices anyone lr")
    o.ok("SETACL Notices -user23 r")
    assert o.cmd("GETACL Notices")[0] == [
        'ACL "Notices" user21 lrswipkxtecda anyone lr -user23 r']
    c = Imap(env.ternd, CAROL)
    assert c.cmd('MYRIGHTS "Shared/user21/Notices"')[0] == ['MYRIGHTS "Shared/user21/Notices" l']
    assert c.cmd('SELECT "Shared/user21/Notices"') == (
        [], 'NO [NOPERM] You lack the "r" right on this mailbox')
    d = Imap(env.ternd, DAVE)
    assert d.cmd('MYRIGHTS "Shared/user21/Notices"')[0] == [
        'MYRIGHTS "Shared/user21/Notices" lr']
    for s in (o, c, d):
        s.close()


def test_group_grant_revoked_by_ldapmodify(env):
    env.slapd.modify("\n".join([
        "dn: " + TEAM_DN, "changetype: add", "objectClass: groupOfNames", "cn: acl-team",
        "member: uid=%s,%s" % (BOB, org_ldif.PEOPLE),
        "member: uid=%s,%s" % (DAVE, org_ldif.PEOPLE), ""]))
    o = Imap(env.ternd, OWNER)
    o.ok("CREATE Team")
    assert o.append("Team", MSG)[1].startswith("OK")
    o.ok("SETACL Team $acl-team lr")
    assert o.cmd("GETACL Team")[0] == ['ACL "Team" user21 lrswipkxtecda $acl-team lr']
    b = Imap(env.ternd, BOB)
    assert 'LIST (\\HasNoChildren) "/" "Shared/user21/Team"' in shared_lines(
        b.ok('LIST "" "*"'))
    u, t = b.cmd('EXAMINE "Shared/user21/Team"')
    assert t == "OK [READ-ONLY] EXAMINE completed" and "1 EXISTS" in u
    b.send(b"f1 FETCH 1 (BODY.PEEK[TEXT])\r\n")
    untagged, tagged = b.imap("f1")
    assert untagged == [b"* 1 FETCH (BODY[TEXT] {12}", b"hello team", b")"]
    assert tagged == b"f1 OK FETCH completed"

    # Bob leaves the group in LDAP; after the cache TTL (1 s) he has no
    # access, also in the session that has the mailbox selected.
    env.slapd.modify("dn: %s\nchangetype: modify\ndelete: member\nmember: uid=%s,%s\n"
                     % (TEAM_DN, BOB, org_ldif.PEOPLE))
    time.sleep(1.5)
    assert b.cmd("FETCH 1 (FLAGS)") == (
        ["OK [CLOSED] Access to the selected mailbox was revoked"],
        "NO [NOPERM] Access to the selected mailbox was revoked")
    lines = shared_lines(b.ok('LIST "" "*"'))
    assert 'LIST (\\HasNoChildren) "/" "Shared/user21/Reports"' in lines  # his own grant
    assert not [line for line in lines if "Team" in line]
    assert b.cmd('SELECT "Shared/user21/Team"') == ([], "NO [NONEXISTENT] No such mailbox")
    # Dave is still a member.
    d = Imap(env.ternd, DAVE)
    assert d.cmd('EXAMINE "Shared/user21/Team"')[1] == "OK [READ-ONLY] EXAMINE completed"
    for s in (o, b, d):
        s.close()


def test_acl_persists_and_delete_drops_it(env):
    o = Imap(env.ternd, OWNER)
    o.ok("CREATE Archive2")
    o.ok("SETACL Archive2 user24 lrs")
    o.close()
    env.ternd.stop()
    env.ternd.start()
    o = Imap(env.ternd, OWNER)
    assert o.cmd("GETACL Archive2")[0] == ['ACL "Archive2" user21 lrswipkxtecda user24 lrs']
    d = Imap(env.ternd, DAVE)
    assert 'LIST (\\HasNoChildren) "/" "Shared/user21/Archive2"' in shared_lines(
        d.ok('LIST "" "*"'))
    o.ok("DELETE Archive2")
    assert 'LIST (\\HasNoChildren) "/" "Shared/user21/Archive2"' not in shared_lines(
        d.ok('LIST "" "*"'))
    o.ok("CREATE Archive2")
    assert o.cmd("GETACL Archive2")[0] == ['ACL "Archive2" user21 lrswipkxtecda']
    assert d.cmd('SELECT "Shared/user21/Archive2"') == ([], "NO [NONEXISTENT] No such mailbox")
    o.close()
    d.close()


def test_metadata_on_a_shared_mailbox(env):
    """RFC 5464 3.4 with ACLs: "lr" reads a shared mailbox's annotations
    and sets the reader's own /private ones; /shared ones need "w" too.
    Private entries stay the setter's."""
    o = Imap(env.ternd, OWNER)
    o.ok("CREATE Meta")
    o.ok('SETMETADATA Meta (/shared/comment "from the owner" /private/comment "mine")')
    o.ok("SETACL Meta user25 lr")
    e = Imap(env.ternd, "user25")
    box = '"Shared/user21/Meta"'
    assert e.cmd("GETMETADATA %s (/shared/comment /private/comment)" % box) == (
        ['METADATA "Shared/user21/Meta" (/shared/comment "from the owner" '
         '/private/comment NIL)'], "OK GETMETADATA completed")
    assert e.cmd('SETMETADATA %s (/private/comment "the reader\'s")' % box) == (
        [], "OK SETMETADATA completed")
    assert e.cmd('SETMETADATA %s (/shared/comment "no")' % box) == (
        [], 'NO [NOPERM] You lack the "lrw" right on this mailbox')
    assert e.cmd("GETMETADATA %s /private/comment" % box)[0] == [
        'METADATA "Shared/user21/Meta" (/private/comment "the reader\'s")']
    # The owner's private entry is untouched and the reader's not shown.
    assert o.cmd("GETMETADATA Meta /private/comment")[0] == [
        'METADATA "Meta" (/private/comment "mine")']
    o.ok("SETACL Meta user25 +w")
    assert e.cmd('SETMETADATA %s (/shared/comment "edited")' % box) == (
        [], "OK SETMETADATA completed")
    assert o.cmd("GETMETADATA Meta /shared/comment")[0] == [
        'METADATA "Meta" (/shared/comment "edited")']
    # LIST-MYRIGHTS (RFC 8440): rights after each LIST line.
    assert "LIST-MYRIGHTS" in e.ok("CAPABILITY")[0].split()
    assert e.cmd('LIST "" "Shared/user21/Meta" RETURN (MYRIGHTS)') == (
        ['LIST (\\HasNoChildren) "/" "Shared/user21/Meta"',
         'MYRIGHTS "Shared/user21/Meta" lrw'], "OK LIST completed")
    assert e.cmd('LIST "" "INBOX" RETURN (MYRIGHTS)') == (
        ['LIST (\\HasNoChildren) "/" "INBOX"', 'MYRIGHTS "INBOX" lrswipkxtecda'],
        "OK LIST completed")
    # GETQUOTAROOT: the owner's quota is not the reader's to see.
    assert e.cmd("GETQUOTAROOT %s" % box) == (['QUOTAROOT "Shared/user21/Meta"'],
                                               "OK GETQUOTAROOT completed")
    # No right at all: the mailbox does not exist for them.
    f = Imap(env.ternd, "user26")
    assert f.cmd("GETQUOTAROOT %s" % box) == ([], "NO [NONEXISTENT] No such mailbox")
    assert f.cmd("GETMETADATA %s /shared/comment" % box) == (
        [], "NO [NONEXISTENT] No such mailbox")
    for c in (o, e, f):
        c.close()


def test_copy_into_a_shared_mailbox_drops_unsettable_flags(env):
    """RFC 4314 4: with "i" and "s" but neither "w" nor "t", a COPY keeps
    \\Seen and drops \\Flagged, \\Deleted and keywords, as APPEND does."""
    o = Imap(env.ternd, OWNER)
    o.ok("CREATE Drop")
    o.ok("SETACL Drop user27 lrsi")
    g = Imap(env.ternd, "user27")
    assert g.cmd(b"APPEND INBOX (\\Seen \\Flagged \\Deleted $Work) {%d+}\r\n" % len(MSG) +
                 MSG)[1].startswith("OK [APPENDUID")
    g.ok("SELECT INBOX")
    assert g.cmd('COPY 1 "Shared/user21/Drop"')[1].startswith("OK [COPYUID")
    o.ok("EXAMINE Drop")
    assert o.cmd("FETCH 1 FLAGS")[0] == ["1 FETCH (FLAGS (\\Seen \\Recent))"]
    # The user's own copy keeps every flag.
    assert g.cmd("FETCH 1 FLAGS")[0] == ["1 FETCH (FLAGS (\\Seen \\Flagged \\Deleted \\Recent "
                                         "$Work))"]
    for c in (o, g):
        c.close()


OWNER2, GRANTEE, OTHER = "user28", "user29", "user30"


def test_create_delete_rename_in_a_shared_folder(env):
    """RFC 4314 4: CREATE needs "k" on the nearest existing parent and the
    new mailbox (and the parents made for it) inherits that parent's ACL;
    DELETE needs "x" on the mailbox; RENAME "x" on it and "k" on the new
    parent, keeps its ACL and never moves it to another user."""
    o = Imap(env.ternd, OWNER2)
    o.ok("CREATE Proj")
    o.ok("SETACL Proj user29 lrk")
    b = Imap(env.ternd, GRANTEE)
    u, t = b.cmd('CREATE "Shared/user28/Proj/Sub"')
    assert u == [] and t.startswith("OK [MAILBOXID (") and t.endswith(")] CREATE completed"), t
    # The owner's mailbox, with the parent's ACL.
    assert o.cmd("GETACL Proj/Sub") == (['ACL "Proj/Sub" user28 lrswipkxtecda user29 lrkc'],
                                        "OK GETACL completed")
    assert b.cmd('CREATE "Shared/user28/Proj/A/B/"')[1].endswith("CREATE completed")
    assert o.cmd("GETACL Proj/A")[0] == ['ACL "Proj/A" user28 lrswipkxtecda user29 lrkc']
    assert o.cmd("GETACL Proj/A/B")[0] == ['ACL "Proj/A/B" user28 lrswipkxtecda user29 lrkc']
    # The owner's own CREATE inherits too.
    o.ok("CREATE Proj/Owned")
    assert o.cmd("GETACL Proj/Owned")[0] == ['ACL "Proj/Owned" user28 lrswipkxtecda user29 lrkc']
    assert shared_lines(b.ok('LIST "" "Shared/user28/*"')) == [
        'LIST (\\HasChildren) "/" "Shared/user28/Proj"',
        'LIST (\\HasChildren) "/" "Shared/user28/Proj/A"',
        'LIST (\\HasNoChildren) "/" "Shared/user28/Proj/A/B"',
        'LIST (\\HasNoChildren) "/" "Shared/user28/Proj/Owned"',
        'LIST (\\HasNoChildren) "/" "Shared/user28/Proj/Sub"']
    assert b.cmd('CREATE "Shared/user28/Proj/Sub"') == (
        [], "NO [ALREADYEXISTS] Mailbox already exists")
    # No "k" on the nearest parent (none at the owner's top level), and
    # an owner who shares nothing: the same answer.
    assert b.cmd('CREATE "Shared/user28/Top"') == (
        [], 'NO [NOPERM] You lack the "k" right on the parent mailbox')
    assert b.cmd('CREATE "Shared/nobody/Proj/X"') == (
        [], 'NO [NOPERM] You lack the "k" right on the parent mailbox')
    c = Imap(env.ternd, OTHER)
    assert c.cmd('CREATE "Shared/user28/Proj/X"') == (
        [], 'NO [NOPERM] You lack the "k" right on the parent mailbox')
    assert c.cmd('DELETE "Shared/user28/Proj/Sub"') == ([], "NO [NONEXISTENT] No such mailbox")
    # The namespace's own levels stay refused.
    assert b.cmd('CREATE "Shared/user28"') == (
        [], 'NO [CANNOT] "Shared" is the shared namespace: not for your own mailboxes')
    assert b.cmd('DELETE "Shared/user28"') == (
        [], "NO [CANNOT] Not a mailbox: a level of the shared namespace")
    # Without "x": neither DELETE nor RENAME.
    assert b.cmd('DELETE "Shared/user28/Proj/Sub"') == (
        [], 'NO [NOPERM] You lack the "x" right on this mailbox')
    assert b.cmd('RENAME "Shared/user28/Proj/Sub" "Shared/user28/Proj/New"') == (
        [], 'NO [NOPERM] You lack the "x" right on this mailbox')
    o.ok("SETACL Proj/Sub user29 +x")
    assert b.cmd('RENAME "Shared/user28/Proj/Sub" "Shared/user28/Proj/New"') == (
        [], "OK RENAME completed")
    assert o.cmd("GETACL Proj/New")[0] == ['ACL "Proj/New" user28 lrswipkxtecda user29 lrkxc']
    assert o.cmd("STATUS Proj/Sub (MESSAGES)") == ([], "NO [NONEXISTENT] No such mailbox")
    # The new parent needs "k"; a mailbox stays with its owner.
    assert b.cmd('RENAME "Shared/user28/Proj/New" "Shared/user28/Elsewhere"') == (
        [], 'NO [NOPERM] You lack the "k" right on the parent mailbox')
    assert b.cmd('RENAME "Shared/user28/Proj/New" "Mine"') == (
        [], "NO [CANNOT] A mailbox cannot move to another user")
    assert b.cmd('RENAME INBOX "Shared/user28/Proj/Mine"') == (
        [], "NO [CANNOT] A mailbox cannot move to another user")
    # The selected mailbox follows a RENAME, and a DELETE closes it.
    assert b.cmd('SELECT "Shared/user28/Proj/New"')[1] == "OK [READ-ONLY] SELECT completed"
    b.ok('RENAME "Shared/user28/Proj/New" "Shared/user28/Proj/Newer"')
    assert b.cmd('STATUS "Shared/user28/Proj/Newer" (MESSAGES)') == (
        ['STATUS "Shared/user28/Proj/Newer" (MESSAGES 0)'], "OK STATUS completed")
    assert b.cmd('DELETE "Shared/user28/Proj/Newer"') == ([], "OK DELETE completed")
    assert b.cmd("FETCH 1 FLAGS")[1].startswith("BAD")
    assert o.cmd("STATUS Proj/Newer (MESSAGES)") == ([], "NO [NONEXISTENT] No such mailbox")
    assert o.cmd("GETACL Proj/Newer") == ([], "NO [NONEXISTENT] No such mailbox")
    for x in (o, b, c):
        x.close()


def test_list_of_a_shared_hierarchy(env):
    """RFC 4314 4: with "l" on A/B but not on A, LIST behaves as if A did
    not exist: "*" leaves it out, a trailing "%" shows it as a level."""
    o = Imap(env.ternd, OWNER2)
    o.ok("CREATE Tree/Hidden/Leaf")
    o.ok("CREATE Tree/Open")
    o.ok("SETACL Tree user30 lr")
    o.ok("SETACL Tree/Hidden/Leaf user30 lr")
    o.ok("SETACL Tree/Open user30 lr")
    o.ok("CREATE Tree/Private")  # inherits Tree's ACL
    o.ok("DELETEACL Tree/Private user30")
    c = Imap(env.ternd, OTHER)
    assert c.cmd('LIST "" "Shared/user28/Tree*"') == ([
        'LIST (\\HasChildren) "/" "Shared/user28/Tree"',
        'LIST (\\HasNoChildren) "/" "Shared/user28/Tree/Hidden/Leaf"',
        'LIST (\\HasNoChildren) "/" "Shared/user28/Tree/Open"'], "OK LIST completed")
    assert c.cmd('LIST "" "Shared/user28/Tree/%"') == ([
        'LIST (\\Noselect \\HasChildren) "/" "Shared/user28/Tree/Hidden"',
        'LIST (\\HasNoChildren) "/" "Shared/user28/Tree/Open"'], "OK LIST completed")
    assert c.cmd('LIST "" "Shared/user28/Tree/Hidden"') == ([], "OK LIST completed")
    assert c.cmd('LIST "" "Shared/user28/Tree/Hidden/%"') == ([
        'LIST (\\HasNoChildren) "/" "Shared/user28/Tree/Hidden/Leaf"'], "OK LIST completed")
    assert c.cmd('SELECT "Shared/user28/Tree/Hidden"') == ([], "NO [NONEXISTENT] No such mailbox")
    o.close()
    c.close()


def test_recent_and_notify_on_shared_mailboxes(env):
    """\\Recent of a shared mailbox is the owner's mailbox's: the first
    session told of a message gets it, whoever's. NOTIFY: the selected
    shared mailbox gets its updates, Shared names in a filter are refused,
    and the user's own mailbox of the same store id is not taken for the
    selected one."""
    o = Imap(env.ternd, OWNER2)
    o.ok("CREATE Feed")
    assert o.append("Feed", MSG)[1].startswith("OK [APPENDUID")
    assert o.append("Feed", MSG)[1].startswith("OK [APPENDUID")
    o.ok("SETACL Feed user29 lrs")
    o.ok("SETACL INBOX user29 lrs")
    b = Imap(env.ternd, GRANTEE)
    assert b.cmd('STATUS "Shared/user28/Feed" (MESSAGES RECENT)') == (
        ['STATUS "Shared/user28/Feed" (MESSAGES 2 RECENT 2)'], "OK STATUS completed")
    u, t = b.cmd('SELECT "Shared/user28/Feed"')
    assert t == "OK [READ-WRITE] SELECT completed" and "2 RECENT" in u, u
    assert b.cmd('STATUS "Shared/user28/Feed" (RECENT)')[0] == [
        'STATUS "Shared/user28/Feed" (RECENT 2)']
    # Claimed by the grantee's session: not recent to the owner.
    assert o.cmd("STATUS Feed (RECENT)")[0] == ['STATUS "Feed" (RECENT 0)']

    assert b.cmd('NOTIFY SET (MAILBOXES "Shared/user28/Feed" (MessageNew MessageExpunge))') == (
        [], "NO [CANNOT] NOTIFY covers only your own mailboxes")
    assert b.cmd('NOTIFY SET (SUBTREE Shared (MessageNew MessageExpunge))') == (
        [], "NO [CANNOT] NOTIFY covers only your own mailboxes")
    # The owner's INBOX and the grantee's have the same store id.
    u, t = b.cmd('SELECT "Shared/user28/INBOX"')
    assert t == "OK [READ-WRITE] SELECT completed", t
    assert b.cmd("NOTIFY SET (SELECTED (MessageNew MessageExpunge)) "
                 "(PERSONAL (MessageNew MessageExpunge))") == ([], "OK NOTIFY completed")
    b2 = Imap(env.ternd, GRANTEE)
    assert b2.append("INBOX", MSG)[1].startswith("OK [APPENDUID")
    line = b.readline().decode()
    assert line.startswith('* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY '), line
    assert o.append("INBOX", MSG)[1].startswith("OK [APPENDUID")
    assert [b.readline().decode() for _ in range(2)] == ["* 1 EXISTS", "* 1 RECENT"]
    for x in (o, b, b2):
        x.close()


def test_acl_naming_a_removed_user(env):
    """An entry for a login the directory no longer has stays (GETACL shows
    it, nothing else minds) until DELETEACL, which needs no lookup."""
    o = Imap(env.ternd, OWNER2)
    o.ok("CREATE Gone")
    o.ok("SETACL Gone user31 lr")
    env.slapd.modify("dn: uid=user31,%s\nchangetype: delete\n" % org_ldif.PEOPLE)
    assert o.cmd("GETACL Gone") == (['ACL "Gone" user28 lrswipkxtecda user31 lr'],
                                    "OK GETACL completed")
    b = Imap(env.ternd, GRANTEE)
    assert b.cmd('MYRIGHTS "Shared/user28/Gone"') == ([], "NO [NONEXISTENT] No such mailbox")
    assert o.cmd("DELETEACL Gone user31") == ([], "OK DELETEACL completed")
    assert o.cmd("GETACL Gone")[0] == ['ACL "Gone" user28 lrswipkxtecda']
    o.close()
    b.close()


def test_store_check_knows_the_acls(env):
    """After every test above (grants, revocations, DELETE, groups) the
    check tool finds the acl records and their reverse index consistent;
    a purge of the owner leaves neither behind."""
    import subprocess

    t = env.ternd
    o = Imap(t, OWNER)
    o.ok("CREATE CheckMe")
    o.ok("SETACL CheckMe user22 lr")
    o.ok("SETACL CheckMe -anyone w")
    o.close()

    def check():
        r = subprocess.run([harness.ternd_path(), "store", "check", "-c", t.conf_path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        return r.returncode, r.stdout

    rc, out = check()
    assert rc == 0 and b"OK, 0 problems" in out, out
    ldif = env.slapd.ldapsearch(org_ldif.PEOPLE, "(uid=%s)" % OWNER, "entryUUID")
    uuid = [l.split(":", 1)[1].strip() for l in ldif.splitlines()
            if l.lower().startswith("entryuuid:")][0]
    r = subprocess.run([harness.ternd_path(), "store", "purge", uuid, "--yes", "-c",
                        t.conf_path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    assert r.returncode == 0, r.stdout
    rc, out = check()
    assert rc == 0 and b"OK, 0 problems" in out, out
    # Nothing is shared with the grantees any more.
    b = Imap(t, BOB)
    assert shared_lines(b.ok('LIST "" "*"')) == []
    b.close()


def test_posix_group_grant(env):
    """A posixGroup names its members by login (memberUid), not DN: the
    default group_filter has %u for them. The fixture's "devs" lists
    bob, user03, carol and ghost."""
    o = Imap(env.ternd, OWNER)
    o.ok("CREATE DevsBox")
    o.ok("SETACL DevsBox $devs lr")
    m = Imap(env.ternd, "user03")
    assert 'LIST (\\HasNoChildren) "/" "Shared/user21/DevsBox"' in shared_lines(
        m.ok('LIST "" "Shared/*"'))
    assert m.cmd('MYRIGHTS "Shared/user21/DevsBox"')[0] == [
        'MYRIGHTS "Shared/user21/DevsBox" lr']
    x = Imap(env.ternd, "user04")
    assert shared_lines(x.ok('LIST "" "Shared/user21/DevsBox"')) == []
    for c in (o, m, x):
        c.close()
