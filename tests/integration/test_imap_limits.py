"""IMAP limits from [limits]: the largest literal (imap_literal_max), the
deepest list nesting (imap_max_depth), the command rate per connection
(imap_command_rate: commands over it wait, they are not refused) and the
flood cut-off (imap_flood_time: a connection kept over the rate that long
gets "* BYE" and is closed). The line limit is [imap] max_line."""
import time

import pytest

import harness

RATE = 20


@pytest.fixture(scope="module")
def env():
    e = harness.Env({
        "limits": {"imap_literal_max": "2K", "imap_max_depth": "4",
                   "imap_command_rate": str(RATE), "imap_flood_time": "3s"},
        "imap": {"max_line": "4096"},
    })
    yield e
    e.close()


@pytest.fixture
def t(env):
    return env.ternd


def login(t, user):
    c = harness.RawLines(t.imap_port)
    assert c.readline().startswith(b"* OK")
    _, tagged = c.imap("l", "LOGIN %s %s" % (user, harness.password(user)))
    assert tagged.startswith(b"l OK"), tagged
    return c


def test_literal_limit_from_config(t):
    c = login(t, "user50")
    try:
        c.send(b'a1 LIST "" {2049+}\r\n' + b"x" * 2049 + b"\r\na2 NOOP\r\n")
        assert c.readline() == b"a1 NO [TOOBIG] Literal too big"
        assert c.readline() == b"a2 OK NOOP completed"
        # At the limit: accepted (a mailbox name that matches nothing).
        _, tagged = c.imap("a3", '{2048+}\r\n'.join(['LIST "" ', "y" * 2048]))
        assert tagged == b"a3 OK LIST completed", tagged
        # A synchronizing literal over it gets no "+" at all.
        c.send("a4 SEARCH SUBJECT {5000}\r\n")
        assert c.readline() == b"a4 NO [TOOBIG] Literal too big"
    finally:
        c.close()


def test_nesting_limit_from_config(t):
    c = login(t, "user51")
    try:
        assert c.imap("s", "SELECT INBOX")[1].startswith(b"s OK")
        _, tagged = c.imap("a1", "SEARCH (((ALL)))")
        assert tagged == b"a1 OK SEARCH completed", tagged
        _, tagged = c.imap("a2", "SEARCH (((((ALL)))))")
        assert tagged.startswith(b"a2 BAD "), tagged
        assert b"nest" in tagged.lower(), tagged
    finally:
        c.close()


def test_line_limit_from_config(t):
    c = login(t, "user52")
    try:
        c.send(b"a1 NOOP " + b"x" * 5000 + b"\r\n")
        assert c.readline() == b"* BYE Command line too long"
        with pytest.raises((EOFError, OSError)):
            c.readline()
    finally:
        c.close()


def test_commands_over_rate_wait_not_fail(t):
    c = login(t, "user53")
    try:
        n = RATE * 2 + 10
        start = time.monotonic()
        c.send("".join("n%d NOOP\r\n" % i for i in range(n)))
        for i in range(n):
            assert c.readline() == b"n%d OK NOOP completed" % i
        elapsed = time.monotonic() - start
        # The bucket held RATE (one second's worth, minus LOGIN); the rest
        # had to wait for tokens at RATE per second: a lower bound only.
        assert elapsed >= (n - RATE) / RATE * 0.9, elapsed
        # A client that pauses gets its burst back and is not cut off.
        time.sleep(1.2)
        _, tagged = c.imap("z", "NOOP")
        assert tagged == b"z OK NOOP completed"
    finally:
        c.close()


def test_flood_gets_bye(t):
    c = login(t, "user54")
    try:
        # Far more than RATE * imap_flood_time: the connection stays over
        # the rate until the cut-off.
        n = RATE * 10
        c.send("".join("f%d NOOP\r\n" % i for i in range(n)))
        answered = 0
        while True:
            line = c.readline()
            if line.startswith(b"* BYE"):
                assert line == b"* BYE Too many commands; slow down"
                break
            assert line == b"f%d OK NOOP completed" % answered
            answered += 1
        # Cut off part way: the rate times the flood time, plus the burst.
        assert RATE <= answered < n, answered
        with pytest.raises((EOFError, OSError)):
            c.readline()
        assert b"command-flood" in t.log()
    finally:
        c.close()
    # Other connections are unaffected.
    d = login(t, "user55")
    try:
        assert d.imap("a", "NOOP")[1] == b"a OK NOOP completed"
    finally:
        d.close()
