"""test_admin_backup.py - backups through tern-admind (docs/openapi.yaml,
tag backups) against a real slapd, ternd and LMDB store.

Checks: a hot backup while SMTP deliveries keep running in threads is
listed (size, time, verified), verifies, is refused for restore (409)
while ternd runs, restores once ternd is stopped, and the restored store
holds every message acknowledged before the backup started (read over
IMAP after ternd is started again); a scheduled backup ([backup] schedule
= every 3s, keep = 2) appears by itself and retention removes the oldest
scheduled ones but never a manual one; 401/403/400/404 on the endpoints.
"""
import os
import threading
import time

import pytest

import harness
from test_admin_mailbox import admin_env, api, run_job, wait_job
from test_admind import NON_ADMIN, basic, call

LOAD_USERS = ["user%02d" % i for i in range(5, 9)]


class Load:
    """Threads delivering over SMTP until stopped; acked holds
    (ack time, token, login) for every 250."""

    def __init__(self, ternd):
        self.ternd = ternd
        self.acked = []
        self.errors = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(3)]

    def run(self, k):
        n = 0
        try:
            while not self.stop.is_set():
                login = LOAD_USERS[(k + n) % len(LOAD_USERS)]
                tok = harness.unique_token("bk%d" % k)
                code, _ = self.ternd.send("%s@example.test" % login,
                                          harness.make_message(tok, body="load %d\r\n" % n))
                assert code == 250
                with self.lock:
                    self.acked.append((time.time(), tok, login))
                n += 1
        except Exception as e:
            self.errors.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def tokens_over_imap(ternd, login):
    m = ternd.imap_login(login)
    try:
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        return {item[1].decode().split(":", 1)[1].strip()
                for item in data if isinstance(item, tuple)}
    finally:
        m.logout()


@pytest.fixture(scope="module")
def setup():
    env, admind = admin_env()
    yield env, admind
    try:
        admind.stop()
    finally:
        env.close()


def test_backup_under_load_verify_restore(setup):
    env, admind = setup
    t = env.ternd
    for login in LOAD_USERS:  # some mail well before the backup
        assert t.send("%s@example.test" % login,
                      harness.make_message(harness.unique_token("pre")))[0] == 250
    with Load(t) as load:
        while len(load.acked) < 20:
            assert not load.errors, load.errors
            time.sleep(0.05)
        started = time.time()
        status, _, job = api(admind, "POST", "/api/v1/backups", {})
        assert status == 202, job
        # One backup at a time.
        status, _, body = api(admind, "POST", "/api/v1/backups", {})
        assert status in (202, 409), body
        if status == 202:  # the first had already finished
            assert wait_job(admind, body)["state"] == "done"
        done = wait_job(admind, job)
        time.sleep(0.3)  # deliveries keep flowing after the copy
    assert not load.errors, load.errors
    assert done["state"] == "done", done
    res = done["result"]
    bid = res["id"]
    assert res["check_ok"] is True and res["origin"] == "manual"
    acked_before = [(tok, login) for at, tok, login in load.acked if at < started]
    assert len(acked_before) >= 20
    assert len(load.acked) > len(acked_before)  # mail arrived while it ran

    status, _, body = api(admind, "GET", "/api/v1/backups")
    assert status == 200, body
    entry = {b["id"]: b for b in body["backups"]}[bid]
    assert entry["bytes"] > 0 and entry["verified"] is True and entry["origin"] == "manual"
    assert entry["created"].endswith("Z") and entry["messages"] >= len(acked_before)
    assert os.path.isfile(os.path.join(entry["path"], "mail", "data.mdb"))

    v = run_job(admind, "/api/v1/backups/%s/verify" % bid)
    assert v["result"]["ok"] is True and v["result"]["problems"] == 0
    status, _, body = api(admind, "GET", "/api/v1/backups")
    entry = {b["id"]: b for b in body["backups"]}[bid]
    assert entry["verified"] is True and entry["verified_at"] is not None

    # Not while ternd runs.
    status, _, body = api(admind, "POST", "/api/v1/backups/%s/restore" % bid)
    assert status == 409 and body["error"]["code"] == "ternd_running", body

    # Mail after the backup, which the restore takes away.
    late = harness.unique_token("late")
    assert t.send("user05@example.test", harness.make_message(late))[0] == 250
    t.stop()
    r = run_job(admind, "/api/v1/backups/%s/restore" % bid)
    assert r["result"]["replaced"], r
    assert os.path.isdir(r["result"]["replaced"])
    t.start()
    for login in LOAD_USERS:
        have = tokens_over_imap(t, login)
        want = {tok for tok, lg in acked_before if lg == login}
        missing = want - have
        assert not missing, (login, sorted(missing)[:5])
    assert late not in tokens_over_imap(t, "user05")
    # tern-admind reopened the restored store.
    status, _, body = api(admind, "GET", "/api/v1/mailboxes/user05")
    assert status == 200 and body["messages"] >= 1, body


def test_errors(setup):
    env, admind = setup
    routes = [("GET", "/api/v1/backups", None), ("POST", "/api/v1/backups", {}),
              ("POST", "/api/v1/backups/x/verify", None),
              ("POST", "/api/v1/backups/x/restore", None)]
    for method, path, body in routes:
        status, _, b = call(admind, method, path, body=body)
        assert status == 401, (path, b)
        status, _, b = call(admind, method, path, body=body, auth=basic(NON_ADMIN))
        assert status == 403, (path, b)
    status, _, b = api(admind, "POST", "/api/v1/backups", {"compact": "yes"})
    assert status == 400 and b["error"]["field"] == "compact", b
    status, _, b = api(admind, "POST", "/api/v1/backups", {"path": "/tmp/elsewhere"})
    assert status == 400 and b["error"]["field"] == "path", b
    for path in ("/api/v1/backups/nosuch/verify", "/api/v1/backups/nosuch/restore",
                 "/api/v1/backups/..%2Fetc/verify"):
        status, _, b = api(admind, "POST", path)
        assert status == 404, (path, b)


def test_scheduled_backups_and_retention():
    env, admind = admin_env({"backup": {"schedule": "every 3s", "keep": "2"}})
    try:
        root = os.path.join(env.ternd.state_dir, "backups")
        # A manual backup first (retried while a scheduled one runs).
        deadline = time.monotonic() + 60
        while True:
            status, _, job = api(admind, "POST", "/api/v1/backups", {"compact": False})
            if status == 202:
                break
            assert status == 409 and time.monotonic() < deadline, job
            time.sleep(0.2)
        manual = wait_job(admind, job)["result"]["id"]
        seen = []
        deadline = time.monotonic() + 90
        while True:
            status, _, body = api(admind, "GET", "/api/v1/backups")
            assert status == 200
            sched = [b["id"] for b in body["backups"] if b["origin"] == "scheduled"]
            for b in sched:
                if b not in seen:
                    seen.append(b)
            ids = [b["id"] for b in body["backups"]]
            assert manual in ids  # never removed
            if len(seen) >= 4 and seen[0] not in ids and seen[1] not in ids:
                break
            assert time.monotonic() < deadline, (seen, ids)
            time.sleep(0.3)
        assert len(sched) <= 2 + 1  # keep, plus one that may be just finishing
        assert all(b["verified"] for b in body["backups"] if b["origin"] == "scheduled")
        assert sorted(os.listdir(root)) == sorted(ids) or len(os.listdir(root)) <= len(ids) + 1
    finally:
        try:
            admind.stop()
        finally:
            env.close()
