"""test_admind.py - tern-admind against a real slapd and a real ternd.

One config file serves both daemons (ternd ignores [admin]; tern-admind
binds it, and checks admins through the directory writer account of
[admin] writer_bind_dn), as in a deployment. The test adds its own admin group to the
fixture directory (cn=tern-test-admins, member: bob) with ldapmodify as
the fixture's rootdn; alice is a directory user who is not an admin.
Checks: 401 without or with bad credentials on every authenticated route,
403 for a non-admin, 200 for an admin by Basic and by token, 400 with the
problem named for malformed JSON and bad fields, 404/405/413, /healthz
ok and then 503 'directory' once slapd is stopped, /metrics parsed as
Prometheus text with login, connection and delivery counters that move
after an IMAP login and an SMTP delivery, and an audit log with one line
per call and no password in it.
"""
import base64
import http.client
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

import harness
import org_ldif
from prometheus_client.parser import text_string_to_metric_families

ADMIN_GROUP = "cn=tern-test-admins," + org_ldif.GROUPS
ADMIN = "bob"  # a member of ADMIN_GROUP
NON_ADMIN = "alice"


def admind_path():
    path = os.environ.get("TERN_ADMIND")
    if not path:
        path = os.path.join(os.path.dirname(harness.ternd_path()), "tern-admind")
    if not os.access(path, os.X_OK):
        raise RuntimeError("set TERN_ADMIND to the tern-admind binary (got %r)" % path)
    return path


class Admind:
    """tern-admind on the ternd's own config file, started and stopped by
    PID."""

    def __init__(self, ternd, port):
        self.ternd = ternd
        self.port = port
        self.log_path = os.path.join(ternd.workdir, "tern-admind.stderr")
        self.proc = None

    def start(self, timeout=None):
        timeout = timeout or (30 if harness.SANITIZE else 15)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([admind_path(), "-c", self.ternd.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, "tern-admind exited:\n" + self.log()
            try:
                socket_ok = http.client.HTTPSConnection(
                    "127.0.0.1", self.port, timeout=2,
                    context=harness.client_tls_context())
                socket_ok.request("GET", "/healthz")
                socket_ok.getresponse().read()
                socket_ok.close()
                return self
            except OSError:
                pass
            assert time.monotonic() < deadline, "tern-admind did not listen:\n" + self.log()
            time.sleep(0.05)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30 if harness.SANITIZE else 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("tern-admind ignored SIGTERM:\n" + self.log())
        log = self.log()
        for mark in harness.SANITIZER_MARKS:
            assert mark.decode() not in log, log[-6000:]
        assert rc == 0, "tern-admind exited %d:\n%s" % (rc, log[-6000:])


@pytest.fixture(scope="module")
def setup():
    port = harness.free_port()
    audit_dir = None
    overrides = {
        "admin": {"listen": "127.0.0.1:%d" % port, "admin_group": ADMIN_GROUP,
                  "threads": "2", "max_body": "4K", "auth_cache_ttl": "30s"},
    }
    env = harness.Env(start_ternd=False)
    # The admin login goes through the directory writer (dir_admin), so
    # tern-admind needs the writer account.
    env.writer_secret = os.path.join(env.tmp, "writer.secret")
    with open(env.writer_secret, "w") as f:
        f.write(org_ldif.WRITER_PASSWORD + "\n")
    os.chmod(env.writer_secret, 0o600)
    overrides["admin"].update({"writer_bind_dn": org_ldif.WRITER_DN,
                               "writer_password_file": env.writer_secret})
    try:
        env.ternd = env.new_ternd(overrides)
    except BaseException:
        env.close()
        raise
    audit_dir = env.ternd.state_dir
    env.slapd.modify("\n".join([
        "dn: " + ADMIN_GROUP,
        "changetype: add",
        "objectClass: groupOfNames",
        "cn: tern-test-admins",
        "member: uid=%s,%s" % (ADMIN, org_ldif.PEOPLE),
        "",
    ]))
    admind = Admind(env.ternd, port)
    try:
        admind.start()
    except BaseException:
        env.close()
        raise
    yield env, admind, os.path.join(audit_dir, "audit.log")
    try:
        admind.stop()
    finally:
        env.close()


def basic(login, pw=None):
    pw = pw if pw is not None else harness.password(login)
    return "Basic " + base64.b64encode(("%s:%s" % (login, pw)).encode()).decode()


def call(admind, method, path, body=None, auth=None, raw=None, headers=None):
    """(status, headers, parsed JSON or text)."""
    c = http.client.HTTPSConnection("127.0.0.1", admind.port, timeout=harness.TIMEOUT + 20,
                                    context=harness.client_tls_context())
    h = dict(headers or {})
    if auth:
        h["Authorization"] = auth
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    resp = c.getresponse()
    payload = resp.read()
    c.close()
    ctype = resp.getheader("Content-Type", "")
    if ctype.startswith("application/json"):
        return resp.status, resp, json.loads(payload)
    return resp.status, resp, payload.decode()


# Every authenticated route tern-admind registers today.
AUTH_ROUTES = [("GET", "/api/v1/whoami"), ("POST", "/api/v1/logout"), ("GET", "/metrics")]


def test_unauthenticated_gets_401(setup):
    _, admind, _ = setup
    for method, path in AUTH_ROUTES:
        status, resp, body = call(admind, method, path)
        assert status == 401, (method, path, status, body)
        assert 'Basic realm="tern"' in resp.getheader("WWW-Authenticate", ""), path
        assert body["error"]["code"] == "unauthorized"
    # A wrong password and a bogus token are refused the same way.
    for method, path in AUTH_ROUTES:
        status, _, body = call(admind, method, path, auth=basic(ADMIN, "wrong"))
        assert status == 401, (path, body)
        status, _, body = call(admind, method, path, auth="Bearer " + "00" * 32)
        assert status == 401, (path, body)
    status, _, body = call(admind, "GET", "/healthz")
    assert status == 200, body


def test_non_admin_gets_403(setup):
    _, admind, _ = setup
    for method, path in AUTH_ROUTES:
        status, _, body = call(admind, method, path, auth=basic(NON_ADMIN))
        assert status == 403, (path, status, body)
        assert body["error"]["code"] == "forbidden"
    status, _, body = call(admind, "POST", "/api/v1/login",
                           body={"login": NON_ADMIN, "password": harness.password(NON_ADMIN)})
    assert status == 403, body


def test_admin_basic_and_token(setup):
    _, admind, _ = setup
    status, _, body = call(admind, "GET", "/api/v1/whoami", auth=basic(ADMIN))
    assert status == 200, body
    assert body["login"] == ADMIN and body["dn"].startswith("uid=bob,")

    status, _, body = call(admind, "POST", "/api/v1/login",
                           body={"login": ADMIN, "password": harness.password(ADMIN)})
    assert status == 200, body
    token = body["token"]
    assert len(token) == 64 and int(token, 16) >= 0
    assert body["expires"].endswith("Z")
    status, _, body = call(admind, "GET", "/api/v1/whoami", auth="Bearer " + token)
    assert status == 200 and body["login"] == ADMIN, body
    # Logout needs a token session; Basic gets a clear 400.
    status, _, body = call(admind, "POST", "/api/v1/logout", auth=basic(ADMIN))
    assert status == 400 and body["error"]["code"] == "no_token", body
    status, _, body = call(admind, "POST", "/api/v1/logout", auth="Bearer " + token)
    assert status == 200, body
    status, _, body = call(admind, "GET", "/api/v1/whoami", auth="Bearer " + token)
    assert status == 401, body


def test_bad_requests_name_the_problem(setup):
    _, admind, _ = setup
    status, _, body = call(admind, "POST", "/api/v1/login", raw=b'{"login": "bob", ')
    assert status == 400, body
    assert body["error"]["code"] == "malformed_json"
    assert "line 1" in body["error"]["message"], body
    status, _, body = call(admind, "POST", "/api/v1/login", raw=b'["bob"]')
    assert status == 400 and "JSON object" in body["error"]["message"], body
    status, _, body = call(admind, "POST", "/api/v1/login", body={"login": 5, "password": "x"})
    assert status == 400 and body["error"]["field"] == "login", body
    status, _, body = call(admind, "POST", "/api/v1/login", body={"login": "bob"})
    assert status == 400 and body["error"]["field"] == "password", body
    # Authenticated routes check the JSON too (after the credentials).
    status, _, body = call(admind, "POST", "/api/v1/logout", raw=b"{nope", auth=basic(ADMIN))
    assert status == 400 and body["error"]["code"] == "malformed_json", body

    status, _, body = call(admind, "GET", "/api/v1/no-such-thing", auth=basic(ADMIN))
    assert status == 404 and body["error"]["code"] == "not_found", body
    status, resp, body = call(admind, "GET", "/api/v1/login")
    assert status == 405 and resp.getheader("Allow") == "POST", body
    # [admin] max_body = 4K in this config.
    status, _, _ = call(admind, "POST", "/api/v1/login",
                        raw=json.dumps({"login": "x" * 8000, "password": "y"}).encode())
    assert status == 413


def scrape(admind):
    status, resp, text = call(admind, "GET", "/metrics", auth=basic(ADMIN))
    assert status == 200, text
    assert resp.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    values = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name,) + tuple(sorted(s.labels.items()))
            assert key not in values, "duplicate sample %r" % (key,)
            values[key] = s.value
    return values


def test_metrics_counters_move(setup):
    env, admind, _ = setup
    t = env.ternd
    before = scrape(admind)
    assert before[("tern_ternd_up",)] == 1
    assert before[("tern_store_file_bytes",)] > 0
    assert ("tern_queue_messages",) in before

    def v(vals, name, **labels):
        return vals.get((name,) + tuple(sorted(labels.items())), 0)

    m = t.imap_login(NON_ADMIN)
    try:
        during = scrape(admind)
        assert v(during, "tern_connections", service="imap") >= 1
    finally:
        m.logout()
    try:
        t.imap_login(NON_ADMIN, "wrong password")
    except Exception:
        pass
    token = harness.unique_token("metrics")
    t.send("bob@example.test", harness.make_message(token, to="bob@example.test"))
    after = scrape(admind)

    assert v(after, "tern_logins_total", service="imap", result="ok") >= \
        v(before, "tern_logins_total", service="imap", result="ok") + 1
    assert v(after, "tern_logins_total", service="imap", result="failed") >= \
        v(before, "tern_logins_total", service="imap", result="failed") + 1
    assert v(after, "tern_connections_total", service="imap") >= \
        v(before, "tern_connections_total", service="imap") + 2
    assert v(after, "tern_connections_total", service="smtp") >= \
        v(before, "tern_connections_total", service="smtp") + 1
    assert v(after, "tern_delivered_messages_total") >= \
        v(before, "tern_delivered_messages_total") + 1
    assert v(after, "tern_delivered_recipients_total") >= \
        v(before, "tern_delivered_recipients_total") + 1
    assert v(after, "tern_store_batch_operations_count") >= \
        v(before, "tern_store_batch_operations_count") + 1
    assert v(after, "tern_directory_operation_seconds_count") > 0
    lookups = v(after, "tern_directory_cache_total", result="hit") + \
        v(after, "tern_directory_cache_total", result="miss")
    assert lookups > 0


def test_audit_log(setup):
    _, admind, audit_path = setup
    marks = {}
    for label, method, path, kw, want in [
        ("ok", "GET", "/api/v1/whoami", {"auth": basic(ADMIN)}, 200),
        ("refused", "GET", "/api/v1/whoami", {"auth": basic(ADMIN, "not-the-pw")}, 401),
        ("forbidden", "GET", "/api/v1/whoami", {"auth": basic(NON_ADMIN)}, 403),
        ("login", "POST", "/api/v1/login",
         {"body": {"login": ADMIN, "password": harness.password(ADMIN),
                   "extra": {"new_secret": "s3cr3t-value"}}}, 200),
    ]:
        mark = uuid.uuid4().hex
        status, _, body = call(admind, method, path + "?mark=" + mark, **kw)
        assert status == want, (label, body)
        marks[label] = (mark, want)
        if label == "login":
            issued_token = body["token"]
    with open(audit_path) as f:
        text = f.read()
    lines = [json.loads(l) for l in text.splitlines()]
    for label, (mark, want) in marks.items():
        hits = [l for l in lines if l.get("query", {}).get("mark") == mark]
        assert len(hits) == 1, (label, hits)
        rec = hits[0]
        assert rec["status"] == want
        assert rec["ip"] == "127.0.0.1"
        assert rec["time"].endswith("Z") and "T" in rec["time"]
        assert rec["method"] in ("GET", "POST") and rec["path"].startswith("/api/v1/")
    ok = [l for l in lines if l.get("query", {}).get("mark") == marks["ok"][0]][0]
    assert ok["admin"] == ADMIN
    login = [l for l in lines if l.get("query", {}).get("mark") == marks["login"][0]][0]
    assert login["params"]["password"] == "***"
    assert login["params"]["extra"]["new_secret"] == "***"
    assert login["params"]["login"] == ADMIN
    # No password, secret or token anywhere: not in the audit log, not on stderr.
    for secret in (harness.password(ADMIN), harness.password(NON_ADMIN), "not-the-pw",
                   "s3cr3t-value", issued_token):
        assert secret not in text
        assert secret not in admind.log()


def test_sighup_reloads(setup):
    _, admind, _ = setup
    admind.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload config=" not in admind.log():
        assert time.monotonic() < deadline, admind.log()
        time.sleep(0.05)
    status, _, body = call(admind, "GET", "/api/v1/whoami", auth=basic(ADMIN))
    assert status == 200, body


def test_healthz_reports_directory_down(setup):
    """Last: it stops slapd."""
    env, admind, _ = setup
    status, _, body = call(admind, "GET", "/healthz")
    assert status == 200, body
    assert body["status"] == "ok"
    for check in ("directory", "storage", "listeners"):
        assert body["checks"][check]["status"] == "ok", body
    # Writable: the free space of the store's file system is reported.
    vfs = os.statvfs(env.ternd.state_dir)
    free = body["checks"]["storage"]["free_bytes"]
    assert abs(free - vfs.f_bavail * vfs.f_frsize) < 512 * 1024 * 1024, (free, vfs)
    env.slapd.stop()
    status, _, body = call(admind, "GET", "/healthz")
    assert status == 503, body
    assert body["status"] == "degraded"
    assert body["checks"]["directory"]["status"] == "fail"
    assert body["checks"]["storage"]["status"] == "ok"
    assert body["checks"]["listeners"]["status"] == "ok"
    # Credentials that are not cached cannot be checked: 503, not 401.
    status, _, body = call(admind, "POST", "/api/v1/login",
                           body={"login": "user07", "password": "whatever"})
    assert status == 503 and body["error"]["code"] == "directory_unavailable", body
