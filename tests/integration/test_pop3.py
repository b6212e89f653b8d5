"""POP3 (RFC 1939, 2449, 2595, 5034) against the real ternd and slapd:
every command, the exact bytes of RETR/TOP, the deletion rules, TLS in
both forms, SASL PLAIN/LOGIN and the ways a login must fail.

Each test that looks at a mailbox uses a user no other test here touches,
so the tests do not depend on their order."""
import poplib
import socket
import time

import pytest

import harness
from harness import RawLines, b64, make_message, password, unique_token

CTX = harness.client_tls_context


@pytest.fixture(autouse=True)
def _reset_throttle(env):
    """ternd throttles failed logins per client IP (the delay doubles with
    each failure) and forgets them after a successful login. Every test
    here comes from 127.0.0.1, so end each with a good login to keep the
    delays of one test out of the next."""
    yield
    if env.ternd.proc is not None:
        p = env.ternd.pop3_login("user19")
        p.quit()
        p.close()


def deliver(t, login, n=1, body=None):
    """n fresh messages to login; returns them (bytes) in order."""
    msgs = []
    for _ in range(n):
        token = unique_token(login)
        msg = make_message(token, body=body, to="%s@example.test" % login)
        code, text = t.send("%s@example.test" % login, msg)
        assert code == 250, text
        msgs.append(msg)
    return msgs


def err_text(excinfo):
    """The server's -ERR line from a poplib.error_proto."""
    arg = excinfo.value.args[0]
    return arg if isinstance(arg, bytes) else str(arg).encode()


def raw_login(t, login, pw=None):
    c = RawLines(t.pop3_port)
    assert c.readline().startswith(b"+OK")
    c.send("USER %s\r\n" % login)
    assert c.readline().startswith(b"+OK")
    c.send("PASS %s\r\n" % (pw or password(login)))
    line = c.readline()
    assert line.startswith(b"+OK"), line
    return c


def test_user_pass_stat_list(env):
    t = env.ternd
    msgs = deliver(t, "user20", 3)
    p = t.pop3_login("user20")
    try:
        # STAT's size is the octet count of the message as RETR sends it
        # (before byte-stuffing), so it includes the trace headers.
        count, size = p.stat()
        assert count == 3
        _, listing, _ = p.list()
        sizes = {}
        for line in listing:
            n, octets = line.split()
            sizes[int(n)] = int(octets)
        assert sorted(sizes) == [1, 2, 3]
        assert sum(sizes.values()) == size
        for i in (1, 2, 3):
            _, lines, _ = p.retr(i)
            got = b"".join(l + b"\r\n" for l in lines)
            assert got.endswith(msgs[i - 1])
            assert len(got) == sizes[i]
            resp = p.list(i)
            assert resp.split() == [b"+OK", str(i).encode(), str(sizes[i]).encode()]
        with pytest.raises(poplib.error_proto):
            p.list(4)
        p.quit()
    finally:
        p.close()


def test_uidl_stable_across_sessions(env):
    t = env.ternd
    deliver(t, "user21", 3)

    def uidls():
        p = t.pop3_login("user21")
        try:
            _, lines, _ = p.uidl()
            one = p.uidl(2)
            p.quit()
        finally:
            p.close()
        d = dict(l.split() for l in lines)
        assert one.split()[1:] == [b"2", d[b"2"]]
        return d

    a = uidls()
    assert len(a) == 3 and len(set(a.values())) == 3
    for uid in a.values():
        assert 1 <= len(uid) <= 70 and all(0x21 <= c <= 0x7e for c in uid)
    b = uidls()
    assert a == b
    # A new message gets a new UIDL; the old ones keep theirs.
    deliver(t, "user21", 1)
    c = uidls()
    assert {k: c[k] for k in a} == a
    assert c[b"4"] not in a.values()


def test_retr_exact_bytes_and_byte_stuffing(env):
    t = env.ternd
    body = b".starts with a dot\r\n..two dots\r\n.\r\nplain\r\n"
    (msg,) = deliver(t, "user22", 1, body=body)
    c = raw_login(t, "user22")
    try:
        c.send("RETR 1\r\n")
        first = c.readline()
        assert first.startswith(b"+OK"), first
        wire = c.read_multiline()
        # On the wire every line starting with "." carries one more.
        assert b"\r\n..starts with a dot\r\n...two dots\r\n..\r\nplain\r\n" in wire
        unstuffed = b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n"
                             for l in wire.split(b"\r\n")[:-1])
        assert unstuffed.endswith(msg)
        c.send("QUIT\r\n")
        assert c.readline().startswith(b"+OK")
    finally:
        c.close()


def test_top(env):
    t = env.ternd
    body = b"line one\r\n.line two\r\nline three\r\nline four\r\n"
    (msg,) = deliver(t, "user23", 1, body=body)
    p = t.pop3_login("user23")
    try:
        _, lines, _ = p.top(1, 2)
        got = b"".join(l + b"\r\n" for l in lines)
        hdr_end = got.find(b"\r\n\r\n")
        assert got[hdr_end + 4:] == b"line one\r\n.line two\r\n"
        assert got[:hdr_end + 4].endswith(msg[:msg.find(b"\r\n\r\n") + 4])
        _, lines, _ = p.top(1, 0)
        got0 = b"".join(l + b"\r\n" for l in lines)
        assert got0.endswith(b"\r\n\r\n") and got0 == got[:hdr_end + 4]
        _, lines, _ = p.top(1, 100)
        assert b"".join(l + b"\r\n" for l in lines).endswith(msg)
        p.quit()
    finally:
        p.close()


def test_dele_rset_keeps_message(env):
    t = env.ternd
    deliver(t, "user24", 2)
    p = t.pop3_login("user24")
    try:
        p.dele(1)
        assert p.stat()[0] == 1
        with pytest.raises(poplib.error_proto):
            p.retr(1)  # deleted messages cannot be read
        with pytest.raises(poplib.error_proto):
            p.dele(1)  # nor deleted twice
        assert p.rset().startswith(b"+OK")
        assert p.stat()[0] == 2
        p.quit()
    finally:
        p.close()
    p = t.pop3_login("user24")
    try:
        assert p.stat()[0] == 2
        p.quit()
    finally:
        p.close()


def test_dele_quit_removes(env):
    t = env.ternd
    msgs = deliver(t, "user25", 3)
    p = t.pop3_login("user25")
    before = dict(l.split() for l in p.uidl()[1])
    p.dele(2)
    assert p.quit().startswith(b"+OK")
    p.close()
    box = t.mailbox("user25")
    assert len(box) == 2
    assert box[0].endswith(msgs[0]) and box[1].endswith(msgs[2])
    p = t.pop3_login("user25")
    try:
        after = dict(l.split() for l in p.uidl()[1])
        assert sorted(after.values()) == sorted([before[b"1"], before[b"3"]])
        p.quit()
    finally:
        p.close()


def test_dele_without_quit_removes_nothing(env):
    t = env.ternd
    deliver(t, "user26", 2)
    c = raw_login(t, "user26")
    c.send("DELE 1\r\nDELE 2\r\n")
    assert c.readline().startswith(b"+OK")
    assert c.readline().startswith(b"+OK")
    c.close()  # dropped without QUIT: no UPDATE state
    # The lock goes with the connection; allow the server a moment to see it.
    deadline = time.monotonic() + 5
    while True:
        try:
            box = t.mailbox("user26")
            break
        except poplib.error_proto as e:
            if b"[IN-USE]" not in e.args[0] or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert len(box) == 2


def test_noop_and_unknown_command(env):
    t = env.ternd
    p = t.pop3_login("user27")
    try:
        assert p.noop().startswith(b"+OK")
        with pytest.raises(poplib.error_proto):
            p._shortcmd("FROBNICATE")
        p.quit()
    finally:
        p.close()


EXPECTED_CAPA = {"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL",
                 "STLS", "IMPLEMENTATION"}


def test_capa_plain(env):
    p = env.ternd.pop3()
    try:
        caps = p.capa()
        assert EXPECTED_CAPA <= set(caps), caps
        assert "PLAIN" in caps["SASL"] and "LOGIN" in caps["SASL"]
        p.quit()
    finally:
        p.close()


def test_capa_after_stls_and_login(env):
    t = env.ternd
    deliver(t, "user28", 1)
    p = t.pop3()
    try:
        assert p.stls(context=CTX()).startswith(b"+OK")
        caps = p.capa()
        assert "STLS" not in caps  # already in TLS
        assert {"TOP", "UIDL", "USER", "SASL", "RESP-CODES"} <= set(caps), caps
        p.user("user28")
        p.pass_(password("user28"))
        assert p.stat()[0] == 1
        p.quit()
    finally:
        p.close()


def test_stls_twice_refused(env):
    p = env.ternd.pop3()
    try:
        p.stls(context=CTX())
        with pytest.raises(poplib.error_proto) as ei:
            p._shortcmd("STLS")
        assert err_text(ei).startswith(b"-ERR") and err_text(ei) != b"-ERR EOF"
        assert "TOP" in p.capa()  # the TLS session goes on
    finally:
        p.close()


def test_pop3s_login(env):
    t = env.ternd
    (msg,) = deliver(t, "user29", 1)
    p = t.pop3s()
    try:
        assert "STLS" not in p.capa()
        p.user("user29")
        p.pass_(password("user29"))
        _, lines, _ = p.retr(1)
        assert b"".join(l + b"\r\n" for l in lines).endswith(msg)
        p.quit()
    finally:
        p.close()


def test_auth_plain_initial_response(env):
    t = env.ternd
    deliver(t, "user30", 1)
    p = t.pop3()
    try:
        resp = p._shortcmd("AUTH PLAIN " + b64("\0user30\0" + password("user30")))
        assert resp.startswith(b"+OK"), resp
        assert p.stat()[0] == 1
        p.quit()
    finally:
        p.close()


def test_auth_plain_continuation(env):
    p = env.ternd.pop3()
    try:
        resp = p._shortcmd("AUTH PLAIN")
        assert resp.startswith(b"+"), resp
        resp = p._shortcmd(b64("\0user31\0" + password("user31")))
        assert resp.startswith(b"+OK"), resp
        p.stat()
        p.quit()
    finally:
        p.close()


def test_auth_plain_with_matching_authzid(env):
    p = env.ternd.pop3()
    try:
        resp = p._shortcmd("AUTH PLAIN " + b64("user32\0user32\0" + password("user32")))
        assert resp.startswith(b"+OK"), resp
        p.quit()
    finally:
        p.close()


def test_auth_login(env):
    p = env.ternd.pop3()
    try:
        resp = p._shortcmd("AUTH LOGIN")
        assert resp.startswith(b"+ "), resp
        resp = p._shortcmd(b64("user33"))
        assert resp.startswith(b"+ "), resp
        resp = p._shortcmd(b64(password("user33")))
        assert resp.startswith(b"+OK"), resp
        p.stat()
        p.quit()
    finally:
        p.close()


def test_auth_cancel(env):
    p = env.ternd.pop3()
    try:
        assert p._shortcmd("AUTH PLAIN").startswith(b"+")
        with pytest.raises(poplib.error_proto) as ei:
            p._shortcmd("*")
        assert err_text(ei).startswith(b"-ERR")
        # Still in AUTHORIZATION state: a normal login works.
        p.user("user34")
        p.pass_(password("user34"))
        p.stat()
        p.quit()
    finally:
        p.close()


def test_wrong_password(env):
    p = env.ternd.pop3()
    try:
        p.user("user35")
        with pytest.raises(poplib.error_proto) as ei:
            p.pass_("not-the-password")
        assert err_text(ei).startswith(b"-ERR [AUTH]"), err_text(ei)
    finally:
        p.close()


def test_wrong_password_auth_plain(env):
    p = env.ternd.pop3()
    try:
        with pytest.raises(poplib.error_proto) as ei:
            p._shortcmd("AUTH PLAIN " + b64("\0user35\0wrong"))
        assert err_text(ei).startswith(b"-ERR [AUTH]"), err_text(ei)
    finally:
        p.close()


def test_empty_password_refused(env):
    p = env.ternd.pop3()
    try:
        with pytest.raises(poplib.error_proto) as ei:
            p._shortcmd("AUTH PLAIN " + b64("\0user35\0"))
        assert err_text(ei).startswith(b"-ERR"), err_text(ei)
    finally:
        p.close()


# "ali*" and "*lice" match alice alone if the login is not escaped, and
# the password is alice's: only escaping makes these fail.
@pytest.mark.parametrize("login", ["*)(uid=*", "*", "user3*", "alice)(|(uid=*", "ali*", "*lice",
                                   "alice)(uid=alice"])
def test_filter_injection_login_fails(env, login):
    p = env.ternd.pop3()
    try:
        with pytest.raises(poplib.error_proto) as ei:
            p._shortcmd("AUTH PLAIN " + b64("\0%s\0%s" % (login, password("alice"))))
        assert err_text(ei).startswith(b"-ERR [AUTH]"), err_text(ei)
    finally:
        p.close()


def test_failed_logins_throttled_per_ip(env):
    """Each failure from the same address waits longer than the last
    (auth_fail_delay 100ms, doubling), across connections."""
    took = []
    for _ in range(3):
        p = env.ternd.pop3()
        try:
            p.user("user18")
            t0 = time.monotonic()
            with pytest.raises(poplib.error_proto) as ei:
                p.pass_("wrong-password")
            took.append(time.monotonic() - t0)
            assert err_text(ei).startswith(b"-ERR [AUTH]")
        finally:
            p.close()
    assert took[0] >= 0.09 and took[2] >= 0.35, took


def test_connection_closed_after_max_auth_failures(env):
    c = RawLines(env.ternd.pop3_port)
    try:
        assert c.readline().startswith(b"+OK")
        for _ in range(3):  # max_auth_failures = 3
            c.send("USER user18\r\n")
            assert c.readline().startswith(b"+OK")
            c.send("PASS wrong-password\r\n")
            assert c.readline().startswith(b"-ERR [AUTH]")
        with pytest.raises((EOFError, ConnectionResetError)):
            c.send("NOOP\r\n")
            c.readline()
    finally:
        c.close()


def test_disabled_user_cannot_log_in(env):
    p = env.ternd.pop3()
    try:
        p.user("carol")
        with pytest.raises(poplib.error_proto) as ei:
            p.pass_(password("carol"))
        assert err_text(ei).startswith(b"-ERR [AUTH]"), err_text(ei)
    finally:
        p.close()


def test_login_by_mail_address(env):
    t = env.ternd
    (msg,) = deliver(t, "user36", 1)
    box = t.mailbox("user36@example.test", password("user36"))
    assert len(box) == 1 and box[0].endswith(msg)


def test_second_session_in_use(env):
    t = env.ternd
    deliver(t, "user37", 1)
    p1 = t.pop3_login("user37")
    try:
        p2 = t.pop3()
        try:
            p2.user("user37")
            with pytest.raises(poplib.error_proto) as ei:
                p2.pass_(password("user37"))
            assert err_text(ei).startswith(b"-ERR [IN-USE]"), err_text(ei)
        finally:
            p2.close()
        assert p1.stat()[0] == 1  # the first session is unharmed
        p1.quit()
    finally:
        p1.close()
    # Once the first has quit, logging in works again.
    assert len(t.mailbox("user37")) == 1


def test_pipelined_commands(env):
    t = env.ternd
    deliver(t, "user38", 2)
    c = RawLines(t.pop3_port)
    try:
        assert c.readline().startswith(b"+OK")
        c.send("USER user38\r\nPASS %s\r\nSTAT\r\nLIST\r\nNOOP\r\nQUIT\r\n" % password("user38"))
        assert c.readline().startswith(b"+OK")  # USER
        assert c.readline().startswith(b"+OK")  # PASS
        stat = c.readline()
        assert stat.startswith(b"+OK 2 "), stat
        assert c.readline().startswith(b"+OK")  # LIST
        assert c.read_multiline().count(b"\r\n") == 2
        assert c.readline().startswith(b"+OK")  # NOOP
        assert c.readline().startswith(b"+OK")  # QUIT
    finally:
        c.close()


def test_command_line_over_limit(env):
    c = RawLines(env.ternd.pop3_port)
    try:
        assert c.readline().startswith(b"+OK")
        c.send("USER " + "a" * 4000 + "\r\n")
        try:
            line = c.readline()
            assert line.startswith(b"-ERR"), line
        except (EOFError, ConnectionResetError):
            pass  # closing the connection is an acceptable answer too
    finally:
        c.close()
    env.ternd.check_alive()


@pytest.fixture(scope="module")
def strict(env):
    """A second ternd on the same directory whose [pop3] does not allow
    plaintext passwords before TLS."""
    t = env.new_ternd({"pop3": {"plaintext_auth": "no"}}, name="strict")
    yield t
    t.stop()


def test_plaintext_refused_without_tls(env, strict):
    c = RawLines(strict.pop3_port)
    try:
        assert c.readline().startswith(b"+OK")
        c.send("USER user39\r\n")
        line = c.readline()
        if line.startswith(b"+OK"):
            c.send("PASS %s\r\n" % password("user39"))
            line = c.readline()
        assert line.startswith(b"-ERR"), line
        c.send("AUTH PLAIN %s\r\n" % b64("\0user39\0" + password("user39")))
        line = c.readline()
        assert line.startswith(b"-ERR"), line
        # A refused plaintext attempt must not reach the directory or the
        # mailbox: the session is still unauthenticated.
        c.send("STAT\r\n")
        assert c.readline().startswith(b"-ERR")
    finally:
        c.close()


def test_plaintext_allowed_after_stls(env, strict):
    p = poplib.POP3("127.0.0.1", strict.pop3_port, timeout=harness.TIMEOUT)
    try:
        p.stls(context=CTX())
        caps = p.capa()
        assert "USER" in caps and "PLAIN" in caps.get("SASL", []), caps
        p.user("user39")
        p.pass_(password("user39"))
        p.stat()
        p.quit()
    finally:
        p.close()


def test_ternd_still_healthy(env):
    env.ternd.check_alive()
    s = socket.create_connection(("127.0.0.1", env.ternd.pop3_port), timeout=5)
    s.close()
