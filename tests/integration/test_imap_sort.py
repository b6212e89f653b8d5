"""IMAP SORT and THREAD (RFC 5256), ESORT (RFC 5267) and SORT=DISPLAY
(RFC 5957) against the real ternd: every sort key and REVERSE
combinations on a hand-built mailbox (sent dates in several zones, a
missing and a broken Date:, RFC 2047 names and subjects, groups, ties),
the RFC 5256 base-subject rules, SORT with search criteria, UID SORT, the
ESORT RETURN forms, THREAD ORDEREDSUBJECT and REFERENCES on messages with
known threading (a missing parent, a loop in References, subject-only
merging, a dummy root) and UID THREAD. Responses are checked byte for byte
on a raw connection."""
import pytest

from harness import RawLines, password

USER = "user43"


def msg(headers, body_len=0):
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + b"x" * body_len


# Keys by message number (INBOX, after the first message is expunged so
# that UID = number + 1):
#  n  From (mailbox / display)  To (mailbox / display)   Cc     base subject  sent (UTC)         arrival  body
#  1  bob / Zed Alpha           xavier / Mary            carol  hello world   02-Mar 10:00       :05      3000
#  2  alice / alice@ex          yolanda / yolanda@ex     -      hello world   02-Mar 09:30       :01      1000
#  3  charlie / carl            zoe / Anna               bert   apple         (none: arrival)    :03      5000
#  4  dave / Émile              adam / Bob               alan   banana        03-Mar 13:00       :04      2000
#  5  bob / Zed Alpha           -                        -      hello world   02-Mar 10:00       :02      4000
#  6  erin / erin@ex            (group, no address)      -      ""            (broken: arrival)  :06      0
INBOX = [
    (msg(["From: \"Zed Alpha\" <bob@ex.test>", "To: Mary <xavier@ex.test>",
          "Cc: carol@ex.test", "Subject: Re: hello world",
          "Date: Mon, 02 Mar 2026 10:00:00 +0000", "Message-ID: <s1@ex.test>"], 3000),
     "01-Mar-2026 00:00:05 +0000"),
    (msg(["From: alice@ex.test", "To: yolanda@ex.test",
          "Subject: =?UTF-8?Q?=5Bblob=5D_Fwd=3A_Hello_World?=",
          "Date: Mon, 2 Mar 2026 11:30 +0200"], 1000),
     "01-Mar-2026 00:00:01 +0000"),
    (msg(["From: carl <charlie@ex.test>", "To: \"Anna\" <zoe@ex.test>",
          "Cc: A <bert@ex.test>", "Subject: Apple (fwd)"], 5000),
     "01-Mar-2026 00:00:03 +0000"),
    (msg(["From: =?ISO-8859-1?Q?=C9mile?= <dave@ex.test>", "To: Bob <adam@ex.test>",
          "Cc: alan@ex.test", "Subject: [list] Re: [other] banana",
          "Date: Tue, 3 Mar 2026 08:00:00 -0500 (EST)"], 2000),
     "01-Mar-2026 00:00:04 +0000"),
    (msg(["From: Zed Alpha <bob@ex.test>", "Subject: hello world",
          "Date: 02 Mar 2026 11:00:00 +0100"], 4000),
     "01-Mar-2026 00:00:02 +0000"),
    (msg(["From: <erin@ex.test>", "To: undisclosed-recipients:;", "Subject: ",
          "Date: not a date at all"], 0),
     "01-Mar-2026 00:00:06 +0000"),
]

# RFC 5256 2.1 base subjects (mailbox "Subjects"), dates ascending.
SUBJECTS = [
    "Re: Re: re: Topic",                   # 1 topic
    "Fwd: [ML] RE: topic (fwd)",           # 2 topic
    "[fwd: Topic]",                        # 3 topic
    "=?UTF-8?Q?Re=3A_topic?=",             # 4 topic (decoded first)
    "[ML]",                                # 5 [ml]: a blob alone stays
    "Topic   ",                            # 6 topic
    "Re : other",                          # 7 other
    "ReX: other",                          # 8 rex: other
]

# REFERENCES threading (mailbox "Threads"; UID = number + 1).
THREADS = [
    ("<a@x>", [], "Alpha", "01 Mar 2026 10:00:00 +0000"),                     # 1
    ("<b@x>", ["References: <a@x>"], "Re: Alpha", "01 Mar 2026 11:00:00 +0000"),  # 2
    ("<c@x>", ["References: <a@x>\r\n <b@x>"], "Re: Alpha",
     "01 Mar 2026 12:00:00 +0000"),                                             # 3
    # its parent <missing@x> was never seen: it hangs under <a@x>
    ("<d@x>", ["References: <a@x> <missing@x>"], "Re: Alpha",
     "01 Mar 2026 10:30:00 +0000"),                                             # 4
    # two replies to a message that is not there: a dummy root
    ("<e@x>", ["In-Reply-To: <gone@x>"], "Beta", "02 Mar 2026 09:00:00 +0000"),   # 5
    ("<f@x>", ["In-Reply-To: Your message <gone@x> of Monday"], "Re: Beta",
     "02 Mar 2026 08:00:00 +0000"),                                             # 6
    # a loop in References: g says h is its parent, h says g is
    ("<g@x>", ["References: <h@x>"], "Gamma", "03 Mar 2026 10:00:00 +0000"),     # 7
    ("<h@x>", ["References: <g@x>"], "Gamma", "03 Mar 2026 11:00:00 +0000"),     # 8
    # no references: merged by subject, the reply under the original
    ("<i@x>", [], "Re: Delta", "04 Mar 2026 10:00:00 +0000"),                  # 9
    ("<j@x>", [], "Delta", "04 Mar 2026 09:00:00 +0000"),                      # 10
    # same subject, neither a reply: a dummy holds both
    ("<k@x>", [], "Epsilon", "05 Mar 2026 10:00:00 +0000"),                    # 11
    ("<l@x>", [], "Epsilon", "05 Mar 2026 11:00:00 +0000"),                    # 12
]


class Imap:
    def __init__(self, t, login, mailbox="INBOX"):
        self.c = RawLines(t.imap_port)
        assert self.c.readline().startswith(b"* OK")
        self.n = 0
        self.ok("LOGIN %s %s" % (login, password(login)))
        if mailbox is not None:
            self.ok("SELECT %s" % mailbox)

    def cmd(self, command):
        self.n += 1
        tag = "t%d" % self.n
        untagged, tagged = self.c.imap(tag, command)
        return tag, untagged, tagged

    def ok(self, command):
        tag, untagged, tagged = self.cmd(command)
        assert tagged.startswith(tag.encode() + b" OK"), (command, tagged)
        return untagged

    def one(self, command, prefix):
        """The single untagged line starting with prefix."""
        lines = [l for l in self.ok(command) if l.startswith(prefix)]
        assert len(lines) == 1, (command, lines)
        return lines[0].decode()

    def append(self, mailbox, data, date=None):
        self.n += 1
        tag = "t%d" % self.n
        d = ' "%s"' % date if date else ""
        self.c.send("%s APPEND %s ()%s {%d+}\r\n" % (tag, mailbox, d, len(data)))
        self.c.send(data + b"\r\n")
        _, tagged = self.c.imap(tag)
        assert tagged.startswith(tag.encode() + b" OK"), tagged

    def close(self):
        self.c.close()


@pytest.fixture(scope="module")
def mail(env):
    c = Imap(env.ternd, USER, mailbox=None)
    c.ok("CREATE Subjects")
    c.ok("CREATE Threads")
    # A first message, expunged, so UIDs differ from message numbers.
    for box in ("INBOX", "Threads"):
        c.append(box, msg(["Subject: gone"]), "28-Feb-2026 00:00:00 +0000")
    for data, date in INBOX:
        c.append("INBOX", data, date)
    for i, s in enumerate(SUBJECTS):
        c.append("Subjects", msg(["From: a@ex.test", "Subject: " + s,
                                  "Date: 0%d Mar 2026 10:00:00 +0000" % (i + 1)]))
    for mid, extra, subj, date in THREADS:
        c.append("Threads", msg(["From: a@ex.test", "Message-ID: " + mid] + extra +
                                ["Subject: " + subj, "Date: " + date]))
    for box in ("INBOX", "Threads"):
        c.ok("SELECT " + box)
        c.ok("STORE 1 +FLAGS (\\Deleted)")
        c.ok("EXPUNGE")
    c.close()


@pytest.fixture
def conn(env, mail):
    c = Imap(env.ternd, USER)
    yield c
    c.close()


def test_capability(env, mail):
    c = Imap(env.ternd, USER, mailbox=None)
    caps = c.one("CAPABILITY", b"* CAPABILITY").split()
    for cap in ("SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES", "I18NLEVEL=1"):
        assert cap in caps
    c.close()


@pytest.mark.parametrize("criteria,expected", [
    ("ARRIVAL", "2 5 3 4 1 6"),
    ("REVERSE ARRIVAL", "6 1 4 3 5 2"),
    ("DATE", "3 6 2 1 5 4"),          # 1 and 5 tie: message order
    ("REVERSE DATE", "4 1 5 2 6 3"),  # the tie stays in message order
    ("SUBJECT", "6 3 4 1 2 5"),
    ("REVERSE SUBJECT", "1 2 5 4 3 6"),
    ("SUBJECT REVERSE DATE", "6 3 4 1 5 2"),
    ("REVERSE SUBJECT DATE", "2 1 5 4 3 6"),
    ("FROM", "2 1 5 3 4 6"),
    ("REVERSE FROM ARRIVAL", "6 4 3 5 1 2"),
    ("FROM REVERSE ARRIVAL", "2 1 5 3 4 6"),
    ("DISPLAYFROM", "2 3 6 4 1 5"),   # "erin@ex.test" < "Émile" (E + U+0301)
    ("REVERSE DISPLAYFROM", "1 5 4 6 3 2"),
    ("TO", "5 6 4 1 2 3"),
    ("DISPLAYTO", "5 6 3 4 1 2"),
    ("CC", "2 5 6 4 3 1"),
    ("REVERSE CC", "1 3 4 2 5 6"),
    ("SIZE", "6 2 4 1 5 3"),
    ("REVERSE SIZE", "3 5 1 4 2 6"),
    ("reverse size", "3 5 1 4 2 6"),
    ("FROM SUBJECT", "2 1 5 3 4 6"),
    ("CC DATE", "6 2 5 4 3 1"),
])
def test_sort_keys(conn, criteria, expected):
    line = conn.one("SORT (%s) UTF-8 ALL" % criteria, b"* SORT")
    assert line == "* SORT " + expected


def test_uid_sort(conn):
    assert conn.one("UID SORT (DATE) UTF-8 ALL", b"* SORT") == "* SORT 4 7 3 2 6 5"
    assert conn.one("UID SORT (REVERSE SIZE) US-ASCII ALL",
                    b"* SORT") == "* SORT 4 6 2 5 3 7"


@pytest.mark.parametrize("command,expected", [
    ("SORT (SUBJECT) UTF-8 FROM bob", "* SORT 1 5"),
    ("SORT (DATE) US-ASCII NOT SUBJECT hello", "* SORT 3 6 4"),
    ("SORT (ARRIVAL) UTF-8 UID 3:5", "* SORT 2 3 4"),
    ("SORT (REVERSE DATE) UTF-8 OR CC alan TO xavier", "* SORT 4 1"),
    ("SORT (SIZE) UTF-8 LARGER 2500 BODY xxx", "* SORT 1 5 3"),
    ("SORT (DATE) UTF-8 FROM nobody", "* SORT"),
    ("SORT (DATE) \"UTF-8\" 2:4", "* SORT 3 2 4"),
    # a bare set is message numbers in UID SORT too
    ("UID SORT (SUBJECT) UTF-8 2,4:*", "* SORT 7 5 3 6"),
])
def test_sort_with_criteria(conn, command, expected):
    assert conn.one(command, b"* SORT") == expected


def test_esort(conn):
    tag, untagged, tagged = conn.cmd("SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL")
    assert untagged == [b'* ESEARCH (TAG "%s") MIN 3 MAX 4 COUNT 6' % tag.encode()]
    assert tagged == tag.encode() + b" OK SORT completed"
    tag, untagged, _ = conn.cmd("SORT RETURN (ALL) (DATE) UTF-8 ALL")
    assert untagged == [b'* ESEARCH (TAG "%s") ALL 3,6,2,1,5,4' % tag.encode()]
    # ascending runs become ranges, which keep the order
    tag, untagged, _ = conn.cmd("SORT RETURN () (SUBJECT) UTF-8 ALL")
    assert untagged == [b'* ESEARCH (TAG "%s") ALL 6,3:4,1:2,5' % tag.encode()]
    tag, untagged, tagged = conn.cmd("UID SORT RETURN (COUNT MIN) (SUBJECT) UTF-8 ALL")
    assert untagged == [b'* ESEARCH (TAG "%s") UID MIN 7 COUNT 6' % tag.encode()]
    assert tagged == tag.encode() + b" OK UID SORT completed"
    tag, untagged, _ = conn.cmd("UID SORT RETURN (MAX ALL) (ARRIVAL) UTF-8 ALL")
    assert untagged == [b'* ESEARCH (TAG "%s") UID MAX 7 ALL 3,6,4:5,2,7' % tag.encode()]
    tag, untagged, _ = conn.cmd("SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 FROM nobody")
    assert untagged == [b'* ESEARCH (TAG "%s") COUNT 0' % tag.encode()]


@pytest.mark.parametrize("command,status", [
    ("SORT (FOO) UTF-8 ALL", b"BAD"),
    ("SORT (REVERSE) UTF-8 ALL", b"BAD"),
    ("SORT (REVERSE REVERSE DATE) UTF-8 ALL", b"BAD"),
    ("SORT () UTF-8 ALL", b"BAD"),
    ("SORT DATE UTF-8 ALL", b"BAD"),
    ("SORT (DATE) UTF-8", b"BAD"),
    ("SORT (DATE)", b"BAD"),
    ("SORT (DATE) UTF-8 FOO", b"BAD"),
    ("SORT RETURN (SAVE) (DATE) UTF-8 ALL", b"BAD"),
    ("SORT (DATE) KOI8-R ALL", b"NO [BADCHARSET (UTF-8 US-ASCII)]"),
    ("THREAD FOO UTF-8 ALL", b"BAD"),
    ("THREAD REFERENCES UTF-8", b"BAD"),
    ("THREAD REFERENCES BOGUS ALL", b"NO [BADCHARSET (UTF-8 US-ASCII)]"),
])
def test_errors(conn, command, status):
    tag, _, tagged = conn.cmd(command)
    assert tagged.startswith(tag.encode() + b" " + status), tagged
    conn.ok("NOOP")  # the session goes on


def test_not_selected(env, mail):
    c = Imap(env.ternd, USER, mailbox=None)
    tag, _, tagged = c.cmd("SORT (DATE) UTF-8 ALL")
    assert tagged.startswith(tag.encode() + b" BAD"), tagged
    c.close()


def test_base_subject(env, mail):
    c = Imap(env.ternd, USER, mailbox="Subjects")
    # canonical forms compared octet by octet: OTHER < REX: OTHER < TOPIC < [ML]
    assert c.one("SORT (SUBJECT) UTF-8 ALL", b"* SORT") == "* SORT 7 8 1 2 3 4 6 5"
    assert c.one("THREAD ORDEREDSUBJECT UTF-8 ALL",
                 b"* THREAD") == "* THREAD (1 (2)(3)(4)(6))(5)(7)(8)"
    assert c.one("THREAD ORDEREDSUBJECT UTF-8 NOT 1",
                 b"* THREAD") == "* THREAD (2 (3)(4)(6))(5)(7)(8)"
    assert c.one("THREAD ORDEREDSUBJECT UTF-8 7:8",
                 b"* THREAD") == "* THREAD (7)(8)"
    c.close()


def test_thread_references(env, mail):
    c = Imap(env.ternd, USER, mailbox="Threads")
    assert c.one("THREAD REFERENCES UTF-8 ALL", b"* THREAD") == (
        "* THREAD (1 (4)(2 3))((6)(5))(8 7)(10 9)((11)(12))")
    assert c.one("UID THREAD REFERENCES UTF-8 ALL", b"* THREAD") == (
        "* THREAD (2 (5)(3 4))((7)(6))(9 8)(11 10)((12)(13))")
    # Without <a@x>: its replies hang under a dummy of their own.
    assert c.one("THREAD REFERENCES UTF-8 2:4", b"* THREAD") == "* THREAD ((4)(2 3))"
    assert c.one("THREAD REFERENCES UTF-8 SUBJECT alpha",
                 b"* THREAD") == "* THREAD (1 (4)(2 3))"
    assert c.one("THREAD REFERENCES UTF-8 5", b"* THREAD") == "* THREAD (5)"
    assert c.one("THREAD REFERENCES UTF-8 FROM nobody", b"* THREAD") == "* THREAD"
    assert c.one("THREAD ORDEREDSUBJECT UTF-8 ALL", b"* THREAD") == (
        "* THREAD (1 (4)(2)(3))(6 5)(7 8)(10 9)(11 12)")  # one child: no nesting
    c.close()
