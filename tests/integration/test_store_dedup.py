"""A message to a list is stored once: one 1 MB message to a list of 100
users grows the LMDB environment by well under 2 MB (100 copies would be
about 75 MB even after compression), and every member can read it."""
import base64
import os
import random

import pytest

import harness
from harness import make_message, unique_token
import org_ldif

LIST_ADDR = "hundred@example.test"
EXTRA_USERS = 40  # the fixture has 60 numbered users; 100 members in all


def _add_list(slapd):
    members = ["uid=%s,%s" % (org_ldif.user_login(i), org_ldif.PEOPLE)
               for i in range(1, org_ldif.DEFAULT_USERS + 1)]
    ldif = []
    for i in range(EXTRA_USERS):
        login = "extra%02d" % i
        ldif.append("\n".join([
            "dn: uid=%s,%s" % (login, org_ldif.PEOPLE),
            "changetype: add",
            "objectClass: inetOrgPerson",
            "uid: " + login,
            "cn: Extra %d" % i,
            "sn: Extra",
            "mail: %s@example.test" % login,
            "userPassword: " + org_ldif.ssha(org_ldif.password_for(login)),
        ]))
        members.append("uid=%s,%s" % (login, org_ldif.PEOPLE))
    ldif.append("\n".join([
        "dn: cn=hundred,%s" % org_ldif.GROUPS,
        "changetype: add",
        "objectClass: groupOfNames",
        "objectClass: inetLocalMailRecipient",
        "cn: hundred",
        "mailLocalAddress: " + LIST_ADDR,
    ] + ["member: " + m for m in members]))
    slapd.modify("\n\n".join(ldif) + "\n")
    assert len(members) == 100


def _data_size(t):
    return os.path.getsize(os.path.join(t.state_dir, "mail", "data.mdb"))


@pytest.fixture(scope="module")
def env():
    e = harness.Env({"limits": {"message_size_max": "4M"}})
    yield e
    e.close()


def test_list_message_stored_once(env):
    t = env.ternd
    _add_list(env.slapd)
    # A first small message creates the 100 users' mailboxes, so that what
    # is measured below is the big message alone.
    t.send(LIST_ADDR, make_message(unique_token("warm"), to=LIST_ADDR))
    before = _data_size(t)

    # 1 MB of base64 text from random bytes: it compresses only to about
    # 75 %, so the figure below shows sharing, not compression.
    rnd = random.Random(4242)
    raw = bytes(rnd.getrandbits(8) for _ in range(780 * 1024))
    b64 = base64.encodebytes(raw).replace(b"\n", b"\r\n").decode()
    token = unique_token("big")
    msg = make_message(token, body=b64, to=LIST_ADDR)
    assert len(msg) > 1024 * 1024
    code, _ = t.send(LIST_ADDR, msg)
    assert code == 250
    grown = _data_size(t) - before
    assert grown < 2 * 1024 * 1024, "environment grew by %d bytes" % grown

    # Each member reads the whole message, with the trace headers kept
    # beside the shared body.
    for login in ("user01", "user60", "extra00", "extra39"):
        found = harness.find_token(t.mailbox(login), token)
        head, body = harness.split_message(found)
        assert head.startswith(b"Return-Path: <sender@example.org>\r\n"
                               b"Delivered-To: " + LIST_ADDR.encode() + b"\r\n")
        assert body == b64.encode()
