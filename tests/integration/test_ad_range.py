"""Active Directory ranged attribute retrieval (directory/dir_range.c,
its use in dir_ldap.c and dir_admin_conn.c): AD returns at most
MaxValRange values of `member` per entry, as "member;range=0-1499", and
the client must ask for "member;range=1500-*" and so on.

slapd does not do ranges, so ternd talks to it through
ldap_range_proxy.py (test-only, standard library), which answers like AD
with MaxValRange = 3: the group below (ten members) comes back in four
parts. Without ranged retrieval ternd would see no plain `member` at all
and deliver the mail to nobody."""
import subprocess

import pytest

import harness
from harness import count_token, make_message, unique_token
from ldap_range_proxy import RangeProxy

O = harness.org_ldif
BIG_DN = "cn=Big," + O.GROUPS
BIG_ADDR = "big@example.test"
MEMBERS = ["alice", "bob"] + ["user%02d" % i for i in range(1, 9)]


@pytest.fixture(scope="module")
def env():
    e = harness.Env(flavour="ad", start_ternd=False)
    entry = O._ad_entry(BIG_DN, [("objectClass", ["top", "group"]), ("cn", "Big"),
                                 ("sAMAccountType", "268435456"),
                                 ("member", [O.ad_user_dn(l) for l in MEMBERS]),
                                 ("mail", BIG_ADDR)], BIG_DN)
    first, rest = entry.split("\n", 1)
    e.slapd.modify(first + "\nchangetype: add\n" + rest)
    e.proxies = []
    yield e
    for p in e.proxies:
        p.close()
    e.close()


def proxied(env, name, mode="ok"):
    p = RangeProxy(env.slapd.port, max_range=3, mode=mode)
    env.proxies.append(p)
    t = env.new_ternd({"directory": {"profile": "ad"}}, name=name, ldap_uri=p.uri)
    return p, t


def test_proxy_answers_like_ad(env):
    p = RangeProxy(env.slapd.port, max_range=3)
    env.proxies.append(p)
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", p.uri, "-D", O.SERVICE_DN, "-w",
                          O.SERVICE_PASSWORD, "-b", BIG_DN, "-s", "base", "(objectClass=*)",
                          "member"], stdout=subprocess.PIPE, timeout=10).stdout.decode()
    assert "member;range=0-2: " in out and "\nmember: " not in out, out
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", p.uri, "-D", O.SERVICE_DN, "-w",
                          O.SERVICE_PASSWORD, "-b", BIG_DN, "-s", "base", "(objectClass=*)",
                          "member;range=9-*"], stdout=subprocess.PIPE, timeout=10).stdout
    assert out.decode().count("member;range=9-*: ") == 1, out


def test_big_group_reaches_every_member(env):
    p, t = proxied(env, "ranged")
    token = unique_token("range")
    code, text = t.send(BIG_ADDR, make_message(token, to=BIG_ADDR))
    assert code == 250, text
    for login in MEMBERS:
        assert count_token(t.mailbox(login), token) == 1, login
    assert p.requests == ["member;range=3-*", "member;range=6-*", "member;range=9-*"], \
        p.requests
    # The nested AD groups (Staff, three members plus Team A) are read
    # in ranges too: alice, bob, user01, user02; carol is disabled.
    token = unique_token("staff")
    code, text = t.send(O.AD_STAFF_ADDRS[0], make_message(token, to=O.AD_STAFF_ADDRS[0]))
    assert code == 250, text
    for login in O.AD_STAFF_USERS:
        assert count_token(t.mailbox(login), token) == 1, login


def test_server_breaking_the_range_protocol_is_a_temporary_failure(env):
    p, t = proxied(env, "empty", mode="empty")
    s = t.smtp()
    try:
        code, _ = s.mail("sender@example.org")
        assert code == 250
        code, text = s.rcpt(BIG_ADDR)
        assert code == 451, (code, text)  # never part of the list
        code, text = s.rcpt("alice@example.test")
        assert code == 250, (code, text)
    finally:
        s.close()
    log = t.log()
    assert (b'range-failed dn="%s" attr=member reason="empty range that is not the last one"'
            % BIG_DN.encode()) in log, log[-3000:]
    assert p.requests == ["member;range=3-*"], p.requests


def test_check_directory_reads_every_range(env):
    gone = "cn=Gone User," + O.PEOPLE
    env.slapd.modify("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n" % (BIG_DN, gone))
    try:
        p, t = proxied(env, "check")
        r = subprocess.run([harness.ternd_path(), "check-directory", "-c", t.conf_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                           env=harness.sanitizer_env())
        out = r.stdout.decode()
        problems = [l for l in out.splitlines() if l.startswith("problem: ")]
        # The eleventh value is in the fourth range (9-*).
        assert problems == [
            "problem: list %s: member %s names no entry (deleted?); it is skipped at "
            "delivery - remove it from member" % (BIG_DN, gone)], out
        assert "member;range=9-*" in p.requests, p.requests
    finally:
        env.slapd.modify("dn: %s\nchangetype: modify\ndelete: member\nmember: %s\n"
                         % (BIG_DN, gone))
