"""Not an open relay: the classic relay tricks sent to port 25 of the real
ternd (and to submission without AUTH). Each one is either refused
(550 5.7.1 relaying denied, 501 5.1.3 bad syntax, 550 5.1.1 no such
local user) or delivered locally, and then only to the local user the
address names - never queued for a remote domain. The same table is in
tests/unit/test_smtp_submit.c against the parser."""
import pytest

import harness
from harness import count_token, free_port, make_message, unique_token

# (address, expected code, local user that gets it or None)
TRICKS = [
    ("user01@remote.example", 550, None),
    ("user01%remote.example@example.test", 550, None),
    ("user01%remote.example%example.test@example.test", 550, None),
    ("@remote.example:user01@example.test", 250, "user01"),
    ("@a.example,@b.example:user01@example.test", 250, "user01"),
    ("@example.test:user01@remote.example", 550, None),
    ('"user01@remote.example"@example.test', 550, None),
    ('"user01%remote.example"@example.test', 550, None),
    ("user01@example.test@remote.example", 501, None),
    ("user01@remote.example@example.test", 501, None),
    ("remote.example!user01@example.test", 550, None),
    ("example.test!remote.example!user01", 501, None),
    ("user01@example.test.", 501, None),
    ("user01@remote.example.", 501, None),
    ("user01@[127.0.0.1]", 550, None),
    ("user01@[IPv6:::1]", 550, None),
    ("USER01@EXAMPLE.TEST", 250, "user01"),
    ("user01@Example.Net", 550, None),  # user01 has no address there
    ("user01@sub.example.test", 550, None),
    ("user01@example.test.remote.example", 550, None),
    ("user01@localhost", 550, None),
    ("user01@example.testx", 550, None),
    ("user01@remote.example%example.test", 501, None),
    ("<user01@remote.example>", 501, None),
    ("postmaster@remote.example", 550, None),
]


@pytest.fixture(scope="module")
def env():
    port = free_port()
    e = harness.Env(overrides={"submission": {"listen": "127.0.0.1:%d" % port,
                                              "plaintext_auth": "yes"}})
    e.sub_port = port
    yield e
    e.close()


def test_relay_table_port_25(env):
    t = env.ternd
    tokens = {}
    for addr, want, user in TRICKS:
        s = t.smtp()
        try:
            assert s.mail("sender@remote.example")[0] == 250
            code, text = s.docmd("RCPT TO:<%s>" % addr)
            assert code == want, (addr, code, text)
            if code == 550:
                assert text[:5] in (b"5.7.1", b"5.1.1"), (addr, text)
            if code == 501:
                assert text.startswith(b"5.1.3"), (addr, text)
            if code == 250:
                token = unique_token("relay")
                code, text = s.data(make_message(token, to=addr))
                assert code == 250, (addr, code, text)
                tokens[token] = user
        finally:
            s.close()
    for token, user in tokens.items():
        assert count_token(t.mailbox(user), token) == 1
    # nothing was ever queued for a remote domain
    assert b"result=queued" not in t.log()


def test_submission_without_auth_relays_nothing(env):
    s = harness.smtplib.SMTP("127.0.0.1", env.sub_port, timeout=harness.TIMEOUT)
    try:
        s.ehlo()
        code, text = s.mail("user01@example.test")
        assert code == 530 and text.startswith(b"5.7.0"), (code, text)
        code, text = s.docmd("RCPT TO:<user01@remote.example>")
        assert code == 503, (code, text)
    finally:
        s.close()


def test_authenticated_user_still_denied_literals(env):
    s = harness.smtplib.SMTP("127.0.0.1", env.sub_port, timeout=harness.TIMEOUT)
    try:
        s.ehlo()
        s.login("user01", harness.password("user01"))
        assert s.mail("user01@example.test")[0] == 250
        code, text = s.docmd("RCPT TO:<x@[127.0.0.1]>")
        assert code == 550 and text.startswith(b"5.7.1"), (code, text)
    finally:
        s.close()
