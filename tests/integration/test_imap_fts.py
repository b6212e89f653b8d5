"""The full-text index behind IMAP SEARCH BODY/TEXT (storage/store_fts.c)
against the real ternd: a generated corpus of 5,000 messages (UTF-8,
ISO-8859-1, windows-1252 and KOI8-R; 7bit, 8bit, quoted-printable and
base64; multipart/alternative with text and HTML, HTML-only messages,
binary and text attachments, attached messages; RFC 2047 headers) is
APPENDed in MULTIAPPEND batches, then a table of queries (words,
substrings across word boundaries, non-ASCII, case, HTML-only words,
header-only and body-only words, BODY vs TEXT, NOT/OR and other keys, a
query matching nothing, needles too short for trigrams) runs with the index
([storage] search_index = yes) and again after a restart with it off
(every message scanned by the same matcher): every UID list must be
identical. The index is filled in the background (store_fts.c): queries
also run on a mailbox right after a burst of APPENDs, while the indexer
has only partly caught up, and again once it has; both must equal the
scan. That the index is used is read from ternd's debug line for each
SEARCH (texts_read, the messages whose text was decoded, against
messages), never from timings. Also: expunged messages, COPY into another
mailbox, and `ternd store check --rebuild-index`."""
import base64
import quopri
import random
import re
import subprocess
import threading
import time

import pytest

import harness
from harness import password

USER = "user44"
N = 5000
SEED = 8

LATIN = ["apple", "banana", "cherry", "delta", "echo", "forest", "garden", "harbor",
         "island", "jungle", "kettle", "lantern", "meadow", "nectar", "orchid", "pepper",
         "quartz", "river", "saddle", "timber", "umbrella", "velvet", "walnut", "yonder",
         "zephyr", "invoice", "meeting", "report", "budget", "schedule", "holiday",
         "project", "deadline", "contract", "review", "coffee", "lunch", "weekend"]
ACCENTED = ["café", "crème", "naïve", "façade", "résumé", "Grüße", "Köln", "Übung",
            "straße", "été", "piñata", "jalapeño", "Ærø", "smørrebrød"]
CP1252 = ["“quoted”", "price€", "dash–word", "…ellipsis"]
CYRILLIC = ["привет", "мир", "отчёт", "встреча", "бюджет", "Москва", "ПРОЕКТ"]

# Words whose place in the corpus the queries test.
HTML_ONLY = "htmlonlyzebra"      # only ever in text/html parts
HTML_SPLIT = "splitword"          # written as split<b>word</b> in HTML
HEADER_ONLY = "hdronlyquokka"     # only ever in Subject:
BODY_ONLY = "bodyonlynarwhal"     # only ever in bodies
ATTACH_BIN = "binattachokapi"     # only in application/octet-stream parts
ATTACH_TXT = "txtattachaxolotl"   # only in text/plain attachments
INNER_HDR = "innerhdrpangolin"    # only in the Subject: of attached messages


def qp(text, charset):
    return quopri.encodestring(text.encode(charset)).replace(b"\n", b"\r\n")


def b64(data):
    e = base64.encodebytes(data)
    return e.replace(b"\n", b"\r\n")


def encode_part(text, charset, cte):
    if cte == "quoted-printable":
        return qp(text, charset)
    if cte == "base64":
        return b64(text.encode(charset))
    return text.encode(charset).replace(b"\n", b"\r\n")


def rfc2047(text):
    return "=?UTF-8?B?%s?=" % base64.b64encode(text.encode()).decode()


def filler_words(rng, n):
    """Pronounceable made-up words: a vocabulary large enough that most
    words are rare, as in real mail."""
    syl = ["ka", "lo", "mi", "ter", "san", "vo", "ru", "del", "pa", "qui", "zen", "bor",
           "fi", "nu", "gra", "sho", "wel", "tan", "ix", "ope"]
    return sorted({"".join(rng.choice(syl) for _ in range(rng.randint(2, 4)))
                   for _ in range(n)})


FILLER = filler_words(random.Random(SEED + 1), 6000)


def sentence(rng, pool, n):
    """n words, mostly filler, one in eight from pool."""
    return " ".join(rng.choice(pool) if rng.random() < 0.125 else rng.choice(FILLER)
                    for _ in range(n))


def make_corpus():
    rng = random.Random(SEED)
    msgs = []
    for i in range(N):
        kind = i % 7
        charset, pool = [("utf-8", LATIN + ACCENTED + CYRILLIC),
                         ("iso-8859-1", LATIN + ACCENTED[:12]),
                         ("windows-1252", LATIN + ACCENTED[:12] + CP1252),
                         ("koi8-r", LATIN + CYRILLIC)][i % 4]
        cte = ["7bit", "quoted-printable", "base64", "8bit"][(i // 4) % 4]
        if cte == "7bit":
            pool = LATIN
        text = sentence(rng, pool, rng.randint(20, 80))
        if i % 13 == 0:
            text += " " + BODY_ONLY
        subj = sentence(rng, LATIN, 4)
        if i % 17 == 0:
            subj += " " + HEADER_ONLY
        if i % 5 == 0:
            subj = rfc2047(subj + " Überraschung")
        hdr = ["From: Sender %d <s%d@example.org>" % (i % 50, i % 50),
               "To: user44@example.test",
               "Subject: %s" % subj,
               "Message-ID: <fts%d@example.org>" % i,
               "Date: Mon, 02 Mar 2026 10:00:00 +0100",
               "MIME-Version: 1.0"]
        ct = 'text/plain; charset="%s"' % charset
        if kind in (0, 1, 2):
            body = encode_part(text + "\n", charset, cte)
            hdr += ["Content-Type: " + ct, "Content-Transfer-Encoding: " + cte]
        elif kind == 3:
            # multipart/alternative: text and HTML; some words HTML-only.
            extra = " " + HTML_ONLY if i % 3 == 0 else ""
            html = ("<html><head><style>p {color: red}</style></head><body><p>%s%s</p>"
                    "<p>split<b>word</b> &amp; &eacute;t&eacute;</p></body></html>"
                    % (text, extra))
            body = (b"--alt\r\nContent-Type: " + ct.encode() +
                    b"\r\nContent-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n" +
                    encode_part(text + "\n", charset, cte) +
                    b"\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(html.encode()) +
                    b"--alt--\r\n")
            hdr += ['Content-Type: multipart/alternative; boundary="alt"']
        elif kind == 4:
            html = "<div>%s <i>%s</i></div>" % (text, HTML_ONLY if i % 2 else "plain")
            body = encode_part(html, "utf-8", "quoted-printable")
            hdr += ["Content-Type: text/html; charset=utf-8",
                    "Content-Transfer-Encoding: quoted-printable"]
        elif kind == 5:
            # text + binary attachment + text attachment
            body = (b"--mix\r\nContent-Type: " + ct.encode() +
                    b"\r\nContent-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n" +
                    encode_part(text + "\n", charset, cte) +
                    b"\r\n--mix\r\nContent-Type: application/octet-stream; name=x.bin\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\n" +
                    b64(("%s %s" % (ATTACH_BIN, sentence(rng, LATIN, 5))).encode()) +
                    b"--mix\r\nContent-Type: text/plain; name=notes.txt\r\n"
                    b"Content-Disposition: attachment; filename=notes.txt\r\n\r\n" +
                    ("%s %s\r\n" % (ATTACH_TXT, sentence(rng, LATIN, 5))).encode() +
                    b"--mix--\r\n")
            hdr += ['Content-Type: multipart/mixed; boundary="mix"']
        else:
            inner = ("From: inner@example.net\r\nSubject: %s %s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n"
                     % (INNER_HDR, sentence(rng, LATIN, 3), sentence(rng, LATIN, 10)))
            body = (b"--fw\r\nContent-Type: text/plain\r\n\r\nForwarded: " +
                    sentence(rng, LATIN, 6).encode() +
                    b"\r\n--fw\r\nContent-Type: message/rfc822\r\n\r\n" + inner.encode() +
                    b"\r\n--fw--\r\n")
            hdr += ['Content-Type: multipart/mixed; boundary="fw"']
        msgs.append(("\r\n".join(hdr) + "\r\n\r\n").encode() + body)
    return msgs


QUERIES = [
    # single words, case
    "BODY invoice", "BODY INVOICE", "TEXT Meeting", "BODY walnut", "TEXT zephyr",
    "BODY budget", "TEXT deadline", "BODY lantern",
    # substrings, inside and across words
    "BODY nvoic", "BODY eadow", 'BODY "ple ban"', 'BODY "er rep"', 'TEXT "ch garden"',
    'BODY "t s"', "BODY ppe",
    # non-ASCII, from every charset
    "BODY café", "BODY CAFÉ", "BODY crème", "BODY grüße", "BODY GRÜSSE", "BODY köln",
    "BODY straße", "BODY été", "BODY smørrebrød", "BODY привет", "BODY ПРИВЕТ",
    "BODY отчёт", "TEXT москва", "BODY €", "BODY price€", "BODY “quoted”", "BODY –",
    "BODY …ellipsis", "TEXT überraschung", "BODY überraschung",
    # HTML
    "BODY " + HTML_ONLY, "TEXT " + HTML_ONLY, "BODY " + HTML_SPLIT, "BODY <b>",
    "BODY color", 'BODY "word & "', "BODY amp",
    # header vs body
    "BODY " + HEADER_ONLY, "TEXT " + HEADER_ONLY, "BODY " + BODY_ONLY,
    "TEXT " + BODY_ONLY, "TEXT s17@example", "BODY s17@example",
    "TEXT fts123@", "BODY fts123@",
    # attachments and attached messages
    "BODY " + ATTACH_BIN, "BODY " + ATTACH_TXT, "BODY " + INNER_HDR,
    "TEXT " + INNER_HDR, "BODY forwarded",
    # combinations
    "NOT BODY invoice", "OR BODY invoice TEXT meeting", "BODY invoice BODY coffee",
    "NOT (OR BODY apple BODY banana)", "OR BODY привет NOT TEXT walnut",
    "SEEN BODY holiday", "UID 1000:2500 TEXT river", "LARGER 1500 BODY quartz",
    "OR SUBJECT timber BODY timber", "NOT NOT BODY velvet",
    # nothing, short needles (no trigram: scanned), empty
    "BODY nosuchwordanywhere", 'BODY "zz"', "BODY a", 'TEXT ""', "BODY ü",
]


@pytest.fixture(scope="module")
def env():
    """The debug level carries the SEARCH line the tests read."""
    e = harness.Env(overrides={"server": {"log_level": "debug"}})
    yield e
    e.close()


SEARCH_LINE = re.compile(rb"search messages=(\d+) texts_read=(\d+) indexed_through=(\d+) "
                         rb"hits=(\d+)")


EVALUATED = re.compile(rb"search messages=\d+ .*? evaluated=(\d+)")


def last_evaluated(t):
    """How many messages the latest SEARCH read the records of."""
    found = EVALUATED.findall(t.log())
    assert found, t.log_tail()
    return int(found[-1])


def last_search_line(t):
    """(messages, texts_read, indexed_through, hits) of the latest SEARCH."""
    found = SEARCH_LINE.findall(t.log())
    assert found, t.log_tail()
    return tuple(int(x) for x in found[-1])


def wait_indexed(t, box, top, timeout=120):
    """Until the background indexer covers every UID up to top of box."""
    c = Imap(t)
    c.cmd("SELECT " + box)
    deadline = time.monotonic() + timeout
    try:
        while True:
            c.search("BODY nosuchwordanywhere")
            if last_search_line(t)[2] >= top:
                return
            assert time.monotonic() < deadline, last_search_line(t)
            time.sleep(0.2)
    finally:
        c.close()


class Imap:
    def __init__(self, t):
        self.c = harness.RawLines(t.imap_port)
        self.c.readline()
        self.n = 0
        self.cmd("LOGIN %s %s" % (USER, password(USER)))

    def cmd(self, command, expect=b"OK"):
        self.n += 1
        tag = "F%d" % self.n
        lines = self.c.imap(tag, command)
        assert lines[-1].startswith((tag + " ").encode() + expect), (command, lines[-1])
        return lines

    def literal_cmd(self, text):
        """A command with 8-bit strings sent as LITERAL+ literals."""
        self.n += 1
        tag = "F%d" % self.n
        parts, out = text.split(" "), []
        for p in parts:
            if any(ord(ch) > 127 for ch in p):
                b = p.strip('"').encode()
                out.append(b"{%d+}\r\n" % len(b) + b)
            else:
                out.append(p.encode())
        self.c.send(tag.encode() + b" " + b" ".join(out) + b"\r\n")
        lines = []
        while True:
            line = self.c.readline()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                break
        assert lines[-1].startswith(tag.encode() + b" OK"), (text, lines)
        return lines

    def search(self, criteria):
        lines = self.literal_cmd("UID SEARCH CHARSET UTF-8 " + criteria)
        found = [l for l in lines if l.startswith(b"* SEARCH")]
        assert len(found) == 1, (criteria, lines)
        return [int(x) for x in found[0][8:].split()]

    def append(self, msgs, box="INBOX"):
        out = [b"A%d APPEND %s" % (self.n + 1, box.encode())]
        for m in msgs:
            out.append(b" (\\Seen) {%d+}\r\n" % len(m) + m)
        self.n += 1
        self.c.send(b"".join(out) + b"\r\n")
        while True:
            line = self.c.readline()
            if line.startswith(b"A%d " % self.n):
                assert b" OK" in line, line
                return

    def close(self):
        self.c.close()


def restart(t, index, indexer=True):
    t.stop()
    for name, keys in t.sections:
        if name == "storage":
            keys["search_index"] = "yes" if index else "no"
            keys["search_indexer"] = "yes" if indexer else "no"
    with open(t.conf_path, "w") as f:
        f.write(harness.render_config(t.sections))
    t.start()


def run_all(t, box="INBOX", conns=1):
    """Every query, spread over conns sessions (the scan is slow: one
    worker thread each); returns the results and the wall time (printed
    only: timings are for tests/bench/fts_bench.py)."""
    res = {}

    def part(qs):
        c = Imap(t)
        c.cmd("SELECT " + box)
        for q in qs:
            res[q] = c.search(q)
        c.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=part, args=(QUERIES[i::conns],))
               for i in range(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(res) == len(QUERIES)
    return res, time.monotonic() - t0


@pytest.fixture(scope="module")
def corpus(env):
    t = env.ternd
    c = Imap(t)
    msgs = make_corpus()
    t0 = time.monotonic()
    for i in range(0, len(msgs), 250):
        c.append(msgs[i:i + 250])
    print("FTS-TIMES append %.2fs" % (time.monotonic() - t0))
    c.cmd("CREATE Copies")
    c.cmd("SELECT INBOX")
    c.cmd("UID COPY 1:700 Copies")
    c.close()
    return msgs


def test_query_table_is_large_enough():
    assert len(QUERIES) >= 50
    assert N >= 5000


def test_index_equals_scan(env, corpus):
    t = env.ternd
    # A burst into a new mailbox, searched at once: the indexer starts
    # FTS_INDEX_DELAY_MS after it and goes 200 messages a batch, so the
    # first SEARCH sees at most part of it indexed (every UID above the
    # watermark is scanned), later ones more.
    c = Imap(t)
    c.cmd("CREATE Burst")
    for i in range(0, 1000, 250):
        c.append(corpus[i:i + 250], "Burst")
    c.close()
    burst_partial, _ = run_all(t, "Burst")
    wait_indexed(t, "Burst", 1000)
    burst_index, _ = run_all(t, "Burst")
    wait_indexed(t, "INBOX", N)
    wait_indexed(t, "Copies", 700)
    with_index, t_index = run_all(t)
    copies_index, _ = run_all(t, "Copies")
    # The index is used: a rare word decodes only its few candidates.
    c = Imap(t)
    c.cmd("SELECT INBOX")
    rare = c.search("BODY " + INNER_HDR)
    msgs, read, through, hits = last_search_line(t)
    c.close()
    assert (msgs, through, hits) == (N, N, len(rare))
    assert read < hits + N / 20, (read, hits, N)
    # Only the candidates were evaluated (their records read), not all N;
    # under OR the index narrows nothing up front, so all N are.
    assert hits <= last_evaluated(t) < hits + N / 20, (last_evaluated(t), hits)
    c = Imap(t)
    c.cmd("SELECT INBOX")
    c.search("OR BODY %s BODY %s" % (INNER_HDR, BODY_ONLY))
    assert last_evaluated(t) == N
    c.close()
    restart(t, index=False)
    try:
        scan, t_scan = run_all(t)
        copies_scan, _ = run_all(t, "Copies")
        burst_scan, _ = run_all(t, "Burst")
        c = Imap(t)
        c.cmd("SELECT INBOX")
        assert c.search("BODY " + INNER_HDR) == rare
        c.close()
        # ...and a scan decodes every message.
        assert last_search_line(t)[:3] == (N, N, 0)
    finally:
        restart(t, index=True)
    print("FTS-TIMES index %.2fs scan %.2fs" % (t_index, t_scan))
    for q in QUERIES:
        assert with_index[q] == scan[q], q
        assert copies_index[q] == copies_scan[q], q
        assert burst_partial[q] == burst_scan[q], q
        assert burst_index[q] == burst_scan[q], q
    # The table means something: words are where the corpus put them.
    assert scan["BODY nosuchwordanywhere"] == []
    assert scan["BODY " + HEADER_ONLY] == [] and len(scan["TEXT " + HEADER_ONLY]) > 100
    assert len(scan["BODY " + HTML_ONLY]) > 200 and len(scan["BODY " + HTML_SPLIT]) > 500
    assert scan["BODY " + ATTACH_BIN] == [] and len(scan["BODY " + ATTACH_TXT]) > 500
    assert scan["BODY " + INNER_HDR] == scan["TEXT " + INNER_HDR] != []
    assert len(scan["BODY привет"]) > 100 and len(scan["BODY price€"]) > 50
    assert scan["BODY <b>"] == [] and scan["BODY color"] == []
    assert len(scan['TEXT ""']) == N
    assert len(scan["NOT BODY invoice"]) + len(scan["BODY invoice"]) == N
    assert len(burst_scan['TEXT ""']) == 1000


def test_search_right_after_append(env, corpus):
    """The first SEARCH after a burst finds the new messages by scanning
    them (the watermark is below them), the same as a scan."""
    t = env.ternd
    c = Imap(t)
    c.cmd("CREATE Fresh")
    c.append(corpus[:250], "Fresh")
    c.cmd("SELECT Fresh")
    hits = c.search("BODY " + BODY_ONLY)
    msgs, read, through, _ = last_search_line(t)
    c.close()
    assert msgs == 250 and through < 250
    # Every message above the watermark was read.
    assert read >= 250 - through
    c = Imap(t)
    c.cmd("SELECT INBOX")
    assert hits == [u for u in c.search("BODY " + BODY_ONLY) if u <= 250]
    c.close()


def test_expunged_and_new_messages(env, corpus):
    t = env.ternd
    c = Imap(t)
    c.cmd("SELECT INBOX")
    hits = c.search("BODY " + BODY_ONLY)
    c.cmd("UID STORE %d:%d +FLAGS (\\Deleted)" % (hits[0], hits[3]))
    c.cmd("EXPUNGE")
    new = (b"From: a@example.org\r\nSubject: late\r\n\r\nA late " + BODY_ONLY.encode() +
           b" arrives.\r\n")
    c.append([new])
    after = c.search("BODY " + BODY_ONLY)
    c.close()
    assert after[-1] > hits[-1]
    expect = [u for u in hits if u > hits[3]] + [after[-1]]
    assert after == expect


def test_rebuild_index(env, corpus):
    t = env.ternd
    before, _ = run_all(t)
    r = subprocess.run([harness.ternd_path(), "store", "check", "-c", t.conf_path,
                        "--rebuild-index"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=harness.sanitizer_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    assert b"rebuilt the full-text index: " in r.stdout, r.stdout
    assert b" messages" in r.stdout
    after, _ = run_all(t)
    assert before == after


def test_indexer_off(env, corpus):
    """[storage] search_indexer = no: nothing new is indexed (SEARCH scans
    what the index does not cover, with the same result); back on, the
    indexer catches up after the start."""
    t = env.ternd
    restart(t, index=True, indexer=False)
    try:
        mark = len(t.log())
        c = Imap(t)
        c.cmd("CREATE Unindexed")
        c.append(corpus[:300], "Unindexed")
        time.sleep(2)  # four times the indexer's delay: it would have run
        c.cmd("SELECT Unindexed")
        off = c.search("BODY " + BODY_ONLY)
        c.close()
        # Nothing of the mailbox is indexed: every message was decoded.
        assert last_search_line(t)[:3] == (300, 300, 0)
        assert b"fts-indexed" not in t.log()[mark:]
    finally:
        restart(t, index=True)
    wait_indexed(t, "Unindexed", 300)
    c = Imap(t)
    c.cmd("SELECT Unindexed")
    assert c.search("BODY " + BODY_ONLY) == off != []
    c.close()
    msgs, read, through, hits = last_search_line(t)
    assert (msgs, through, hits) == (300, 300, len(off)) and read < 300
