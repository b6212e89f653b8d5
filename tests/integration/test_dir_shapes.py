"""The other list shapes real directories have, on the openldap fixture
(tests/fixtures/org_ldif.py, ou=aliases): a posixGroup whose memberUid
values are logins, a nisMailAlias whose rfc822MailMember values are
addresses (local users, a local list, a remote address), a groupOfURLs
dynamic list (memberURL) and a list defined by a filter held in a
configurable attribute (member_query_attr). Each is delivered end to end
through the real ternd and read back over POP3; disabled and missing
members are skipped, and the config keys switch a shape off."""
import pytest

import harness
from harness import count_token, make_message, unique_token

O = harness.org_ldif


def deliver(t, addr):
    token = unique_token("shape")
    code, text = t.send(addr, make_message(token, to=addr))
    assert code == 250, text
    return token


def rcpt(t, addr):
    s = t.smtp()
    try:
        code, text = s.mail("sender@example.org")
        assert code == 250, (code, text)
        return s.rcpt(addr)
    finally:
        s.close()


def got(t, login, token):
    return count_token(t.mailbox(login), token)


def test_posix_group_members_by_login(env):
    t = env.ternd
    token = deliver(t, O.POSIX_ADDR)
    for login in O.POSIX_MEMBERS:
        assert got(t, login, token) == 1, login
    # carol (memberUid, but disabled) and ghost (no entry) are skipped.
    log = t.log()
    assert b'member="(&(&(objectClass=inetOrgPerson)(|(uid=ghost)(mail=ghost)))' in log
    assert b"rcpt to=<%s> result=ok mailboxes=2 forwards=0" % O.POSIX_ADDR.encode() in log


def test_nis_mail_alias_local_list_and_remote(env):
    t = env.ternd
    token = deliver(t, O.NIS_ADDR)
    # user04 directly; staff (given in mixed case) expands to alice, bob
    # and user01; outside@remote.example is forwarded; the unknown local
    # address is skipped.
    for login in ("user04", "alice", "bob", "user01"):
        assert got(t, login, token) == 1, login
    assert b"rcpt to=<%s> result=ok mailboxes=4 forwards=1" % O.NIS_ADDR.encode() in t.log()


def test_dynamic_list_member_url(env):
    t = env.ternd
    token = deliver(t, O.URL_ADDR)
    for login in O.URL_MEMBERS:
        assert got(t, login, token) == 1, login
    # carol matches the URL's filter but is disabled.
    assert b"rcpt to=<%s> result=ok mailboxes=2 forwards=0" % O.URL_ADDR.encode() in t.log()


def test_dynamic_list_url_follows_the_directory(env):
    """A dynamic list is the directory's current answer: a user added to
    the department is a member at the next look-up."""
    t = env.ternd
    env.slapd.modify("dn: uid=user09,%s\nchangetype: modify\nadd: departmentNumber\n"
                     "departmentNumber: sales\n" % O.PEOPLE)
    try:
        harness.time.sleep(1.2)  # cache_ttl is 1s
        token = deliver(t, O.URL_ADDR)
        for login in O.URL_MEMBERS + ("user09",):
            assert got(t, login, token) == 1, login
    finally:
        env.slapd.modify("dn: uid=user09,%s\nchangetype: modify\ndelete: departmentNumber\n"
                         % O.PEOPLE)


def test_query_attr_off_by_default(env):
    # member_query_attr is "" in the profile: the filter in description is
    # only text, the list has nobody to deliver to.
    code, text = rcpt(env.ternd, O.QUERY_ADDR)
    assert code == 550, text


@pytest.fixture(scope="module")
def shaped(env):
    """A second ternd with member_query_attr set, a small list cap, the
    memberURL shape off, and a nisMailAlias found by cn through an
    overridden recipient_filter."""
    t = env.new_ternd({"directory": {
        "member_query_attr": "description",
        "member_url_attr": "",
        "recipient_filter": "(|(mail=%a)(mailLocalAddress=%a)(&(objectClass=nisMailAlias)(cn=%a)))",
        "max_list_members": "3",
    }}, name="shaped")
    yield t


def test_query_attr_members(env, shaped):
    token = deliver(shaped, O.QUERY_ADDR)
    for login in ("user07", "user08"):
        assert got(shaped, login, token) == 1, login
    assert b"rcpt to=<%s> result=ok mailboxes=2 forwards=0" % O.QUERY_ADDR.encode() \
        in shaped.log()


def test_member_url_attr_off(env, shaped):
    code, text = rcpt(shaped, O.URL_ADDR)
    assert code == 550, text


def test_list_cap(env, shaped):
    # helpdesk reaches 4 local mailboxes; max_list_members = 3 keeps 3.
    code, text = rcpt(shaped, O.NIS_ADDR)
    assert code == 250, text
    log = shaped.log()
    assert b"list-truncated address=%s" % O.NIS_ADDR.encode() in log
    assert b"rcpt to=<%s> result=ok mailboxes=3" % O.NIS_ADDR.encode() in log


def test_nis_alias_found_by_cn(env, shaped):
    # An entry without any address attribute, reached only through the
    # overridden recipient_filter.
    env.slapd.modify("dn: cn=oncall@example.test,%s\nchangetype: add\nobjectClass: nisMailAlias\n"
                     "cn: oncall@example.test\nrfc822MailMember: user10@example.test\n"
                     % O.ALIASES)
    token = deliver(shaped, "oncall@example.test")
    assert got(shaped, "user10", token) == 1
    # The default recipient_filter does not know it.
    code, text = rcpt(env.ternd, "oncall@example.test")
    assert code == 550, text


def test_ternd_still_healthy(env, shaped):
    env.ternd.check_alive()
    shaped.check_alive()
