"""IMAP METADATA (RFC 5464) on the wire: the capabilities, GETMETADATA
and SETMETADATA on server entries (mailbox "") and mailbox entries, the
read-only entries (/shared/admin from [imap] metadata_admin, a mailbox's
/private/specialuse from its special-use attribute), DEPTH 0/1/infinity,
MAXSIZE with [METADATA LONGENTRIES], removal with NIL, entry-name syntax
(BAD), the [limits] imap_metadata_max_size / imap_metadata_max_entries
limits ([METADATA MAXSIZE n], [METADATA TOOMANY], nothing changed by a
refused command), NONEXISTENT mailboxes, private entries kept per user,
DELETE dropping a mailbox's annotations and RENAME keeping them (RENAME
INBOX copying INBOX's), a binary literal8 value, persistence across a
restart, and `ternd store check` clean before and after a purge.

Each test uses its own users, so they do not see each other's entries."""
import subprocess

import pytest

import harness

ADMIN = "mailto:postmaster@example.test"
OVERRIDES = {"imap": {"metadata_admin": ADMIN},
             "limits": {"imap_metadata_max_size": "4K",
                        "imap_metadata_max_entries": "10"}}


@pytest.fixture(scope="module")
def env():
    e = harness.Env(OVERRIDES)
    yield e
    e.close()


class Imap(harness.RawLines):
    """A raw IMAP session. cmd() returns (untagged lines without "* ",
    tagged status text without the tag) as str; raw() returns the bytes
    of the whole answer (for literals)."""

    def __init__(self, t, login=None):
        super().__init__(t.imap_port)
        self.n = 0
        assert self.readline().startswith(b"* OK")
        if login is not None:
            _, tagged = self.cmd("LOGIN %s %s" % (login, harness.password(login)))
            assert tagged.startswith("OK"), tagged

    def _send(self, text):
        if isinstance(text, str):
            text = text.encode()
        self.n += 1
        tag = "a%d" % self.n
        self.send(tag.encode() + b" " + text + b"\r\n")
        return tag

    def cmd(self, text):
        tag = self._send(text)
        untagged, tagged = self.imap(tag)
        u = []
        for line in untagged:
            line = line.decode()
            assert line.startswith("* "), line
            u.append(line[2:])
        return u, tagged.decode()[len(tag) + 1:]

    def raw(self, text):
        tag = self._send(text)
        untagged, tagged = self.imap(tag)
        return b"".join(line + b"\r\n" for line in untagged), tagged.decode()[len(tag) + 1:]


OK_GET = "OK GETMETADATA completed"
OK_SET = "OK SETMETADATA completed"


def test_capabilities(env):
    c = Imap(env.ternd)
    u, tagged = c.cmd("CAPABILITY")
    assert "METADATA" not in u[0].split(), u  # not before login
    c.close()
    c = Imap(env.ternd, "user30")
    u, tagged = c.cmd("CAPABILITY")
    assert tagged == "OK CAPABILITY completed"
    caps = u[0].split()
    assert "METADATA" in caps and "METADATA-SERVER" in caps, caps
    # No unsolicited METADATA responses: ENABLE METADATA enables nothing.
    assert c.cmd("ENABLE METADATA") == (["ENABLED"], "OK ENABLE completed")
    c.close()


def test_server_entries(env):
    c = Imap(env.ternd, "user31")
    assert c.cmd('GETMETADATA "" /shared/admin') == (
        ['METADATA "" (/shared/admin "%s")' % ADMIN], OK_GET)
    # [imap] metadata_comment is unset: no such entry.
    assert c.cmd('GETMETADATA "" (/shared/comment /shared/admin)') == (
        ['METADATA "" (/shared/comment NIL /shared/admin "%s")' % ADMIN], OK_GET)
    # Shared server entries are read-only over IMAP.
    assert c.cmd('SETMETADATA "" (/shared/comment "hello")') == (
        [], "NO [NOPERM] Shared server annotations are read-only")
    assert c.cmd('SETMETADATA "" (/shared/admin NIL)') == (
        [], "NO [NOPERM] Shared server annotations are read-only")
    # Private server entries are the user's own.
    assert c.cmd('SETMETADATA "" (/private/vendor/tern/theme "dark" '
                 '/private/vendor/tern/lang "en")') == ([], OK_SET)
    assert c.cmd('GETMETADATA "" /private/vendor/tern/theme') == (
        ['METADATA "" (/private/vendor/tern/theme "dark")'], OK_GET)
    assert c.cmd('GETMETADATA (DEPTH infinity) "" /private') == (
        ['METADATA "" (/private/vendor/tern/lang "en" /private/vendor/tern/theme "dark")'],
        OK_GET)
    assert c.cmd('GETMETADATA (DEPTH 1) "" /shared') == (
        ['METADATA "" (/shared/admin "%s")' % ADMIN], OK_GET)
    c.close()


def test_mailbox_entries_and_depth(env):
    c = Imap(env.ternd, "user32")
    assert c.cmd("CREATE Work")[1].startswith("OK")
    assert c.cmd('SETMETADATA Work (/private/comment "mine" /shared/comment "ours" '
                 '/private/vendor/x/a "1" /private/vendor/x/a/b "2" '
                 '/private/vendor/x/c "3")') == ([], OK_SET)
    assert c.cmd("GETMETADATA Work (/shared/comment /private/comment)") == (
        ['METADATA "Work" (/shared/comment "ours" /private/comment "mine")'], OK_GET)
    # Entry names are case-insensitive.
    assert c.cmd("GETMETADATA work /PRIVATE/Comment")[1] == \
        "NO [NONEXISTENT] No such mailbox"  # mailbox names are not
    assert c.cmd("GETMETADATA Work /PRIVATE/Comment") == (
        ['METADATA "Work" (/private/comment "mine")'], OK_GET)
    # DEPTH 0 (the default): the entry alone; it has no value.
    assert c.cmd("GETMETADATA Work /private/vendor/x") == (
        ['METADATA "Work" (/private/vendor/x NIL)'], OK_GET)
    assert c.cmd("GETMETADATA (DEPTH 0) Work /private/vendor/x") == (
        ['METADATA "Work" (/private/vendor/x NIL)'], OK_GET)
    assert c.cmd("GETMETADATA (DEPTH 1) Work /private/vendor/x") == (
        ['METADATA "Work" (/private/vendor/x/a "1" /private/vendor/x/c "3")'], OK_GET)
    assert c.cmd("GETMETADATA (DEPTH infinity) Work /private/vendor/x") == (
        ['METADATA "Work" (/private/vendor/x/a "1" /private/vendor/x/a/b "2" '
         '/private/vendor/x/c "3")'], OK_GET)
    assert c.cmd("GETMETADATA (DEPTH infinity) Work /shared") == (
        ['METADATA "Work" (/shared/comment "ours")'], OK_GET)
    # Overlapping names: each entry once, under the first name selecting it.
    assert c.cmd("GETMETADATA (DEPTH 1) Work (/private/vendor/x /private/vendor/x/a "
                 "/private/comment /private/comment)") == (
        ['METADATA "Work" (/private/vendor/x/a "1" /private/vendor/x/c "3" '
         '/private/vendor/x/a/b "2" /private/comment "mine")'], OK_GET)
    names = " ".join("/private/n%d" % i for i in range(101))
    assert c.cmd("GETMETADATA Work (%s)" % names) == (
        [], "NO [LIMIT] At most 100 entries in one GETMETADATA")
    # NIL removes; removing what is not there is fine.
    assert c.cmd("SETMETADATA Work (/private/comment NIL /private/nothing NIL)") == ([], OK_SET)
    assert c.cmd("GETMETADATA Work (/private/comment /shared/comment)") == (
        ['METADATA "Work" (/private/comment NIL /shared/comment "ours")'], OK_GET)
    # An empty value is a value.
    assert c.cmd('SETMETADATA Work (/private/comment "")') == ([], OK_SET)
    assert c.cmd("GETMETADATA Work /private/comment") == (
        ['METADATA "Work" (/private/comment "")'], OK_GET)
    c.close()


def test_specialuse_entry(env):
    c = Imap(env.ternd, "user33")
    assert c.cmd("CREATE Stuff (USE (\\Archive))")[1].startswith("OK")
    assert c.cmd("GETMETADATA Stuff /private/specialuse") == (
        ['METADATA "Stuff" (/private/specialuse "\\\\Archive")'], OK_GET)
    assert c.cmd("CREATE Plain")[1].startswith("OK")
    assert c.cmd("GETMETADATA Plain /private/specialuse") == (
        ['METADATA "Plain" (/private/specialuse NIL)'], OK_GET)
    assert c.cmd('SETMETADATA Plain (/private/specialuse "\\\\Junk")') == (
        [], "NO [CANNOT] /private/specialuse is read-only (CREATE sets it)")
    assert c.cmd('GETMETADATA (DEPTH 1) Stuff /private') == (
        ['METADATA "Stuff" (/private/specialuse "\\\\Archive")'], OK_GET)
    c.close()


def test_maxsize_longentries(env):
    c = Imap(env.ternd, "user34")
    big = "y" * 2199
    assert c.cmd(b"SETMETADATA INBOX (/shared/comment {2199+}\r\n" + big.encode() +
                 b' /private/comment "My own comment")') == ([], OK_SET)
    assert c.cmd("GETMETADATA (MAXSIZE 1024) INBOX (/shared/comment /private/comment)") == (
        ['METADATA "INBOX" (/private/comment "My own comment")'],
        "OK [METADATA LONGENTRIES 2199] GETMETADATA completed")
    # Nothing fits: no METADATA response at all.
    assert c.cmd("GETMETADATA (MAXSIZE 10) INBOX (/shared/comment /private/comment)") == (
        [], "OK [METADATA LONGENTRIES 2199] GETMETADATA completed")
    assert c.raw("GETMETADATA (MAXSIZE 2199 DEPTH 1) INBOX /shared") == (
        b'* METADATA "INBOX" (/shared/comment {2199}\r\n' + big.encode() + b")\r\n", OK_GET)
    c.close()


def test_limits(env):
    c = Imap(env.ternd, "user35")
    assert c.cmd("CREATE Lim")[1].startswith("OK")
    # imap_metadata_max_size = 4K: 4096 bytes fit, 4097 do not.
    assert c.cmd(b"SETMETADATA Lim (/private/big {4096+}\r\n" + b"a" * 4096 + b")") == (
        [], OK_SET)
    assert c.cmd(b'SETMETADATA Lim (/private/new "x" /private/big {4097+}\r\n' +
                 b"a" * 4097 + b")") == ([], "NO [METADATA MAXSIZE 4096] Value too large")
    # Refused as a whole: /private/new was not set either.
    assert c.cmd("GETMETADATA Lim /private/new") == (
        ['METADATA "Lim" (/private/new NIL)'], OK_GET)
    # imap_metadata_max_entries = 10 private entries on the mailbox.
    pairs = " ".join('/private/e%d "%d"' % (i, i) for i in range(9))
    assert c.cmd("SETMETADATA Lim (%s)" % pairs) == ([], OK_SET)
    assert c.cmd('SETMETADATA Lim (/private/e0 "zero" /private/e9 "nine")') == (
        [], "NO [METADATA TOOMANY] Too many annotations")
    assert c.cmd("GETMETADATA Lim (/private/e0 /private/e9)") == (
        ['METADATA "Lim" (/private/e0 "0" /private/e9 NIL)'], OK_GET)
    # Replacing one at the limit works, and so does a new one for a removed one.
    assert c.cmd('SETMETADATA Lim (/private/e0 "zero")') == ([], OK_SET)
    assert c.cmd('SETMETADATA Lim (/private/e1 NIL /private/e9 "nine")') == ([], OK_SET)
    # Shared entries count apart, and so does another mailbox.
    pairs = " ".join('/shared/s%d "%d"' % (i, i) for i in range(10))
    assert c.cmd("SETMETADATA Lim (%s)" % pairs) == ([], OK_SET)
    assert c.cmd('SETMETADATA INBOX (/private/e1 "1")') == ([], OK_SET)
    c.close()


def test_bad_syntax(env):
    c = Imap(env.ternd, "user36")
    bad_names = ["/foo", "private/x", "/private/", "/shared//x", "/private/a*",
                 "/private/a%", "/privatex/y", '"/private/a b/"']
    for name in bad_names:
        assert c.cmd("GETMETADATA INBOX %s" % name) == (
            [], "BAD Invalid entry name (RFC 5464 3.2)"), name
    c.close()
    c = Imap(env.ternd, "user36")
    # Non-ASCII and control characters (in literals).
    assert c.cmd(b"GETMETADATA INBOX {14+}\r\n/private/caf\xc3\xa9") == (
        [], "BAD Invalid entry name (RFC 5464 3.2)")
    assert c.cmd(b"GETMETADATA INBOX {12+}\r\n/private/a\x01b") == (
        [], "BAD Invalid entry name (RFC 5464 3.2)")
    # SETMETADATA needs two components; "/private" alone may only be read.
    assert c.cmd('SETMETADATA INBOX (/private "x")') == (
        [], "BAD Invalid entry name (RFC 5464 3.2)")
    assert c.cmd('SETMETADATA INBOX (/private/x "1" /bad "2")') == (
        [], "BAD Invalid entry name (RFC 5464 3.2)")
    assert c.cmd("GETMETADATA INBOX /private/x") == (
        ['METADATA "INBOX" (/private/x NIL)'], OK_GET)
    assert c.cmd("SETMETADATA INBOX (/private/x atom)") == (
        [], "BAD A value is a string, a literal, literal8 or NIL")
    assert c.cmd('SETMETADATA INBOX (/private/x "1" /private/y)') == (
        [], "BAD SETMETADATA takes a mailbox and a list of entries and values")
    assert c.cmd("SETMETADATA INBOX ()") == (
        [], "BAD SETMETADATA takes a mailbox and a list of entries and values")
    assert c.cmd("GETMETADATA (DEPTH 2) INBOX /private/x") == (
        [], "BAD DEPTH takes 0, 1 or infinity")
    assert c.cmd("GETMETADATA (MAXSIZE -1) INBOX /private/x") == (
        [], "BAD Unknown or malformed GETMETADATA option")
    assert c.cmd("GETMETADATA (FOO) INBOX /private/x") == (
        [], "BAD Unknown or malformed GETMETADATA option")
    assert c.cmd("GETMETADATA INBOX ()") == ([], "BAD GETMETADATA needs at least one entry")
    assert c.cmd("GETMETADATA INBOX") == (
        [], "BAD GETMETADATA takes [options] mailbox entries")
    c.close()


def test_nonexistent_mailbox(env):
    c = Imap(env.ternd, "user37")
    assert c.cmd("GETMETADATA Nope /private/comment") == (
        [], "NO [NONEXISTENT] No such mailbox")
    assert c.cmd('SETMETADATA Nope (/private/comment "x")') == (
        [], "NO [NONEXISTENT] No such mailbox")
    c.close()


def test_private_entries_per_user(env):
    a = Imap(env.ternd, "user38")
    b = Imap(env.ternd, "user39")
    assert a.cmd('SETMETADATA "" (/private/vendor/t/x "alice")') == ([], OK_SET)
    assert a.cmd('SETMETADATA INBOX (/private/comment "a-inbox" /shared/comment "a-shared")') \
        == ([], OK_SET)
    assert b.cmd('GETMETADATA "" /private/vendor/t/x') == (
        ['METADATA "" (/private/vendor/t/x NIL)'], OK_GET)
    # b's INBOX is b's own mailbox: none of a's entries.
    assert b.cmd("GETMETADATA INBOX (/private/comment /shared/comment)") == (
        ['METADATA "INBOX" (/private/comment NIL /shared/comment NIL)'], OK_GET)
    assert b.cmd('SETMETADATA "" (/private/vendor/t/x "bob")') == ([], OK_SET)
    assert a.cmd('GETMETADATA "" /private/vendor/t/x') == (
        ['METADATA "" (/private/vendor/t/x "alice")'], OK_GET)
    assert b.cmd('GETMETADATA "" /private/vendor/t/x') == (
        ['METADATA "" (/private/vendor/t/x "bob")'], OK_GET)
    a.close()
    b.close()


def test_delete_drops_rename_keeps(env):
    c = Imap(env.ternd, "user40")
    assert c.cmd("CREATE Proj")[1].startswith("OK")
    assert c.cmd('SETMETADATA Proj (/private/comment "p" /shared/comment "s")') == ([], OK_SET)
    assert c.cmd("RENAME Proj Proj2") == ([], "OK RENAME completed")
    assert c.cmd("GETMETADATA Proj /private/comment") == ([], "NO [NONEXISTENT] No such mailbox")
    assert c.cmd("GETMETADATA Proj2 (/private/comment /shared/comment)") == (
        ['METADATA "Proj2" (/private/comment "p" /shared/comment "s")'], OK_GET)
    assert c.cmd("DELETE Proj2") == ([], "OK DELETE completed")
    assert c.cmd("CREATE Proj2")[1].startswith("OK")
    assert c.cmd("GETMETADATA Proj2 (/private/comment /shared/comment)") == (
        ['METADATA "Proj2" (/private/comment NIL /shared/comment NIL)'], OK_GET)
    # A mailbox deleted while it has children stays as \Noselect, without
    # its annotations (RFC 5464 4.1); it may get new ones.
    assert c.cmd("CREATE Top/Child")[1].startswith("OK")
    assert c.cmd('SETMETADATA Top (/private/comment "top")') == ([], OK_SET)
    assert c.cmd("DELETE Top") == ([], "OK DELETE completed")
    assert c.cmd("GETMETADATA Top /private/comment") == (
        ['METADATA "Top" (/private/comment NIL)'], OK_GET)
    # RENAME INBOX: INBOX keeps its annotations, the new mailbox gets a copy.
    assert c.cmd('SETMETADATA INBOX (/private/comment "in")') == ([], OK_SET)
    assert c.cmd("RENAME INBOX Old") == ([], "OK RENAME completed")
    assert c.cmd("GETMETADATA Old /private/comment") == (
        ['METADATA "Old" (/private/comment "in")'], OK_GET)
    assert c.cmd("GETMETADATA INBOX /private/comment") == (
        ['METADATA "INBOX" (/private/comment "in")'], OK_GET)
    c.close()


def test_binary_and_8bit_values(env):
    c = Imap(env.ternd, "user41")
    assert c.cmd(b"SETMETADATA INBOX (/private/vendor/t/bin ~{5+}\r\na\x00b\r\n"
                 b" /private/vendor/t/utf {5+}\r\ncaf\xc3\xa9)") == ([], OK_SET)
    data, tagged = c.raw("GETMETADATA INBOX (/private/vendor/t/bin /private/vendor/t/utf)")
    assert tagged == OK_GET
    assert data == (b'* METADATA "INBOX" (/private/vendor/t/bin ~{5}\r\na\x00b\r\n'
                    b" /private/vendor/t/utf {5}\r\ncaf\xc3\xa9)\r\n")
    # With UTF8=ACCEPT the 8-bit value may be quoted.
    assert c.cmd("ENABLE UTF8=ACCEPT")[1] == "OK ENABLE completed"
    data, tagged = c.raw("GETMETADATA INBOX /private/vendor/t/utf")
    assert (data, tagged) == (
        b'* METADATA "INBOX" (/private/vendor/t/utf "caf\xc3\xa9")\r\n', OK_GET)
    c.close()


def store_tool(t, *args):
    return subprocess.run([harness.ternd_path(), "store", args[0], "-c", t.conf_path]
                          + list(args[1:]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=120)


def entry_uuid(env, login):
    ldif = env.slapd.ldapsearch(harness.org_ldif.PEOPLE, "(uid=%s)" % login, "entryUUID")
    for line in ldif.splitlines():
        if line.lower().startswith("entryuuid:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no entryUUID for %s: %r" % (login, ldif))


def test_restart_check_and_purge(env):
    t = env.new_ternd(OVERRIDES, name="restart")
    c = Imap(t, "user42")
    assert c.cmd("CREATE Keep")[1].startswith("OK")
    assert c.cmd('SETMETADATA Keep (/private/comment "kept" /shared/comment "too")') == (
        [], OK_SET)
    assert c.cmd('SETMETADATA "" (/private/vendor/t/x "srv")') == ([], OK_SET)
    c.close()
    t.stop()
    t.start()
    c = Imap(t, "user42")
    assert c.cmd("GETMETADATA Keep (/private/comment /shared/comment)") == (
        ['METADATA "Keep" (/private/comment "kept" /shared/comment "too")'], OK_GET)
    assert c.cmd('GETMETADATA "" /private/vendor/t/x') == (
        ['METADATA "" (/private/vendor/t/x "srv")'], OK_GET)
    c.close()
    r = store_tool(t, "check")
    assert r.returncode == 0 and b"OK, 0 problems" in r.stdout, r.stdout
    # A purged user leaves no annotation behind (the check would name it).
    uuid = entry_uuid(env, "user42")
    r = store_tool(t, "purge", uuid, "--yes")
    assert r.returncode == 0, r.stdout
    r = store_tool(t, "check")
    assert r.returncode == 0 and b"OK, 0 problems" in r.stdout, r.stdout
    c = Imap(t, "user42")
    assert c.cmd('GETMETADATA "" /private/vendor/t/x') == (
        ['METADATA "" (/private/vendor/t/x NIL)'], OK_GET)
    c.close()
