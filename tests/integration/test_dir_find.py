"""test_dir_find.py - dir_find_user() (directory/dir.h), the directory side
of the SCRAM-SHA-256, GSSAPI and EXTERNAL logins, against the real slapd,
driven by the test helper tern-dirfind-test (built beside ternd): a user
found by login and by address, disabled / ambiguous / unknown entries not
found, the SCRAM-SHA-256 verifier from authPassword (equal to the
fixture's) and from userPassword ({SCRAM-SHA-256}, both forms), a bad
verifier skipped without being logged, the directory down, and the AD
profile's sAMAccountName and userPrincipalName logins. Also the
ACLs: the service account reads authPassword, an ordinary user does not.
"""
import os
import subprocess

import pytest

import harness
from harness import org_ldif

PEOPLE = org_ldif.PEOPLE


def driver_path():
    return os.path.join(os.path.dirname(harness.ternd_path()), "tern-dirfind-test")


def find(conf, *queries, scram=False, secret=False, timeout=60):
    args = [driver_path(), "-c", conf]
    if scram:
        args.append("-s")
    if secret:
        args.append("--show-secret")
    r = subprocess.run(args + list(queries), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=harness.sanitizer_env())
    err = r.stderr.decode(errors="replace")
    report = [m for m in harness.SANITIZER_MARKS if m in r.stderr]
    assert not report, err
    assert r.returncode == 0, err
    out = []
    for line in r.stdout.decode().splitlines():
        head, _, dn = line.partition(" dn=")
        rec = dict(p.split("=", 1) for p in head.split(" ") if "=" in p)
        if dn:
            rec["dn"] = dn
        out.append(rec)
    assert len(out) == len(queries), (out, err)
    return out, err


@pytest.fixture(scope="module")
def env():
    e = harness.Env(start_ternd=False)
    try:
        e.t = e.new_ternd({"directory": {"cache_ttl": "1s", "negative_ttl": "1s"}}, start=False)
        e.t_up = e.new_ternd({"directory": {"scram_attribute": "userPassword"}}, name="up",
                             start=False)
    except BaseException:
        e.close()
        raise
    yield e
    e.close()


def test_found_by_login_and_address(env):
    (by_login, by_mail, upper), _ = find(env.t.conf_path, "login:alice",
                                         "attr:mail:" + org_ldif.ALICE_ADDRS[0],
                                         "login:ALICE")
    assert by_login["status"] == "OK" and by_login["login"] == "alice"
    assert by_login["dn"] == "uid=alice," + PEOPLE
    assert by_login["scram"] == "no"  # not asked for
    assert by_mail["status"] == "OK" and by_mail["id"] == by_login["id"]
    assert upper["status"] == "OK" and upper["id"] == by_login["id"]


def test_not_found(env):
    # carol is disabled; departmentNumber=sales is user05 and user06 (and
    # carol): two enabled entries; ghost does not exist.
    res, err = find(env.t.conf_path, "login:carol", "attr:mail:" + org_ldif.CAROL_ADDR,
                    "attr:departmentNumber:sales", "login:ghost", "attr:mail:nobody@example.test",
                    "login:")
    assert [r["status"] for r in res] == ["NOTFOUND"] * 6
    assert "login-ambiguous departmentNumber=sales" in err
    assert "uid=user05," + PEOPLE in err and "uid=user06," + PEOPLE in err
    # The found user's filter is the user filter: a list's address is no user.
    (lst,), _ = find(env.t.conf_path, "attr:mailLocalAddress:" + org_ldif.STAFF_ADDR)
    assert lst["status"] == "NOTFOUND"
    # Filter values are escaped (RFC 4515): no injection.
    (inj,), _ = find(env.t.conf_path, "attr:mail:*")
    assert inj["status"] == "NOTFOUND"
    (bad,), _ = find(env.t.conf_path, "attr:ma(il:x")
    assert bad["status"] == "PERMFAIL"


def test_scram_verifier_from_authpassword(env):
    queries = ["login:%s" % login for login in org_ldif.SCRAM_USERS] + ["login:alice"]
    res, err = find(env.t.conf_path, *queries, scram=True, secret=True)
    for login, r in zip(org_ldif.SCRAM_USERS, res):
        assert r["status"] == "OK" and r["scram"] == "yes", r
        assert r["verifier"] == org_ldif.scram_verifier_for(login)
        assert org_ldif.scram_check(r["verifier"], org_ldif.password_for(login))
    assert res[-1]["status"] == "OK" and res[-1]["scram"] == "no"
    # Without --show-secret the verifier is never printed, nor logged.
    res, err = find(env.t.conf_path, "login:user01", scram=True)
    assert res[0]["scram"] == "yes" and "verifier" not in res[0]
    stored = org_ldif.scram_verifier_for("user01").split("$")[2]
    assert stored not in err


def test_scram_by_address(env):
    (r,), _ = find(env.t.conf_path, "attr:mail:user02@example.test", scram=True, secret=True)
    assert r["status"] == "OK" and r["verifier"] == org_ldif.scram_verifier_for("user02")


def test_authpassword_acl(env):
    """The service account reads authPassword; a user, even its owner, does not."""
    dn = "uid=user01," + PEOPLE
    ldif = env.slapd.ldapsearch(dn, "(objectClass=*)", "authPassword")
    assert "authPassword: SCRAM-SHA-256$4096:" in ldif
    for who in ("user01", "user02"):
        r = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", env.slapd.uri, "-D",
                            "uid=%s,%s" % (who, PEOPLE), "-w", org_ldif.password_for(who),
                            "-b", dn, "-s", "base", "(objectClass=*)", "authPassword"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        # Its owner sees the entry without the attribute; another user
        # does not even see the entry (noSuchObject).
        assert r.returncode in (0, 32) and b"authPassword" not in r.stdout, r


def test_invalid_verifier_skipped(env):
    dn = "uid=user03," + PEOPLE
    good = org_ldif.scram_verifier_for("user03")
    broken = "SCRAM-SHA-256$4096:c2hvcnQ=$AAAA:BBBB"  # 5-byte salt, short keys
    env.slapd.modify("dn: %s\nchangetype: modify\nreplace: authPassword\n"
                     "authPassword: %s\nauthPassword: %s\n" % (dn, broken, good))
    try:
        (r,), err = find(env.t.conf_path, "login:user03", scram=True, secret=True)
        assert r["status"] == "OK" and r["verifier"] == good
        assert "scram-verifier-invalid" in err and broken not in err
        env.slapd.modify("dn: %s\nchangetype: modify\nreplace: authPassword\n"
                         "authPassword: %s\n" % (dn, broken))
        (r,), err = find(env.t.conf_path, "login:user03", scram=True)
        assert r["status"] == "OK" and r["scram"] == "no"
    finally:
        env.slapd.modify("dn: %s\nchangetype: modify\nreplace: authPassword\n"
                         "authPassword: %s\n" % (dn, good))


@pytest.mark.parametrize("form", ["userpassword", "dovecot"])
def test_scram_from_userpassword(env, form):
    login = org_ldif.SCRAM_USERPASSWORD_LOGIN
    salt = os.urandom(16)
    value = org_ldif.scram_verifier(org_ldif.password_for(login), salt, form=form)
    env.slapd.modify("\n".join([
        "dn: " + org_ldif.SCRAM_USERPASSWORD_DN, "changetype: add",
        "objectClass: inetOrgPerson", "uid: " + login, "cn: Scram Userpassword",
        "sn: Userpassword", "mail: %s@example.test" % login, "userPassword: " + value, ""]))
    try:
        (r, other), _ = find(env.t_up.conf_path, "login:" + login, "login:user01", scram=True,
                             secret=True)
        assert r["status"] == "OK" and r["scram"] == "yes"
        assert r["verifier"] == org_ldif.scram_verifier(org_ldif.password_for(login), salt)
        # user01's userPassword is {SSHA}, and unreadable anyway.
        assert other["status"] == "OK" and other["scram"] == "no"
    finally:
        env.slapd.modify("dn: %s\nchangetype: delete\n" % org_ldif.SCRAM_USERPASSWORD_DN)


def test_directory_down(env):
    env.slapd.kill()
    try:
        (r, s), _ = find(env.t.conf_path, "login:bob", "login:user01", scram=True)
        assert r["status"] == "TEMPFAIL" and s["status"] == "TEMPFAIL"
    finally:
        env.slapd.start()
    (r,), _ = find(env.t.conf_path, "login:bob")
    assert r["status"] == "OK"


@pytest.fixture(scope="module")
def ad_env():
    e = harness.Env(start_ternd=False, flavour="ad")
    try:
        e.t = e.new_ternd({"directory": {"profile": "ad"}}, start=False)
    except BaseException:
        e.close()
        raise
    yield e
    e.close()


def test_ad_logins(ad_env):
    upn = "user01@" + org_ldif.AD_UPN_SUFFIX
    res, _ = find(ad_env.t.conf_path, "login:user01", "login:" + upn, "login:carol",
                  "login:ws01$", "attr:mail:user02@example.test")
    sam, by_upn, carol, machine, by_mail = res
    assert sam["status"] == "OK" and sam["login"] == "user01"
    assert sam["dn"] == org_ldif.ad_user_dn("user01")
    assert sam["id"] == org_ldif.ad_guid("user01")[1]
    assert by_upn["status"] == "OK" and by_upn["id"] == sam["id"]
    assert carol["status"] == "NOTFOUND"  # userAccountControl: disabled
    assert machine["status"] == "NOTFOUND"  # a computer is no user
    assert by_mail["status"] == "OK" and by_mail["login"] == "user02"
