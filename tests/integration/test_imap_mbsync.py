"""test_imap_mbsync.py - a real client against Tern's IMAP server: mbsync
(isync 1.4) syncs a mailbox of 500 messages (plain text, multipart with a
binary attachment, raw UTF-8 and RFC 2047 headers; half delivered over
SMTP, half with MULTIAPPEND and initial flags) to a local Maildir and back.

The tests run in file order and share one account and one Maildir:
  1. first sync: every message lands with the bytes IMAP serves, the
     initial flags become Maildir flags, the sync state maps each file to
     the right server UID, and a second run changes nothing;
  2. flag changes and expunges made over IMAP, and new mail, reach the
     Maildir;
  3. flag changes (F S R P), deleted files and a new file made in the
     Maildir reach the server (the new message's APPENDUID is checked
     against UID SEARCH and the sync state);
  4. a mailbox made on either side is created on the other (Create Both);
  5. a second channel over implicit TLS (imaps, SASL PLAIN, the test
     certificate as CertificateFile) gets the same mailbox, with MaxSize:
     placeholders for the big messages (RFC822.SIZE, BODY.PEEK[HEADER]),
     one of which is then fetched whole when flagged;
  6. a third channel over STARTTLS on the plain port.
CopyArrivalDate is on: file mtimes and INTERNALDATE must agree. The server's Trash is mbsync's Trash: what mbsync expunges there it first
moves there with UID MOVE (the Trash itself is not synced).
mbsync must exit 0 every time; its output is shown when it does not."""
import base64
import datetime
import os
import re
import shutil
import smtplib
import subprocess
import time

import pytest

import harness

MBSYNC = "/usr/bin/mbsync"
USER = "user21"
COUNT = 500
SMTP_COUNT = 250  # the rest arrives by APPEND
RUN_TIMEOUT = 240 if harness.SANITIZE else 120

pytestmark = pytest.mark.skipif(not os.access(MBSYNC, os.X_OK),
                                reason="isync (mbsync) is not installed")


# ---- the corpus ---------------------------------------------------------------

def corpus_message(i):
    """Message i: plain, multipart with a binary attachment, or 8-bit
    UTF-8 headers and body, in turn. Each has a Message-ID of its own."""
    mid = "<mbsync-%d@test.example.org>" % i
    kind = i % 3
    if kind == 0:
        return ("From: <sender%d@example.org>\r\n"
                "To: <%s@example.test>\r\n"
                "Subject: plain message %d\r\n"
                "Message-ID: %s\r\n"
                "Date: Thu, 01 Jan 2026 00:%02d:%02d +0000\r\n"
                "\r\n"
                "Plain body of message %d.\r\n"
                ".leading dot line\r\n"
                "Last line.\r\n" % (i, USER, i, mid, i // 60 % 60, i % 60, i)).encode()
    if kind == 1:
        # Every 16th of these carries a 300 kB attachment: mbsync
        # pipelines one UID FETCH per message, so big answers queue up.
        size = 300000 + i if i % 48 == 4 else 600 + i
        blob = bytes((i * 7 + k * 13) % 256 for k in range(size))
        att = base64.encodebytes(blob).replace(b"\n", b"\r\n")
        return (("From: \"Attach Sender\" <att@example.org>\r\n"
                 "To: <%s@example.test>\r\n"
                 "Subject: attachment %d\r\n"
                 "Message-ID: %s\r\n"
                 "Date: Fri, 02 Jan 2026 10:00:00 +0100\r\n"
                 "MIME-Version: 1.0\r\n"
                 "Content-Type: multipart/mixed; boundary=\"b-%d\"\r\n"
                 "\r\n"
                 "This is a MIME message.\r\n"
                 "--b-%d\r\n"
                 "Content-Type: text/plain; charset=us-ascii\r\n"
                 "\r\n"
                 "See the attachment of message %d.\r\n"
                 "--b-%d\r\n"
                 "Content-Type: application/octet-stream; name=\"data%d.bin\"\r\n"
                 "Content-Disposition: attachment; filename=\"data%d.bin\"\r\n"
                 "Content-Transfer-Encoding: base64\r\n"
                 "\r\n" % (USER, i, mid, i, i, i, i, i, i)).encode()
                + att + b"--b-%d--\r\n" % i)
    return ("From: \"J\u00fcrgen M\u00fcller\" <juergen@example.org>\r\n"
            "To: =?UTF-8?Q?Andr=C3=A9?= <%s@example.test>\r\n"
            "Subject: Gr\u00fc\u00dfe \u2116%d \u2713 caf\u00e9\r\n"
            "Message-ID: %s\r\n"
            "Date: Sat, 03 Jan 2026 12:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
            "\u00c4rger \u00fcber \u00f6de \u00dcberstunden, Nachricht %d.\r\n"
            "\u65e5\u672c\u8a9e\u306e\u884c\r\n" % (USER, i, mid, i)).encode()


def appended_flags(i):
    """The flags APPEND gives message i (SMTP messages get none)."""
    flags = []
    if i >= SMTP_COUNT:
        if i % 5 == 0:
            flags.append("\\Seen")
        if i % 7 == 0:
            flags.append("\\Flagged")
    return flags


def maildir_letters(flags):
    """IMAP flags -> the Maildir info letters mbsync writes (sorted)."""
    table = {"\\Draft": "D", "\\Flagged": "F", "$Forwarded": "P", "\\Answered": "R",
             "\\Seen": "S", "\\Deleted": "T"}
    return "".join(sorted(table[f] for f in flags if f in table))


def message_id(raw):
    m = re.search(rb"^Message-ID: (<[^>\r\n]+>)\r?$", raw, re.M | re.I)
    assert m, raw[:300]
    return m.group(1).decode()


# ---- server side helpers --------------------------------------------------------

def deliver(t):
    """500 messages: the first SMTP_COUNT in one SMTP session, the rest in
    MULTIAPPEND commands of 50 with LITERAL+ and flags."""
    msgs = [corpus_message(i) for i in range(COUNT)]
    s = smtplib.SMTP("127.0.0.1", t.smtp_port, local_hostname="client.example.org",
                     timeout=harness.TIMEOUT * 3)
    try:
        s.ehlo()
        for m in msgs[:SMTP_COUNT]:
            s.sendmail("sender@example.org", ["%s@example.test" % USER], m)
        s.quit()
    finally:
        s.close()
    c = harness.RawLines(t.imap_port, timeout=harness.TIMEOUT * 3)
    try:
        assert c.readline().startswith(b"* OK")
        _, tagged = c.imap("l", "LOGIN %s %s" % (USER, harness.password(USER)))
        assert tagged.startswith(b"l OK"), tagged
        for start in range(SMTP_COUNT, COUNT, 50):
            cmd = b"a%d APPEND INBOX" % start
            for i in range(start, min(start + 50, COUNT)):
                cmd += b" (%s) {%d+}\r\n" % (" ".join(appended_flags(i)).encode(),
                                             len(msgs[i])) + msgs[i]
            c.send(cmd + b"\r\n")
            _, tagged = c.imap("a%d" % start)
            assert re.match(rb"^a\d+ OK \[APPENDUID \d+ \d+:\d+\]", tagged), tagged
        c.imap("z", "LOGOUT")
    finally:
        c.close()
    return msgs


def login(t):
    return t.imap_login(USER)


def server_messages(t, box="INBOX"):
    """{uid: (flags set, BODY[] bytes, INTERNALDATE as a Unix time)} of
    box, read with EXAMINE."""
    m = login(t)
    try:
        typ, data = m.select('"%s"' % box, readonly=True)
        assert typ == "OK", data
        out = {}
        if int(data[0]) == 0:
            return out
        typ, data = m.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        assert typ == "OK", data
        for item in data:
            if not isinstance(item, tuple):
                continue
            head = item[0].decode()
            uid = int(re.search(r"UID (\d+)", head).group(1))
            flags = set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split())
            date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1).strip()
            when = datetime.datetime.strptime(date, "%d-%b-%Y %H:%M:%S %z").timestamp()
            # mbsync's MaxSize goes by RFC822.SIZE.
            assert int(re.search(r"RFC822.SIZE (\d+)", head).group(1)) == len(item[1]), head
            out[uid] = (flags, item[1], int(when))
        return out
    finally:
        m.logout()


def server_flags(t, box="INBOX"):
    """{uid: flags set} of box."""
    m = login(t)
    try:
        typ, data = m.select('"%s"' % box, readonly=True)
        assert typ == "OK", data
        out = {}
        if int(data[0]) == 0:
            return out
        typ, data = m.uid("FETCH", "1:*", "(UID FLAGS)")
        assert typ == "OK", data
        for line in data:
            head = line.decode()
            uid = int(re.search(r"UID (\d+)", head).group(1))
            out[uid] = set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split())
        return out
    finally:
        m.logout()


# ---- Maildir side helpers --------------------------------------------------------

def maildir_files(box_dir):
    """[(path, near uid or None, info letters)] of cur/ and new/."""
    out = []
    for sub in ("cur", "new"):
        d = os.path.join(box_dir, sub)
        for name in sorted(os.listdir(d)):
            m = re.search(r",U=(\d+)", name)
            info = name.split(":2,", 1)[1] if ":2," in name else ""
            out.append((os.path.join(d, name), int(m.group(1)) if m else None, info))
    return out


def sync_state(box_dir):
    """{near uid: far uid} from mbsync's per-folder state (SyncState *)."""
    with open(os.path.join(box_dir, ".mbsyncstate")) as f:
        text = f.read()
    _, sep, body = text.partition("\n\n")
    assert sep, text[:500]
    pairs = {}
    for line in body.splitlines():
        parts = line.split(" ")
        far, near = int(parts[0]), int(parts[1])
        if far > 0 and near > 0:
            pairs[near] = far
    return pairs


def as_served(file_bytes):
    """A Maildir file as IMAP bytes: mbsync stores LF line ends."""
    return file_bytes.replace(b"\n", b"\r\n")


def strip_tuid(raw):
    """raw without mbsync's X-TUID header line: mbsync adds one to each
    message it propagates, to find it again should the store not report
    the new UID; it is part of the copy on the receiving side only."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    head = re.sub(rb"(?m)^X-TUID: [!-~]{12}\r\n", b"", head + b"\r\n")[:-2]
    return head + sep + body


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- mbsync ----------------------------------------------------------------------

def write_rc(path, t, maildir, inbox, tls=False, patterns="* !Trash", near_extra=""):
    if tls == "starttls":
        account = ("Host localhost\nPort %d\nSSLType STARTTLS\n"
                   "SystemCertificates no\nCertificateFile %s\nAuthMechs LOGIN\n"
                   % (t.imap_port, harness_cert(t)))
    elif tls:
        account = ("Host localhost\nPort %d\nSSLType IMAPS\nSSLVersions TLSv1.2 TLSv1.3\n"
                   "SystemCertificates no\nCertificateFile %s\nAuthMechs PLAIN\n"
                   % (t.imaps_port, harness_cert(t)))
    else:
        account = "Host 127.0.0.1\nPort %d\nSSLType None\nAuthMechs LOGIN\n" % t.imap_port
    with open(path, "w") as f:
        f.write("IMAPAccount tern\n%sUser %s\nPass %s\nTimeout %d\n\n"
                # Trash: mbsync moves what it expunges on the server there
                # first (UID MOVE, as MOVE is advertised). The Trash itself
                # is not synced: its messages keep \Deleted (RFC 6851
                # preserves flags), which mbsync takes as deleted.
                "IMAPStore tern-far\nAccount tern\nTrash Trash\n\n"
                "MaildirStore local\nPath %s/\nInbox %s\nSubFolders Verbatim\n%s\n"
                "Channel tern\nFar :tern-far:\nNear :local:\nPatterns %s\n"
                "Sync All\nCreate Both\nExpunge Both\nSyncState *\nCopyArrivalDate yes\n"
                % (account, USER, harness.password(USER), RUN_TIMEOUT // 2,
                   maildir, inbox, near_extra, patterns))


def harness_cert(t):
    """The certificate ternd serves (the harness's self-signed test cert)."""
    return dict(t.sections)["tls"]["cert"]


def mbsync(t, rc, *flags):
    """Runs mbsync -a; it must exit 0 (its output is in the failure)."""
    try:
        p = subprocess.run([MBSYNC, "-c", rc] + list(flags) + ["-a"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = (e.output or b"").decode(errors="replace")
        raise AssertionError("mbsync hung:\n%s" % out[-20000:])
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, "mbsync exited %d:\n%s" % (p.returncode, out[-20000:])
    t.check_alive()
    return out


class Sync:
    """The shared account's mbsync setup: config, Maildir, what was sent."""

    def __init__(self, env):
        self.t = env.ternd
        self.dir = os.path.join(env.tmp, "mbsync")
        os.makedirs(self.dir)
        self.maildir = os.path.join(self.dir, "mail")
        self.inbox = os.path.join(self.maildir, "INBOX")
        os.makedirs(self.maildir)
        self.rc = os.path.join(self.dir, "mbsyncrc")
        write_rc(self.rc, self.t, self.maildir, self.inbox)
        self.sent = {}

    def run(self, *flags):
        return mbsync(self.t, self.rc, *flags)

    def files(self, box="INBOX"):
        return maildir_files(self.inbox if box == "INBOX" else os.path.join(self.maildir, box))

    def state(self, box="INBOX"):
        return sync_state(self.inbox if box == "INBOX" else os.path.join(self.maildir, box))

    def check_same(self, box="INBOX"):
        """Maildir and server hold the same messages, byte for byte, with
        the same flags, paired as mbsync's state says. Returns
        {far uid: (path, info)}."""
        server = server_messages(self.t, box)
        files = self.files(box)
        state = self.state(box)
        assert len(files) == len(server), (len(files), len(server))
        paired = {}
        for path, near, info in files:
            assert near is not None and near in state, (path, state.get(near))
            far = state[near]
            assert far in server and far not in paired, (path, far)
            sflags, body, when = server[far]
            assert strip_tuid(as_served(read(path))) == strip_tuid(body), (path, far)
            # CopyArrivalDate: the file's mtime is the INTERNALDATE.
            assert int(os.stat(path).st_mtime) == when, (path, far)
            assert info == maildir_letters(sflags - {"\\Recent"}), (path, info, sflags)
            paired[far] = (path, info)
        return paired


@pytest.fixture(scope="module")
def sync(env):
    s = Sync(env)
    s.sent = {message_id(m): m for m in deliver(env.ternd)}
    return s


# ---- 1. first sync ---------------------------------------------------------------

def test_first_sync_copies_every_message(sync):
    out = sync.run()
    server = server_messages(sync.t)
    assert len(server) == COUNT
    # The server holds what was sent: SMTP messages behind Tern's trace
    # headers, appended ones exactly, with their flags.
    for uid, (flags, body, _) in server.items():
        mid = message_id(body)
        i = int(re.match(r"<mbsync-(\d+)@", mid).group(1))
        sent = sync.sent[mid]
        if i < SMTP_COUNT:
            assert body.endswith(sent) and body.startswith(b"Return-Path: "), (uid, body[:300])
        else:
            assert body == sent, uid
        assert flags - {"\\Recent"} == set(appended_flags(i)), (uid, flags)
    paired = sync.check_same()
    assert len(paired) == COUNT
    assert any(info == "FS" for _, info in paired.values())
    assert any(info == "S" for _, info in paired.values())
    # Create Both made the special-use folders locally (but the Trash).
    for box in ("Archive", "Drafts", "Junk", "Sent"):
        assert os.path.isdir(os.path.join(sync.maildir, box, "cur")), (box, out)
    assert not os.path.exists(os.path.join(sync.maildir, "Trash"))
    # A second run finds nothing to do.
    before = sync.files()
    sync.run()
    assert sync.files() == before
    assert len(server_flags(sync.t)) == COUNT


# ---- 2. server-side changes ------------------------------------------------------

def test_server_changes_reach_maildir(sync):
    t = sync.t
    before = server_flags(t)
    uids = sorted(before)
    flag_uids = [u for u in uids[10:60:5] if not before[u] - {"\\Recent"}]
    unseen_uids = [u for u in uids if "\\Seen" in before[u]][:3]
    gone_uids = uids[100:110] + [uids[-1]]
    m = login(t)
    try:
        assert m.select("INBOX")[0] == "OK"
        uset = ",".join(map(str, flag_uids))
        assert m.uid("STORE", uset, "+FLAGS", "(\\Flagged \\Seen)")[0] == "OK"
        assert m.uid("STORE", ",".join(map(str, unseen_uids)), "-FLAGS", "(\\Seen)")[0] == "OK"
        assert m.uid("STORE", ",".join(map(str, gone_uids)), "+FLAGS", "(\\Deleted)")[0] == "OK"
        typ, data = m.expunge()
        assert typ == "OK" and len(data) == len(gone_uids), data
    finally:
        m.logout()
    # New mail since the last sync: mbsync asks for UIDs past its last.
    arrived = [harness.make_message("mbsync-later-%d" % i) for i in range(3)]
    for msg in arrived:
        t.send("%s@example.test" % USER, msg)
    sync.run()
    paired = sync.check_same()
    assert len(paired) == COUNT - len(gone_uids) + len(arrived)
    assert sorted(paired)[-3:] == [uids[-1] + 1, uids[-1] + 2, uids[-1] + 3]
    for msg, u in zip(arrived, sorted(paired)[-3:]):
        assert strip_tuid(as_served(read(paired[u][0]))).endswith(msg), u
    for u in flag_uids:
        assert "F" in paired[u][1] and "S" in paired[u][1], (u, paired[u])
    for u in unseen_uids:
        assert "S" not in paired[u][1], (u, paired[u])
    for u in gone_uids:
        assert u not in paired
    sync.gone = set(gone_uids)


# ---- 3. Maildir-side changes -----------------------------------------------------

NEW_MSG = ("From: \"Local Writer\" <local@example.org>\r\n"
           "To: <%s@example.test>\r\n"
           "Subject: written in the Maildir \u2014 \u00fcml\u00e4ut\r\n"
           "Message-ID: <mbsync-local-new@test.example.org>\r\n"
           "Date: Sun, 04 Jan 2026 08:00:00 +0000\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n"
           "\r\n"
           "A message born on the client side.\r\n" % USER).encode()


def test_maildir_changes_reach_server(sync):
    t = sync.t
    before = server_messages(t)
    state = sync.state()
    files = [f for f in sync.files() if f[2] == ""]
    assert len(files) > 40
    # Rename to add flags, in the Maildir's own spelling.
    changes = {"F": files[0:4], "S": files[4:8], "RS": files[8:12], "FPRS": files[12:14]}
    want = {}
    for letters, chosen in changes.items():
        for path, near, _ in chosen:
            base = os.path.basename(path).split(":2,", 1)[0]
            os.rename(path, os.path.join(sync.inbox, "cur", base + ":2," + letters))
            want[state[near]] = letters
    # Delete files.
    deleted = [state[near] for path, near, _ in files[20:26]]
    for path, _, _ in files[20:26]:
        os.unlink(path)
    # A new message, as a mail client would drop it into new/.
    new_name = "%d.P%dQ1.client.example.org" % (int(time.time()), os.getpid())
    with open(os.path.join(sync.inbox, "new", new_name), "wb") as f:
        f.write(NEW_MSG.replace(b"\r\n", b"\n"))
    # CopyArrivalDate sends the mtime as APPEND's date-time.
    os.utime(os.path.join(sync.inbox, "new", new_name), (1700000000, 1700000000))

    out = sync.run("-Dn")
    flags = server_flags(t)
    names = {"D": "\\Draft", "F": "\\Flagged", "P": "$Forwarded", "R": "\\Answered",
             "S": "\\Seen"}
    for uid, letters in want.items():
        assert flags[uid] - {"\\Recent"} == {names[c] for c in letters}, (uid, flags[uid])
    for uid in deleted:
        assert uid not in flags
    m = login(t)
    try:
        assert m.select("INBOX", readonly=True)[0] == "OK"
        typ, data = m.uid("SEARCH", "UID", ",".join(map(str, deleted)))
        assert typ == "OK" and data == [b""], data
        typ, data = m.uid("SEARCH", "HEADER", "Message-ID", "mbsync-local-new@test.example.org")
        assert typ == "OK" and len(data[0].split()) == 1, data
        new_uid = int(data[0])
    finally:
        m.logout()
    # mbsync got the UID from APPENDUID (no search for its X-TUID).
    appended = re.findall(r"OK \[APPENDUID (\d+) (\d+)\]", out)
    assert [int(u) for _, u in appended] == [new_uid], out[-5000:]
    server = server_messages(t)
    assert len(server) == COUNT - len(sync.gone) + 3 - len(deleted) + 1
    paired = sync.check_same()
    path, info = paired[new_uid]
    assert as_served(read(path)) == NEW_MSG
    # The server's copy is the file plus mbsync's X-TUID line, nothing else.
    copy = server[new_uid][1]
    assert server[new_uid][2] == 1700000000
    assert strip_tuid(copy) == NEW_MSG
    assert len(copy) == len(NEW_MSG) + len("X-TUID: 123456789012\r\n")
    # The expunged messages were moved to the server's Trash, bytes and
    # flags (with \Deleted) kept, and not made into new local messages.
    trash = server_messages(t, "Trash")
    assert sorted((sorted(f - {"\\Recent"}), b) for f, b, _ in trash.values()) == \
        sorted((["\\Deleted"], before[u][1]) for u in deleted)
    moved = re.findall(r'>>> \d+ UID MOVE (\d+) "Trash"', out)
    assert sorted(map(int, moved)) == sorted(deleted), out[-5000:]
    assert not os.path.exists(os.path.join(sync.maildir, "Trash"))


# ---- 4. mailboxes made on either side --------------------------------------------

def test_new_mailboxes_both_ways(sync):
    t = sync.t
    # One made in the Maildir, with a space in its name and a message.
    local = os.path.join(sync.maildir, "Projects Q1")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(local, sub))
    local_msg = harness.make_message("mbsync-projects", subject="local folder")
    with open(os.path.join(local, "cur", "%d.P1Q2.client:2,S" % int(time.time())), "wb") as f:
        f.write(local_msg.replace(b"\r\n", b"\n"))
    # Made on the server: one two levels deep with a flagged message, and
    # one with a modified UTF-7 name (mbsync 1.4 keeps the name as it is).
    server_msg = harness.make_message("mbsync-lists", subject="server folder")
    m = login(t)
    try:
        assert m.create('"Lists/Tern"')[0] == "OK"
        typ, data = m.append('"Lists/Tern"', "(\\Flagged)", None, server_msg)
        assert typ == "OK", data
        assert m.create('"Entw&APw-rfe"')[0] == "OK"
    finally:
        m.logout()

    sync.run()
    m = login(t)
    try:
        typ, data = m.list('""', "*")
        assert typ == "OK"
        names = [re.search(rb'"/" "?([^"]*)"?$', l).group(1).decode() for l in data]
        assert "Projects Q1" in names and "Lists/Tern" in names, names
    finally:
        m.logout()
    projects = server_messages(t, "Projects Q1")
    assert [(f - {"\\Recent"}, strip_tuid(b)) for f, b, _ in projects.values()] == \
        [({"\\Seen"}, local_msg)]
    assert sync.check_same("Projects Q1")
    assert os.path.isdir(os.path.join(sync.maildir, "Entw&APw-rfe", "cur"))
    local_lists = os.path.join(sync.maildir, "Lists", "Tern")
    assert os.path.isdir(os.path.join(local_lists, "cur"))
    paired = sync.check_same("Lists/Tern")
    assert [(strip_tuid(as_served(read(p))), info) for p, info in paired.values()] == \
        [(server_msg, "F")]


# ---- 5. implicit TLS -------------------------------------------------------------

def test_sync_over_imaps(sync):
    t = sync.t
    d = os.path.join(sync.dir, "tls")
    os.makedirs(d)
    rc = os.path.join(d, "mbsyncrc")
    inbox = os.path.join(d, "mail", "INBOX")
    os.makedirs(os.path.join(d, "mail"))
    # MaxSize makes mbsync ask for RFC822.SIZE and fetch only the header
    # (BODY.PEEK[HEADER]) of the 300 kB messages, for placeholders.
    write_rc(rc, t, os.path.join(d, "mail"), inbox, tls=True, patterns="INBOX",
             near_extra="MaxSize 100k\n")
    mbsync(t, rc)
    assert re.search(rb'imaps login user="%s" result=ok mech=PLAIN ip=127.0.0.1 tls=yes'
                     % USER.encode(), t.log())
    server = server_messages(t)
    files = maildir_files(inbox)
    state = sync_state(inbox)
    assert len(files) == len(server) > 400
    placeholders = 0
    for path, near, info in files:
        flags, body, _ = server[state[near]]
        assert info == maildir_letters(flags - {"\\Recent"}), (path, info, flags)
        local = strip_tuid(as_served(read(path)))
        if len(body) <= 100 * 1024:
            assert local == strip_tuid(body), path
            continue
        # A placeholder: the server's header with a marked Subject, and
        # the size mbsync took from RFC822.SIZE.
        placeholders += 1
        head = body[:body.index(b"\r\n\r\n") + 2]
        head = re.sub(rb"(?m)^Subject: ", b"Subject: [placeholder] ", head)
        assert local.startswith(head + b"\r\n"), (path, local[:600])
        m = re.match(rb"Having a size of (\d+)KiB, this message is over the MaxSize limit\.",
                     local[len(head) + 2:])
        assert m and int(m.group(1)) == len(body) // 1024, (path, local[len(head):])
    assert placeholders == len([u for u, (_, b, _) in server.items() if len(b) > 100 * 1024]) > 5
    # A flag set through the TLS Maildir reaches the plain one via the
    # server; flagging a placeholder makes mbsync fetch the whole message.
    small = next(f for f in files if f[2] == "" and len(server[state[f[1]]][1]) < 1000)
    big = next(f for f in files if f[2] == "" and len(server[state[f[1]]][1]) > 100 * 1024)
    for path, _, _ in (small, big):
        base = os.path.basename(path).split(":2,", 1)[0]
        os.rename(path, os.path.join(inbox, "cur", base + ":2,F"))
    mbsync(t, rc)
    assert server_flags(t)[state[small[1]]] - {"\\Recent"} == {"\\Flagged"}
    # The placeholder was replaced by the whole message (a new local UID).
    far_big = state[big[1]]
    state = sync_state(inbox)
    assert big[1] not in state and far_big in state.values()
    path = next(f[0] for f in maildir_files(inbox) if state.get(f[1]) == far_big)
    assert strip_tuid(as_served(read(path))) == strip_tuid(server[far_big][1])
    assert not any(f[1] == big[1] for f in maildir_files(inbox))
    sync.run()
    sync.check_same()
    shutil.rmtree(d)


# ---- 6. STARTTLS -----------------------------------------------------------------

def test_sync_over_starttls(sync):
    t = sync.t
    d = os.path.join(sync.dir, "starttls")
    os.makedirs(os.path.join(d, "mail"))
    rc = os.path.join(d, "mbsyncrc")
    write_rc(rc, t, os.path.join(d, "mail"), os.path.join(d, "mail", "INBOX"),
             tls="starttls", patterns="Projects*")
    out = mbsync(t, rc, "-Dn")
    # mbsync asks again for the capabilities after STARTTLS (RFC 9051
    # 6.2.1); they are still the pre-login set, now without STARTTLS.
    assert re.search(r">>> \d+ STARTTLS\r?\n\d+ OK ", out), out[-3000:]
    caps = re.findall(r"^\* CAPABILITY (.*)$", out, re.M)
    assert caps and "STARTTLS" not in caps[-1].split() and "AUTH=PLAIN" in caps[-1].split(), out
    assert re.search(rb'imap login user="%s" result=ok mech=LOGIN ip=127.0.0.1 tls=yes'
                     % USER.encode(), t.log())
    files = maildir_files(os.path.join(d, "mail", "Projects Q1"))
    server = server_messages(t, "Projects Q1")
    assert [strip_tuid(as_served(read(f[0]))) for f in files] == \
        [strip_tuid(b) for _, b, _ in server.values()]
    assert len(files) == 1
    shutil.rmtree(d)
