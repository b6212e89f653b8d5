"""test_admin_provision.py - provisioning over tern-admind's API, end to end.

A real slapd (the fixture organisation), a real ternd and tern-admind on
one config file. Admins are the fixture's cn=mail-admins (user45, user46);
alice is a directory user who is not one. ternd caches directory answers
for 300 s (positive and negative) here, so every check right after a
write proves that tern-admind told ternd to drop its cache
("directory.flush" on the control socket) rather than that a TTL ran out.

Checked: a user created over the API is in slapd (ldapsearch: attributes
and a hashed userPassword), receives mail over SMTP and logs in over IMAP
at once; disable stops both at once and enable brings them back; rename
with and without keeping the old address; aliases add/remove with mail to
the alias; a list with members receives and fans out; quota PUT visible in
GET and in slapd; delete refuses mail; a user added with ldapadd shows up
in GET /api/v1/users and receives mail with no Tern command. For every
provisioning endpoint: 401 without credentials, 403 for a non-admin, 400
for malformed JSON, and a table of bad values answered 400 naming the
field. Writes are audited; no password reaches the audit log or stderr.
"""
import json
import os
import time

import pytest

import harness
from harness import org_ldif
from test_admind import Admind, basic, call
from test_dir_admin import attr_values, imap_login_fails, imap_tokens, rcpt_code, root_search

ADMIN = org_ldif.ADMIN_LOGINS[0]  # user45, in cn=mail-admins
NON_ADMIN = "alice"
PEOPLE = org_ldif.PEOPLE
GROUPS = org_ldif.GROUPS
# Every password the tests send through the API: none may be logged.
SECRETS = []


def secret(tag):
    pw = "S3cret-%s-%s" % (tag, harness.unique_token("p"))
    SECRETS.append(pw)
    return pw


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
                  "writer_password_file": env.writer_secret,
                  # Every call checks the password against the directory.
                  "auth_cache_ttl": "0"},
        # Long caches and no sync consumer: only directory.flush can make a
        # change visible.
        "directory": {"quota_attr": "employeeNumber", "cache_ttl": "300s",
                      "negative_ttl": "300s", "timeout": "3s", "sync": "no"},
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


def api(admind, method, path, body=None, auth=None, raw=None):
    status, _, payload = call(admind, method, path, body=body, raw=raw,
                              auth=auth or basic(ADMIN))
    return status, payload


def ok(admind, method, path, body=None, expect=200):
    status, payload = api(admind, method, path, body)
    assert status == expect, (method, path, status, payload)
    return payload


def deliver(env, addr, token):
    code, text = env.ternd.send(addr, harness.make_message(token, to=addr))
    assert code == 250, (addr, code, text)


# ---- users, end to end ----

def test_create_user_mail_and_login_at_once(setup):
    env, admind = setup
    addr = "newton@example.test"
    # Looked up before it exists: ternd now caches "no such user" for 300 s.
    assert rcpt_code(env, addr) == 550
    pw = secret("newton")
    u = ok(admind, "POST", "/api/v1/users",
           {"mail": addr, "password": pw, "name": "Isaac Newton",
            "aliases": ["isaac@example.net"], "quota": 1 << 20}, expect=201)
    assert u["login"] == "newton" and u["mail"] == addr, u
    assert u["aliases"] == ["isaac@example.net"] and u["quota"] == 1 << 20, u
    assert u["disabled"] is False and u["id"] and u["dn"] == "uid=newton," + PEOPLE, u

    ldif = root_search(env, PEOPLE, "(uid=newton)")
    assert attr_values(ldif, "mail") == [addr]
    assert attr_values(ldif, "cn") == ["Isaac Newton"]
    assert attr_values(ldif, "displayName") == ["Isaac Newton"]
    assert attr_values(ldif, "sn") == ["Newton"]
    assert attr_values(ldif, "mailLocalAddress") == ["isaac@example.net"]
    assert attr_values(ldif, "employeeNumber") == [str(1 << 20)]
    stored = attr_values(ldif, "userPassword")
    assert len(stored) == 1 and stored[0].startswith("{") and pw not in stored[0], stored

    # No cache wait: mail and login work right away.
    tok = harness.unique_token("n")
    deliver(env, addr, tok)
    tok2 = harness.unique_token("n")
    deliver(env, "isaac@example.net", tok2)
    subjects = imap_tokens(env, "newton", pw)
    assert tok in subjects and tok2 in subjects

    status, body = api(admind, "GET", "/api/v1/users/newton")
    assert status == 200 and body == u, body
    status, body = api(admind, "GET", "/api/v1/users/isaac@example.net")
    assert status == 200 and body["login"] == "newton", body
    # The stable id (entryUUID) works as {id} too, as in the mailbox calls.
    status, body = api(admind, "GET", "/api/v1/users/" + u["id"])
    assert status == 200 and body["login"] == "newton", body
    assert ok(admind, "GET", "/api/v1/users/%s/quota" % u["id"].upper())["quota"] == 1 << 20
    # The same login or address again: 409 naming the field.
    status, body = api(admind, "POST", "/api/v1/users", {"mail": addr, "password": pw})
    assert status == 409 and body["error"]["field"] in ("login", "mail"), body
    status, body = api(admind, "POST", "/api/v1/users",
                       {"mail": "other@example.test", "login": "x2", "password": pw,
                        "aliases": ["isaac@example.net"]})
    assert status == 409 and body["error"]["field"] == "aliases", body


def test_disable_and_enable_at_once(setup):
    env, admind = setup
    pw = secret("hooke")
    ok(admind, "POST", "/api/v1/users", {"mail": "hooke@example.test", "password": pw},
       expect=201)
    # Warm ternd's positive cache (300 s) for the address and the login.
    assert rcpt_code(env, "hooke@example.test") == 250
    assert not imap_login_fails(env, "hooke", pw)

    u = ok(admind, "POST", "/api/v1/users/hooke/disable")
    assert u["disabled"] is True
    assert attr_values(root_search(env, PEOPLE, "(uid=hooke)"), "shadowExpire") == ["1"]
    assert imap_login_fails(env, "hooke", pw)
    assert rcpt_code(env, "hooke@example.test") == 550
    # Idempotent, and shown by GET.
    assert ok(admind, "POST", "/api/v1/users/hooke/disable")["disabled"] is True
    assert ok(admind, "GET", "/api/v1/users/hooke")["disabled"] is True

    u = ok(admind, "POST", "/api/v1/users/hooke@example.test/enable")
    assert u["disabled"] is False
    assert rcpt_code(env, "hooke@example.test") == 250
    assert not imap_login_fails(env, "hooke", pw)


def test_password_change(setup):
    env, admind = setup
    pw1, pw2 = secret("boyle1"), secret("boyle2")
    ok(admind, "POST", "/api/v1/users", {"mail": "boyle@example.test", "password": pw1},
       expect=201)
    assert not imap_login_fails(env, "boyle", pw1)
    body = ok(admind, "POST", "/api/v1/users/boyle/password", {"password": pw2})
    assert body == {"password_set": True}
    assert imap_login_fails(env, "boyle", pw1)
    assert not imap_login_fails(env, "boyle", pw2)


def test_rename_keep_old_and_not(setup):
    env, admind = setup
    pw = secret("halley")
    ok(admind, "POST", "/api/v1/users", {"mail": "halley@example.test", "password": pw},
       expect=201)
    assert rcpt_code(env, "edmond@example.test") == 550  # cached as unknown
    u = ok(admind, "POST", "/api/v1/users/halley/rename",
           {"mail": "edmond@example.test", "keep_old_as_alias": True})
    assert u["mail"] == "edmond@example.test" and "halley@example.test" in u["aliases"], u
    t1, t2 = harness.unique_token("r"), harness.unique_token("r")
    deliver(env, "edmond@example.test", t1)
    deliver(env, "halley@example.test", t2)
    subjects = imap_tokens(env, "halley", pw)
    assert t1 in subjects and t2 in subjects

    u = ok(admind, "POST", "/api/v1/users/halley/rename",
           {"mail": "comet@example.test", "keep_old_as_alias": False})
    assert u["mail"] == "comet@example.test" and "edmond@example.test" not in u["aliases"], u
    assert rcpt_code(env, "edmond@example.test") == 550
    assert rcpt_code(env, "comet@example.test") == 250
    assert rcpt_code(env, "halley@example.test") == 250  # still the kept alias
    assert attr_values(root_search(env, PEOPLE, "(uid=halley)"), "mail") == \
        ["comet@example.test"]


def test_aliases(setup):
    env, admind = setup
    pw = secret("kepler")
    ok(admind, "POST", "/api/v1/users", {"mail": "kepler@example.test", "password": pw},
       expect=201)
    alias = "johannes@example.net"
    assert rcpt_code(env, alias) == 550
    body = ok(admind, "POST", "/api/v1/aliases", {"address": "Johannes@Example.NET",
                                                  "user": "kepler"}, expect=201)
    assert body == {"address": alias, "user": "kepler"}
    tok = harness.unique_token("a")
    deliver(env, alias, tok)
    assert tok in imap_tokens(env, "kepler", pw)
    assert {"address": alias, "user": "kepler"} in \
        ok(admind, "GET", "/api/v1/aliases?user=kepler")["aliases"]
    assert {"address": alias, "user": "kepler"} in ok(admind, "GET", "/api/v1/aliases")["aliases"]
    # Taken by someone else, and the primary address is no alias.
    status, body = api(admind, "POST", "/api/v1/aliases",
                       {"address": "bob@example.test", "user": "kepler"})
    assert status == 409 and body["error"]["field"] == "address", body
    status, body = api(admind, "DELETE", "/api/v1/aliases/kepler@example.test")
    assert status == 409 and body["error"]["field"] == "address", body
    status, body = api(admind, "POST", "/api/v1/aliases",
                       {"address": "x@example.net", "user": "nobody-here"})
    assert status == 404, body

    assert ok(admind, "DELETE", "/api/v1/aliases/" + alias) == {"deleted": True}
    assert rcpt_code(env, alias) == 550
    status, body = api(admind, "DELETE", "/api/v1/aliases/" + alias)
    assert status == 404, body


def test_patch_user(setup):
    env, admind = setup
    pw = secret("brahe")
    ok(admind, "POST", "/api/v1/users",
       {"mail": "brahe@example.test", "password": pw, "aliases": ["tycho@example.test"]},
       expect=201)
    u = ok(admind, "PATCH", "/api/v1/users/brahe",
           {"name": "Tycho Brahe", "aliases": ["tb@example.test"], "quota": "2M"})
    assert u["name"] == "Tycho Brahe" and u["aliases"] == ["tb@example.test"], u
    assert u["quota"] == 2 << 20
    ldif = root_search(env, PEOPLE, "(uid=brahe)")
    assert attr_values(ldif, "mailLocalAddress") == ["tb@example.test"]
    assert attr_values(ldif, "cn") == ["Tycho Brahe"]
    assert rcpt_code(env, "tb@example.test") == 250
    assert rcpt_code(env, "tycho@example.test") == 550
    # Nothing to change is fine; null removes the quota.
    assert ok(admind, "PATCH", "/api/v1/users/brahe", {})["login"] == "brahe"
    assert ok(admind, "PATCH", "/api/v1/users/brahe", {"quota": None})["quota"] is None
    assert attr_values(root_search(env, PEOPLE, "(uid=brahe)"), "employeeNumber") == []


def test_quota(setup):
    env, admind = setup
    pw = secret("galileo")
    ok(admind, "POST", "/api/v1/users", {"mail": "galileo@example.test", "password": pw},
       expect=201)
    q = ok(admind, "GET", "/api/v1/users/galileo/quota")
    assert q["quota"] is None, q
    deliver(env, "galileo@example.test", harness.unique_token("q"))
    q = ok(admind, "PUT", "/api/v1/users/galileo/quota", {"quota": 5 << 20})
    assert q["quota"] == 5 << 20 and q["messages"] == 1 and q["bytes"] > 0, q
    assert ok(admind, "GET", "/api/v1/users/galileo/quota") == q
    assert ok(admind, "GET", "/api/v1/users/galileo")["quota"] == 5 << 20
    assert attr_values(root_search(env, PEOPLE, "(uid=galileo)"), "employeeNumber") == \
        [str(5 << 20)]
    q = ok(admind, "PUT", "/api/v1/users/galileo/quota", {"quota": None})
    assert q["quota"] is None


def test_delete_user(setup):
    env, admind = setup
    pw = secret("cassini")
    ok(admind, "POST", "/api/v1/users", {"mail": "cassini@example.test", "password": pw},
       expect=201)
    assert rcpt_code(env, "cassini@example.test") == 250  # cached as known for 300 s
    assert not imap_login_fails(env, "cassini", pw)
    assert ok(admind, "DELETE", "/api/v1/users/cassini") == {"deleted": True}
    assert root_search(env, PEOPLE, "(uid=cassini)") == ""
    assert rcpt_code(env, "cassini@example.test") == 550
    assert imap_login_fails(env, "cassini", pw)
    status, body = api(admind, "GET", "/api/v1/users/cassini")
    assert status == 404 and body["error"]["code"] == "not_found", body
    status, body = api(admind, "DELETE", "/api/v1/users/cassini")
    assert status == 404, body


def test_lists(setup):
    env, admind = setup
    pws = {}
    for login in ("hubble", "lemaitre"):
        pws[login] = secret(login)
        ok(admind, "POST", "/api/v1/users",
           {"mail": "%s@example.test" % login, "password": pws[login]}, expect=201)
    addr = "cosmology@example.test"
    assert rcpt_code(env, addr) == 550
    body = ok(admind, "POST", "/api/v1/lists",
              {"name": "cosmology", "address": addr, "members": ["hubble"]}, expect=201)
    assert body["name"] == "cosmology" and body["address"] == addr, body
    assert body["members"] == ["hubble@example.test"] and body["members_count"] == 1, body
    ldif = root_search(env, GROUPS, "(cn=cosmology)")
    assert attr_values(ldif, "member") == ["uid=hubble," + PEOPLE]

    body = ok(admind, "POST", "/api/v1/lists/cosmology/members",
              {"member": "lemaitre@example.test"})
    assert sorted(body["members"]) == ["hubble@example.test", "lemaitre@example.test"], body
    tok = harness.unique_token("l")
    deliver(env, addr, tok)
    for login in ("hubble", "lemaitre"):
        assert tok in imap_tokens(env, login, pws[login]), login
    assert any(l["address"] == addr and l["members_count"] == 2
               for l in ok(admind, "GET", "/api/v1/lists")["lists"])
    got = ok(admind, "GET", "/api/v1/lists/" + addr)
    assert got["dn"] == "cn=cosmology," + GROUPS and len(got["details"]) == 2, got
    status, body = api(admind, "POST", "/api/v1/lists/cosmology/members", {"member": "hubble"})
    assert status == 409 and body["error"]["field"] == "member", body

    assert ok(admind, "DELETE", "/api/v1/lists/cosmology/members/hubble") == {"deleted": True}
    assert ok(admind, "GET", "/api/v1/lists/cosmology/members")["members"] == \
        ["lemaitre@example.test"]
    tok2 = harness.unique_token("l")
    deliver(env, addr, tok2)
    assert tok2 in imap_tokens(env, "lemaitre", pws["lemaitre"])
    assert tok2 not in imap_tokens(env, "hubble", pws["hubble"])

    # A new address; renaming is refused with 501 naming the field.
    body = ok(admind, "PATCH", "/api/v1/lists/cosmology", {"address": "universe@example.test"})
    assert body["address"] == "universe@example.test", body
    assert rcpt_code(env, addr) == 550
    assert rcpt_code(env, "universe@example.test") == 250
    status, body = api(admind, "PATCH", "/api/v1/lists/cosmology", {"name": "astro"})
    assert status == 501 and body["error"]["field"] == "name", body
    status, body = api(admind, "POST", "/api/v1/lists",
                       {"name": "cosmology", "address": "c2@example.test"})
    assert status == 409 and body["error"]["field"] == "name", body

    assert ok(admind, "DELETE", "/api/v1/lists/cosmology") == {"deleted": True}
    assert rcpt_code(env, "universe@example.test") == 550
    status, body = api(admind, "GET", "/api/v1/lists/cosmology")
    assert status == 404, body


def test_ldapadd_user_appears_and_receives(setup):
    env, admind = setup
    pw = "direct-pw-1"
    env.slapd.modify("\n".join([
        "dn: uid=direct1," + PEOPLE, "changetype: add",
        "objectClass: inetOrgPerson", "uid: direct1", "cn: Direct One", "sn: One",
        "mail: direct1@example.test", "userPassword: " + org_ldif.ssha(pw), ""]))
    body = ok(admind, "GET", "/api/v1/users?q=direct1")
    assert [u["login"] for u in body["users"]] == ["direct1"], body
    assert body["users"][0]["mail"] == "direct1@example.test"
    tok = harness.unique_token("d")
    deliver(env, "direct1@example.test", tok)
    assert tok in imap_tokens(env, "direct1", pw)


def test_user_list_paging(setup):
    _, admind = setup
    seen = []
    cursor = None
    for _ in range(100):
        path = "/api/v1/users?limit=7" + ("&cursor=" + cursor if cursor else "")
        body = ok(admind, "GET", path)
        assert len(body["users"]) <= 7
        seen += [u["login"] for u in body["users"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    for login in ("alice", "bob", "user01", "user60", ADMIN):
        assert login in seen
    everyone = ok(admind, "GET", "/api/v1/users?limit=1000")
    assert [u["login"] for u in everyone["users"]] == seen
    # Search matches login, address, name and aliases, any case.
    found = ok(admind, "GET", "/api/v1/users?q=A.SMITH")["users"]
    assert [u["login"] for u in found] == ["alice"], found
    status, body = api(admind, "GET", "/api/v1/users?limit=0")
    assert status == 400 and body["error"]["field"] == "limit", body


# ---- every endpoint: 401, 403, 400 ----

ENDPOINTS = [
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/bob"),
    ("PATCH", "/api/v1/users/bob"),
    ("DELETE", "/api/v1/users/bob"),
    ("POST", "/api/v1/users/bob/disable"),
    ("POST", "/api/v1/users/bob/enable"),
    ("POST", "/api/v1/users/bob/password"),
    ("POST", "/api/v1/users/bob/rename"),
    ("GET", "/api/v1/users/bob/quota"),
    ("PUT", "/api/v1/users/bob/quota"),
    ("GET", "/api/v1/aliases"),
    ("POST", "/api/v1/aliases"),
    ("DELETE", "/api/v1/aliases/a.smith@example.test"),
    ("GET", "/api/v1/lists"),
    ("POST", "/api/v1/lists"),
    ("GET", "/api/v1/lists/staff"),
    ("PATCH", "/api/v1/lists/staff"),
    ("DELETE", "/api/v1/lists/staff"),
    ("GET", "/api/v1/lists/staff/members"),
    ("POST", "/api/v1/lists/staff/members"),
    ("DELETE", "/api/v1/lists/staff/members/bob"),
]


def test_every_endpoint_refuses_without_admin_credentials(setup):
    env, admind = setup
    before = root_search(env, org_ldif.SUFFIX, "(|(uid=bob)(cn=staff))")
    for method, path in ENDPOINTS:
        status, _, body = call(admind, method, path, body={})
        assert status == 401 and body["error"]["code"] == "unauthorized", (method, path, body)
        status, _, body = call(admind, method, path, body={}, auth=basic(ADMIN, "wrong-pw"))
        assert status == 401, (method, path, body)
        status, _, body = call(admind, method, path, body={}, auth=basic(NON_ADMIN))
        assert status == 403 and body["error"]["code"] == "forbidden", (method, path, body)
        status, _, body = call(admind, method, path, raw=b'{"mail": ', auth=basic(ADMIN))
        assert status == 400 and body["error"]["code"] == "malformed_json", (method, path, body)
    # Nothing was changed by any of them.
    assert root_search(env, org_ldif.SUFFIX, "(|(uid=bob)(cn=staff))") == before


BAD_FIELDS = [
    # (method, path, body, field named)
    ("POST", "/api/v1/users", {"password": "x"}, "mail"),
    ("POST", "/api/v1/users", {"mail": "nobody@example.test"}, "password"),
    ("POST", "/api/v1/users", {"mail": 5, "password": "x"}, "mail"),
    ("POST", "/api/v1/users", {"mail": "not-an-address", "password": "x"}, "mail"),
    ("POST", "/api/v1/users", {"mail": "x@elsewhere.example", "password": "x"}, "mail"),
    ("POST", "/api/v1/users", {"mail": "x@example.test", "password": ""}, "password"),
    ("POST", "/api/v1/users", {"mail": "x@example.test", "password": "a\u0001b"}, "password"),
    ("POST", "/api/v1/users", {"mail": "x@example.test", "password": "x", "login": "Bad Login!"},
     "login"),
    ("POST", "/api/v1/users", {"mail": "-x@example.test", "password": "x"}, "login"),
    ("POST", "/api/v1/users", {"mail": "x@example.test", "password": "x", "quota": -1}, "quota"),
    ("POST", "/api/v1/users", {"mail": "x@example.test", "password": "x", "quota": "10X"},
     "quota"),
    ("POST", "/api/v1/users", {"mail": "x@example.test", "password": "x", "aliases": "a@b"},
     "aliases"),
    ("POST", "/api/v1/users", {"mail": "x@example.test", "password": "x",
                               "aliases": ["bad alias"]}, "aliases"),
    ("POST", "/api/v1/users", {"mail": "x@example.test", "password": "x", "name": " x"},
     "name"),
    ("POST", "/api/v1/users", {"mail": "x@example.test", "password": "x", "qouta": 1}, "qouta"),
    ("PATCH", "/api/v1/users/bob", {"quota": True}, "quota"),
    ("PATCH", "/api/v1/users/bob", {"name": ""}, "name"),
    ("PATCH", "/api/v1/users/bob", {"aliases": [1]}, "aliases"),
    ("PATCH", "/api/v1/users/bob", {"aliases": ["x@elsewhere.example"]}, "aliases"),
    ("PATCH", "/api/v1/users/bob", {"forward": "x@remote.example"}, "forward"),
    ("POST", "/api/v1/users/bob/password", {}, "password"),
    ("POST", "/api/v1/users/bob/password", {"password": 12}, "password"),
    ("POST", "/api/v1/users/bob/rename", {}, "mail"),
    ("POST", "/api/v1/users/bob/rename", {"mail": "bob@elsewhere.example"}, "mail"),
    ("POST", "/api/v1/users/bob/rename", {"mail": "b2@example.test", "keep_old_as_alias": "yes"},
     "keep_old_as_alias"),
    ("POST", "/api/v1/users/bob/disable", {"now": True}, "now"),
    ("PUT", "/api/v1/users/bob/quota", {}, "quota"),
    ("PUT", "/api/v1/users/bob/quota", {"quota": "lots"}, "quota"),
    ("PUT", "/api/v1/users/bob/quota", {"quota": 1.5}, "quota"),
    ("POST", "/api/v1/aliases", {"user": "bob"}, "address"),
    ("POST", "/api/v1/aliases", {"address": "b3@example.test"}, "user"),
    ("POST", "/api/v1/aliases", {"address": "no at sign", "user": "bob"}, "address"),
    ("DELETE", "/api/v1/aliases/no-at-sign", None, "address"),
    ("POST", "/api/v1/lists", {"address": "l1@example.test"}, "name"),
    ("POST", "/api/v1/lists", {"name": "l1"}, "address"),
    ("POST", "/api/v1/lists", {"name": "Bad Name", "address": "l1@example.test"}, "name"),
    ("POST", "/api/v1/lists", {"name": "l1", "address": "l1@elsewhere.example"}, "address"),
    ("POST", "/api/v1/lists", {"name": "l1", "address": "l1@example.test", "members": "bob"},
     "members"),
    ("PATCH", "/api/v1/lists/staff", {"address": "bad"}, "address"),
    ("PATCH", "/api/v1/lists/staff", {"post": "anyone"}, "post"),
    ("POST", "/api/v1/lists/staff/members", {}, "member"),
    ("POST", "/api/v1/lists/staff/members", {"member": ["bob"]}, "member"),
    ("GET", "/api/v1/users?limit=many", None, "limit"),
]


@pytest.mark.parametrize("method,path,body,field", BAD_FIELDS,
                         ids=["%s %s %s" % (m, p, f) for m, p, _, f in BAD_FIELDS])
def test_bad_field_values_name_the_field(setup, method, path, body, field):
    env, admind = setup
    status, payload = api(admind, method, path, body)
    assert status == 400, (status, payload)
    assert payload["error"]["field"] == field, payload
    assert payload["error"]["message"], payload


def test_no_body_where_one_is_needed(setup):
    _, admind = setup
    for method, path in (("POST", "/api/v1/users"), ("PATCH", "/api/v1/users/bob"),
                         ("PUT", "/api/v1/users/bob/quota"), ("POST", "/api/v1/aliases"),
                         ("POST", "/api/v1/lists"), ("POST", "/api/v1/lists/staff/members")):
        status, payload = api(admind, method, path)
        assert status == 400 and payload["error"]["code"] == "missing_body", (path, payload)


# ---- audit and secrecy (last: it reads what the other tests did) ----

def test_zz_audit_log_and_no_password_anywhere(setup):
    env, admind = setup
    pw = secret("audit")
    ok(admind, "POST", "/api/v1/users", {"mail": "audited@example.test", "password": pw},
       expect=201)
    ok(admind, "POST", "/api/v1/users/audited/password", {"password": secret("audit2")})
    time.sleep(0.2)
    with open(os.path.join(env.ternd.state_dir, "audit.log")) as f:
        lines = [json.loads(line) for line in f]
    creates = [l for l in lines if l["method"] == "POST" and l["path"] == "/api/v1/users"
               and l["status"] == 201]
    assert any(l["params"]["mail"] == "audited@example.test" and l["admin"] == ADMIN
               and l["params"]["password"] == "***" and "uid=audited" in l["result"]
               for l in creates), creates
    assert any(l["path"] == "/api/v1/users/audited/password" and l["status"] == 200
               and l["params"] == {"password": "***"} for l in lines)
    # Refused writes are audited too.
    assert any(l["status"] == 403 and l["admin"] == NON_ADMIN for l in lines)
    texts = {"audit log": open(os.path.join(env.ternd.state_dir, "audit.log")).read(),
             "tern-admind stderr": admind.log(),
             "ternd stderr": env.ternd.log().decode(errors="replace")}
    assert len(SECRETS) > 5
    for name, text in texts.items():
        for s in SECRETS:
            assert s not in text, "%s holds a password" % name
    # The writer's own password neither.
    for name, text in texts.items():
        assert org_ldif.WRITER_PASSWORD not in text, name
    env.ternd.check_alive()
