"""IMAP responses checked on the wire against the RFC 3501 / RFC 9051
grammar and the extensions' (RFC 7888 LITERAL+, RFC 4315 UIDPLUS,
RFC 5182 SEARCHRES, RFC 4731 ESEARCH, RFC 5258 LIST-EXTENDED), the way a
strict compliance suite (imaptest) and strict clients read them: exact
lines where the RFC fixes them.

Locked in here, besides the grammar points: a keyword new to the mailbox
is announced in FLAGS and PERMANENTFLAGS before any FETCH shows it (in
the session that stored it and in the others); the rest of a command
whose non-synchronizing literal was refused is thrown away, not run as a
command of its own; INBOX is matched case-insensitively by LIST patterns
with wildcards.

Every test uses a user of its own; mail is put in with APPEND (LITERAL+).
"""
import re

import pytest

import harness


@pytest.fixture(scope="module")
def env():
    e = harness.Env()
    yield e
    e.close()


@pytest.fixture
def t(env):
    return env.ternd


class Imap(harness.RawLines):
    """cmd() returns (untagged lines, tagged line without the tag), bytes."""

    def __init__(self, t, login=None):
        super().__init__(t.imap_port)
        self.n = 0
        self.greeting = self.readline()
        if login is not None:
            _, tagged = self.cmd("LOGIN %s %s" % (login, harness.password(login)))
            assert tagged.startswith(b"OK"), tagged

    def cmd(self, text):
        self.n += 1
        tag = "c%d" % self.n
        if isinstance(text, str):
            text = text.encode()
        self.send(tag.encode() + b" " + text + b"\r\n")
        untagged, tagged = self.imap(tag)
        return untagged, tagged[len(tag) + 1:]

    def ok(self, text):
        u, tagged = self.cmd(text)
        assert tagged.startswith(b"OK"), (text, u, tagged)
        return u

    def append(self, box, msg, flags=""):
        if isinstance(msg, str):
            msg = msg.encode()
        return self.ok(("APPEND %s %s{%d+}\r\n" % (box, flags, len(msg))).encode() + msg)


MSG_MULTI = (b"From: \"Doe, J\" <j@example.org>\r\n"
             b"To: team: x@example.org, y@example.org;, z@example.org\r\n"
             b"Subject: multipart\r\n"
             b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
             b"Message-ID: <m@example.org>\r\n"
             b"MIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"BB\"\r\n"
             b"\r\n"
             b"--BB\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n"
             b"\r\n"
             b"hello\r\n"
             b"--BB\r\n"
             b"Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
             b"Content-Disposition: attachment; filename=\"a.bin\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n"
             b"\r\n"
             b"AAECAwQ=\r\n"
             b"--BB--\r\n")

FLAGS5 = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def test_greeting_capability_logout(t):
    c = Imap(t)
    try:
        assert re.match(rb"^\* OK \[CAPABILITY IMAP4rev1 IMAP4rev2 [^\]]*\] ", c.greeting)
        u, tagged = c.cmd("CAPABILITY")
        assert len(u) == 1 and u[0].startswith(b"* CAPABILITY IMAP4rev1 "), u
        assert b"AUTH=PLAIN" in u[0].split() and b"LITERAL+" in u[0].split()
        assert tagged == b"OK CAPABILITY completed"
        u, tagged = c.cmd("logout")  # commands are case-insensitive
        assert u == [b"* BYE Logging out"] and tagged == b"OK LOGOUT completed"
    finally:
        c.close()


def test_tags_commands_and_states(t):
    c = Imap(t)
    try:
        # tag = 1*<any ASTRING-CHAR except "+">: "]" is allowed, "*" not.
        c.send("a]b NOOP\r\n")
        assert c.readline() == b"a]b OK NOOP completed"
        for bad in ("a*b", "a{b", "a%b", "+", "a(b"):
            c.send("%s NOOP\r\n" % bad)
            assert c.readline() == b"* BAD Invalid tag"
        assert c.cmd("FROBNICATE")[1] == b"BAD Unknown command FROBNICATE"
        assert c.cmd("SELECT INBOX")[1].startswith(b"BAD")  # not authenticated
        assert c.cmd("LOGIN user10")[1].startswith(b"BAD")  # missing argument
        # LOGIN's arguments as a synchronizing and a LITERAL+ literal.
        c.n += 1
        c.send("c%d LOGIN {6}\r\n" % c.n)
        assert c.readline().startswith(b"+ ")
        pw = harness.password("user10")
        c.send("user10 {%d+}\r\n%s\r\n" % (len(pw), pw))
        _, tagged = c.imap("c%d" % c.n)
        assert tagged.startswith(b"c%d OK [CAPABILITY IMAP4rev1 " % c.n), tagged
        assert c.cmd("FETCH 1 FLAGS")[1].startswith(b"BAD")  # nothing selected
        assert c.cmd("LOGIN user10 x")[1].startswith(b"BAD")  # already in
    finally:
        c.close()


def test_sequence_sets(t):
    c = Imap(t, "user11")
    try:
        c.ok("CREATE seq")
        u = c.ok("SELECT seq")
        assert b"* 0 EXISTS" in u
        # RFC 9051 9: "*" in an empty mailbox is a BAD; UID sets never are.
        assert c.cmd("FETCH 1:* FLAGS")[1].startswith(b"BAD")
        assert c.cmd("UID FETCH 1:* FLAGS") == ([], b"OK FETCH completed")
        for i in range(4):
            c.append("seq", "Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
        c.ok("NOOP")
        assert c.cmd("FETCH *:2 UID")[0] == [b"* 2 FETCH (UID 2)", b"* 3 FETCH (UID 3)",
                                              b"* 4 FETCH (UID 4)"]
        assert c.cmd("FETCH 3:2,1 UID")[0] == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 2)",
                                                b"* 3 FETCH (UID 3)"]
        # "UID n:*" names the highest UID even when n is above it.
        assert c.cmd("UID FETCH 1000:* UID") == ([b"* 4 FETCH (UID 4)"], b"OK FETCH completed")
        assert c.cmd("UID FETCH 1000 UID") == ([], b"OK FETCH completed")
        for bad in ("0", "5", "1:5", "1,,2", "1:", "-1", "01"):
            assert c.cmd("FETCH %s UID" % bad)[1].startswith(b"BAD"), bad
        assert c.cmd("UID SEARCH RETURN (SAVE) 2:3") == ([], b"OK UID SEARCH completed, result saved")
        assert c.cmd("FETCH $ UID")[0] == [b"* 2 FETCH (UID 2)", b"* 3 FETCH (UID 3)"]
        assert c.cmd("SEARCH $") == ([b"* SEARCH 2 3"], b"OK SEARCH completed")
    finally:
        c.close()


def test_fetch_item_grammar(t):
    c = Imap(t, "user12")
    try:
        c.append("INBOX", MSG_MULTI, '(\\Seen) "05-Jan-2026 10:00:00 +0000" ')
        # The first SELECT since the APPEND is told of it: \Recent here.
        c.ok("SELECT INBOX")
        size = len(MSG_MULTI)
        u, tagged = c.cmd("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE UID)")
        assert u == [b'* 1 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "05-Jan-2026 10:00:00 +0000" '
                     b"RFC822.SIZE %d UID 1)" % size]
        # A partial's origin is echoed, its length is not (RFC 9051 7.5.2).
        u, _ = c.cmd("FETCH 1 BODY.PEEK[]<0.10>")
        assert u == [b"* 1 FETCH (BODY[]<0> {10}", MSG_MULTI[:10] + b")"]
        u, _ = c.cmd("FETCH 1 BODY.PEEK[]")
        assert u[0] == b"* 1 FETCH (BODY[] {%d}" % size  # = RFC822.SIZE
        u, _ = c.cmd("FETCH 1 BODY.PEEK[]<%d.5>" % (size + 10))
        assert u == [b'* 1 FETCH (BODY[]<%d> "")' % (size + 10)]
        u, _ = c.cmd("FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])")
        # Decoded bytes with a NUL: literal8 (RFC 3516).
        assert u == [b"* 1 FETCH (BINARY[2] ~{5}", b"\x00\x01\x02\x03\x04 BINARY.SIZE[2] 5)"]
        u, _ = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject)]")
        assert u == [b"* 1 FETCH (BODY[HEADER.FIELDS (Subject)] {22}", b"Subject: multipart",
                     b"", b")"]
        u, _ = c.cmd("FETCH 1 BODYSTRUCTURE")
        assert u == [b'* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL '
                     b'"7BIT" 5 1 NIL NIL NIL NIL)("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") '
                     b'NIL NIL "BASE64" 8 NIL ("ATTACHMENT" ("FILENAME" "a.bin")) NIL NIL) '
                     b'"MIXED" ("BOUNDARY" "BB") NIL NIL NIL))']
        u, _ = c.cmd("FETCH 1 BODY")
        assert u == [b'* 1 FETCH (BODY (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 5 1)'
                     b'("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") NIL NIL "BASE64" 8) "MIXED"))']
        u, _ = c.cmd("FETCH 1 ENVELOPE")
        # A group is a start marker (NIL NIL name NIL) and an end marker
        # (NIL NIL NIL NIL); a quoted display name keeps its comma.
        assert u == [b'* 1 FETCH (ENVELOPE ("Thu, 01 Jan 2026 00:00:00 +0000" "multipart" '
                     b'(("Doe, J" NIL "j" "example.org")) (("Doe, J" NIL "j" "example.org")) '
                     b'(("Doe, J" NIL "j" "example.org")) ((NIL NIL "team" NIL)'
                     b'(NIL NIL "x" "example.org")(NIL NIL "y" "example.org")(NIL NIL NIL NIL)'
                     b'(NIL NIL "z" "example.org")) NIL NIL NIL "<m@example.org>"))']
        for bad in ("(FAST)", "()", "BODY[]<0>", "BODY[]<0.0>", "BODY[MIME]", "BODY[0]",
                    "BINARY[TEXT]", "BODY[HEADER.FIELDS ()]", "FOO"):
            assert c.cmd("FETCH 1 %s" % bad)[1] == b"BAD Invalid FETCH items", bad
    finally:
        c.close()


def test_new_keyword_announced_before_fetch(t):
    a = Imap(t, "user13")
    b = Imap(t, "user13")
    try:
        a.ok("CREATE kw")
        a.append("kw", "Subject: 1\r\n\r\none\r\n")
        a.append("kw", "Subject: 2\r\n\r\ntwo\r\n")
        # a selects first: messages 1 and 2 are \Recent in a, not in b.
        ua = a.ok("SELECT kw")
        assert ua[0] == b"* FLAGS (%s)" % FLAGS5
        assert b"* 2 RECENT" in ua, ua
        assert b"* 0 RECENT" in b.ok("SELECT kw")
        u, _ = a.cmd("STORE 1 +FLAGS (kw1)")
        assert u == [b"* FLAGS (%s kw1)" % FLAGS5,
                     b"* OK [PERMANENTFLAGS (%s kw1 \\*)] Flags permitted" % FLAGS5,
                     b"* 1 FETCH (FLAGS (\\Recent kw1))"]
        u, _ = a.cmd("STORE 1 +FLAGS (kw1)")
        assert u == [b"* 1 FETCH (FLAGS (\\Recent kw1))"]  # known now: no FLAGS again
        # The other session learns of it before its FETCH shows it.
        u, _ = b.cmd("FETCH 1 FLAGS")
        assert u[:3] == [b"* FLAGS (%s kw1)" % FLAGS5,
                         b"* OK [PERMANENTFLAGS (%s kw1 \\*)] Flags permitted" % FLAGS5,
                         b"* 1 FETCH (FLAGS (kw1))"], u
        # .SILENT shows no flags, but FLAGS still grows.
        u, _ = a.cmd("STORE 2 +FLAGS.SILENT (kw2)")
        assert u == [b"* FLAGS (%s kw1 kw2)" % FLAGS5,
                     b"* OK [PERMANENTFLAGS (%s kw1 kw2 \\*)] Flags permitted" % FLAGS5]
        u, _ = b.cmd("NOOP")
        assert u == [b"* FLAGS (%s kw1 kw2)" % FLAGS5,
                     b"* OK [PERMANENTFLAGS (%s kw1 kw2 \\*)] Flags permitted" % FLAGS5,
                     b"* 2 FETCH (FLAGS (kw2))"]
        # APPEND to the selected mailbox: FLAGS before EXISTS. a is told
        # of message 3 first, so all three are \Recent in a.
        u = a.append("kw", "Subject: 3\r\n\r\nthree\r\n", "(kw3) ")
        assert u == [b"* FLAGS (%s kw1 kw2 kw3)" % FLAGS5,
                     b"* OK [PERMANENTFLAGS (%s kw1 kw2 kw3 \\*)] Flags permitted" % FLAGS5,
                     b"* 3 EXISTS", b"* 3 RECENT"]
        u = a.ok("EXAMINE kw")
        assert u[:3] == [b"* OK [CLOSED] Previous mailbox closed",
                         b"* FLAGS (%s kw1 kw2 kw3)" % FLAGS5,
                         b"* OK [PERMANENTFLAGS ()] Read-only mailbox"]
    finally:
        a.close()
        b.close()


def test_refused_nonsync_literal_skips_rest_of_command(t):
    c = Imap(t, "user14")
    try:
        # Over IMAP_LITERAL_MAX: NO [TOOBIG]; the literal and the rest of
        # its command line are read and thrown away, nothing else answers.
        c.send(b'a1 LIST "" {70000+}\r\n' + b"x" * 70000 + b" RETURN (CHILDREN)\r\na2 NOOP\r\n")
        assert c.readline() == b"a1 NO [TOOBIG] Literal too big"
        assert c.readline() == b"a2 OK NOOP completed"
        # MULTIAPPEND: the rest of the command announces another literal.
        big = b"y" * (1024 * 1024 + 1)
        c.send(b"a3 APPEND INBOX {%d+}\r\n" % len(big) + big +
               b" {11+}\r\na4 LOGOUT\r\n\r\na5 NOOP\r\n")
        assert c.readline() == b"a3 NO [TOOBIG] Literal too big"
        assert c.readline() == b"a5 OK NOOP completed"
        # A synchronizing literal over the limit gets no "+".
        c.send("a6 APPEND INBOX {99999999}\r\n")
        assert c.readline() == b"a6 NO [TOOBIG] Literal too big"
        assert c.cmd("NOOP")[1] == b"OK NOOP completed"
    finally:
        c.close()


def test_list_grammar_and_inbox_case(t):
    c = Imap(t, "user15")
    try:
        assert c.cmd('LIST "" ""') == ([b'* LIST (\\Noselect) "/" ""'], b"OK LIST completed")
        c.ok("CREATE INBOX/x")
        c.ok("CREATE inboxes")
        c.ok("CREATE p/q")
        u, _ = c.cmd('LIST "" InBoX*')
        assert u == [b'* LIST (\\HasChildren) "/" "INBOX"',
                     b'* LIST (\\HasNoChildren) "/" "INBOX/x"']
        u, _ = c.cmd('LIST "" inbox%')
        assert u == [b'* LIST (\\HasChildren) "/" "INBOX"',
                     b'* LIST (\\HasNoChildren) "/" "inboxes"']
        assert c.cmd("LIST inbox/ %")[0] == [b'* LIST (\\HasNoChildren) "/" "INBOX/x"']
        assert c.cmd('LIST "" p')[0] == [b'* LIST (\\HasChildren) "/" "p"']
        # DELETE of a parent leaves it \Noselect; DELETE INBOX is refused.
        c.ok("DELETE p")
        assert c.cmd('LIST "" p*')[0] == [b'* LIST (\\Noselect \\HasChildren) "/" "p"',
                                          b'* LIST (\\HasNoChildren) "/" "p/q"']
        assert c.cmd("DELETE inbox")[1].startswith(b"NO")
        # mUTF-7 for rev1 clients, UTF-8 after ENABLE UTF8=ACCEPT.
        c.ok('CREATE "&AMQ-rger"')
        assert c.cmd('LIST "" "&AMQ-*"')[0] == [b'* LIST (\\HasNoChildren) "/" "&AMQ-rger"']
        assert c.cmd('CREATE "&AMQ"')[1].startswith(b"BAD")
        u, tagged = c.cmd('LIST "" % RETURN (STATUS (MESSAGES UIDNEXT))')
        assert u[:2] == [b'* LIST (\\HasChildren) "/" "INBOX"',
                         b'* STATUS "INBOX" (MESSAGES 0 UIDNEXT 1)'], u
        assert c.cmd("ENABLE UTF8=ACCEPT")[0] == [b"* ENABLED UTF8=ACCEPT"]
        assert c.cmd('LIST "" "\xc3\x84*"'.encode("latin-1"))[0] == \
            [b'* LIST (\\HasNoChildren) "/" "\xc3\x84rger"']
    finally:
        c.close()


def test_message_command_errors(t):
    c = Imap(t, "user16")
    try:
        c.append("INBOX", "Subject: x\r\n\r\nx\r\n")
        c.ok("SELECT INBOX")
        assert c.cmd("STORE 1 +FLAGS (\\Recent)")[1].startswith(b"BAD")
        assert c.cmd("STORE 1 +FLAGS (\\Bogus)")[1].startswith(b"BAD")
        assert c.cmd("COPY 1 nope")[1] == b"NO [TRYCREATE] No such mailbox"
        assert c.cmd("MOVE 1 nope")[1] == b"NO [TRYCREATE] No such mailbox"
        assert c.cmd("APPEND nope {1+}\r\nx")[1] == b"NO [TRYCREATE] Mailbox does not exist"
        for date in ("5-Jan-2026 10:00:00 +0100", "05-Jan-2026 25:00:00 +0100",
                     "05-Jan-2026 10:00:00 +010", "05-Foo-2026 10:00:00 +0100"):
            assert c.cmd('APPEND INBOX "%s" {1+}\r\nx' % date)[1] == b"BAD Invalid date-time"
        # date-day-fixed: a space-padded day is valid. (Message 1 became
        # \Recent in this session at SELECT, message 2 now.)
        u = c.append("INBOX", "Subject: y\r\n\r\ny\r\n", '" 5-Jan-2026 10:00:00 +0000" ')
        assert u == [b"* 2 EXISTS", b"* 2 RECENT"]
        u, _ = c.cmd("FETCH 2 INTERNALDATE")
        assert u == [b'* 2 FETCH (INTERNALDATE "05-Jan-2026 10:00:00 +0000")']
        u, tagged = c.cmd("UID COPY 1:* INBOX")
        assert re.fullmatch(rb"OK \[COPYUID \d+ 1:2 3:4\] COPY completed", tagged), tagged
        assert c.cmd("SEARCH CHARSET FOO ALL")[1] == \
            b"NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"
        assert c.cmd("SEARCH RETURN (MIN MAX COUNT) ALL")[0] == \
            [b'* ESEARCH (TAG "c%d") MIN 1 MAX 4 COUNT 4' % c.n]
        assert c.cmd("UID SEARCH RETURN (ALL) 2:3")[0] == \
            [b'* ESEARCH (TAG "c%d") UID ALL 2:3' % c.n]
        assert c.cmd("SEARCH (OR 1 2) NOT 1")[0] == [b"* SEARCH 2"]
        assert c.cmd("SEARCH SINCE 1-January-2026")[1].startswith(b"BAD")
    finally:
        c.close()
