"""test_dir_admin.py - provisioning through the directory (directory/dir_admin.h)
against the real slapd, driven by the test helper tern-diradmin-test (built
beside ternd), and checked two ways: with ldapsearch on the directory, and
end to end with ternd: a user created here receives mail over SMTP and logs
in over IMAP; a disabled one can do neither; a list made here delivers to
its members; authenticate() tells admins (members of cn=mail-admins) from
other users.

ternd runs with [directory] cache_ttl and negative_ttl of 1s, so what the
library writes reaches it within a second or so; the checks poll for it.
"""
import base64
import os
import subprocess
import time

import pytest

import harness
from harness import org_ldif

PEOPLE = org_ldif.PEOPLE
GROUPS = org_ldif.GROUPS


def driver_path():
    return os.path.join(os.path.dirname(harness.ternd_path()), "tern-diradmin-test")


def admin_section(env, **extra):
    keys = {"listen": "127.0.0.1:%d" % harness.free_port(),
            "admin_group": org_ldif.ADMIN_GROUP_DN,
            "writer_bind_dn": org_ldif.WRITER_DN,
            "writer_password_file": env.writer_secret}
    keys.update(extra)
    return keys


@pytest.fixture(scope="module")
def env():
    e = harness.Env(start_ternd=False)
    e.writer_secret = os.path.join(e.tmp, "writer.secret")
    with open(e.writer_secret, "w") as f:
        f.write(org_ldif.WRITER_PASSWORD + "\n")
    os.chmod(e.writer_secret, 0o600)
    try:
        # The fixture's schemas have no mailQuota; employeeNumber (in
        # inetOrgPerson) carries the quota instead, as in test_imap_msg.
        e.ternd = e.new_ternd({"directory": {"quota_attr": "employeeNumber",
                                             "cache_ttl": "1s", "negative_ttl": "1s"},
                               "admin": admin_section(e)})
    except BaseException:
        e.close()
        raise
    yield e
    e.close()


class Result:
    def __init__(self, rc, out):
        self.rc = rc
        self.lines = out.splitlines()
        self.ok = bool(self.lines) and self.lines[0] == "ok"
        self.error = self.field = self.message = None
        if self.lines and self.lines[0].startswith("error="):
            head, _, self.message = self.lines[0].partition(" message=")
            parts = dict(p.split("=", 1) for p in head.split(" "))
            self.error, self.field = parts["error"], parts["field"]
        self.records = []
        for line in self.lines[1:]:
            kind, _, rest = line.partition(" ")
            if kind.startswith("admin="):
                self.records.append({"kind": "admin", "admin": kind[6:]})
                continue
            rec = {"kind": kind}
            last = None
            # key=value pairs; the last key (name=) may hold blanks.
            for part in rest.split(" "):
                if "=" in part:
                    k, v = part.split("=", 1)
                    rec[k] = v
                    last = k
                elif last is not None:
                    rec[last] += " " + part
            self.records.append(rec)

    def __repr__(self):
        return "Result(rc=%d, %r)" % (self.rc, self.lines)


def run(env, *args, conf=None):
    r = subprocess.run([driver_path(), "-c", conf or env.ternd.conf_path] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    out = r.stdout.decode()
    report = [m for m in harness.SANITIZER_MARKS if m in r.stderr]
    assert not report, r.stderr.decode(errors="replace")
    return Result(r.returncode, out)


def ok(env, *args, **kw):
    r = run(env, *args, **kw)
    assert r.rc == 0 and r.ok, r
    return r


def user(env, key):
    r = ok(env, "user-get", key)
    assert r.records[0]["kind"] == "user"
    return r.records[0]


def root_search(env, base, flt, *attrs):
    """ldapsearch as the rootdn (sees userPassword)."""
    r = subprocess.run(["/usr/bin/ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no",
                        "-H", env.slapd.uri, "-D", org_ldif.ROOT_DN, "-w", org_ldif.ROOT_PASSWORD,
                        "-b", base, flt] + list(attrs),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if r.returncode == 32:
        return ""
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def attr_values(ldif, name):
    out = []
    for line in ldif.splitlines():
        k, sep, v = line.partition(": ")
        if sep and k.endswith(":"):  # "name:: base64"
            k, v = k[:-1], base64.b64decode(v).decode(errors="replace")
        if sep and k.lower() == name.lower():
            out.append(v)
    return out


def eventually(check, timeout=8.0, what="condition"):
    """Polls check() (true = done) past ternd's 1 s cache."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("%s: not true after %ss" % (what, timeout))
        time.sleep(0.2)


def rcpt_code(env, addr):
    s = env.ternd.smtp()
    try:
        code, _ = s.mail("sender@example.org")
        assert code == 250
        code, _ = s.rcpt(addr)
        s.rset()
        s.quit()
        return code
    finally:
        s.close()


def send(env, addr, token):
    return env.ternd.send(addr, harness.make_message(token, to=addr))


def imap_tokens(env, login, pw):
    """Subjects in login's INBOX, over IMAP with a password login."""
    m = env.ternd.imap_login(login, pw)
    try:
        typ, data = m.select("INBOX")
        assert typ == "OK", data
        if int(data[0]) == 0:
            return ""
        typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        return b" ".join(d[1] for d in data if isinstance(d, tuple)).decode()
    finally:
        m.logout()


def imap_login_fails(env, login, pw):
    m = env.ternd.imap()
    try:
        m.login(login, pw)
    except m.error:
        return True
    finally:
        try:
            m.logout()
        except Exception:  # noqa: BLE001 - the server may have closed it
            pass
    return False


# ---- open and authenticate ----

def test_open_fails_with_a_clear_message(env):
    conf = os.path.join(env.tmp, "badwriter.conf")
    bad = os.path.join(env.tmp, "bad.secret")
    with open(bad, "w") as f:
        f.write("not-the-password\n")
    with open(env.ternd.conf_path) as f:
        text = f.read().replace(env.writer_secret, bad)
    with open(conf, "w") as f:
        f.write(text)
    r = run(env, "user-get", "alice", conf=conf)
    assert r.rc == 2
    assert r.error == "OPEN"
    assert "writer bind as %s" % org_ldif.WRITER_DN in r.message
    assert "Invalid credentials" in r.message


def test_authenticate_admins_and_others(env):
    r = ok(env, "auth", "user45", harness.password("user45"))
    assert r.records[0] == {"kind": "admin", "admin": "yes"}
    assert r.records[1]["login"] == "user45"
    assert r.records[1]["dn"] == "uid=user45," + PEOPLE
    r = ok(env, "auth", "user46@example.test", harness.password("user46"))
    assert r.records[0]["admin"] == "yes"
    r = ok(env, "auth", "bob", harness.password("bob"))
    assert r.records[0]["admin"] == "no"
    # alice by one of her aliases
    r = ok(env, "auth", "a.smith@example.test", harness.password("alice"))
    assert r.records[0]["admin"] == "no" and r.records[1]["login"] == "alice"
    for login, pw in (("bob", "wrong"), ("user45", "user46-pw-1"), ("nobody", "x"),
                      ("carol", harness.password("carol")),  # disabled
                      ("*", "x"), ("user45", "")):
        r = run(env, "auth", login, pw)
        assert r.rc == 1 and r.error == "AUTHFAIL", (login, r)
        assert r.message == "login or password incorrect"


# ---- validation: refused before anything is written ----

@pytest.mark.parametrize("args,field,words", [
    (["Bad Login", "x1@example.test"], "login", "letters, digits"),
    (["okname", "x1@elsewhere.example"], "mail", "not one of [server] domains"),
    (["okname", "x1..y@example.test"], "mail", "dot-atom"),
    (["okname", "x1@example.test", "--alias", "x1@example.test"], "aliases", "primary address"),
    (["okname", "x1@example.test", "--quota", "10X"], "quota", "not a size"),
    (["okname", "x1@example.test", "--name", "tab\there"], "display_name", "control"),
    (["okname", "x1@example.test", "--password", ""], "password", "must not be empty"),
])
def test_create_refuses_bad_input(env, args, field, words):
    r = run(env, "user-create", *args)
    assert r.rc == 1 and r.error == "INVALID", r
    assert r.field == field
    assert r.message.startswith(field + ": ") and words in r.message, r.message
    assert root_search(env, PEOPLE, "(uid=okname)", "uid") == ""


def test_create_refuses_taken_login_and_addresses(env):
    r = run(env, "user-create", "bob", "bob.two@example.test")
    assert r.error == "EXISTS" and r.field == "login", r
    assert "uid=bob," + PEOPLE in r.message
    # an alias of alice, a list's address, a primary address
    for taken, owner in (("a.smith@example.test", "uid=alice," + PEOPLE),
                         ("staff@example.test", "cn=staff," + GROUPS),
                         ("BOB@example.test", "uid=bob," + PEOPLE)):
        r = run(env, "user-create", "fresh1", taken)
        assert r.error == "EXISTS" and r.field == "mail", r
        assert '"%s"' % taken.lower() in r.message and owner in r.message, r.message
        r = run(env, "user-create", "fresh1", "fresh1@example.test", "--alias", taken)
        assert r.error == "EXISTS" and r.field == "aliases", r
    assert root_search(env, PEOPLE, "(uid=fresh1)", "uid") == ""


# ---- users end to end ----

def test_created_user_gets_mail_and_logs_in(env):
    r = ok(env, "user-create", "newton", "Isaac.Newton@example.test",
           "--password", "apple-tree-1", "--alias", "newton@example.net",
           "--name", "Isaac Newton", "--quota", "1M")
    u = r.records[0]
    assert u["login"] == "newton" and u["mail"] == "isaac.newton@example.test"
    assert u["aliases"] == "newton@example.net" and u["quota"] == str(1 << 20)
    assert u["disabled"] == "no" and u["name"] == "Isaac Newton"
    assert len(u["id"]) == 36  # entryUUID

    ldif = root_search(env, "uid=newton," + PEOPLE, "(objectClass=*)", "*", "entryUUID")
    classes = {v.lower() for v in attr_values(ldif, "objectClass")}
    assert {"inetorgperson", "inetlocalmailrecipient", "shadowaccount"} <= classes
    assert attr_values(ldif, "mail") == ["isaac.newton@example.test"]
    assert attr_values(ldif, "mailLocalAddress") == ["newton@example.net"]
    assert attr_values(ldif, "employeeNumber") == [str(1 << 20)]
    assert attr_values(ldif, "cn") == ["Isaac Newton"] and attr_values(ldif, "sn") == ["Newton"]
    assert attr_values(ldif, "entryUUID") == [u["id"]]
    # RFC 3062 password modify: the server stored a hash of it.
    pw = attr_values(ldif, "userPassword")
    assert len(pw) == 1 and pw[0].startswith("{SSHA}"), pw
    assert "apple-tree-1" not in ldif

    t1, t2 = harness.unique_token("newton"), harness.unique_token("newton-alias")
    assert send(env, "isaac.newton@example.test", t1)[0] == 250
    assert send(env, "NEWTON@example.net", t2)[0] == 250
    subjects = imap_tokens(env, "newton", "apple-tree-1")
    assert t1 in subjects and t2 in subjects
    # and by address too, the way mail clients log in
    assert t1 in imap_tokens(env, "isaac.newton@example.test", "apple-tree-1")
    assert imap_login_fails(env, "newton", "wrong-password")

    r = ok(env, "user-list")
    logins = [rec["login"] for rec in r.records]
    assert "newton" in logins and "alice" in logins and "user01" in logins
    assert "staff" not in logins and len(logins) == len(set(logins))
    carol = [rec for rec in r.records if rec["login"] == "carol"][0]
    assert carol["disabled"] == "yes"
    assert [rec for rec in r.records if rec["login"] == "newton"][0]["disabled"] == "no"


def test_create_without_password_then_set_it(env):
    ok(env, "user-create", "hooke", "hooke@example.test")
    assert imap_login_fails(env, "hooke", "anything")
    ok(env, "user-passwd", "hooke@example.test", "spring-law-1")
    eventually(lambda: not imap_login_fails(env, "hooke", "spring-law-1"), what="login")
    ok(env, "user-passwd", "hooke", "spring-law-2")
    assert imap_login_fails(env, "hooke", "spring-law-1")
    assert not imap_login_fails(env, "hooke", "spring-law-2")
    r = run(env, "user-passwd", "nobody-here", "x-pw-1")
    assert r.error == "NOTFOUND" and r.field == "user", r


def test_disabled_user_cannot_log_in_or_receive(env):
    ok(env, "user-create", "halley", "halley@example.test", "--password", "comet-1758")
    t = harness.unique_token("halley")
    assert send(env, "halley@example.test", t)[0] == 250
    assert t in imap_tokens(env, "halley", "comet-1758")

    ok(env, "user-disable", "halley")
    ldif = root_search(env, "uid=halley," + PEOPLE, "(objectClass=*)", "shadowExpire")
    assert attr_values(ldif, "shadowExpire") == ["1"]  # the profile's disabled_filter
    assert user(env, "halley")["disabled"] == "yes"
    eventually(lambda: rcpt_code(env, "halley@example.test") == 550, what="550 for disabled")
    assert imap_login_fails(env, "halley", "comet-1758")
    # twice is fine
    ok(env, "user-disable", "halley")

    ok(env, "user-enable", "halley")
    assert root_search(env, "uid=halley," + PEOPLE, "(shadowExpire=*)", "uid") == ""
    assert user(env, "halley")["disabled"] == "no"
    eventually(lambda: rcpt_code(env, "halley@example.test") == 250, what="250 again")
    assert not imap_login_fails(env, "halley", "comet-1758")
    ok(env, "user-enable", "halley")


def test_disable_adds_the_missing_auxiliary_class(env):
    # user47 comes from the fixture as a bare inetOrgPerson.
    before = root_search(env, "uid=user47," + PEOPLE, "(objectClass=*)", "objectClass")
    assert "shadowAccount" not in before
    ok(env, "user-disable", "user47")
    after = root_search(env, "uid=user47," + PEOPLE, "(objectClass=*)", "objectClass",
                        "shadowExpire")
    assert "shadowAccount" in attr_values(after, "objectClass")
    assert attr_values(after, "shadowExpire") == ["1"]
    eventually(lambda: imap_login_fails(env, "user47", harness.password("user47")),
               what="user47 refused")
    ok(env, "user-enable", "user47")
    eventually(lambda: not imap_login_fails(env, "user47", harness.password("user47")),
               what="user47 back")


def test_update_aliases_and_quota(env):
    ok(env, "user-create", "boyle", "boyle@example.test", "--password", "gas-law-1")
    r = ok(env, "user-update", "boyle", "--name", "Robert Boyle", "--quota", "2M",
           "--add-alias", "r.boyle@example.test", "--add-alias", "boyle@example.net")
    u = r.records[0]
    assert u["name"] == "Robert Boyle" and u["quota"] == str(2 << 20)
    assert sorted(u["aliases"].split(",")) == ["boyle@example.net", "r.boyle@example.test"]
    t = harness.unique_token("boyle")
    eventually(lambda: rcpt_code(env, "r.boyle@example.test") == 250, what="new alias")
    assert send(env, "r.boyle@example.test", t)[0] == 250
    assert t in imap_tokens(env, "boyle", "gas-law-1")

    # an alias already used elsewhere, or already this user's
    r = run(env, "alias-add", "boyle", "alice@example.net")
    assert r.error == "EXISTS" and r.field == "aliases" and "uid=alice" in r.message, r
    r = run(env, "alias-add", "boyle", "boyle@example.test")
    assert r.error == "EXISTS", r
    r = run(env, "alias-remove", "boyle", "nope@example.test")
    assert r.error == "NOTFOUND" and r.field == "aliases", r

    ok(env, "alias-remove", "boyle@example.test", "R.Boyle@example.test")
    assert user(env, "boyle")["aliases"] == "boyle@example.net"
    eventually(lambda: rcpt_code(env, "r.boyle@example.test") == 550, what="alias gone")
    ok(env, "user-update", "boyle", "--quota", "none")
    assert user(env, "boyle")["quota"] == "0"
    assert root_search(env, "uid=boyle," + PEOPLE, "(employeeNumber=*)", "uid") == ""


def test_alias_on_entry_without_the_class(env):
    # bob has no inetLocalMailRecipient: adding one brings the class.
    ok(env, "alias-add", "bob", "robert@example.test")
    ldif = root_search(env, "uid=bob," + PEOPLE, "(objectClass=*)", "objectClass",
                       "mailLocalAddress")
    assert "inetLocalMailRecipient" in attr_values(ldif, "objectClass")
    assert attr_values(ldif, "mailLocalAddress") == ["robert@example.test"]
    ok(env, "alias-remove", "bob", "robert@example.test")


def test_rename_address(env):
    ok(env, "user-create", "kepler", "kepler@example.test", "--password", "orbits-1",
       "--alias", "jk@example.test")
    r = ok(env, "user-rename", "kepler", "johannes@example.test", "--keep")
    u = r.records[0]
    assert u["mail"] == "johannes@example.test"
    assert sorted(u["aliases"].split(",")) == ["jk@example.test", "kepler@example.test"]
    t1, t2 = harness.unique_token("kepler-new"), harness.unique_token("kepler-old")
    eventually(lambda: rcpt_code(env, "johannes@example.test") == 250, what="new address")
    send(env, "johannes@example.test", t1)
    send(env, "kepler@example.test", t2)
    subjects = imap_tokens(env, "kepler", "orbits-1")
    assert t1 in subjects and t2 in subjects  # same mailbox (entryUUID)

    # to one of the own aliases, dropping the old address
    r = ok(env, "user-rename", "kepler", "jk@example.test")
    u = r.records[0]
    assert u["mail"] == "jk@example.test" and u["aliases"] == "kepler@example.test"
    eventually(lambda: rcpt_code(env, "johannes@example.test") == 550, what="old gone")
    r = run(env, "user-rename", "kepler", "bob@example.test")
    assert r.error == "EXISTS" and r.field == "address" and "uid=bob" in r.message, r
    r = run(env, "user-rename", "kepler", "kepler@nowhere.example")
    assert r.error == "INVALID" and r.field == "address", r


def test_delete_user(env):
    ok(env, "user-create", "hawking", "hawking@example.test", "--password", "radiation-1")
    ok(env, "list-create", "physicists", "physicists@example.test", "hawking", "bob")
    eventually(lambda: rcpt_code(env, "hawking@example.test") == 250, what="exists")
    ok(env, "user-delete", "hawking@example.test")
    assert root_search(env, PEOPLE, "(uid=hawking)", "uid") == ""
    ldif = root_search(env, "cn=physicists," + GROUPS, "(objectClass=*)", "member")
    assert attr_values(ldif, "member") == ["uid=bob," + PEOPLE]
    eventually(lambda: rcpt_code(env, "hawking@example.test") == 550, what="550 after delete")
    r = run(env, "user-delete", "hawking")
    assert r.error == "NOTFOUND" and r.field == "user", r
    ok(env, "list-delete", "physicists")


# ---- lists ----

def members(env, key):
    return [(m["login"], m["mail"]) for m in ok(env, "list-members", key).records]


def test_list_delivers_to_members(env):
    ok(env, "user-create", "curie", "curie@example.test", "--password", "radium-88")
    ok(env, "user-create", "pauli", "pauli@example.test", "--password", "exclusion-1")
    r = ok(env, "list-create", "lab", "Lab@example.test", "curie", "pauli@example.test")
    lst = r.records[0]
    assert lst["address"] == "lab@example.test" and lst["members"] == "2"
    ldif = root_search(env, "cn=lab," + GROUPS, "(objectClass=*)", "objectClass",
                       "mailLocalAddress", "member")
    assert {"groupOfNames", "inetLocalMailRecipient"} <= set(attr_values(ldif, "objectClass"))
    assert attr_values(ldif, "mailLocalAddress") == ["lab@example.test"]
    assert sorted(attr_values(ldif, "member")) == ["uid=curie," + PEOPLE, "uid=pauli," + PEOPLE]

    t1 = harness.unique_token("lab1")
    eventually(lambda: rcpt_code(env, "lab@example.test") == 250, what="list known")
    assert send(env, "lab@example.test", t1)[0] == 250
    assert t1 in imap_tokens(env, "curie", "radium-88")
    assert t1 in imap_tokens(env, "pauli", "exclusion-1")

    ok(env, "list-add", "lab@example.test", "user48")
    ok(env, "list-remove", "lab", "pauli")
    assert sorted(members(env, "lab")) == [("curie", "curie@example.test"),
                                           ("user48", "user48@example.test")]
    r = run(env, "list-add", "lab", "curie")
    assert r.error == "EXISTS" and r.field == "member", r
    r = run(env, "list-remove", "lab", "bob")
    assert r.error == "NOTFOUND" and r.field == "member", r
    r = run(env, "list-add", "lab", "ghost@example.test")
    assert r.error == "NOTFOUND" and r.field == "member", r

    t2 = harness.unique_token("lab2")

    def delivered_to_new_members():
        send(env, "lab@example.test", t2 + "-" + str(time.monotonic()))
        return t2 in imap_tokens(env, "user48", harness.password("user48"))
    eventually(delivered_to_new_members, what="user48 gets list mail")
    # The cache has caught up: one more, which must reach exactly the
    # members of now.
    t3 = harness.unique_token("lab3")
    assert send(env, "lab@example.test", t3)[0] == 250
    assert t3 in imap_tokens(env, "user48", harness.password("user48"))
    assert t3 in imap_tokens(env, "curie", "radium-88")
    assert t3 not in imap_tokens(env, "pauli", "exclusion-1")

    ok(env, "list-delete", "lab@example.test")
    assert root_search(env, GROUPS, "(cn=lab)", "cn") == ""
    eventually(lambda: rcpt_code(env, "lab@example.test") == 550, what="list gone")


def test_empty_list_and_its_placeholder(env):
    r = ok(env, "list-create", "quiet", "quiet@example.test")
    assert r.records[0]["members"] == "0"
    dn = "cn=quiet," + GROUPS
    # groupOfNames needs a member: the list holds its own DN, hidden here.
    assert attr_values(root_search(env, dn, "(objectClass=*)", "member"), "member") == [dn]
    assert members(env, "quiet") == []
    ok(env, "list-add", "quiet", "bob")
    assert attr_values(root_search(env, dn, "(objectClass=*)", "member"),
                       "member") == ["uid=bob," + PEOPLE]
    ok(env, "list-remove", "quiet", "bob@example.test")
    assert attr_values(root_search(env, dn, "(objectClass=*)", "member"), "member") == [dn]
    lists = {rec["name"]: rec for rec in ok(env, "list-all").records}
    assert lists["quiet"]["members"] == "0" and lists["staff"]["members"] == "4"
    r = run(env, "list-create", "quiet", "quiet2@example.test")
    assert r.error == "EXISTS" and r.field == "name", r
    r = run(env, "list-create", "loud", "alice@example.test")
    assert r.error == "EXISTS" and r.field == "address", r
    r = run(env, "list-create", "bad name", "loud@example.test")
    assert r.error == "INVALID" and r.field == "name", r
    r = run(env, "list-get", "nosuchlist")
    assert r.error == "NOTFOUND" and r.field == "list", r
    r = run(env, "list-get", "bob@example.test")
    assert r.error == "NOTFOUND" and "not of a list" in r.message, r
    ok(env, "list-delete", "quiet")


def test_admin_group_membership_through_the_library(env):
    r = ok(env, "auth", "user49", harness.password("user49"))
    assert r.records[0]["admin"] == "no"
    ok(env, "list-add", "mail-admins", "user49")
    assert ok(env, "auth", "user49", harness.password("user49")).records[0]["admin"] == "yes"
    ok(env, "list-remove", "mail-admins", "user49")
    assert ok(env, "auth", "user49", harness.password("user49")).records[0]["admin"] == "no"
    assert sorted(m[0] for m in members(env, "mail-admins")) == ["user45", "user46"]


# ---- the directory's own refusals and outages ----

def test_denied_outside_the_writers_subtree(env):
    conf = os.path.join(env.tmp, "services-base.conf")
    with open(env.ternd.conf_path) as f:
        text = f.read()
    text = text.replace("[admin]\n", "[admin]\nuser_base = %s\n" % org_ldif.SERVICES)
    with open(conf, "w") as f:
        f.write(text)
    r = run(env, "user-create", "intruder", "intruder@example.test", conf=conf)
    assert r.rc == 1 and r.error == "DENIED", r
    assert "Insufficient access" in r.message and "uid=intruder," + org_ldif.SERVICES in r.message
    assert root_search(env, org_ldif.SUFFIX, "(uid=intruder)", "uid") == ""


def test_survives_a_directory_restart(env):
    p = subprocess.Popen([driver_path(), "-c", env.ternd.conf_path, "-"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def ask(*args):
        p.stdin.write(("\t".join(args) + "\n").encode())
        p.stdin.flush()
        lines = []
        while True:
            line = p.stdout.readline().decode().rstrip("\n")
            assert line or p.poll() is None, "driver died"
            if line == ".":
                return lines
            lines.append(line)

    try:
        assert ask("user-get", "alice")[0] == "ok"
        env.slapd.stop()
        down = ask("user-get", "alice")
        assert down[0].startswith("error=UNAVAILABLE"), down
        env.slapd.start()
        # the handle reconnects by itself
        assert ask("user-get", "alice")[0] == "ok"
        assert ask("user-create", "tycho", "tycho@example.test")[0] == "ok"
    finally:
        p.stdin.close()
        p.wait(timeout=30)
        err = p.stderr.read()
        p.stdout.close()
        p.stderr.close()
    assert p.returncode == 0
    assert not [m for m in harness.SANITIZER_MARKS if m in err], err.decode(errors="replace")
    eventually(lambda: rcpt_code(env, "tycho@example.test") == 250, what="ternd back")
