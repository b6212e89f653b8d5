"""The directory dies under a running ternd (SIGKILL, no goodbye) and
comes back on the same port with the same data (DESIGN.md, Directory
down): while it is away SMTP answers 451 4.4.3 and POP3 -ERR [SYS/TEMP];
afterwards both work again without restarting ternd, and nothing that
was accepted before is lost."""
import poplib
import time

from harness import count_token, make_message, password, unique_token

RECOVERY_SECONDS = 30


def rcpt(t, addr):
    s = t.smtp()
    try:
        assert s.mail("sender@example.org")[0] == 250
        return s.rcpt(addr)
    finally:
        s.close()


def pop3_login_reply(t, login):
    """b'+OK...' or the -ERR line of PASS."""
    p = t.pop3()
    try:
        p.user(login)
        try:
            r = p.pass_(password(login))
            p.quit()
            return r
        except poplib.error_proto as e:
            return e.args[0]
    finally:
        p.close()


def test_directory_down_and_back(env):
    t = env.ternd
    # Mail accepted while the directory is up, to several users.
    before = {}
    for login in ("user40", "user41", "alice"):
        token = unique_token("before")
        code, text = t.send("%s@example.test" % login, make_message(token))
        assert code == 250, text
        before[token] = login
    # Warm the caches too: a cached answer must not hide the outage for
    # longer than the TTL (1s in the test config).
    assert pop3_login_reply(t, "user40").startswith(b"+OK")

    env.slapd.kill()
    time.sleep(1.5)  # > cache_ttl and negative_ttl

    # An address never asked for, and one that was cached before.
    for addr in ("user42@example.test", "user40@example.test"):
        code, text = rcpt(t, addr)
        assert code == 451, (addr, code, text)
        assert text.startswith(b"4.4.3"), text
    for login in ("user42", "user40"):
        r = pop3_login_reply(t, login)
        assert r.startswith(b"-ERR [SYS/TEMP]"), (login, r)
    # A client that pipelines through the outage gets temporary answers
    # for every recipient, and the session stays usable.
    s = t.smtp()
    try:
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt("user43@example.test")[0] == 451
        assert s.rcpt("bob@example.test")[0] == 451
        assert s.rset()[0] == 250
        assert s.noop()[0] == 250
    finally:
        s.close()
    t.check_alive()

    env.slapd.start()  # same port, same data
    deadline = time.monotonic() + RECOVERY_SECONDS
    smtp_ok = pop_ok = False
    last = None
    while time.monotonic() < deadline and not (smtp_ok and pop_ok):
        if not smtp_ok:
            last = rcpt(t, "user42@example.test")
            smtp_ok = last[0] == 250
        if not pop_ok:
            last = pop3_login_reply(t, "user42")
            pop_ok = last.startswith(b"+OK")
        if not (smtp_ok and pop_ok):
            time.sleep(0.2)
    assert smtp_ok and pop_ok, "no recovery within %ss: last %r" % (RECOVERY_SECONDS, last)

    # Nothing accepted before the outage was lost; new mail flows again.
    for token, login in before.items():
        assert count_token(t.mailbox(login), token) == 1, login
    token = unique_token("after")
    code, text = t.send("user42@example.test", make_message(token))
    assert code == 250, text
    assert count_token(t.mailbox("user42"), token) == 1


def test_authentication_still_checked_after_recovery(env):
    """A recovered directory still refuses bad passwords (the reconnect
    must not leave a half-bound or anonymous connection that says yes)."""
    t = env.ternd
    if env.slapd.proc is None:
        env.slapd.start()
    p = t.pop3()
    try:
        p.user("user44")
        try:
            p.pass_("wrong-password")
            raise AssertionError("a wrong password was accepted")
        except poplib.error_proto as e:
            assert e.args[0].startswith(b"-ERR [AUTH]"), e.args[0]
    finally:
        p.close()
    assert pop3_login_reply(t, "user44").startswith(b"+OK")


def test_ternd_still_healthy(env):
    env.ternd.check_alive()
