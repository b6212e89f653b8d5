"""test_admin_mailbox.py - the mailbox lifecycle through tern-admind
(docs/openapi.yaml, tag mailboxes) against a real slapd, a real ternd and
the real LMDB store.

Checks: usage and the mailbox list match what was delivered and appended
(messages, bytes as IMAP's RFC822.SIZE, per-folder counts, quota from the
directory), by login, address and stable id; a user removed with
ldapdelete is listed as orphan with a purge deadline of
orphan_retention, a purge before it is refused (409) and allowed with
force, one after it without; the mailbox is gone afterwards; a live user
is never purged; export of a user (mbox and Maildir) then import into
another user gives identical messages over IMAP (bodies, flags,
keywords, internal dates); 401/403/400/404 on these endpoints; with
[admin] orphan_scan_interval, tern-admind marks a removed user and
unmarks a marked user still in the directory by itself.
"""
import imaplib
import os
import re
import subprocess
import time

import pytest

import harness
import org_ldif
from test_admind import ADMIN, NON_ADMIN, Admind, basic, call

ADMIN_GROUP = "cn=tern-test-admins," + org_ldif.GROUPS
RETENTION = 8  # seconds: [storage] orphan_retention in this test


def admin_env(extra=None):
    """slapd + ternd + tern-admind on one config; returns (env, admind)."""
    port = harness.free_port()
    env = harness.Env(start_ternd=False)
    env.writer_secret = os.path.join(env.tmp, "writer.secret")
    with open(env.writer_secret, "w") as f:
        f.write(org_ldif.WRITER_PASSWORD + "\n")
    os.chmod(env.writer_secret, 0o600)
    overrides = {
        "admin": {"listen": "127.0.0.1:%d" % port, "admin_group": ADMIN_GROUP,
                  "threads": "2", "writer_bind_dn": org_ldif.WRITER_DN,
                  "writer_password_file": env.writer_secret},
        "directory": {"quota_attr": "employeeNumber", "cache_ttl": "1s",
                      "negative_ttl": "1s", "timeout": "3s"},
        "storage": {"group_commit": "yes", "orphan_retention": "%ds" % RETENTION},
    }
    for section, keys in (extra or {}).items():
        overrides.setdefault(section, {}).update(keys)
    try:
        env.ternd = env.new_ternd(overrides)
        env.slapd.modify("\n".join([
            "dn: " + ADMIN_GROUP, "changetype: add", "objectClass: groupOfNames",
            "cn: tern-test-admins", "member: uid=%s,%s" % (ADMIN, org_ldif.PEOPLE), ""]))
        admind = Admind(env.ternd, port).start()
    except BaseException:
        env.close()
        raise
    return env, admind


@pytest.fixture(scope="module")
def setup():
    env, admind = admin_env()
    yield env, admind
    try:
        admind.stop()
    finally:
        env.close()


def api(admind, method, path, body=None, auth=None):
    return call(admind, method, path, body=body, auth=auth or basic(ADMIN))


def wait_job(admind, job, timeout=120):
    deadline = time.monotonic() + timeout * (3 if harness.SANITIZE else 1)
    while True:
        status, _, body = api(admind, "GET", "/api/v1/jobs/" + job["id"])
        assert status in (200, 202), body
        if body["state"] != "running":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def run_job(admind, path, body=None):
    status, resp, job = api(admind, "POST", path, body)
    assert status == 202, (path, status, job)
    assert resp.getheader("Location", "").endswith(job["id"])
    done = wait_job(admind, job)
    assert done["state"] == "done", done
    return done


def stable_id(env, login):
    ldif = env.slapd.ldapsearch(org_ldif.PEOPLE, "(uid=%s)" % login, "entryUUID")
    m = re.search(r"^entryUUID: (\S+)$", ldif, re.M)
    assert m, ldif
    return m.group(1)


def ldapdelete(env, login):
    subprocess.run(["/usr/bin/ldapdelete", "-x", "-H", env.slapd.uri, "-D", org_ldif.ROOT_DN,
                    "-w", org_ldif.ROOT_PASSWORD, "uid=%s,%s" % (login, org_ldif.PEOPLE)],
                   check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)


def imap_dump(ternd, login):
    """{mailbox: [(flags, internaldate, body)] in UID order} for every
    selectable mailbox with messages."""
    m = ternd.imap_login(login)
    out = {}
    try:
        typ, lines = m.list('""', "*")
        assert typ == "OK"
        names = []
        for line in lines:
            mm = re.match(rb'\((.*?)\) "(.*?)" (.*)$', line)
            if b"\\Noselect" in mm.group(1):
                continue
            name = mm.group(3).decode()
            names.append(name.strip('"'))
        for name in names:
            typ, data = m.select('"%s"' % name, readonly=True)
            assert typ == "OK", (name, data)
            if int(data[0]) == 0:
                continue
            typ, data = m.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
            assert typ == "OK"
            msgs = []
            for item in data:
                if not isinstance(item, tuple):
                    continue
                meta = item[0].decode()
                flags = set(re.search(r"FLAGS \((.*?)\)", meta).group(1).split())
                flags.discard("\\Recent")
                date = re.search(r'INTERNALDATE "(.*?)"', meta).group(1)
                msgs.append((frozenset(flags), imaplib.Internaldate2tuple(
                    ('INTERNALDATE "%s"' % date).encode()), item[1]))
            out[name] = msgs
    finally:
        m.logout()
    return out


def test_usage_and_mailbox_list(setup):
    env, admind = setup
    t = env.ternd
    env.slapd.modify("dn: uid=user10,%s\nchangetype: modify\nreplace: employeeNumber\n"
                     "employeeNumber: 50000000\n" % org_ldif.PEOPLE)
    tokens = [harness.unique_token("u") for _ in range(3)]
    for i, tok in enumerate(tokens):
        code, _ = t.send("user10@example.test", harness.make_message(tok, body="x" * (100 * i)
                                                                      + "\r\n"))
        assert code == 250
    m = t.imap_login("user10")
    assert m.create("Projects")[0] == "OK"
    for i in range(2):
        assert m.append("Projects", "(\\Seen)", None,
                        harness.make_message(harness.unique_token("p")))[0] == "OK"
    sizes = {}
    for box in ("INBOX", "Projects"):
        m.select(box, readonly=True)
        typ, data = m.fetch("1:*", "(RFC822.SIZE)")
        sizes[box] = [int(re.search(rb"RFC822.SIZE (\d+)", d).group(1)) for d in data]
    m.logout()
    uid = stable_id(env, "user10")

    for key in ("user10", "user10@example.test", uid):
        status, _, body = api(admind, "GET", "/api/v1/mailboxes/" + key)
        assert status == 200, (key, body)
        assert body["user"] == uid and body["login"] == "user10"
        assert body["mail"] == "user10@example.test"
        assert body["quota"] == 50000000
        assert body["messages"] == 5
        assert body["bytes"] == sum(sizes["INBOX"]) + sum(sizes["Projects"])
        boxes = {b["name"]: b for b in body["mailboxes"]}
        assert boxes["INBOX"]["messages"] == 3 and boxes["INBOX"]["bytes"] == sum(sizes["INBOX"])
        assert boxes["INBOX"]["unseen"] == 3
        assert boxes["Projects"]["messages"] == 2 and boxes["Projects"]["unseen"] == 0
        assert boxes["Sent"]["special_use"] == "\\Sent" and boxes["Sent"]["messages"] == 0
        assert body["orphaned_since"] is None

    # The list: every owner with usage; paging by cursor covers them all.
    status, _, body = api(admind, "GET", "/api/v1/mailboxes")
    assert status == 200, body
    mine = [u for u in body["mailboxes"] if u["user"] == uid]
    assert len(mine) == 1 and mine[0]["messages"] == 5 and mine[0]["login"] == "user10"
    assert mine[0]["quota"] == 50000000
    seen, cursor = [], None
    while True:
        q = "/api/v1/mailboxes?limit=1" + ("&cursor=" + cursor if cursor else "")
        status, _, page = api(admind, "GET", q)
        assert status == 200, page
        seen += [u["user"] for u in page["mailboxes"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(u["user"] for u in body["mailboxes"])

    # A directory user without mail yet: known, empty.
    status, _, body = api(admind, "GET", "/api/v1/mailboxes/user11")
    assert status == 200, body
    assert body["in_store"] is False and body["messages"] == 0 and body["mailboxes"] == []


def test_orphans_and_purge(setup):
    env, admind = setup
    t = env.ternd
    for login in ("user20", "user21", "user22"):
        assert t.send("%s@example.test" % login,
                      harness.make_message(harness.unique_token("o")))[0] == 250
    ids = {login: stable_id(env, login) for login in ("user20", "user21", "user22")}
    for login in ("user20", "user21"):
        ldapdelete(env, login)
    before = time.time()
    status, _, body = api(admind, "GET", "/api/v1/mailboxes/orphans")
    assert status == 200, body
    orphans = {o["user"]: o for o in body["orphans"]}
    assert set(orphans) >= {ids["user20"], ids["user21"]}
    assert ids["user22"] not in orphans
    o = orphans[ids["user20"]]
    assert o["messages"] == 1 and o["due"] is False
    since = time.mktime(time.strptime(o["orphaned_since"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    due = time.mktime(time.strptime(o["purge_after"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(since - before) < 5 and due - since == RETENTION
    # The mark keeps the first time it was seen missing.
    status, _, body2 = api(admind, "GET", "/api/v1/mailboxes/orphans")
    assert {o["user"]: o["orphaned_since"] for o in body2["orphans"]}[ids["user20"]] == \
        o["orphaned_since"]
    status, _, body = api(admind, "GET", "/api/v1/mailboxes/" + ids["user20"])
    assert status == 200 and body["orphaned_since"] == o["orphaned_since"], body

    # Before the retention: refused, unless forced.
    status, _, body = api(admind, "POST", "/api/v1/mailboxes/%s/purge" % ids["user20"], {})
    assert status == 409 and body["error"]["code"] == "retention", body
    done = run_job(admind, "/api/v1/mailboxes/%s/purge" % ids["user20"], {"force": True})
    assert done["result"]["messages"] == 1
    status, _, body = api(admind, "GET", "/api/v1/mailboxes/" + ids["user20"])
    assert status == 404, body
    status, _, body = api(admind, "GET", "/api/v1/mailboxes")
    assert ids["user20"] not in [u["user"] for u in body["mailboxes"]]

    # A live user: never, force or not.
    for b in ({}, {"force": True}):
        status, _, body = api(admind, "POST", "/api/v1/mailboxes/user22/purge", b)
        assert status == 409 and body["error"]["code"] == "live_user", body
        status, _, body = api(admind, "POST", "/api/v1/mailboxes/%s/purge" % ids["user22"], b)
        assert status == 409 and body["error"]["code"] == "live_user", body

    # After the retention: allowed without force.
    while time.time() < due + 1:
        time.sleep(0.5)
    status, _, body = api(admind, "GET", "/api/v1/mailboxes/orphans")
    assert {o["user"]: o["due"] for o in body["orphans"]}[ids["user21"]] is True
    run_job(admind, "/api/v1/mailboxes/%s/purge" % ids["user21"])
    status, _, body = api(admind, "GET", "/api/v1/mailboxes/orphans")
    assert ids["user21"] not in [o["user"] for o in body["orphans"]]
    status, _, body = api(admind, "GET", "/api/v1/mailboxes/" + ids["user21"])
    assert status == 404, body


@pytest.mark.parametrize("fmt,src,dst", [("mbox", "user30", "user31"),
                                         ("maildir", "user30", "user32")])
def test_export_then_import_into_another_user(setup, fmt, src, dst):
    env, admind = setup
    t = env.ternd
    m = t.imap_login(src)
    if m.select("INBOX")[1][0] == b"0":
        # Filled once, for both formats.
        for i in range(3):
            body = "line one\r\nFrom here on, a line mbox must quote\r\n>From quoted\r\n%d\r\n" % i
            assert t.send("%s@example.test" % src,
                          harness.make_message(harness.unique_token("e"), body=body))[0] == 250
        m.select("INBOX")
        assert m.store("1", "+FLAGS", "(\\Flagged $Important)")[0] == "OK"
        assert m.store("2", "+FLAGS", "(\\Seen \\Answered)")[0] == "OK"
        assert m.create("Old/2019")[0] == "OK"
        for i, when in enumerate(("01-Feb-2019 10:11:12 +0000", "03-Mar-2019 23:59:58 +0000")):
            assert m.append("Old/2019", "(\\Seen)", '"%s"' % when,
                            harness.make_message(harness.unique_token("old"),
                                                 body="old mail %d\r\n" % i))[0] == "OK"
    m.logout()
    before = imap_dump(t, src)
    assert sum(len(v) for v in before.values()) == 5, before.keys()

    path = os.path.join(env.tmp, "export-%s-%s" % (src, fmt))
    done = run_job(admind, "/api/v1/mailboxes/%s/export" % src, {"format": fmt, "path": path})
    assert done["kind"] == "export" and done["result"]["messages"] == 5, done
    assert os.path.isdir(path)
    done = run_job(admind, "/api/v1/mailboxes/%s@example.test/import" % dst,
                   {"format": fmt, "path": path})
    assert done["kind"] == "import" and done["result"]["messages"] == 5, done
    after = imap_dump(t, dst)
    assert after == before
    # Export into a place that is not empty fails as a job, naming it.
    status, _, job = api(admind, "POST", "/api/v1/mailboxes/%s/export" % src,
                         {"format": fmt, "path": path})
    assert status == 202
    failed = wait_job(admind, job)
    assert failed["state"] == "failed" and path in failed["error"], failed


def test_errors(setup):
    env, admind = setup
    routes = [("GET", "/api/v1/mailboxes", None), ("GET", "/api/v1/mailboxes/orphans", None),
              ("GET", "/api/v1/mailboxes/user10", None),
              ("POST", "/api/v1/mailboxes/user10/purge", {}),
              ("POST", "/api/v1/mailboxes/user10/export", {"format": "mbox", "path": "/tmp/x"}),
              ("POST", "/api/v1/mailboxes/user10/import", {"format": "mbox", "path": "/tmp"})]
    for method, path, body in routes:
        status, _, b = call(admind, method, path, body=body)
        assert status == 401, (path, b)
        status, _, b = call(admind, method, path, body=body, auth=basic(NON_ADMIN))
        assert status == 403, (path, b)
    bad = [("/api/v1/mailboxes/user10/export", {"format": "zip", "path": "/tmp/e1"}, "format"),
           ("/api/v1/mailboxes/user10/export", {"format": "mbox", "path": "rel/dir"}, "path"),
           ("/api/v1/mailboxes/user10/export", {"format": "mbox"}, "path"),
           ("/api/v1/mailboxes/user10/export", {"format": "mbox", "path": "/nonexistent/x/y"},
            "path"),
           ("/api/v1/mailboxes/user10/import", {"format": "mbox", "path": "/nonexistent/in"},
            "path"),
           ("/api/v1/mailboxes/user10/import", {"format": 7, "path": "/tmp"}, "format"),
           ("/api/v1/mailboxes/user10/purge", {"force": "yes"}, "force")]
    for path, body, field in bad:
        status, _, b = api(admind, "POST", path, body)
        assert status == 400 and b["error"]["field"] == field, (path, body, b)
    status, _, b = api(admind, "GET", "/api/v1/mailboxes?limit=abc")
    assert status == 400 and b["error"]["field"] == "limit", b
    for method, path, body in [("GET", "/api/v1/mailboxes/nobody-here", None),
                               ("POST", "/api/v1/mailboxes/nobody-here/purge", {}),
                               ("POST", "/api/v1/mailboxes/nobody-here/export",
                                {"format": "mbox", "path": os.path.join(env.tmp, "e2")}),
                               ("POST", "/api/v1/mailboxes/nobody-here/import",
                                {"format": "mbox", "path": env.tmp})]:
        status, _, b = api(admind, method, path, body)
        assert status == 404, (path, b)


def test_import_wakes_idle_session(setup):
    """An IMAP session IDLE in the target INBOX hears of imported mail at
    once: tern-admind tells ternd ("mailbox.changed" on its control
    socket), since LMDB gives ternd no notice of another process's
    writes."""
    env, admind = setup
    t = env.ternd
    src = os.path.join(env.tmp, "idle-import.mbox")
    with open(src, "wb") as f:
        for i in range(2):
            f.write(b"From someone@example.org Thu Jan  1 00:00:00 2026\n")
            f.write(harness.make_message(harness.unique_token("idle")).replace(b"\r\n", b"\n"))
            f.write(b"\n")
    c = harness.RawLines(t.imap_port)
    try:
        c.readline()
        _, tagged = c.imap("a1", "LOGIN user33 %s" % harness.password("user33"))
        assert b"OK" in tagged, tagged
        _, tagged = c.imap("a2", "SELECT INBOX")
        assert b"OK" in tagged, tagged
        c.send("a3 IDLE\r\n")
        assert c.readline().startswith(b"+")
        run_job(admind, "/api/v1/mailboxes/user33/import",
                {"format": "mbox", "path": src, "mailbox": "INBOX"})
        c.sock.settimeout(5)  # well below any poll interval ternd might have
        line = c.readline()
        while not line.endswith(b"EXISTS"):
            line = c.readline()
        assert line == b"* 2 EXISTS", line
        c.send("DONE\r\n")
        _, tagged = c.imap("a3")
        assert b"OK" in tagged, tagged
    finally:
        c.close()


def store_orphans(ternd):
    """{user_id: marked_at} from `ternd store orphans` (docs/store-tool.md)."""
    r = subprocess.run([harness.ternd_path(), "store", "orphans", "-c", ternd.conf_path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    marks = {}
    for line in r.stdout.decode().splitlines():
        f = line.split()
        if len(f) >= 4 and re.match(r"^[0-9a-f-]{36}$", f[0]):
            marks[f[0]] = f[1]
    return marks


def test_orphan_scan_on_timer():
    """[admin] orphan_scan_interval: tern-admind marks a user removed from
    the directory and unmarks one who is there, by itself, without the
    orphans endpoint being called."""
    env, admind = admin_env({"admin": {"orphan_scan_interval": "1s"}})
    try:
        t = env.ternd
        for login in ("user40", "user41"):
            assert t.send("%s@example.test" % login,
                          harness.make_message(harness.unique_token("s")))[0] == 250
        gone, back = stable_id(env, "user40"), stable_id(env, "user41")
        # A mark on a user the directory still has (as if it had been
        # removed and restored): the timer takes it away.
        r = subprocess.run([harness.ternd_path(), "store", "mark-orphan", "-c", t.conf_path,
                            back], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        # (Not checked here: a scan may already have taken the mark away;
        # the orphan-unmarked line below shows the timer did.)
        ldapdelete(env, "user40")
        deleted = time.time()
        deadline = time.monotonic() + (30 if harness.SANITIZE else 10)
        while True:
            marks = store_orphans(t)
            log = admind.log()
            if gone in marks and back not in marks and \
                    "orphan-marked user=%s" % gone in log and \
                    "orphan-unmarked user=%s" % back in log:
                break
            assert time.monotonic() < deadline, (marks, log[-4000:])
            time.sleep(0.3)
        # The retention counts from the scan that found it gone.
        status, _, body = api(admind, "GET", "/api/v1/mailboxes/" + gone)
        assert status == 200, body
        since = time.mktime(time.strptime(body["orphaned_since"],
                                          "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        assert abs(since - deleted) < 5, (since, deleted)
        assert body["in_directory"] is False and body["messages"] == 1
        status, _, body = api(admind, "GET", "/api/v1/mailboxes/user41")
        assert status == 200 and body["orphaned_since"] is None, body
        # Marked once: later scans keep the first time and log nothing new.
        time.sleep(2.5)
        assert admind.log().count("orphan-marked user=%s" % gone) == 1
        assert store_orphans(t)[gone] == marks[gone]
        # Never purged by the timer.
        status, _, body = api(admind, "GET", "/api/v1/mailboxes/" + gone)
        assert status == 200 and body["messages"] == 1, body
    finally:
        try:
            admind.stop()
        finally:
            env.close()
