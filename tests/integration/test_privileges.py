"""test_privileges.py - ternd and tern-admind started as root with
[server] user = nobody: both bind first, then run as that user (DESIGN.md,
Security), and still do their work: ternd stores a delivery (its store
files belong to nobody), tern-admind answers an admin and finds the store
writable, and its audit log belongs to nobody.
"""
import os
import pwd

import pytest

import harness
import org_ldif
from test_admind import Admind, basic, call

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change user")


def uids(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line for %d" % pid)


def test_ternd_and_admind_run_as_the_configured_user():
    nobody = pwd.getpwnam("nobody")
    port = harness.free_port()
    env = harness.Env(start_ternd=False)
    admind = None
    try:
        # nobody must reach the state directory inside the test's dir.
        os.chmod(env.tmp, 0o755)
        secret = os.path.join(env.tmp, "writer.secret")
        with open(secret, "w") as f:
            f.write(org_ldif.WRITER_PASSWORD + "\n")
        os.chmod(secret, 0o600)
        env.ternd = env.new_ternd({
            "server": {"user": "nobody"},
            "admin": {"listen": "127.0.0.1:%d" % port, "admin_group": org_ldif.ADMIN_GROUP_DN,
                      "writer_bind_dn": org_ldif.WRITER_DN, "writer_password_file": secret},
        })
        t = env.ternd
        assert uids(t.proc.pid) == [nobody.pw_uid] * 4
        token = harness.unique_token("priv")
        t.send("user03@example.test", harness.make_message(token))
        assert token.encode() in b"".join(t.mailbox("user03"))
        data = os.path.join(t.state_dir, "mail", "data.mdb")
        assert os.stat(data).st_uid == nobody.pw_uid

        admind = Admind(t, port).start()
        assert uids(admind.proc.pid) == [nobody.pw_uid] * 4
        admin = org_ldif.ADMIN_LOGINS[0]
        auth = basic(admin)
        status, _, body = call(admind, "GET", "/api/v1/whoami", auth=auth)
        assert status == 200 and body["login"] == admin, body
        status, _, body = call(admind, "GET", "/healthz")
        assert status == 200, body
        assert body["checks"]["storage"]["status"] == "ok", body
        audit = os.path.join(t.state_dir, "audit.log")
        assert os.stat(audit).st_uid == nobody.pw_uid
    finally:
        if admind is not None:
            admind.stop()
        env.close()
