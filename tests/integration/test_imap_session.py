"""The IMAP session: greeting and CAPABILITY per state, LOGIN and
AUTHENTICATE (PLAIN, LOGIN, SASL-IR, cancel) checked through the
directory, STARTTLS and implicit TLS, LOGINDISABLED without TLS, ENABLE,
ID, NAMESPACE, LOGOUT, command/state errors, literal framing (synchronizing
literals get "+", bad commands never let their literal data run as a
command), TOOBIG, too many errors, and the directory-down answer."""
import imaplib
import time

import pytest

import harness
from harness import RawLines, b64


@pytest.fixture(scope="module")
def t(env):
    return env.ternd


def raw(t, tls=False):
    c = RawLines(t.imaps_port if tls else t.imap_port, tls=tls)
    greeting = c.readline()
    assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 "), greeting
    return c


def caps(line):
    """The capability words of a CAPABILITY line or response code."""
    text = line.decode()
    if "[CAPABILITY " in text:
        text = text.split("[CAPABILITY ", 1)[1].split("]", 1)[0]
    else:
        text = text.split("CAPABILITY ", 1)[1]
    return set(text.split())


def test_greeting_and_capability_before_login(t):
    c = raw(t)
    try:
        untagged, tagged = c.imap("a1", "CAPABILITY")
        assert tagged == b"a1 OK CAPABILITY completed"
        assert len(untagged) == 1
        cs = caps(untagged[0])
        for need in ("IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE",
                     "STARTTLS", "AUTH=PLAIN", "AUTH=LOGIN"):
            assert need in cs, cs
        assert "IDLE" not in cs  # only after login
        assert "LOGINDISABLED" not in cs  # plaintext_auth = yes here
    finally:
        c.close()


def test_login_ok_and_capability_after(t):
    c = raw(t)
    try:
        untagged, tagged = c.imap("a1", 'LOGIN alice "alice-pw-1"')
        assert tagged.startswith(b"a1 OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
        cs = caps(tagged)
        for need in ("IDLE", "NAMESPACE", "UNSELECT", "CHILDREN", "UIDPLUS", "MOVE",
                     "MULTIAPPEND", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE",
                     "CREATE-SPECIAL-USE", "ESEARCH", "SEARCHRES", "BINARY", "STATUS=SIZE",
                     "UTF8=ACCEPT", "CONDSTORE", "QRESYNC", "APPENDLIMIT=1048576"):
            assert need in cs, (need, cs)
        assert "STARTTLS" not in cs and "AUTH=PLAIN" not in cs
        # LOGIN again: only valid before authentication.
        _, tagged = c.imap("a2", "LOGIN alice alice-pw-1")
        assert tagged.startswith(b"a2 BAD ")
        _, tagged = c.imap("a3", "LOGOUT")
        assert tagged == b"a3 OK LOGOUT completed"
    finally:
        c.close()


def test_login_wrong_password_and_unknown_user(t):
    m = t.imap()
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("alice", "nope")
    assert "[AUTHENTICATIONFAILED]" in str(e.value)
    m.shutdown()
    c = raw(t)
    try:
        _, tagged = c.imap("a1", 'LOGIN "*)(uid=*" "x"')
        assert tagged == b"a1 NO [AUTHENTICATIONFAILED] Authentication failed"
    finally:
        c.close()


def test_login_with_literals(t):
    c = raw(t)
    try:
        c.send("a1 LOGIN {5}\r\n")
        assert c.readline().startswith(b"+ ")
        c.send("alice {10}\r\n")
        assert c.readline().startswith(b"+ ")
        c.send("alice-pw-1\r\n")
        _, tagged = c.imap("a1")
        assert tagged.startswith(b"a1 OK "), tagged
    finally:
        c.close()


def test_login_literal_plus_needs_no_continuation(t):
    c = raw(t)
    try:
        c.send("a1 LOGIN {5+}\r\nalice {10+}\r\nalice-pw-1\r\n")
        untagged, tagged = c.imap("a1")
        assert untagged == []  # no "+" for non-synchronizing literals
        assert tagged.startswith(b"a1 OK "), tagged
    finally:
        c.close()


def test_authenticate_plain_sasl_ir_and_continuation(t):
    c = raw(t)
    try:
        ir = b64("\0bob\0bob-pw-1")
        _, tagged = c.imap("a1", "AUTHENTICATE PLAIN " + ir)
        assert tagged.startswith(b"a1 OK [CAPABILITY "), tagged
    finally:
        c.close()
    c = raw(t)
    try:
        c.send("a1 AUTHENTICATE PLAIN\r\n")
        assert c.readline() == b"+ "
        c.send(b64("\0bob\0bob-pw-1") + "\r\n")
        _, tagged = c.imap("a1")
        assert tagged.startswith(b"a1 OK "), tagged
    finally:
        c.close()


def test_authenticate_login_and_cancel(t):
    c = raw(t)
    try:
        c.send("a1 AUTHENTICATE LOGIN\r\n")
        assert c.readline() == b"+ VXNlcm5hbWU6"
        c.send(b64("bob") + "\r\n")
        assert c.readline() == b"+ UGFzc3dvcmQ6"
        c.send(b64("bob-pw-1") + "\r\n")
        _, tagged = c.imap("a1")
        assert tagged.startswith(b"a1 OK "), tagged
    finally:
        c.close()
    c = raw(t)
    try:
        c.send("a2 AUTHENTICATE PLAIN\r\n")
        assert c.readline() == b"+ "
        c.send("*\r\n")
        _, tagged = c.imap("a2")
        assert tagged == b"a2 BAD Authentication cancelled"
        _, tagged = c.imap("a3", "AUTHENTICATE CRAM-MD5")
        assert tagged.startswith(b"a3 NO [CANNOT] ")
        # Acting as someone else (authzid) fails like a wrong password.
        _, tagged = c.imap("a4", "AUTHENTICATE PLAIN " + b64("alice\0bob\0bob-pw-1"))
        assert tagged.startswith(b"a4 NO [AUTHENTICATIONFAILED]"), tagged
    finally:
        c.close()


def test_imaplib_authenticate(t):
    m = t.imap()
    typ, _ = m.authenticate("PLAIN", lambda _: b"\0user07\0user07-pw-1")
    assert typ == "OK"
    m.logout()


def test_starttls_then_login(t):
    c = raw(t)
    try:
        _, tagged = c.imap("a1", "STARTTLS")
        assert tagged == b"a1 OK Begin TLS negotiation now"
        c.start_tls()
        untagged, tagged = c.imap("a2", "CAPABILITY")
        cs = caps(untagged[0])
        assert "STARTTLS" not in cs and "AUTH=PLAIN" in cs
        _, tagged = c.imap("a3", "LOGIN alice alice-pw-1")
        assert tagged.startswith(b"a3 OK ")
        _, tagged = c.imap("a4", "STARTTLS")
        assert tagged.startswith(b"a4 BAD")
    finally:
        c.close()


def test_starttls_discards_injected_commands(t):
    c = raw(t)
    try:
        # A command pipelined behind STARTTLS in the clear must not run
        # inside TLS (CVE-2011-0411).
        c.send("a1 STARTTLS\r\na2 LOGIN alice alice-pw-1\r\n")
        assert c.readline() == b"a1 OK Begin TLS negotiation now"
        c.start_tls()
        _, tagged = c.imap("a3", "NOOP")
        assert tagged == b"a3 OK NOOP completed"
        _, tagged = c.imap("a4", "NAMESPACE")
        assert tagged.startswith(b"a4 BAD"), "a2 LOGIN ran inside TLS"
    finally:
        c.close()


def test_imaps(t):
    m = t.imaps()
    m.login("alice", "alice-pw-1")
    typ, data = m.namespace()
    assert typ == "OK" and data == [b'(("" "/")) NIL (("Shared/" "/"))']
    m.logout()


def test_logindisabled_without_tls(env):
    t2 = env.new_ternd({"imap": {"plaintext_auth": "no"}}, name="noplain")
    c = raw(t2)
    try:
        untagged, _ = c.imap("a1", "CAPABILITY")
        cs = caps(untagged[0])
        assert "LOGINDISABLED" in cs and "AUTH=PLAIN" not in cs and "STARTTLS" in cs
        _, tagged = c.imap("a2", "LOGIN alice alice-pw-1")
        assert tagged.startswith(b"a2 NO [PRIVACYREQUIRED]"), tagged
        _, tagged = c.imap("a3", "AUTHENTICATE PLAIN " + b64("\0alice\0alice-pw-1"))
        assert tagged.startswith(b"a3 NO [PRIVACYREQUIRED]"), tagged
        c.imap("a4", "STARTTLS")
        c.start_tls()
        _, tagged = c.imap("a5", "LOGIN alice alice-pw-1")
        assert tagged.startswith(b"a5 OK "), tagged
    finally:
        c.close()
        t2.stop()


def test_enable_id_namespace(t):
    c = raw(t)
    try:
        _, tagged = c.imap("a0", "ENABLE IMAP4rev2")
        assert tagged.startswith(b"a0 BAD")  # not before authentication
        c.imap("a1", "LOGIN alice alice-pw-1")
        untagged, tagged = c.imap("a2", "ENABLE IMAP4rev2 UTF8=ACCEPT X-UNKNOWN")
        assert untagged == [b"* ENABLED IMAP4rev2 UTF8=ACCEPT"]
        assert tagged == b"a2 OK ENABLE completed"
        untagged, _ = c.imap("a3", "ENABLE IMAP4rev2")
        assert untagged == [b"* ENABLED"]  # already on: nothing newly enabled
        untagged, tagged = c.imap("a4", 'ID ("name" "pytest" "version" "1")')
        assert untagged == [b'* ID ("name" "Tern" "vendor" "Tern")']
        untagged, tagged = c.imap("a5", "ID NIL")
        assert tagged == b"a5 OK ID completed"
        _, tagged = c.imap("a6", 'ID ("name")')
        assert tagged.startswith(b"a6 BAD")
        untagged, tagged = c.imap("a7", "NAMESPACE")
        assert untagged == [b'* NAMESPACE (("" "/")) NIL (("Shared/" "/"))']
    finally:
        c.close()


def test_state_and_syntax_errors(t):
    c = raw(t)
    try:
        _, tagged = c.imap("a1", "NAMESPACE")
        assert tagged == b"a1 BAD NAMESPACE needs authentication first"
        _, tagged = c.imap("a2", "FROBNICATE")
        assert tagged == b"a2 BAD Unknown command FROBNICATE"
        _, tagged = c.imap("a3", "NOOP extra")
        assert tagged.startswith(b"a3 BAD")
        c.send("\r\n")
        assert c.readline().startswith(b"* BAD")
        _, tagged = c.imap("a4", "CAPABILITY")
        assert tagged == b"a4 OK CAPABILITY completed"
    finally:
        c.close()


def test_bad_command_literal_never_runs(t):
    c = raw(t)
    try:
        c.imap("a1", "LOGIN alice alice-pw-1")
        # A broken command with a non-synchronizing literal whose content
        # looks like a command: the literal is skipped, not executed.
        c.send('a2 FROB "x {21+}\r\na3 LOGOUT\r\nxxxxxxxx\r\n')
        line = c.readline()
        assert line.startswith(b"a2 BAD"), line
        _, tagged = c.imap("a4", "NOOP")
        assert tagged == b"a4 OK NOOP completed"
    finally:
        c.close()


def test_synchronizing_literal_too_big_gets_no_continuation(t):
    c = raw(t)
    try:
        c.imap("a1", "LOGIN alice alice-pw-1")
        c.send("a2 ID ({999999999}\r\n")
        line = c.readline()
        assert line.startswith(b"a2 NO [TOOBIG]"), line  # and no "+"
        _, tagged = c.imap("a3", "NOOP")
        assert tagged == b"a3 OK NOOP completed"
    finally:
        c.close()


def test_too_many_errors_close(t):
    c = raw(t)
    try:
        for i in range(19):
            _, tagged = c.imap("e%d" % i, "FROB")
            assert tagged.startswith(b"e%d BAD" % i)
        c.send("e19 FROB\r\n")
        assert c.readline().startswith(b"e19 BAD")
        assert c.readline() == b"* BYE Too many invalid commands"
        with pytest.raises(EOFError):
            c.readline()
    finally:
        c.close()


def test_line_too_long_closes_with_bye(env):
    t2 = env.new_ternd({"imap": {"max_line": "1024"}}, name="shortline")
    c = raw(t2)
    try:
        c.send("a1 NOOP " + "x" * 2000 + "\r\n")
        assert c.readline() == b"* BYE Command line too long"
        with pytest.raises(EOFError):
            c.readline()
    finally:
        c.close()
        t2.stop()


def test_unauthenticate(t):
    """RFC 8437: back to the not authenticated state; the mailbox closed
    without an expunge, ENABLEd extensions forgotten, a new login on the
    same connection."""
    c = raw(t)
    try:
        assert c.imap("a0", "UNAUTHENTICATE") == (
            [], b"a0 BAD UNAUTHENTICATE needs authentication first")
        _, tagged = c.imap("a1", 'LOGIN alice "alice-pw-1"')
        assert "UNAUTHENTICATE" in caps(tagged)
        assert c.imap("a2", "ENABLE CONDSTORE") == ([b"* ENABLED CONDSTORE"],
                                                     b"a2 OK ENABLE completed")
        untagged, tagged = c.imap("a3", "SELECT INBOX")
        assert tagged == b"a3 OK [READ-WRITE] SELECT completed"
        assert any(l.startswith(b"* OK [HIGHESTMODSEQ ") for l in untagged), untagged
        assert c.imap("a4", "UNAUTHENTICATE x")[1].startswith(b"a4 BAD")
        assert c.imap("a5", "UNAUTHENTICATE") == ([], b"a5 OK UNAUTHENTICATE completed")
        untagged, tagged = c.imap("a6", "CAPABILITY")
        cs = caps(untagged[0])
        assert "AUTH=PLAIN" in cs and "UNAUTHENTICATE" not in cs and "IDLE" not in cs, cs
        assert c.imap("a7", "SELECT INBOX")[1].startswith(b"a7 BAD")
        assert c.imap("a8", "UNAUTHENTICATE") == (
            [], b"a8 BAD UNAUTHENTICATE needs authentication first")
        _, tagged = c.imap("a9", 'LOGIN bob "bob-pw-1"')
        assert tagged.startswith(b"a9 OK [CAPABILITY ")
        # CONDSTORE is no longer enabled: no HIGHESTMODSEQ at SELECT.
        untagged, tagged = c.imap("a10", "SELECT INBOX")
        assert tagged == b"a10 OK [READ-WRITE] SELECT completed"
        assert not any(l.startswith(b"* OK [HIGHESTMODSEQ ") for l in untagged), untagged
        assert c.imap("a11", "LOGOUT")[1] == b"a11 OK LOGOUT completed"
    finally:
        c.close()


def test_logout_says_bye_first(t):
    c = raw(t)
    try:
        untagged, tagged = c.imap("a1", "LOGOUT")
        assert untagged == [b"* BYE Logging out"]
        assert tagged == b"a1 OK LOGOUT completed"
        with pytest.raises(EOFError):
            c.readline()
    finally:
        c.close()


def test_directory_down_is_unavailable(env):
    t = env.ternd
    env.slapd.stop()
    try:
        time.sleep(0.2)
        c = raw(t)
        try:
            # Past the 1 s cache of the test config: the lookup must fail.
            time.sleep(1.2)
            _, tagged = c.imap("a1", "LOGIN user44 user44-pw-1")
            assert tagged.startswith(b"a1 NO [UNAVAILABLE]"), tagged
        finally:
            c.close()
    finally:
        env.slapd.start()
    deadline = time.monotonic() + 20
    while True:
        c = raw(t)
        try:
            _, tagged = c.imap("a2", "LOGIN user44 user44-pw-1")
        finally:
            c.close()
        if tagged.startswith(b"a2 OK"):
            break
        assert tagged.startswith(b"a2 NO [UNAVAILABLE]"), tagged
        assert time.monotonic() < deadline, "directory never came back"
        time.sleep(0.2)
