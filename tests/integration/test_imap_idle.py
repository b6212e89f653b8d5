"""IMAP IDLE (RFC 2177) with the selected-mailbox view: a delivery over
SMTP reaches an idling client within a second (EXISTS, and RECENT in
IMAP4rev1 only), so do a flag change and an expunge made by a second
session (FETCH FLAGS, EXPUNGE); DONE ends the command with a tagged OK;
a session that is not idling sees the same updates at its next NOOP."""
import socket
import time

import pytest

import harness
from harness import make_message, unique_token

from test_imap_msg import Imap, deliver


@pytest.fixture(scope="module")
def env():
    e = harness.Env()
    yield e
    e.close()


WAIT = 1.0 if not harness.SANITIZE else 3.0


def expect(c, lines, within=WAIT):
    """Reads untagged lines until `lines` (in order) have come, within
    `within` seconds of the call; returns the time taken."""
    start = time.monotonic()
    got = []
    c.sock.settimeout(within)
    try:
        while len(got) < len(lines):
            got.append(c.readline().decode())
    except socket.timeout:
        raise AssertionError("after %.2fs got %r, want %r" % (time.monotonic() - start, got,
                                                              lines))
    finally:
        c.sock.settimeout(harness.TIMEOUT)
    assert got == ["* " + x for x in lines], got
    return time.monotonic() - start


def quiet(c, seconds=0.3):
    """Nothing more arrives for a while."""
    c.sock.settimeout(seconds)
    try:
        data = c.buf or c.sock.recv(4096)
    except socket.timeout:
        data = b""
    finally:
        c.sock.settimeout(harness.TIMEOUT)
    assert data == b"", data


def start_idle(c, tag="idle1"):
    c.send("%s IDLE\r\n" % tag)
    assert c.readline() == b"+ idling"


def test_idle_sees_delivery_flags_expunge(env):
    t = env.ternd
    login = "user11"
    deliver(t, login, 2)
    # other selects first and so holds \Recent of these two (RFC 3501
    # 2.3.2: recent in the first session told only).
    other = Imap(t, login)
    assert other.select() == 2
    idler = Imap(t, login)
    assert idler.select() == 2
    poller = Imap(t, login)
    assert poller.select() == 2

    start_idle(idler)
    quiet(idler)
    # A delivery: EXISTS and (rev1) RECENT within a second of the 250.
    addr = "%s@example.test" % login
    code, _ = t.send(addr, make_message(unique_token("idle"), to=addr))
    assert code == 250
    expect(idler, ["3 EXISTS", "1 RECENT"])

    # A flag change by another session.
    assert other.cmd("STORE 1 +FLAGS.SILENT (\\Seen \\Flagged)")[1] == "OK STORE completed"
    expect(idler, ["1 FETCH (FLAGS (\\Seen \\Flagged))"])

    # An expunge by another session (MOVE expunges the source).
    u, tagged = other.cmd("MOVE 2 Trash")
    assert tagged == "OK MOVE completed", (u, tagged)
    expect(idler, ["2 EXPUNGE"])
    quiet(idler)

    # DONE ends IDLE with a tagged OK; the session goes on normally.
    idler.send("DONE\r\n")
    assert idler.readline() == b"idle1 OK IDLE terminated"
    assert idler.cmd("NOOP") == ([], "OK NOOP completed")
    assert idler.cmd("STORE 2 +FLAGS (\\Answered)") == (
        ["2 FETCH (FLAGS (\\Answered \\Recent))"], "OK STORE completed")

    # The session that did not idle gets the same news at NOOP, plus the
    # last change; the idler was told of the new message first, so it is
    # not \Recent here.
    u, tagged = poller.cmd("NOOP")
    assert tagged == "OK NOOP completed"
    # (The new message's flags come with it, not as a FETCH.)
    assert u == ["2 EXPUNGE", "2 EXISTS", "0 RECENT", "1 FETCH (FLAGS (\\Seen \\Flagged))"], u
    assert poller.cmd("NOOP") == ([], "OK NOOP completed")
    for c in (idler, poller, other):
        c.close()
    t.check_alive()


def test_idle_rev2_and_repeated(env):
    t = env.ternd
    login = "user12"
    deliver(t, login, 1)
    idler = Imap(t, login, rev2=True)
    assert idler.select() == 1
    for i in range(3):
        start_idle(idler, "i%d" % i)
        addr = "%s@example.test" % login
        t.send(addr, make_message(unique_token("rev2"), to=addr))
        # No RECENT in IMAP4rev2.
        expect(idler, ["%d EXISTS" % (i + 2)])
        quiet(idler, 0.2)
        idler.send("done\r\n")
        assert idler.readline() == b"i%d OK IDLE terminated" % i
    # Flag changes of another session carry the UID in rev2.
    other = Imap(t, login)
    other.select()
    start_idle(idler, "i9")
    assert other.cmd("STORE 4 FLAGS.SILENT ($Done)")[1] == "OK STORE completed"
    # A keyword new to the mailbox: FLAGS and PERMANENTFLAGS come first.
    expect(idler, ["FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Done)",
                   "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Done \\*)] "
                   "Flags permitted",
                   "4 FETCH (UID 4 FLAGS ($Done))"])
    idler.send("DONE\r\n")
    assert idler.readline() == b"i9 OK IDLE terminated"
    idler.close()
    other.close()


def test_idle_without_mailbox_and_bad_continuation(env):
    t = env.ternd
    c = Imap(t, "user13")
    # IDLE in the authenticated state: nothing to report, DONE ends it.
    start_idle(c, "x1")
    quiet(c, 0.2)
    c.send("DONE\r\n")
    assert c.readline() == b"x1 OK IDLE terminated"
    # Anything but DONE ends IDLE with BAD.
    start_idle(c, "x2")
    c.send("x3 NOOP\r\n")
    assert c.readline() == b"x2 BAD Expected DONE"
    assert c.cmd("NOOP") == ([], "OK NOOP completed")
    assert c.cmd("IDLE now")[1].startswith("BAD")
    c.close()
    c = Imap(t)
    assert c.cmd("IDLE")[1].startswith("BAD")
    c.close()
