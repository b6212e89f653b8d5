"""test_admin_scram.py - [admin] write_scram: tern-admind writes the
password's SCRAM-SHA-256 verifier (RFC 5803) into [directory]
scram_attribute (authPassword) whenever it sets a password: on user
create and on password change. Checked with ldapsearch as the service
account (the value verifies against the password, computed in Python),
that a user whose entry lacks authPasswordObject gets it, that the plain
password still logs in, that dir_find_user hands the new verifier out,
and that no verifier reaches the logs. Also the config refusal of
write_scram with scram_attribute = userPassword.
"""
import os
import subprocess

import pytest

import harness
from harness import org_ldif
from test_admind import Admind, basic, call
from test_dir_admin import attr_values
from test_dir_find import find

ADMIN = org_ldif.ADMIN_LOGINS[0]
PEOPLE = org_ldif.PEOPLE


@pytest.fixture(scope="module")
def setup():
    port = harness.free_port()
    env = harness.Env(start_ternd=False)
    env.writer_secret = os.path.join(env.tmp, "writer.secret")
    with open(env.writer_secret, "w") as f:
        f.write(org_ldif.WRITER_PASSWORD + "\n")
    os.chmod(env.writer_secret, 0o600)
    overrides = {
        "admin": {"listen": "127.0.0.1:%d" % port, "admin_group": org_ldif.ADMIN_GROUP_DN,
                  "threads": "2", "writer_bind_dn": org_ldif.WRITER_DN,
                  "writer_password_file": env.writer_secret, "write_scram": "yes"},
        "directory": {"cache_ttl": "1s", "negative_ttl": "1s"},
    }
    try:
        env.ternd = env.new_ternd(overrides)
        admind = Admind(env.ternd, port).start()
    except BaseException:
        env.close()
        raise
    yield env, admind
    try:
        admind.stop()
    finally:
        env.close()


def api(admind, method, path, body, expect):
    status, _, payload = call(admind, method, path, body=body, auth=basic(ADMIN))
    assert status == expect, (method, path, status, payload)
    return payload


def verifier(env, login):
    """authPassword as the service account reads it."""
    ldif = env.slapd.ldapsearch(PEOPLE, "(uid=%s)" % login, "authPassword", "objectClass")
    ldif = ldif.replace("\n ", "")  # unfold LDIF continuation lines
    vals = attr_values(ldif, "authPassword")
    assert len(vals) == 1, ldif
    return vals[0], attr_values(ldif, "objectClass")


def test_create_and_change_password_write_verifier(setup):
    env, admind = setup
    pw = "Scram-create-%s" % harness.unique_token("p")
    api(admind, "POST", "/api/v1/users", {"mail": "scrammy@example.test", "password": pw},
        201)
    v, classes = verifier(env, "scrammy")
    assert v.startswith("SCRAM-SHA-256$4096:"), v
    assert org_ldif.scram_check(v, pw)
    assert not org_ldif.scram_check(v, pw + "x")
    assert "authPasswordObject" in classes
    # The password itself is set as before: PLAIN logins work.
    env.ternd.imap_login("scrammy", pw).logout()
    # And ternd's dir_find_user hands out exactly that verifier.
    (r,), _ = find(env.ternd.conf_path, "login:scrammy", scram=True, secret=True)
    assert r["status"] == "OK" and r["verifier"] == v

    pw2 = "Scram-change-%s" % harness.unique_token("p")
    api(admind, "POST", "/api/v1/users/scrammy/password", {"password": pw2}, 200)
    v2, _ = verifier(env, "scrammy")
    assert org_ldif.scram_check(v2, pw2) and not org_ldif.scram_check(v2, pw)
    assert v2.split("$")[1] != v.split("$")[1]  # a fresh salt

    for text in (env.ternd.log().decode(errors="replace"), admind.log()):
        for secret in (v, v2, v.split("$")[2], v2.split("$")[2], pw, pw2):
            assert secret not in text


def test_existing_user_without_class_gets_it(setup):
    env, admind = setup
    ldif = env.slapd.ldapsearch(PEOPLE, "(uid=bob)", "objectClass")
    assert "authPasswordObject" not in ldif
    pw = "Scram-bob-%s" % harness.unique_token("p")
    api(admind, "POST", "/api/v1/users/bob/password", {"password": pw}, 200)
    v, classes = verifier(env, "bob")
    assert org_ldif.scram_check(v, pw) and "authPasswordObject" in classes
    env.ternd.imap_login("bob", pw).logout()


def test_write_scram_needs_another_attribute(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[server]\nhostname = mx.example.test\ndomains = example.test\n"
                    "state_dir = %s\n[directory]\nuri = ldap://127.0.0.1:1/\n"
                    "base = dc=example,dc=test\nscram_attribute = userPassword\n"
                    "[admin]\nadmin_group = cn=a,dc=example,dc=test\nwrite_scram = yes\n"
                    % tmp_path)
    r = subprocess.run([harness.ternd_path(), "-c", str(conf), "-t"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30, env=harness.sanitizer_env())
    assert r.returncode != 0
    assert b"write_scram needs [directory] scram_attribute" in r.stdout + r.stderr
