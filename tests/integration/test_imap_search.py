"""IMAP SEARCH and UID SEARCH (RFC 9051 6.4.4, RFC 3501) against the real
ternd: every search key alone on a small delivered corpus (RFC 2047
subjects in ISO-8859-1 and UTF-8, multipart bodies in base64 and
quoted-printable, HTML, an attachment and an attached message), NOT/OR
nesting, CHARSET, literal UTF-8 strings, ESEARCH (RFC 4731), SEARCHRES
(RFC 5182), IMAP4rev2 results, MODSEQ and EMAILID. Responses are checked
byte for byte on a raw connection."""
import re
import time

import pytest

from harness import RawLines, password

USER = "user41"      # the corpus; flags set once by the fixture
LIVE = "user42"      # tests that deliver while selected

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
          "Dec"]


def imap_date(t):
    tm = time.localtime(t)  # ternd runs in this process's time zone
    return "%d-%s-%d" % (tm.tm_mday, MONTHS[tm.tm_mon - 1], tm.tm_year)


def msg(headers, body):
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


M1 = msg(["From: Alice Example <alice@example.org>",
          "To: Bob <bob@example.test>",
          "Cc: carol@example.net",
          "Subject: Lunch plans",
          "Message-ID: <m1@example.org>",
          "Date: Mon, 02 Mar 2026 10:00:00 +0100"],
         b"Shall we meet at noon?\r\n")

M2 = msg(["From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <jm@example.de>",
          "To: team@example.test",
          "Bcc: hidden@example.com",
          "Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=",
          "Message-ID: <m2@example.org>",
          "Date: Tue, 03 Mar 2026 23:30:00 -0800"],
         b"Nothing special here.\r\n")

M3 = msg(["From: news@example.net",
          "To: team@example.test",
          "Subject: =?UTF-8?B?w5xiZXJyYXNjaHVuZw==?=",
          "Message-ID: <m3@example.org>",
          "Date: 3 Mar 2026 12:00 GMT",
          "MIME-Version: 1.0",
          'Content-Type: multipart/alternative; boundary="b3"'],
         b"--b3\r\n"
         b"Content-Type: text/plain; charset=ISO-8859-1\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
         b"Gr=FC=DFe aus K=F6ln, sch=\r\nade.\r\n"
         b"--b3\r\n"
         b"Content-Type: text/html; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\n"
         b"PHA+SGVsbG8gPGI+d29uZGVyZnVsPC9iPiAmYW1wOyB3b3JsZDwvcD4=\r\n"
         b"--b3--\r\n")

M4 = msg(["From: Dave <dave@example.org>",
          "To: team@example.test",
          "Subject: With attachments",
          "Message-ID: <m4@example.org>",
          "Date: this is not a date",
          "X-Custom: Tern-Value",
          "MIME-Version: 1.0",
          'Content-Type: multipart/mixed; boundary="b4"'],
         b"--b4\r\n"
         b"Content-Type: text/plain\r\n\r\n"
         b"See the attachment.\r\n"
         b"--b4\r\n"
         b"Content-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\n"
         b"c2VjcmV0d29yZA==\r\n"
         b"--b4\r\n"
         b"Content-Type: message/rfc822\r\n\r\n"
         b"Subject: Inner subject zebra\r\n"
         b"From: inner@example.org\r\n\r\n"
         b"inner body giraffe\r\n"
         b"--b4--\r\n")

M5 = msg(["From: robot@example.org",
          "To: team@example.test",
          "Subject: big",
          "Message-ID: <m5@example.org>"],
         (b"x" * 70 + b"\r\n") * 80)

CORPUS = [M1, M2, M3, M4, M5]


class Imap:
    """A raw IMAP connection: exact responses, numbered tags."""

    def __init__(self, t, login, rev2=False, select=True):
        self.c = RawLines(t.imap_port)
        assert self.c.readline().startswith(b"* OK")
        self.n = 0
        self.ok("LOGIN %s %s" % (login, password(login)))
        if rev2:
            self.ok("ENABLE IMAP4rev2")
        if select:
            self.ok("SELECT INBOX")

    def tag(self):
        self.n += 1
        return "t%d" % self.n

    def cmd(self, command):
        tag = self.tag()
        untagged, tagged = self.c.imap(tag, command)
        return tag, untagged, tagged

    def ok(self, command):
        tag, untagged, tagged = self.cmd(command)
        assert tagged.startswith(tag.encode() + b" OK"), (command, tagged)
        return untagged

    def search(self, criteria, uid=False):
        """The numbers of a rev1 "* SEARCH" answer."""
        untagged = self.ok(("UID SEARCH " if uid else "SEARCH ") + criteria)
        found = [l for l in untagged if l.startswith(b"* SEARCH")]
        assert len(found) == 1, (criteria, untagged)
        return [int(x) for x in found[0][8:].split()]

    def close(self):
        self.c.close()


@pytest.fixture(scope="module")
def corpus(env):
    t = env.ternd
    before = time.time()
    for m in CORPUS:
        code, text = t.send("%s@example.test" % USER, m)
        assert code == 250, text
    c = Imap(t, USER)
    c.ok("STORE 1 +FLAGS (\\Seen $Work)")
    c.ok("STORE 2 +FLAGS (\\Flagged)")
    c.ok("STORE 3 +FLAGS (\\Answered $Work)")
    c.ok("STORE 4 +FLAGS (\\Deleted)")
    c.ok("STORE 5 +FLAGS (\\Draft)")
    c.close()
    return before


@pytest.fixture
def conn(env, corpus):
    c = Imap(env.ternd, USER)
    yield c
    c.close()


ALL = [1, 2, 3, 4, 5]


@pytest.mark.parametrize("criteria,expected", [
    ("ALL", ALL),
    ("SEEN", [1]), ("UNSEEN", [2, 3, 4, 5]),
    ("FLAGGED", [2]), ("UNFLAGGED", [1, 3, 4, 5]),
    ("ANSWERED", [3]), ("UNANSWERED", [1, 2, 4, 5]),
    ("DELETED", [4]), ("UNDELETED", [1, 2, 3, 5]),
    ("DRAFT", [5]), ("UNDRAFT", [1, 2, 3, 4]),
    ("KEYWORD $Work", [1, 3]), ("UNKEYWORD $Work", [2, 4, 5]),
    ("KEYWORD $Other", []), ("UNKEYWORD $Other", ALL),
    ("RECENT", []), ("NEW", []), ("OLD", ALL),
    ("LARGER 4000", [5]), ("SMALLER 4000", [1, 2, 3, 4]),
    ("2:4", [2, 3, 4]), ("4:*", [4, 5]), ("*", [5]), ("2,5", [2, 5]), ("3:1", [1, 2, 3]),
    ("UID 2:3", [2, 3]), ("UID 4:*", [4, 5]), ("UID 9:*", [5]),
    ("SENTON 3-Mar-2026", [2, 3]), ("SENTBEFORE 3-Mar-2026", [1]),
    ("SENTSINCE 3-Mar-2026", [2, 3]), ('SENTON "02-Mar-2026"', [1]),
    ("NOT SENTON 3-Mar-2026", [1, 4, 5]),
    ("SUBJECT lunch", [1]), ("SUBJECT CAFÉ", [2]), ("SUBJECT crème", [2]),
    ("SUBJECT überraschung", [3]), ("SUBJECT zebra", []),
    ("FROM alice", [1]), ("FROM müller", [2]), ("FROM EXAMPLE.DE", [2]),
    ("TO bob@", [1]), ("TO team", [2, 3, 4, 5]), ("CC carol", [1]), ("BCC hidden", [2]),
    ("HEADER X-Custom tern-value", [4]), ('HEADER X-Custom ""', [4]),
    ('HEADER Message-ID ""', ALL), ("HEADER Message-ID m3@", [3]),
    ("BODY noon", [1]), ("BODY lunch", []), ("TEXT lunch", [1]),
    ("BODY grüße", [3]), ("BODY schade", [3]), ("BODY köln", [3]),
    ("BODY WONDERFUL", [3]), ('BODY "wonderful & world"', [3]), ("BODY <b>", []),
    ("BODY secretword", []), ("BODY giraffe", [4]), ("BODY zebra", [4]),
    ("TEXT überraschung", [3]), ("TEXT jm@example", [2]), ("BODY jm@example", []),
    ("BODY xxxxxxxxxx", [5]),
    ("OR SUBJECT café FROM alice", [1, 2]),
    ("NOT (OR FROM alice FROM müller)", [3, 4, 5]),
    ("OR (SEEN KEYWORD $Work) DRAFT", [1, 5]),
    ("NOT NOT FLAGGED", [2]),
    ("(OR 1 2) (OR 2 3)", [2]),
    ("OR OR 1 5 NOT UNDELETED", [1, 4, 5]),
    ("UNDELETED TO team NOT BODY giraffe SMALLER 4000", [2, 3]),
    ("OR BODY giraffe (LARGER 4000 NOT SENTON 1-Jan-2000)", [4, 5]),
])
def test_key(conn, criteria, expected):
    if any(ord(ch) > 127 for ch in criteria):
        # 8-bit text goes as literals (RFC 3501 has no UTF-8 quoted).
        words = criteria.split(" ")
        parts = []
        for w in words:
            core = w.rstrip(")")
            b = core.encode()
            if len(b) != len(core):
                w = "{%d+}\r\n%s%s" % (len(b), core, w[len(core):])
            parts.append(w)
        criteria = "CHARSET UTF-8 " + " ".join(parts)
    assert conn.search(criteria) == expected


def test_internal_and_saved_dates(conn, corpus):
    today = imap_date(time.time())
    day = 86400
    assert conn.search("SINCE " + today) == ALL
    assert conn.search("ON " + today) == ALL
    assert conn.search("BEFORE " + today) == []
    assert conn.search("BEFORE " + imap_date(time.time() + 2 * day)) == ALL
    assert conn.search("SINCE " + imap_date(time.time() + 2 * day)) == []
    assert conn.search("ON 1-Jan-2000") == []
    assert conn.search("SAVEDON " + today) == ALL
    assert conn.search("SAVEDSINCE " + today) == ALL
    assert conn.search("SAVEDBEFORE " + today) == []


def test_within_and_savedate(env):
    """WITHIN (RFC 5032) compares the internal date with "now" in seconds;
    SAVEDATE (RFC 8514) is when the message entered the mailbox, whatever
    its internal date, and SAVEDATESUPPORTED matches every message."""
    c = Imap(env.ternd, LIVE, select=False)
    try:
        c.ok("CREATE Within")
        body = "Subject: old\r\n\r\nold one\r\n"
        c.ok('APPEND Within "01-Jan-2020 00:00:00 +0000" {%d+}\r\n%s' % (len(body), body))
        body = "Subject: new\r\n\r\nnew one\r\n"
        c.ok("APPEND Within {%d+}\r\n%s" % (len(body), body))
        untagged = c.ok("SELECT Within")
        assert any(re.fullmatch(rb"\* OK \[MAILBOXID \([A-Za-z0-9_-]+\)\] Ok", l)
                   for l in untagged), untagged
        assert c.search("OLDER 3600") == [1]
        assert c.search("YOUNGER 3600") == [2]
        assert c.search("YOUNGER 999999999") == [1, 2]
        assert c.search("NOT OLDER 3600") == [2]
        assert c.search("SAVEDATESUPPORTED") == [1, 2]
        today = imap_date(time.time())
        assert c.search("BEFORE " + today) == [1]
        assert c.search("SAVEDBEFORE " + today) == []
        assert c.search("SAVEDON " + today) == [1, 2]
        untagged = c.ok("FETCH 1 (INTERNALDATE SAVEDATE)")
        assert untagged[0].startswith(b'* 1 FETCH (INTERNALDATE "01-Jan-2020 00:00:00 +0000"'
                                      b' SAVEDATE "'), untagged
        assert b"-2020 " not in untagged[0].split(b"SAVEDATE")[1]
        caps = c.ok("CAPABILITY")[0].split()
        for cap in (b"OBJECTID", b"SAVEDATE", b"WITHIN"):
            assert cap in caps, caps
    finally:
        c.close()


def test_uid_search_gives_uids(env, corpus):
    c = Imap(env.ternd, USER)
    try:
        uids = c.search("ALL", uid=True)
        assert len(uids) == 5 and uids == sorted(uids)
        assert c.search("FROM alice", uid=True) == [uids[0]]
        assert c.search("UID %d:*" % uids[3], uid=True) == uids[3:]
        assert c.search("2:*", uid=True) == uids[1:]
        assert c.search("UID *", uid=True) == [uids[4]]
    finally:
        c.close()


def test_literal_utf8(conn):
    conn.c.send("a1 SEARCH CHARSET UTF-8 SUBJECT {6}\r\n")
    assert conn.c.readline().startswith(b"+ ")
    conn.c.send("crème".encode() + b"\r\n")
    untagged, tagged = conn.c.imap("a1")
    assert untagged == [b"* SEARCH 2"]
    assert tagged.startswith(b"a1 OK")
    # No CHARSET: UTF-8 is still understood.
    conn.c.send(b"a2 SEARCH FROM {7+}\r\nm\xc3\xbcller\r\n")
    untagged, tagged = conn.c.imap("a2")
    assert untagged == [b"* SEARCH 2"] and tagged.startswith(b"a2 OK")


def test_charset(conn):
    tag, untagged, tagged = conn.cmd("SEARCH CHARSET ISO-8859-1 ALL")
    assert untagged == []
    assert tagged.startswith(tag.encode() + b" NO [BADCHARSET (UTF-8 US-ASCII)]")
    tag, untagged, tagged = conn.cmd("SEARCH CHARSET KOI8-R FROM x")
    assert tagged.startswith(tag.encode() + b" NO [BADCHARSET (UTF-8 US-ASCII)]")
    assert conn.search("CHARSET utf-8 FROM alice") == [1]
    assert conn.search("CHARSET US-ASCII FROM alice") == [1]
    assert conn.search('CHARSET "UTF-8" ALL') == ALL


@pytest.mark.parametrize("criteria", [
    "", "FOO", "SINCE 32-Jan-2026", "SINCE 1-Foo-2026", "ON 2026-01-01", "LARGER x",
    "LARGER", "OR ALL", "NOT", "UID", "UID x", "1:x", "0", "SUBJECT", "HEADER", "()",
    "CHARSET", "RETURN (BOGUS) ALL", "KEYWORD", "(ALL", "OR ALL ALL ALL)",
    "OLDER", "OLDER 0", "YOUNGER x", "YOUNGER 4294967296", "OLDER -5",
])
def test_bad(conn, criteria):
    tag, untagged, tagged = conn.cmd(("SEARCH " + criteria).rstrip())
    assert untagged == []
    assert tagged.startswith(tag.encode() + b" BAD"), tagged


def test_deep_nesting_refused(conn):
    tag, untagged, tagged = conn.cmd("SEARCH " + "NOT " * 500 + "ALL")
    assert tagged.startswith(tag.encode() + b" BAD")
    assert conn.search("NOT " * 50 + "ALL") == ALL
    assert conn.search("NOT " * 51 + "ALL") == []


def test_search_needs_selected(env, corpus):
    c = Imap(env.ternd, USER, select=False)
    try:
        tag, untagged, tagged = c.cmd("SEARCH ALL")
        assert tagged.startswith(tag.encode() + b" BAD")
    finally:
        c.close()


def esearch(conn, command):
    tag, untagged, tagged = conn.cmd(command)
    assert tagged.startswith(tag.encode() + b" OK"), tagged
    return tag, untagged


@pytest.mark.parametrize("command,items", [
    ("SEARCH RETURN (MIN MAX COUNT) ALL", " MIN 1 MAX 5 COUNT 5"),
    ("SEARCH RETURN (MIN) UNSEEN", " MIN 2"),
    ("SEARCH RETURN (MAX) UNDRAFT", " MAX 4"),
    ("SEARCH RETURN () 2:4", " ALL 2:4"),
    ("SEARCH RETURN (ALL) OR 1 3:5", " ALL 1,3:5"),
    ("SEARCH RETURN (ALL) OR 1 OR 3 5", " ALL 1,3,5"),
    ("SEARCH RETURN (COUNT) TO team", " COUNT 4"),
    ("SEARCH RETURN (MIN MAX ALL COUNT) BCC nobody", " COUNT 0"),
    ("SEARCH RETURN (MIN MAX ALL) BCC nobody", ""),
    ("UID SEARCH RETURN (ALL) OR 1 3:4", " UID ALL 1,3:4"),
    ("UID SEARCH RETURN (MIN COUNT) KEYWORD $Work", " UID MIN 1 COUNT 2"),
    ("UID SEARCH RETURN (COUNT) BCC nobody", " UID COUNT 0"),
])
def test_esearch(conn, command, items):
    tag, untagged = esearch(conn, command)
    assert untagged == [('* ESEARCH (TAG "%s")%s' % (tag, items)).encode()]


def test_searchres_save(conn):
    tag, untagged = esearch(conn, "SEARCH RETURN (SAVE) FROM alice")
    assert untagged == []
    assert conn.search("$") == [1]
    untagged = conn.ok("FETCH $ (UID)")
    assert untagged == [b"* 1 FETCH (UID 1)"]
    # "$" inside criteria, and saved again.
    tag, untagged = esearch(conn, "SEARCH RETURN (SAVE COUNT) OR $ FLAGGED")
    assert untagged == [('* ESEARCH (TAG "%s") COUNT 2' % tag).encode()]
    assert conn.search("$") == [1, 2]
    assert conn.search("UID $", uid=True) == [1, 2]
    assert conn.search("NOT $") == [3, 4, 5]
    # SAVE with MIN/MAX alone keeps just those.
    esearch(conn, "SEARCH RETURN (SAVE MIN MAX) TO team")
    assert conn.search("$") == [2, 5]
    esearch(conn, "SEARCH RETURN (SAVE MIN) TO team")
    assert conn.search("$") == [2]
    # A failed SEARCH ... SAVE leaves "$" empty (RFC 5182 2.1).
    tag, untagged, tagged = conn.cmd("SEARCH RETURN (SAVE) FOO")
    assert tagged.startswith(tag.encode() + b" BAD")
    assert conn.search("$") == []
    esearch(conn, "SEARCH RETURN (SAVE) ALL")
    assert conn.search("$") == ALL
    tag, untagged, tagged = conn.cmd("SEARCH RETURN (SAVE) CHARSET X ALL")
    assert tagged.startswith(tag.encode() + b" NO [BADCHARSET")
    assert conn.search("$") == []
    # SELECT empties it.
    esearch(conn, "SEARCH RETURN (SAVE) ALL")
    conn.ok("SELECT INBOX")
    assert conn.search("$") == []


def test_rev2_answers_esearch(env, corpus):
    c = Imap(env.ternd, USER, rev2=True)
    try:
        tag, untagged = esearch(c, "SEARCH FROM alice")
        assert untagged == [('* ESEARCH (TAG "%s") ALL 1' % tag).encode()]
        tag, untagged = esearch(c, "UID SEARCH 2:5")
        assert untagged == [('* ESEARCH (TAG "%s") UID ALL 2:5' % tag).encode()]
        tag, untagged = esearch(c, "SEARCH BCC nobody")
        assert untagged == [('* ESEARCH (TAG "%s")' % tag).encode()]
        tag, untagged = esearch(c, "SEARCH RETURN (COUNT) ALL")
        assert untagged == [('* ESEARCH (TAG "%s") COUNT 5' % tag).encode()]
    finally:
        c.close()


def test_modseq(conn):
    # The first CONDSTORE-enabling command tells HIGHESTMODSEQ first
    # (RFC 7162 3.1).
    untagged = conn.ok("SEARCH MODSEQ 1")
    assert len(untagged) == 2
    m = re.fullmatch(rb"\* SEARCH 1 2 3 4 5 \(MODSEQ (\d+)\)", untagged[1])
    assert m, untagged
    top = int(m.group(1))
    assert untagged[0] == b"* OK [HIGHESTMODSEQ %d] Highest" % top
    untagged = conn.ok("SEARCH MODSEQ %d" % (top + 1))
    assert untagged == [b"* SEARCH"]
    untagged = conn.ok('SEARCH MODSEQ "/flags/\\\\draft" all %d' % top)
    assert re.fullmatch(rb"\* SEARCH \d( \d)* \(MODSEQ %d\)" % top, untagged[0]), untagged
    tag, untagged = esearch(conn, "SEARCH RETURN (COUNT) MODSEQ 1")
    assert untagged == [('* ESEARCH (TAG "%s") COUNT 5 MODSEQ %d' % (tag, top)).encode()]


def test_emailid(conn):
    untagged = conn.ok("FETCH 3 (EMAILID)")
    m = re.fullmatch(rb"\* 3 FETCH \(EMAILID \((E[0-9a-f]{16})\)\)", untagged[0])
    assert m, untagged
    assert conn.search("EMAILID " + m.group(1).decode()) == [3]
    assert conn.search("EMAILID E0000000000000000") == []
    assert conn.search("THREADID T1") == []
    assert conn.search("NOT THREADID T1") == ALL


def test_recent_new_old_live(env):
    t = env.ternd
    t.send("%s@example.test" % LIVE, M1)
    # The first SELECT is told of message 1: RECENT (and NEW, unseen) in
    # that session alone (RFC 3501 2.3.2).
    first = Imap(t, LIVE)
    try:
        assert first.search("RECENT") == [1]
        assert first.search("NEW") == [1]
        assert first.search("OLD") == []
    finally:
        first.close()
    c = Imap(t, LIVE)
    try:
        assert c.search("RECENT") == []
        assert c.search("NEW") == []
        assert c.search("OLD") == [1]
        t.send("%s@example.test" % LIVE, M2)
        for _ in range(50):
            untagged = c.ok("NOOP")
            if b"* 2 EXISTS" in untagged:
                break
            time.sleep(0.1)
        assert c.search("RECENT") == [2]
        assert c.search("NEW") == [2]
        assert c.search("OLD") == [1]
        c.ok("STORE 2 +FLAGS (\\Seen)")
        assert c.search("NEW") == []
        assert c.search("RECENT") == [2]
    finally:
        c.close()
