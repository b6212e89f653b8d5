"""IMAP FETCH and UID FETCH (RFC 9051 6.4.5, RFC 3501, RFC 3516 BINARY,
RFC 8474 EMAILID/THREADID, RFC 8514 SAVEDATE) against the real ternd: a
small corpus delivered over SMTP (8-bit and folded headers, a
multipart/alternative with quoted-printable and base64 parts, a nested
multipart/mixed with a message/rfc822 attachment, binary data with NUL
bytes, an unknown transfer encoding), exact response bytes for every
item, partials at the edges, implicit \\Seen, and a 1,000-message FETCH.

Each test that changes flags uses a user of its own."""
import base64
import re
import smtplib

import pytest

import harness
from harness import password

# ---- corpus --------------------------------------------------------------

M1 = (b"From: \"Ann Example\" <ann@example.org>\r\n"
      b"To: <user@example.test>\r\n"
      b"Subject: caf\xc3\xa9 8-bit subject\r\n"
      b"X-Folded: first part\r\n"
      b"\tsecond part\r\n"
      b"  third part\r\n"
      b"Message-ID: <m1@example.org>\r\n"
      b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
      b"x-other: value\r\n"
      b"MIME-Version: 1.0\r\n"
      b"Content-Type: text/plain; charset=utf-8\r\n"
      b"Content-Transfer-Encoding: 8bit\r\n"
      b"\r\n"
      b"Hello caf\xc3\xa9.\r\n"
      b"Line two.\r\n")

M2_QP = b"caf=C3=A9 soft=\r\nbreak and tail =3D end=\r\n"
M2_QP_DECODED = b"caf\xc3\xa9 softbreak and tail = end"
M2 = (b"From: <bob@example.org>\r\n"
      b"To: <user@example.test>\r\n"
      b"Subject: alt\r\n"
      b"Message-ID: <m2@example.org>\r\n"
      b"Date: Fri, 02 Jan 2026 10:00:00 +0100\r\n"
      b"MIME-Version: 1.0\r\n"
      b"Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
      b"\r\n"
      b"preamble\r\n"
      b"--b1\r\n"
      b"Content-Type: text/plain; charset=us-ascii\r\n"
      b"Content-Transfer-Encoding: quoted-printable\r\n"
      b"\r\n" + M2_QP + b"\r\n"
      b"--b1\r\n"
      b"Content-Type: text/html; charset=utf-8\r\n"
      b"Content-Transfer-Encoding: base64\r\n"
      b"\r\n"
      b"PGI+aGk8L2I+\r\n"
      b"--b1--\r\n")

BIN = b"\x00\x01\x02\x03\x00hello\x00" * 3
INNER_HDR = (b"From: <inner@example.org>\r\n"
             b"Subject: inner msg\r\n"
             b"Content-Type: multipart/mixed; boundary=\"inner\"\r\n"
             b"\r\n")
INNER_BODY = (b"--inner\r\n"
              b"Content-Type: text/plain\r\n"
              b"\r\n"
              b"inner text\r\n"
              b"--inner\r\n"
              b"Content-Type: application/octet-stream\r\n"
              b"Content-Transfer-Encoding: base64\r\n"
              b"\r\n" + base64.b64encode(BIN) + b"\r\n"
              b"--inner--\r\n")
PART2_MIME = b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
M3 = (b"From: <carol@example.org>\r\n"
      b"To: <user@example.test>\r\n"
      b"Subject: mixed\r\n"
      b"Message-ID: <m3@example.org>\r\n"
      b"Date: Sat, 03 Jan 2026 12:00:00 +0000\r\n"
      b"MIME-Version: 1.0\r\n"
      b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
      b"\r\n"
      b"--outer\r\n"
      b"Content-Type: text/plain\r\n"
      b"\r\n"
      b"See attached.\r\n"
      b"--outer\r\n" + PART2_MIME + INNER_HDR + INNER_BODY + b"\r\n"
      b"--outer\r\n"
      b"Content-Type: application/x-odd\r\n"
      b"Content-Transfer-Encoding: x-uuencode\r\n"
      b"\r\n"
      b"begin 644 f\r\n"
      b"--outer--\r\n")

CORPUS = [M1, M2, M3]

# ---- a raw client that keeps literals --------------------------------------


class Imap:
    """Speaks IMAP over a socket and returns responses as the exact bytes
    sent (literals included, final CRLF removed)."""

    def __init__(self, t, login=None):
        self.c = harness.RawLines(t.imap_port)
        self.n = 0
        greeting = self.response()
        assert greeting.startswith(b"* OK"), greeting
        if login:
            _, tagged = self.cmd("LOGIN %s %s" % (login, password(login)))
            assert tagged.startswith(b"OK"), tagged

    def response(self):
        out = b""
        while True:
            line = self.c.readline()
            out += line
            m = re.search(rb"~?\{(\d+)\}$", line)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.c.buf) < n:
                chunk = self.c.sock.recv(65536)
                if not chunk:
                    raise EOFError("closed inside a literal")
                self.c.buf += chunk
            out += b"\r\n" + self.c.buf[:n]
            self.c.buf = self.c.buf[n:]

    def cmd(self, text):
        """(untagged responses, tagged text after the tag)."""
        self.n += 1
        tag = "f%d" % self.n
        self.c.send("%s %s\r\n" % (tag, text))
        untagged = []
        while True:
            r = self.response()
            if r.startswith(tag.encode() + b" "):
                return untagged, r[len(tag) + 1:]
            untagged.append(r)

    def ok(self, text):
        untagged, tagged = self.cmd(text)
        assert tagged.startswith(b"OK"), (text, tagged, untagged)
        return untagged

    def fetch(self, text):
        """Only the FETCH responses of an OK command."""
        return [r for r in self.ok(text) if re.match(rb"\* \d+ FETCH ", r)]

    def close(self):
        self.c.close()


def lit(data):
    return b"{%d}\r\n" % len(data) + data


def deliver(t, login, msgs):
    """Delivers msgs in one SMTP session, in order; returns each as stored
    (trace + Received + message), read back over POP3."""
    s = t.smtp()
    try:
        for m in msgs:
            s.sendmail("sender@example.org", ["%s@example.test" % login], m)
        s.quit()
    finally:
        s.close()
    stored = t.mailbox(login)
    assert len(stored) == len(msgs)
    for m, raw in zip(msgs, stored):
        assert raw.endswith(m)
    return stored


@pytest.fixture(scope="module")
def corpus(env):
    """user01 gets the corpus; nothing in this file changes its flags
    except through EXAMINE or PEEK. Nothing SELECTs it either, so its
    messages stay \\Recent to every EXAMINE (RFC 3501 6.3.2: EXAMINE
    must not take \\Recent away)."""
    return deliver(env.ternd, "user01", CORPUS)


def session(env, login="user01", examine=False):
    c = Imap(env.ternd, login)
    c.ok("%s INBOX" % ("EXAMINE" if examine else "SELECT"))
    return c


def split(raw):
    i = raw.index(b"\r\n\r\n") + 4
    return raw[:i], raw[i:]


# ---- simple items ----------------------------------------------------------

def test_simple_items(env, corpus):
    c = session(env, examine=True)
    r = c.fetch("FETCH 1 (FLAGS RFC822.SIZE UID THREADID)")
    assert r == [b"* 1 FETCH (FLAGS (\\Recent) RFC822.SIZE %d UID 1 THREADID NIL)" % len(corpus[0])]
    r = c.fetch("FETCH 1:3 RFC822.SIZE")
    assert r == [b"* %d FETCH (RFC822.SIZE %d)" % (i + 1, len(m)) for i, m in enumerate(corpus)]
    date = rb'"\d\d-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"'
    r = c.fetch("FETCH 2 (INTERNALDATE SAVEDATE)")
    assert re.fullmatch(rb"\* 2 FETCH \(INTERNALDATE " + date + rb" SAVEDATE " + date + rb"\)",
                        r[0]), r
    r = c.fetch("FETCH 1:3 EMAILID")
    ids = [re.fullmatch(rb"\* \d FETCH \(EMAILID \(([A-Za-z0-9_-]{1,255})\)\)", x).group(1)
           for x in r]
    assert len(set(ids)) == 3
    # The same message keeps its EMAILID.
    assert c.fetch("FETCH 1 EMAILID") == r[:1]
    c.close()


def test_envelope_and_structure(env, corpus):
    c = session(env, examine=True)
    r = c.fetch("FETCH 1 ENVELOPE")
    subject = b"caf\xc3\xa9 8-bit subject"
    assert r == [b"* 1 FETCH (ENVELOPE (\"Thu, 01 Jan 2026 00:00:00 +0000\" "
                 + lit(subject) +
                 b" ((\"Ann Example\" NIL \"ann\" \"example.org\"))"
                 b" ((\"Ann Example\" NIL \"ann\" \"example.org\"))"
                 b" ((\"Ann Example\" NIL \"ann\" \"example.org\"))"
                 b" ((NIL NIL \"user\" \"example.test\")) NIL NIL NIL"
                 b" \"<m1@example.org>\"))"]
    qp_len = len(M2_QP)
    html = b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "BASE64" 12 1'
    plain = b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "QUOTED-PRINTABLE" %d 2' % qp_len
    r = c.fetch("FETCH 2 BODY")
    assert r == [b'* 2 FETCH (BODY (' + plain + b')' + html + b') "ALTERNATIVE"))']
    r = c.fetch("FETCH 2 BODYSTRUCTURE")
    assert r == [b'* 2 FETCH (BODYSTRUCTURE (' + plain + b' NIL NIL NIL NIL)' + html
                 + b' NIL NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "b1") NIL NIL NIL))']
    # FULL = FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY, in that order.
    full = c.fetch("FETCH 2 FULL")[0]
    assert re.match(rb"\* 2 FETCH \(FLAGS \(\\Recent\) INTERNALDATE \"[^\"]+\" RFC822.SIZE %d "
                    rb"ENVELOPE \(.*\) BODY \(\(\"TEXT\"" % len(corpus[1]), full), full
    all_ = c.fetch("FETCH 2 ALL")[0]
    assert re.match(rb"\* 2 FETCH \(FLAGS \(\\Recent\) INTERNALDATE \"[^\"]+\" RFC822.SIZE \d+ "
                    rb"ENVELOPE \(.*\)\)$", all_) and b" BODY " not in all_
    fast = c.fetch("FETCH 2 FAST")[0]
    assert re.fullmatch(rb"\* 2 FETCH \(FLAGS \(\\Recent\) INTERNALDATE \"[^\"]+\" RFC822.SIZE \d+\)",
                        fast)
    c.close()


# ---- sections --------------------------------------------------------------

def test_whole_message_header_and_text(env, corpus):
    c = session(env, examine=True)
    raw = corpus[0]
    hdr, text = split(raw)
    assert hdr.startswith(b"Return-Path: <sender@example.org>\r\nDelivered-To: ")
    assert c.fetch("FETCH 1 BODY.PEEK[]") == [b"* 1 FETCH (BODY[] " + lit(raw) + b")"]
    # The trace lines belong to the top-level header the client sees.
    assert c.fetch("FETCH 1 BODY.PEEK[HEADER]") == [b"* 1 FETCH (BODY[HEADER] " + lit(hdr) + b")"]
    assert c.fetch("FETCH 1 body.peek[text]") == [b"* 1 FETCH (BODY[TEXT] " + lit(text) + b")"]
    assert c.fetch("FETCH 1 RFC822.HEADER") == [b"* 1 FETCH (RFC822.HEADER " + lit(hdr) + b")"]
    # A single-part message is its own part 1.
    assert c.fetch("FETCH 1 BODY.PEEK[1]") == [b"* 1 FETCH (BODY[1] " + lit(text) + b")"]
    assert c.fetch("UID FETCH 1 (BODY.PEEK[1.MIME])") == \
        [b"* 1 FETCH (UID 1 BODY[1.MIME] " + lit(hdr) + b")"]
    c.close()


def test_header_fields(env, corpus):
    c = session(env, examine=True)
    r = c.fetch("FETCH 1 BODY.PEEK[HEADER.FIELDS (X-OTHER x-folded subject)]")
    want = (b"Subject: caf\xc3\xa9 8-bit subject\r\n"
            b"X-Folded: first part\r\n\tsecond part\r\n  third part\r\n"
            b"x-other: value\r\n\r\n")
    assert r == [b"* 1 FETCH (BODY[HEADER.FIELDS (X-OTHER x-folded subject)] " + lit(want) + b")"]
    # Trace fields are fields of the top-level header too.
    r = c.fetch('FETCH 1 BODY.PEEK[HEADER.FIELDS ("Return-Path")]')
    assert r == [b'* 1 FETCH (BODY[HEADER.FIELDS (Return-Path)] '
                 + lit(b"Return-Path: <sender@example.org>\r\n\r\n") + b")"]
    r = c.fetch("FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Received Return-Path Delivered-To "
                "From To Message-ID Date MIME-Version Content-Type "
                "Content-Transfer-Encoding)]")
    want = (b"Subject: caf\xc3\xa9 8-bit subject\r\n"
            b"X-Folded: first part\r\n\tsecond part\r\n  third part\r\n"
            b"x-other: value\r\n\r\n")
    assert len(r) == 1 and r[0].endswith(lit(want) + b")"), r
    # No field matches: just the empty line.
    r = c.fetch("FETCH 1 BODY.PEEK[HEADER.FIELDS (X-Nothing)]")
    assert r == [b"* 1 FETCH (BODY[HEADER.FIELDS (X-Nothing)] {2}\r\n\r\n)"]
    # Partial of a field subset.
    r = c.fetch("FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject)]<4.6>")
    assert r == [b"* 1 FETCH (BODY[HEADER.FIELDS (Subject)]<4> " + lit(b"ect: c") + b")"]
    # Inside an attached message.
    r = c.fetch("FETCH 3 BODY.PEEK[2.HEADER.FIELDS (SUBJECT)]")
    assert r == [b"* 3 FETCH (BODY[2.HEADER.FIELDS (SUBJECT)] "
                 + lit(b"Subject: inner msg\r\n\r\n") + b")"]
    c.close()


def test_partials(env, corpus):
    c = session(env, examine=True)
    raw = corpus[0]
    n = len(raw)
    assert c.fetch("FETCH 1 BODY.PEEK[]<0.10>") == [b"* 1 FETCH (BODY[]<0> " + lit(raw[:10]) + b")"]
    assert c.fetch("FETCH 1 BODY.PEEK[]<5.7>") == [b"* 1 FETCH (BODY[]<5> " + lit(raw[5:12]) + b")"]
    # Cut at the end.
    assert c.fetch("FETCH 1 BODY.PEEK[]<%d.100>" % (n - 3)) == \
        [b"* 1 FETCH (BODY[]<%d> " % (n - 3) + lit(raw[-3:]) + b")"]
    assert c.fetch("FETCH 1 BODY.PEEK[]<%d.1>" % (n - 1)) == \
        [b"* 1 FETCH (BODY[]<%d> " % (n - 1) + lit(raw[-1:]) + b")"]
    # At or beyond the end: an empty string.
    assert c.fetch("FETCH 1 BODY.PEEK[]<%d.10>" % n) == [b'* 1 FETCH (BODY[]<%d> "")' % n]
    assert c.fetch("FETCH 1 BODY.PEEK[]<%d.10>" % (n + 50)) == \
        [b'* 1 FETCH (BODY[]<%d> "")' % (n + 50)]
    # Partial of a part, and of TEXT.
    _, text = split(raw)
    assert c.fetch("FETCH 1 BODY.PEEK[TEXT]<6.5>") == \
        [b"* 1 FETCH (BODY[TEXT]<6> " + lit(text[6:11]) + b")"]
    assert c.fetch("FETCH 3 BODY.PEEK[1]<4.100>") == [b"* 3 FETCH (BODY[1]<4> " + lit(b"attached.") + b")"]
    c.close()


def test_multipart_sections(env, corpus):
    c = session(env, examine=True)
    assert c.fetch("FETCH 2 BODY.PEEK[1]") == [b"* 2 FETCH (BODY[1] " + lit(M2_QP) + b")"]
    assert c.fetch("FETCH 2 BODY.PEEK[2]") == [b"* 2 FETCH (BODY[2] " + lit(b"PGI+aGk8L2I+") + b")"]
    assert c.fetch("FETCH 2 BODY.PEEK[2.MIME]") == \
        [b"* 2 FETCH (BODY[2.MIME] " + lit(b"Content-Type: text/html; charset=utf-8\r\n"
                                            b"Content-Transfer-Encoding: base64\r\n\r\n") + b")"]
    # TEXT of a multipart message: everything after its header.
    _, text2 = split(corpus[1])
    assert c.fetch("FETCH 2 BODY.PEEK[TEXT]") == [b"* 2 FETCH (BODY[TEXT] " + lit(text2) + b")"]
    # The message/rfc822 part: the whole attached message, its MIME
    # header, its header and text, and parts inside it.
    assert c.fetch("FETCH 3 BODY.PEEK[1]") == [b"* 3 FETCH (BODY[1] " + lit(b"See attached.") + b")"]
    r = c.fetch("FETCH 3 (BODY.PEEK[2] BODY.PEEK[2.MIME] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT])")
    assert r == [b"* 3 FETCH (BODY[2] " + lit(INNER_HDR + INNER_BODY)
                 + b" BODY[2.MIME] " + lit(PART2_MIME)
                 + b" BODY[2.HEADER] " + lit(INNER_HDR)
                 + b" BODY[2.TEXT] " + lit(INNER_BODY) + b")"]
    assert c.fetch("FETCH 3 BODY.PEEK[2.1]") == [b"* 3 FETCH (BODY[2.1] " + lit(b"inner text") + b")"]
    assert c.fetch("FETCH 3 BODY.PEEK[2.2]") == \
        [b"* 3 FETCH (BODY[2.2] " + lit(base64.b64encode(BIN)) + b")"]
    assert c.fetch("FETCH 3 BODY.PEEK[2.1.MIME]") == \
        [b"* 3 FETCH (BODY[2.1.MIME] " + lit(b"Content-Type: text/plain\r\n\r\n") + b")"]
    # Sections that do not exist are NIL; HEADER of a non-message part too.
    assert c.fetch("FETCH 3 (BODY.PEEK[4] BODY.PEEK[2.3] BODY.PEEK[1.HEADER])") == \
        [b"* 3 FETCH (BODY[4] NIL BODY[2.3] NIL BODY[1.HEADER] NIL)"]
    # Messages in one command each get their own response, in order.
    r = c.fetch("FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (Message-ID)])")
    assert r == [b"* %d FETCH (BODY[HEADER.FIELDS (Message-ID)] " % (i + 1)
                 + lit(b"Message-ID: <m%d@example.org>\r\n\r\n" % (i + 1)) + b")"
                 for i in range(3)]
    c.close()


# ---- BINARY ------------------------------------------------------------------

def test_binary(env, corpus):
    c = session(env, examine=True)
    assert c.fetch("FETCH 2 BINARY.PEEK[1]") == \
        [b"* 2 FETCH (BINARY[1] " + lit(M2_QP_DECODED) + b")"]
    assert c.fetch("FETCH 2 (BINARY.SIZE[1] BINARY.SIZE[2])") == \
        [b"* 2 FETCH (BINARY.SIZE[1] %d BINARY.SIZE[2] 9)" % len(M2_QP_DECODED)]
    assert c.fetch("FETCH 2 BINARY.PEEK[2]") == [b"* 2 FETCH (BINARY[2] " + lit(b"<b>hi</b>") + b")"]
    # NUL bytes: literal8.
    r = c.fetch("FETCH 3 (BINARY.PEEK[2.2] BINARY.SIZE[2.2])")
    assert r == [b"* 3 FETCH (BINARY[2.2] ~{%d}\r\n" % len(BIN) + BIN
                 + b" BINARY.SIZE[2.2] %d)" % len(BIN)]
    # Partial of the decoded data (the response carries no origin).
    assert c.fetch("FETCH 3 BINARY.PEEK[2.2]<5.5>") == \
        [b"* 3 FETCH (BINARY[2.2] " + lit(b"hello") + b")"]
    assert c.fetch("FETCH 3 BINARY.PEEK[2.2]<1.4>") == \
        [b"* 3 FETCH (BINARY[2.2] ~{4}\r\n" + BIN[1:5] + b")"]
    assert c.fetch("FETCH 3 BINARY.PEEK[2.2]<100.4>") == [b'* 3 FETCH (BINARY[2.2] "")']
    # Identity encodings are sent as they are.
    assert c.fetch("FETCH 3 (BINARY.PEEK[1] BINARY.SIZE[1])") == \
        [b"* 3 FETCH (BINARY[1] " + lit(b"See attached.") + b" BINARY.SIZE[1] 13)"]
    # An unknown transfer encoding.
    _, tagged = c.cmd("FETCH 3 BINARY.PEEK[3]")
    assert tagged.startswith(b"NO [UNKNOWN-CTE]"), tagged
    _, tagged = c.cmd("FETCH 3 BINARY.SIZE[3]")
    assert tagged.startswith(b"NO [UNKNOWN-CTE]"), tagged
    # BINARY takes a part path only.
    for bad in ("BINARY[HEADER]", "BINARY.PEEK[1.TEXT]", "BINARY.SIZE[1]<0.5>"):
        _, tagged = c.cmd("FETCH 3 " + bad)
        assert tagged.startswith(b"BAD"), (bad, tagged)
    c.close()


# ---- \Seen -------------------------------------------------------------------

def test_seen_set_by_body_not_by_peek(env):
    t = env.ternd
    stored = deliver(t, "user02", [M1, M2, M3])
    # The first SELECT: all three are \Recent in this session.
    c = session(env, "user02")
    assert c.fetch("FETCH 1 BODY.PEEK[]") == [b"* 1 FETCH (BODY[] " + lit(stored[0]) + b")"]
    assert c.fetch("FETCH 1:3 FLAGS") == [b"* %d FETCH (FLAGS (\\Recent))" % i for i in (1, 2, 3)]
    # BODY[] sets \Seen and reports it in the same response.
    untagged = c.ok("FETCH 1 BODY[]")
    assert untagged == [b"* 1 FETCH (BODY[] " + lit(stored[0]) + b" FLAGS (\\Seen \\Recent))"]
    # FLAGS asked for: reported once, with the new value.
    _, text = split(stored[1])
    untagged = c.ok("FETCH 2 (FLAGS BODY[TEXT])")
    assert untagged == [b"* 2 FETCH (FLAGS (\\Seen \\Recent) BODY[TEXT] " + lit(text) + b")"]
    # Already seen: no FLAGS added.
    assert c.fetch("FETCH 1 BODY[]<0.4>") == [b"* 1 FETCH (BODY[]<0> " + lit(stored[0][:4]) + b")"]
    # BINARY sets it too; RFC822.HEADER does not.
    assert c.fetch("FETCH 3 RFC822.HEADER")[0].startswith(b"* 3 FETCH (RFC822.HEADER {")
    assert c.fetch("FETCH 3 FLAGS") == [b"* 3 FETCH (FLAGS (\\Recent))"]
    untagged = c.ok("UID FETCH 3 BINARY[1]")
    assert untagged == [b"* 3 FETCH (UID 3 BINARY[1] " + lit(b"See attached.") +
                        b" FLAGS (\\Seen \\Recent))"]
    c.close()
    # Durable and seen by another session (\Recent was the first's).
    c = session(env, "user02", examine=True)
    assert c.fetch("FETCH 1:3 FLAGS") == [b"* %d FETCH (FLAGS (\\Seen))" % i for i in (1, 2, 3)]
    c.close()


def test_no_seen_in_examine(env):
    t = env.ternd
    stored = deliver(t, "user03", [M1, M2])
    c = session(env, "user03", examine=True)
    assert c.fetch("FETCH 1 (BODY[] RFC822.TEXT)") == \
        [b"* 1 FETCH (BODY[] " + lit(stored[0]) + b" RFC822.TEXT " + lit(split(stored[0])[1]) + b")"]
    assert c.fetch("FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))"]
    c.close()
    # RFC822 in a read-write mailbox sets it. The EXAMINE took no \Recent
    # away: this SELECT still gets both.
    c = session(env, "user03")
    assert c.fetch("FETCH 2 RFC822") == \
        [b"* 2 FETCH (RFC822 " + lit(stored[1]) + b" FLAGS (\\Seen \\Recent))"]
    assert c.fetch("FETCH 1:2 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))",
                                          b"* 2 FETCH (FLAGS (\\Seen \\Recent))"]
    c.close()


# ---- errors, UID FETCH, modifiers ---------------------------------------------

def test_numbers_and_uids(env, corpus):
    c = session(env, examine=True)
    _, tagged = c.cmd("FETCH 4 FLAGS")
    assert tagged.startswith(b"BAD"), tagged
    _, tagged = c.cmd("FETCH 1:9 FLAGS")
    assert tagged.startswith(b"BAD"), tagged
    # UIDs that do not exist: OK, nothing.
    untagged, tagged = c.cmd("UID FETCH 50:60 FLAGS")
    assert tagged.startswith(b"OK") and untagged == []
    # "*" is the last message; UID n:* names the last one even above it.
    assert c.fetch("FETCH * UID") == [b"* 3 FETCH (UID 3)"]
    assert c.fetch("UID FETCH 99:* FLAGS") == [b"* 3 FETCH (UID 3 FLAGS (\\Recent))"]
    # UID FETCH answers with UID once, first.
    assert c.fetch("UID FETCH 2,1 (FLAGS UID)") == \
        [b"* 1 FETCH (UID 1 FLAGS (\\Recent))", b"* 2 FETCH (UID 2 FLAGS (\\Recent))"]
    r = c.fetch("FETCH 1 (UID MODSEQ)")
    assert re.fullmatch(rb"\* 1 FETCH \(UID 1 MODSEQ \(\d+\)\)", r[0]), r
    c.close()


def test_preview(env, corpus):
    """RFC 8970 PREVIEW: the first text/plain part (else the HTML one,
    stripped) decoded, white space collapsed, quoted lines and the
    signature left out, at most 256 characters; 8-bit text as a literal
    unless UTF8=ACCEPT is on; no \\Seen."""
    c = session(env, examine=True)
    r = c.fetch("FETCH 1:3 (PREVIEW)")
    assert r == [b"* 1 FETCH (PREVIEW " + lit("Hello café. Line two.".encode()) + b")",
                 b"* 2 FETCH (PREVIEW " + lit(M2_QP_DECODED) + b")",
                 b'* 3 FETCH (PREVIEW "See attached.")'], r
    assert c.fetch("FETCH 3 (UID PREVIEW (LAZY))") == [
        b'* 3 FETCH (UID 3 PREVIEW "See attached.")']
    for bad in ("(PREVIEW (EAGER))", "(PREVIEW ())", "PREVIEW[]"):
        _, tagged = c.cmd("FETCH 1 " + bad)
        assert tagged.startswith(b"BAD"), (bad, tagged)
    c.close()

    long_line = " ".join("word%03d" % i for i in range(100))
    html = (b"From: <a@example.org>\r\nSubject: html only\r\n"
            b"Content-Type: text/html; charset=utf-8\r\n\r\n"
            b"<html><head><style>p {color: red}</style></head>"
            b"<body><p>Hello <b>bold</b>\r\n   &amp; friends</p></body></html>\r\n")
    quoted = (b"From: <a@example.org>\r\nSubject: reply\r\n\r\n"
              b"On Monday someone wrote:\r\n> old text\r\n>> older\r\n"
              b"My answer.\r\n\r\n-- \r\nSig Nature\r\n")
    long_msg = (b"From: <a@example.org>\r\nSubject: long\r\n\r\n" +
                long_line.encode() + b"\r\n")
    attach = (b"From: <a@example.org>\r\nSubject: attachment only\r\n"
              b"MIME-Version: 1.0\r\n"
              b"Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n"
              b"--x\r\nContent-Type: text/plain\r\n"
              b"Content-Disposition: attachment; filename=a.txt\r\n\r\n"
              b"attached text\r\n--x--\r\n")
    deliver(env.ternd, "user08", [html, quoted, long_msg, attach])
    c = session(env, "user08")
    r = c.fetch("FETCH 1:4 PREVIEW")
    assert r == [b'* 1 FETCH (PREVIEW "Hello bold & friends")',
                 b'* 2 FETCH (PREVIEW "On Monday someone wrote: My answer.")',
                 b'* 3 FETCH (PREVIEW "' + long_line[:256].rstrip().encode() + b'")',
                 b'* 4 FETCH (PREVIEW "")'], r
    # PREVIEW does not set \\Seen.
    assert c.fetch("FETCH 1:4 FLAGS") == [b"* %d FETCH (FLAGS (\\Recent))" % i
                                          for i in range(1, 5)]
    c.close()


@pytest.mark.parametrize("items", [
    "FOO", "(FLAGS FOO)", "()", "(ALL)", "(FLAGS FAST)", "BODY[", "BODY[0]", "BODY[1.]",
    "BODY[01]", "BODY[HEADER.FIELDS ()]", "BODY[HEADER.FIELDS]", "BODY[HEADER.FIELDS (A:B)]",
    "BODY[MIME]", "BODY[TEXTX]", "BODY[]<1>", "BODY[]<1.0>", "BODY[]<a.1>", "BODY[]x",
    "BODY.PEEK", "RFC822.SIZE[]", "BINARY", "\"FLAGS\"",
])
def test_bad_items(env, corpus, items):
    c = session(env, examine=True)
    untagged, tagged = c.cmd("FETCH 1 %s" % items)
    assert tagged.startswith(b"BAD"), (items, tagged)
    assert not [u for u in untagged if b" FETCH " in u]
    c.close()


def test_bad_usage_and_state(env, corpus):
    c = Imap(env.ternd, "user01")
    _, tagged = c.cmd("FETCH 1 FLAGS")
    assert tagged.startswith(b"BAD"), tagged  # no mailbox selected
    c.ok("EXAMINE INBOX")
    for cmd in ("FETCH", "FETCH 1", "FETCH x FLAGS", "FETCH 0 FLAGS", "FETCH 1 FLAGS (FOO)",
                "FETCH 1 FLAGS (CHANGEDSINCE 0)", "FETCH 1 FLAGS extra junk"):
        _, tagged = c.cmd(cmd)
        assert tagged.startswith(b"BAD"), (cmd, tagged)
    # CHANGEDSINCE: only messages changed after it (and MODSEQ with them).
    # CONDSTORE is then on: UID comes with every FETCH (RFC 7162 3.1).
    r = c.fetch("FETCH 1:3 (FLAGS) (CHANGEDSINCE 1)")
    assert r and all(re.fullmatch(rb"\* (\d) FETCH \(UID \1 FLAGS \(\\Recent\) MODSEQ \(\d+\)\)", x)
                     for x in r), r
    # The largest mod-sequence-value (2^63 - 1); above it is BAD.
    assert c.fetch("FETCH 1:3 (FLAGS) (CHANGEDSINCE 9223372036854775807)") == []
    _, tagged = c.cmd("FETCH 1:3 (FLAGS) (CHANGEDSINCE 9223372036854775808)")
    assert tagged.startswith(b"BAD"), tagged
    c.close()


# ---- size ------------------------------------------------------------------------

def test_fetch_thousand_messages(env):
    t = env.ternd
    s = smtplib.SMTP("127.0.0.1", t.smtp_port, local_hostname="client.example.org",
                     timeout=harness.TIMEOUT * 6)
    try:
        s.ehlo()
        for i in range(1000):
            msg = ("From: <a@example.org>\r\nTo: <user04@example.test>\r\n"
                   "Subject: number %d\r\nMessage-ID: <n%d@example.org>\r\n\r\n"
                   "body %d\r\n" % (i, i, i)).encode()
            s.sendmail("sender@example.org", ["user04@example.test"], msg)
        s.quit()
    finally:
        s.close()
    c = session(env, "user04", examine=True)
    r = c.fetch("FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[TEXT])")
    assert len(r) == 1000
    for i, x in enumerate(r):
        subj = b"Subject: number %d\r\n\r\n" % i
        body = b"body %d\r\n" % i
        assert re.fullmatch(rb"\* %d FETCH \(UID %d RFC822.SIZE \d+ " % (i + 1, i + 1)
                            + re.escape(b"BODY[HEADER.FIELDS (Subject)] " + lit(subj)
                                        + b" BODY[TEXT] " + lit(body) + b")"), x), x
    c.close()
    t.check_alive()


def test_vanished_meanwhile_is_skipped(env):
    """A message expunged by another session (POP3 DELE) while this one
    still numbers it: FETCH skips it (no EXPUNGE during FETCH), the next
    NOOP reports the EXPUNGE."""
    t = env.ternd
    stored = deliver(t, "user05", [M1, M2, M3])
    c = session(env, "user05")
    p = t.pop3_login("user05")
    p.dele(2)
    p.quit()
    untagged, tagged = c.cmd("FETCH 1:3 (UID BODY.PEEK[HEADER.FIELDS (Message-ID)])")
    assert tagged.startswith(b"OK"), tagged
    assert untagged == [b"* %d FETCH (UID %d BODY[HEADER.FIELDS (Message-ID)] " % (i, i)
                        + lit(b"Message-ID: <m%d@example.org>\r\n\r\n" % i) + b")"
                        for i in (1, 3)]
    # Non-PEEK on the vanished one: \Seen is set on the others only.
    untagged, tagged = c.cmd("FETCH 2:3 BODY[]")
    assert tagged.startswith(b"OK"), tagged
    assert untagged == [b"* 3 FETCH (BODY[] " + lit(stored[2]) + b" FLAGS (\\Seen \\Recent))"]
    assert c.ok("NOOP") == [b"* 2 EXPUNGE"]
    assert c.fetch("FETCH 1:2 UID") == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 3)"]
    c.close()
    t.check_alive()


def b64_lenient(data):
    """mime.h's rule: every alphabet character counts, the rest is skipped."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    acc, bits, out = 0, 0, bytearray()
    for ch in data:
        v = alphabet.find(bytes([ch]))
        if v < 0:
            continue
        acc = (acc << 6 | v) & 0xFFFFFF
        bits += 6
        if bits >= 8:
            bits -= 8
            out.append(acc >> bits & 0xFF)
    return bytes(out)


def test_binary_malformed_encodings(env):
    """Decoding follows the rules BINARY.SIZE was computed by at delivery:
    the two always agree, malformed escapes are kept, soft breaks with
    trailing blanks are soft, padding in the middle is skipped."""
    qp = (b"a=\r\n"
          b"b =  \r\n"
          b"c=4x=ZZ= d  \r\n"
          b"tab\tend\t\r\n"
          b"x\ry=3d=3D=\r\n"
          b"last=4")
    b64 = b"QU*JD\r\nRA==\r\nRQ\r\n"
    msg = (b"From: <a@example.org>\r\nSubject: odd\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
           b"--zz\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n" + qp + b"\r\n"
           b"--zz\r\nContent-Transfer-Encoding: BASE64\r\n\r\n" + b64 + b"\r\n"
           b"--zz\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=\r\n"
           b"--zz--\r\n")
    deliver(env.ternd, "user06", [msg])
    c = session(env, "user06", examine=True)
    qp_dec = (b"ab c=4x=ZZ= d\r\n"
              b"tab\tend\r\n"
              b"x\ry==last=4")
    b64_dec = b64_lenient(b64)
    assert len(b64_dec) == 6
    r = c.fetch("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2] "
                "BINARY.SIZE[3] BINARY.PEEK[3])")
    assert r == [b"* 1 FETCH (BINARY.SIZE[1] %d BINARY[1] " % len(qp_dec) + lit(qp_dec)
                 + b" BINARY.SIZE[2] 6 BINARY[2] " + lit(b64_dec)
                 + b' BINARY.SIZE[3] 0 BINARY[3] "")']
    c.close()


def test_large_message(env):
    """Bodies well over any line or scratch buffer size go out whole as
    literals; partials near the end and BINARY of a large base64 part."""
    blob = bytes(range(256)) * 1600  # 400 KiB with NULs
    enc = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    text = b"".join(b"line %06d of a long text part\r\n" % i for i in range(6000))
    msg = (b"From: <a@example.org>\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=BIG\r\n\r\n"
           b"--BIG\r\nContent-Type: text/plain\r\n\r\n" + text + b"\r\n"
           b"--BIG\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + enc + b"\r\n"
           b"--BIG--\r\n")
    stored = deliver(env.ternd, "user07", [msg])[0]
    c = session(env, "user07", examine=True)
    assert c.fetch("FETCH 1 BODY.PEEK[]") == [b"* 1 FETCH (BODY[] " + lit(stored) + b")"]
    assert c.fetch("FETCH 1 BODY.PEEK[1]") == [b"* 1 FETCH (BODY[1] " + lit(text) + b")"]
    n = len(stored)
    assert c.fetch("FETCH 1 BODY.PEEK[]<%d.100000>" % (n - 20)) == \
        [b"* 1 FETCH (BODY[]<%d> " % (n - 20) + lit(stored[-20:]) + b")"]
    r = c.fetch("FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])")
    assert r == [b"* 1 FETCH (BINARY.SIZE[2] %d BINARY[2] ~{%d}\r\n" % (len(blob), len(blob))
                 + blob + b")"]
    r = c.fetch("FETCH 1 BINARY.PEEK[2]<300000.200000>")
    assert r == [b"* 1 FETCH (BINARY[2] ~{%d}\r\n" % (len(blob) - 300000) + blob[300000:] + b")"]
    c.close()
