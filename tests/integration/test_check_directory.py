"""`ternd check-directory -c FILE` (directory/dir_check.c) against the real
slapd fixture, and the refusal of an address (or a login) that two
directory entries claim, at RCPT and at login (directory/dir.c,
DIR_CONFLICT).

The fixture has two real problems on purpose: the posixGroup devs lists
memberUid "ghost", a login no user has, and the nisMailAlias helpdesk
lists rfc822MailMember nobody-here@example.test, a local address no
entry has (tests/fixtures/org_ldif.py). With member_uid_attr and
member_address_attr switched off (CLEAN) the fixture is clean. Each other problem is
made with ldapmodify, checked, and undone again."""
import imaplib
import os
import subprocess

import pytest

import harness
from harness import count_token, make_message, unique_token

O = harness.org_ldif
P = O.PEOPLE


def dn(login):
    return "uid=%s,%s" % (login, P)


STAFF_DN = "cn=staff," + O.GROUPS
HELPDESK_DN = "cn=helpdesk," + O.ALIASES
# The fixture's two known problems switched off: a clean directory.
CLEAN = {"member_uid_attr": "", "member_address_attr": ""}
DEVS_DN = "cn=devs," + O.ALIASES


def check(conf, *args):
    r = subprocess.run([harness.ternd_path(), "check-directory", "-c", conf] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                       env=harness.sanitizer_env())
    out = r.stdout.decode()
    problems = [l for l in out.splitlines() if l.startswith("problem: ")]
    return r.returncode, out, problems


@pytest.fixture(scope="module")
def env():
    e = harness.Env()
    yield e
    e.close()


def conf_with(env, directory_overrides, name):
    t = env.new_ternd({"directory": directory_overrides}, name=name, start=False)
    return t.conf_path


def flush(t):
    t.control({"cmd": "directory.flush"})


def test_fixture_has_exactly_its_known_problems(env):
    rc, out, problems = check(env.ternd.conf_path)
    assert rc == 1, out
    assert problems == [
        "problem: list %s: memberUid ghost matches no user's uid; it is skipped at delivery"
        % DEVS_DN,
        "problem: list %s: rfc822MailMember nobody-here@example.test is in a local domain "
        "but no enabled entry has that address; it is skipped at delivery - fix or remove it"
        % HELPDESK_DN], out
    assert "ok: %s: connected and bound as %s" % (env.slapd.uri, O.SERVICE_DN) in out
    # 60 numbered users and alice, bob, dave, erin enabled; carol disabled.
    assert "summary: 64 users (1 disabled), " in out, out
    assert "; 2 problem(s)" in out


def test_clean_without_member_uid_exits_0(env):
    conf = conf_with(env, CLEAN, "clean")
    rc, out, problems = check(conf)
    assert rc == 0, out
    assert problems == []
    assert "; 0 problem(s)" in out
    # The --check-directory spelling runs the same check.
    r = subprocess.run([harness.ternd_path(), "-c", conf, "--check-directory"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                       env=harness.sanitizer_env())
    assert r.returncode == 0, r.stdout.decode()
    assert b"; 0 problem(s)" in r.stdout


def test_usage_and_config_errors_exit_2(env):
    r = subprocess.run([harness.ternd_path(), "check-directory"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 2
    assert b"usage: ternd check-directory -c FILE" in r.stderr
    r = subprocess.run([harness.ternd_path(), "check-directory", "-c",
                        os.path.join(env.tmp, "no-such.conf")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 2
    assert b"no-such.conf" in r.stderr


def test_wrong_bind_password_and_dead_uri(env):
    wrong = os.path.join(env.tmp, "wrong.secret")
    with open(wrong, "w") as f:
        f.write("not-the-password\n")
    os.chmod(wrong, 0o600)
    conf = conf_with(env, {"bind_password_file": wrong}, "wrongpw")
    rc, out, problems = check(conf)
    assert rc == 1, out
    assert problems == [
        "problem: cannot bind to %s as %s ([directory] bind_dn): Invalid credentials"
        % (env.slapd.uri, O.SERVICE_DN)], out
    assert "bind_password_file is wrong" in out
    assert "summary: the directory could not be reached; 1 problem(s)" in out

    # A dead URI before the good one: named with the reason, the rest of
    # the check still runs on the good one.
    dead = "ldap://127.0.0.1:%d/" % harness.free_port()
    conf = conf_with(env, dict(CLEAN, uri="%s, %s" % (dead, env.slapd.uri)),
                     "deaduri")
    rc, out, problems = check(conf)
    assert rc == 1, out
    assert len(problems) == 1, out
    assert problems == ["problem: cannot connect to %s: Can't contact LDAP server" % dead], out
    assert "summary: 64 users (1 disabled)" in out


def test_user_filter_matching_nothing(env):
    conf = conf_with(env, dict(CLEAN, user_filter="(&(objectClass=posixAccount)(uid=%u))"),
                     "nofilter")
    rc, out, problems = check(conf)
    assert rc == 1, out
    assert problems == [
        "problem: [directory] user_filter (&(objectClass=posixAccount)(uid=*)) matches no "
        "entry under %s ([directory] base): no one can log in" % O.SUFFIX], out


def test_id_attr_not_readable(env):
    conf = conf_with(env, dict(CLEAN, id_attr="employeeNumber"), "noid")
    rc, out, problems = check(conf)
    assert rc == 1, out
    assert len(problems) == 1, out
    assert "no user has a readable employeeNumber ([directory] id_attr" in problems[0]


def test_dangling_list_member(env):
    gone = dn("gone")
    env.slapd.modify("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n" % (STAFF_DN, gone))
    try:
        conf = conf_with(env, CLEAN, "dangling")
        rc, out, problems = check(conf)
        assert rc == 1, out
        assert problems == [
            "problem: list %s: member %s names no entry (deleted?); it is skipped at "
            "delivery - remove it from member" % (STAFF_DN, gone)], out
    finally:
        env.slapd.modify("dn: %s\nchangetype: modify\ndelete: member\nmember: %s\n"
                         % (STAFF_DN, gone))


DUPS = """dn: %(bob)s
changetype: modify
add: objectClass
objectClass: inetLocalMailRecipient
-
add: mailLocalAddress
mailLocalAddress: bob2@example.test

dn: %(u10)s
changetype: modify
add: objectClass
objectClass: inetLocalMailRecipient
-
add: mailLocalAddress
mailLocalAddress: bob@example.test

dn: %(u11)s
changetype: modify
add: objectClass
objectClass: inetLocalMailRecipient
-
add: mailLocalAddress
mailLocalAddress: staff@example.test

dn: %(u12)s
changetype: modify
add: mail
mail: user13@example.test
"""

UNDO = """dn: %(bob)s
changetype: modify
delete: mailLocalAddress
-
delete: objectClass
objectClass: inetLocalMailRecipient

dn: %(u10)s
changetype: modify
delete: mailLocalAddress
-
delete: objectClass
objectClass: inetLocalMailRecipient

dn: %(u11)s
changetype: modify
delete: mailLocalAddress
-
delete: objectClass
objectClass: inetLocalMailRecipient

dn: %(u12)s
changetype: modify
delete: mail
mail: user13@example.test
"""


def rcpt(t, addr):
    s = t.smtp()
    try:
        code, text = s.mail("sender@example.org")
        assert code == 250, (code, text)
        return s.rcpt(addr)
    finally:
        s.close()


def test_duplicate_addresses_reported_and_refused(env):
    t = env.ternd
    names = {"bob": dn("bob"), "u10": dn("user10"), "u11": dn("user11"), "u12": dn("user12")}
    env.slapd.modify(DUPS % names)
    try:
        flush(t)
        conf = conf_with(env, CLEAN, "dups")
        rc, out, problems = check(conf)
        assert rc == 1, out
        # Sorted by address; both DNs named, users before lists by DN.
        assert problems == [
            "problem: address bob@example.test is claimed by two entries: user %s and user "
            "%s; mail to it is refused (451 4.3.0) until one of them drops it"
            % (dn("bob"), dn("user10")),
            "problem: address staff@example.test is claimed by two entries: list %s and user "
            "%s; mail to it is refused (451 4.3.0) until one of them drops it"
            % (STAFF_DN, dn("user11")),
            "problem: address user13@example.test is claimed by two entries: user %s and "
            "user %s; mail to it is refused (451 4.3.0) until one of them drops it"
            % (dn("user12"), dn("user13")),
        ], out

        # Delivery: the claimed addresses are refused, temporarily, and
        # the log names both entries; neither mailbox gets anything.
        token = unique_token("dup")
        for addr, dns in (("bob@example.test", (dn("bob"), dn("user10"))),
                          ("staff@example.test", (STAFF_DN, dn("user11")))):
            code, text = rcpt(t, addr)
            assert code == 451, (addr, code, text)
            assert b"4.3.0" in text and b"ambiguous" in text, text
            log = t.log()
            line = [l for l in log.splitlines()
                    if b"ambiguous-address address=" + addr.encode() in l]
            assert line, log[-3000:]
            for d in dns:
                assert ('"%s"' % d).encode() in line[-1], line[-1]
            assert b"rcpt to=<" + addr.encode() + b"> result=conflict" in log
        # The other addresses of every entry involved still work.
        for addr in ("bob2@example.test", "user10@example.test", "user11@example.test",
                     "user12@example.test"):
            code, text = t.send(addr, make_message(token, to=addr))
            assert code == 250, (addr, code, text)
        for login in ("bob", "user10", "user11", "user12"):
            assert count_token(t.mailbox(login), token) == 1, login
        for login in ("alice", "user01"):  # staff members: refused, not expanded
            assert count_token(t.mailbox(login), token) == 0, login

        # A login two entries match (mail=user13@... on user12 and
        # user13) is refused, and logged with both DNs.
        m = t.imap()
        with pytest.raises(imaplib.IMAP4.error):
            m.login("user13@example.test", harness.password("user13"))
        m.logout()
        line = [l for l in t.log().splitlines()
                if b"login-ambiguous login=user13@example.test" in l]
        assert line, t.log()[-3000:]
        for d in (dn("user12"), dn("user13")):
            assert ('"%s"' % d).encode() in line[-1], line[-1]
        # user13 by its uid is one entry: fine.
        t.imap_login("user13").logout()
    finally:
        env.slapd.modify(UNDO % names)
        flush(t)
    # Fixed in the directory: delivered again at once (conflicts are
    # never cached).
    code, text = rcpt(t, "bob@example.test")
    assert code == 250, (code, text)


# Dynamic lists that give no members, member addresses and routing
# addresses leading nowhere, and a routing loop: added for the test only
# (under ou=aliases and on numbered users no other test here uses), and
# removed again.
BADURL_DN = "cn=badurl," + O.ALIASES
NOBODY_DN = "cn=nobodyurl," + O.ALIASES
BADFILTER_DN = "cn=badfilter," + O.ALIASES
BADQUERY_DN = "cn=badquery," + O.ALIASES
NIS2_DN = "cn=nis2," + O.ALIASES
REMOTE_URL = "ldap://ldap.remote.example/%s??one?(uid=*)" % P
NOBODY_URL = "ldap:///%s??one?(departmentNumber=no-such-department)" % P
BAD_FILTER_URL = "ldap:///%s??one?(uid=user01" % P


def _list(dn, addr, cls, attrs):
    lines = ["dn: %s" % dn, "changetype: add", "objectClass: top", "objectClass: %s" % cls,
             "objectClass: inetLocalMailRecipient", "cn: %s" % dn.split(",")[0][3:],
             "mailLocalAddress: %s" % addr]
    lines += ["%s: %s" % a for a in attrs]
    return "\n".join(lines) + "\n"


def _route(login, to):
    return ("dn: %s\nchangetype: modify\nadd: objectClass\nobjectClass: inetLocalMailRecipient"
            "\n-\nadd: mailRoutingAddress\nmailRoutingAddress: %s\n" % (dn(login), to))


def _unroute(login):
    return ("dn: %s\nchangetype: modify\ndelete: mailRoutingAddress\n-\ndelete: objectClass\n"
            "objectClass: inetLocalMailRecipient\n" % dn(login))


def test_lists_and_routing_that_lead_nowhere(env):
    adds = [
        _list(BADURL_DN, "badurl@example.test", "groupOfURLs", [("memberURL", REMOTE_URL)]),
        _list(NOBODY_DN, "nobodyurl@example.test", "groupOfURLs", [("memberURL", NOBODY_URL)]),
        _list(BADFILTER_DN, "badfilter@example.test", "groupOfURLs",
              [("memberURL", BAD_FILTER_URL)]),
        _list(BADQUERY_DN, "badquery@example.test", "groupOfURLs",
              [("description", "(uid=no-such-login)")]),
        _list(NIS2_DN, "nis2@example.test", "nisMailAlias",
              [("rfc822MailMember", "user30@example.test"),
               ("rfc822MailMember", "Gone.Person@Example.test"),
               ("rfc822MailMember", "someone@remote.example")]),
    ]
    routes = [("user20", "no-one@example.test"), ("user21", "user22@example.test"),
              ("user22", "user21@example.test"), ("user23", "user23@example.test"),
              ("user24", "user25@remote.example")]
    done = []
    try:
        for a in adds:
            env.slapd.modify(a)
            done.append("dn: %s\nchangetype: delete\n" % a.split("\n")[0][4:])
        for login, to in routes:
            env.slapd.modify(_route(login, to))
            done.append(_unroute(login))
        conf = conf_with(env, dict(CLEAN, member_address_attr="rfc822MailMember",
                                   member_query_attr="description"), "nowhere")
        rc, out, problems = check(conf)
        assert rc == 1, out
        no_members = "; the list gets no members from it"
        nowhere = ("is in a local domain but no enabled entry has that address; it is "
                   "skipped at delivery - fix or remove it")
        assert problems == [
            "problem: list %s: memberURL %s is not usable (names a server (only ldap:///... "
            "is followed))%s - fix it" % (BADURL_DN, REMOTE_URL, no_members),
            "problem: list %s: memberURL %s matches no enabled entry%s"
            % (NOBODY_DN, NOBODY_URL, no_members),
            "problem: list %s: memberURL %s does not work: search (&(uid=user01"
            "(!(shadowExpire=1))) under %s: Bad search filter%s - fix it"
            % (BADFILTER_DN, BAD_FILTER_URL, P, no_members),
            "problem: list %s: description (uid=no-such-login) matches no enabled entry%s"
            % (BADQUERY_DN, no_members),
            "problem: list %s: rfc822MailMember nobody-here@example.test %s"
            % (HELPDESK_DN, nowhere),
            "problem: list %s: rfc822MailMember Gone.Person@Example.test %s"
            % (NIS2_DN, nowhere),
            "problem: user %s: mailRoutingAddress no-one@example.test is in a local domain "
            "but no enabled entry has that address; mail to the user is refused (550) - fix "
            "or remove it" % dn("user20"),
            "problem: user %s: mailRoutingAddress leads back to it (%s -> %s -> %s): a "
            "routing loop; ternd delivers to the entry where the loop closes instead - fix "
            "the mailRoutingAddress values" % (dn("user21"), dn("user21"), dn("user22"),
                                               dn("user21")),
        ], out
        # What ternd does with them: the routing address nobody has is
        # refused; the other list members still get the list's mail.
        flush(env.ternd)
        code, text = rcpt(env.ternd, "user20@example.test")
        assert code == 550, (code, text)
        code, text = rcpt(env.ternd, "nis2@example.test")
        assert code == 250, (code, text)
    finally:
        for d in reversed(done):
            env.slapd.modify(d)
        flush(env.ternd)
    # Undone: clean again.
    rc, out, problems = check(conf_with(env, CLEAN, "nowhere-undone"))
    assert rc == 0 and problems == [], out


def test_ad_fixture_clean_and_proxy_address_duplicate():
    """The AD-shaped directory: carol (userAccountControl 0x2) counts as
    disabled, proxyAddresses "smtp:" values are addresses, so one given
    to a second user is a duplicate naming both entries."""
    e = harness.Env(flavour="ad", start_ternd=False)
    try:
        t = e.new_ternd({"directory": {"profile": "ad"}}, start=False)
        rc, out, problems = check(t.conf_path)
        assert rc == 0, out
        assert "summary: 10 users (1 disabled), " in out, out
        user02 = "cn=User 02," + O.PEOPLE
        e.slapd.modify("dn: %s\nchangetype: modify\nadd: proxyAddresses\n"
                       "proxyAddresses: smtp:%s\n" % (user02, O.AD_BOB_ALIAS))
        rc, out, problems = check(t.conf_path)
        assert rc == 1, out
        assert len(problems) == 1, out
        assert problems[0].startswith("problem: address %s is claimed by two entries: "
                                      % O.AD_BOB_ALIAS), out
        assert user02 in problems[0] and O.ad_user_dn("bob") in problems[0], out
    finally:
        e.close()


def test_scram_verifiers_counted(env):
    """With SCRAM-SHA-256 offered, the users with a readable verifier are
    counted (user01..user03 have one in authPassword); none at all is a
    problem (a wrong scram_attribute); not offered, nothing is said."""
    def conf(name, **directory):
        for k, v in CLEAN.items():
            directory.setdefault(k, v)
        return env.new_ternd({"directory": directory,
                              "sasl": {"mechanisms": "SCRAM-SHA-256-PLUS SCRAM-SHA-256"}},
                             name=name, start=False).conf_path

    rc, out, problems = check(conf("scram"))
    assert rc == 0, out
    assert ("note: 3 of 64 users have a SCRAM-SHA-256 verifier readable by the service "
            "account in authPassword ([directory] scram_attribute): SCRAM logins will "
            "fail for the others; they can still use PLAIN over TLS") in out, out
    # The verifiers themselves never reach the output.
    stored = O.scram_verifier_for("user01").split("$")[2]
    assert stored not in out

    rc, out, problems = check(conf("scram-none", scram_attribute="description"))
    assert rc == 1, out
    assert problems == [
        "problem: 0 of 64 users have a SCRAM-SHA-256 verifier readable by the service "
        "account in description ([directory] scram_attribute): SCRAM logins will fail for "
        "them; they can still use PLAIN over TLS"], out

    rc, out, _ = check(conf_with(env, CLEAN, "no-scram"))
    assert rc == 0 and "SCRAM" not in out, out
