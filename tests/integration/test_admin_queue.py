"""test_admin_queue.py - the outbound queue through tern-admind
(docs/openapi.yaml, tag queue) with a real slapd, a real ternd whose
runner delivers through a loopback dnsmasq to SmtpSink far sides (as in
test_outbound.py) that start out down, and the real LMDB queue.

Checks: list with every filter (sender, recipient, domain, state,
older_than) and paging (limit, cursor), show (envelope, per-recipient
state, attempts, last error, next retry, size, headers); hold keeps the
runner away while the far side is up, across its retry time and a ternd
restart, and release delivers; retry now delivers at once although the
backoff is an hour; delete removes the message and nothing is delivered;
bounce puts a DSN "deleted/bounced by the administrator" in the sender's
INBOX (read over IMAP); changes answer 503 while ternd is down (reads
still work); 401/403/400/404/409 on these endpoints; the store checks
clean with a held message in it.
"""
import email
import json
import os
import subprocess
import time

import pytest

import harness
import org_ldif
from harness import DnsServer, SmtpSink, free_port, password, unique_token
from test_admind import ADMIN, NON_ADMIN, Admind, basic, call

ADMIN_GROUP = "cn=tern-test-admins," + org_ldif.GROUPS
SENDER = "alice@example.test"  # alice submits; her INBOX gets the bounces
SHORT_RETRY = 2  # seconds between attempts while testing hold

DOMAINS = {"list": 31, "list2": 32, "hold": 33, "retry": 34, "del": 35, "bounce": 36}


def _ip(n):
    return "127.0.0.%d" % n


class World:
    pass


def set_retry(w, initial, maximum):
    """Rewrites [outbound] retry_* in ternd's config (for the next start)."""
    for name, keys in w.ternd.sections:
        if name == "outbound":
            keys["retry_initial"] = initial
            keys["retry_max"] = maximum
    with open(w.ternd.conf_path, "w") as f:
        f.write(harness.render_config(w.ternd.sections))


@pytest.fixture(scope="module")
def world():
    w = World()
    w.port = free_port()
    w.sinks = {}
    e = harness.Env(start_ternd=False)
    w.env = e
    w.admind = None
    try:
        mx = [("%s.test" % d, "mx.%s.test" % d, 10) for d in DOMAINS]
        hosts = [("mx.%s.test" % d, _ip(n)) for d, n in DOMAINS.items()]
        w.dns = DnsServer(e.tmp, mx=mx, hosts=hosts).start()
        for d, n in DOMAINS.items():
            w.sinks[d] = SmtpSink(_ip(n), w.port)  # every far side starts down
        w.sub_port = free_port()
        w.admin_port = free_port()
        # Admins log in through the directory writer (dir_admin).
        writer_secret = os.path.join(e.tmp, "writer.secret")
        with open(writer_secret, "w") as f:
            f.write(org_ldif.WRITER_PASSWORD + "\n")
        os.chmod(writer_secret, 0o600)
        overrides = {
            "submission": {"listen": "127.0.0.1:%d" % w.sub_port, "plaintext_auth": "yes"},
            "outbound": {"port": str(w.port), "retry_initial": "%ds" % SHORT_RETRY,
                         "retry_max": "%ds" % SHORT_RETRY, "connect_timeout": "3s",
                         "delay_warning": "1d"},
            "dns": {"resolver": w.dns.resolver},
            "admin": {"listen": "127.0.0.1:%d" % w.admin_port, "admin_group": ADMIN_GROUP,
                      "threads": "2", "writer_bind_dn": org_ldif.WRITER_DN,
                      "writer_password_file": writer_secret},
        }
        w.ternd = e.new_ternd(overrides)
        e.slapd.modify("\n".join([
            "dn: " + ADMIN_GROUP, "changetype: add", "objectClass: groupOfNames",
            "cn: tern-test-admins", "member: uid=%s,%s" % (ADMIN, org_ldif.PEOPLE), ""]))
        w.admind = Admind(w.ternd, w.admin_port).start()
        yield w
    finally:
        try:
            if w.admind is not None:
                w.admind.stop()
        finally:
            for s in w.sinks.values():
                s.stop()
            if getattr(w, "dns", None) is not None:
                w.dns.stop()
            e.close()


def api(w, method, path, body=None):
    return call(w.admind, method, path, body=body, auth=basic(ADMIN))


def submit(w, rcpts, token, subject=None):
    import smtplib
    msg = harness.make_message(token, sender=SENDER, to=rcpts[0],
                               subject=None if subject is None else subject + " " + token)
    s = smtplib.SMTP("127.0.0.1", w.sub_port, local_hostname="client.example.org",
                     timeout=harness.TIMEOUT)
    try:
        s.ehlo()
        s.login("alice", password("alice"))
        assert not s.sendmail(SENDER, rcpts, msg)
        s.quit()
    finally:
        s.close()
    return msg


def queued(w, **filters):
    q = "&".join("%s=%s" % kv for kv in filters.items())
    status, _, body = api(w, "GET", "/api/v1/queue" + ("?" + q if q else ""))
    assert status == 200, body
    return body


def wait_deferred(w, rcpt, timeout=30):
    """The queue entry for rcpt once its first attempt has failed."""
    deadline = time.monotonic() + timeout
    while True:
        msgs = queued(w, recipient=rcpt)["messages"]
        if msgs and msgs[0]["attempts"] >= 1:
            assert len(msgs) == 1, msgs
            return msgs[0]
        assert time.monotonic() < deadline, (msgs, w.ternd.log_tail())
        time.sleep(0.2)


def wait_gone(w, qid, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = api(w, "GET", "/api/v1/queue/" + qid)
        if status == 404:
            return
        assert status == 200, body
        assert time.monotonic() < deadline, (body, w.ternd.log_tail())
        time.sleep(0.2)


def delivered(sink, token):
    with sink.lock:
        return [m for m in sink.messages if token.encode() in m.data]


def test_list_filters_paging_and_show(world):
    w = world
    t1, t2 = unique_token("l1"), unique_token("l2")
    msg1 = submit(w, ["ann@list.test", "ben@list2.test"], t1, subject="Quarterly")
    submit(w, ["cat@list2.test"], t2)
    m1 = wait_deferred(w, "ann@list.test")
    m2 = wait_deferred(w, "cat@list2.test")
    assert m1["id"] != m2["id"] and len(m1["id"]) == 16

    def ids(**f):
        return [m["id"] for m in queued(w, **f)["messages"]]

    assert ids(recipient="ANN@list.test") == [m1["id"]]  # addresses: any case
    assert ids(domain="list.test") == [m1["id"]]
    assert set(ids(domain="list2.test")) == {m1["id"], m2["id"]}
    assert set(ids(sender=SENDER)) >= {m1["id"], m2["id"]}
    assert ids(sender="nobody@example.test") == []
    assert ids(sender="<>") == []
    assert set(ids(state="deferred")) >= {m1["id"], m2["id"]}
    assert ids(state="held") == []
    assert ids(domain="list2.test", older_than="1h") == []
    time.sleep(1.1)
    assert set(ids(domain="list2.test", older_than="1s")) == {m1["id"], m2["id"]}
    assert ids(domain="list2.test", recipient="ann@list.test") == [m1["id"]]
    # paging: one at a time, in queue order, cursor from the previous page
    page = queued(w, domain="list2.test", limit=1)
    assert len(page["messages"]) == 1 and page["next_cursor"] == page["messages"][0]["id"]
    page2 = queued(w, domain="list2.test", limit=1, cursor=page["next_cursor"])
    assert len(page2["messages"]) == 1 and page2["messages"][0]["id"] != page["next_cursor"]
    assert page2["next_cursor"] is None
    assert sorted([page["messages"][0]["id"], page2["messages"][0]["id"]]) == \
        [page["messages"][0]["id"], page2["messages"][0]["id"]]

    status, _, m = api(w, "GET", "/api/v1/queue/" + m1["id"])
    assert status == 200, m
    assert m["sender"] == SENDER and m["held"] is False and m["state"] == "deferred"
    assert m["origin"] == "submission"
    assert m["size"] >= len(msg1)
    assert m["attempts"] >= 1 and m["next_attempt"] is not None
    assert "4.4.1" in m["last_error"], m
    assert m["headers"]["subject"].startswith("Quarterly"), m["headers"]
    assert SENDER in m["headers"]["from"]
    assert m["headers"]["message_id"]
    rc = {r["address"]: r for r in m["recipients"]}
    assert set(rc) == {"ann@list.test", "ben@list2.test"}
    for r in rc.values():
        assert r["state"] == "pending" and r["attempts"] >= 1
        assert r["next_attempt"] and r["last_error"]
    # the list's summary of the same message
    assert {r["address"] for r in m1["recipients"]} == set(rc)

    # ternctl speaks the same API: table and --json
    from test_ternctl import ternctl_path
    env = dict(os.environ, TERN_ADMIN_PASSWORD=password(ADMIN))
    env.pop("TERN_ADMIN_TOKEN", None)
    base = [ternctl_path(), "-c", w.ternd.conf_path, "--admin", ADMIN, "queue"]
    p = subprocess.run(base + ["list", "--domain", "list.test", "--json"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert [x["id"] for x in json.loads(p.stdout)["messages"]] == [m1["id"]]
    p = subprocess.run(base + ["list", "--state", "deferred"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and m1["id"] in p.stdout and "deferred" in p.stdout, p.stdout


def test_hold_survives_retry_time_and_restart_then_release(world):
    w = world
    tok = unique_token("hold")
    submit(w, ["dan@hold.test"], tok)
    m = wait_deferred(w, "dan@hold.test")
    status, _, held = api(w, "POST", "/api/v1/queue/%s/hold" % m["id"])
    assert status == 200, held
    assert held["held"] is True and held["state"] == "held" and held["changed"] is True
    assert held["next_attempt"] is None
    assert [x["id"] for x in queued(w, state="held")["messages"]] == [m["id"]]
    # holding twice changes nothing
    status, _, again = api(w, "POST", "/api/v1/queue/%s/hold" % m["id"])
    assert status == 200 and again["changed"] is False
    # retry of a held message is refused: release it first
    status, _, b = api(w, "POST", "/api/v1/queue/%s/retry" % m["id"])
    assert status == 409, b
    sink = w.sinks["hold"]
    sink.start()
    # Past several retry times with the far side up: nothing goes.
    time.sleep(3 * SHORT_RETRY)
    assert delivered(sink, tok) == []
    w.ternd.stop()
    w.ternd.start()
    time.sleep(2 * SHORT_RETRY)
    assert delivered(sink, tok) == []
    status, _, after = api(w, "GET", "/api/v1/queue/" + m["id"])
    assert status == 200 and after["held"] is True, after
    # ternd's own check accepts a held entry (no queue_due for it)
    chk = subprocess.run([harness.ternd_path(), "store", "check", "-c", w.ternd.conf_path],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert chk.returncode == 0, chk.stdout.decode()

    status, _, rel = api(w, "POST", "/api/v1/queue/%s/release" % m["id"])
    assert status == 200, rel
    assert rel.get("held") in (False, None) and rel["changed"] is True
    deadline = time.monotonic() + 20
    while not delivered(sink, tok):
        assert time.monotonic() < deadline, w.ternd.log_tail()
        time.sleep(0.1)
    wait_gone(w, m["id"])
    # release of a message that is gone: 404; of one not held: 409
    status, _, b = api(w, "POST", "/api/v1/queue/%s/release" % m["id"])
    assert status == 404, b


def test_long_backoff_then_retry_now(world):
    w = world
    # From here on a failed attempt waits an hour: only "retry" is prompt.
    set_retry(w, "1h", "1h")
    w.ternd.stop()
    w.ternd.start()
    tok = unique_token("retry")
    submit(w, ["eve@retry.test"], tok)
    m = wait_deferred(w, "eve@retry.test")
    status, _, b = api(w, "POST", "/api/v1/queue/%s/release" % m["id"])
    assert status == 409, b  # not held
    sink = w.sinks["retry"]
    sink.start()
    time.sleep(1.5)
    assert delivered(sink, tok) == []  # the backoff holds it back
    t0 = time.monotonic()
    status, _, r = api(w, "POST", "/api/v1/queue/%s/retry" % m["id"])
    assert status == 200, r
    while not delivered(sink, tok):
        assert time.monotonic() - t0 < 10, w.ternd.log_tail()
        time.sleep(0.05)
    wait_gone(w, m["id"])


def test_delete(world):
    w = world
    tok = unique_token("del")
    submit(w, ["fay@del.test"], tok)
    m = wait_deferred(w, "fay@del.test")
    status, _, b = api(w, "DELETE", "/api/v1/queue/" + m["id"])
    assert status == 200 and b == {"deleted": True, "id": m["id"]}, b
    status, _, b = api(w, "GET", "/api/v1/queue/" + m["id"])
    assert status == 404 and b["error"]["field"] == "id", b
    assert queued(w, recipient="fay@del.test")["messages"] == []
    status, _, b = api(w, "DELETE", "/api/v1/queue/" + m["id"])
    assert status == 404, b
    sink = w.sinks["del"]
    sink.start()
    # retry would have made it due now; the queue has nothing for it
    time.sleep(2)
    assert delivered(sink, tok) == []
    # no bounce either
    inbox = w.ternd.mailbox("alice")
    assert not [x for x in inbox if tok.encode() in x and b"multipart/report" in x]


def imap_find(ternd, login, needle, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        m = ternd.imap_login(login)
        try:
            typ, data = m.select("INBOX", readonly=True)
            assert typ == "OK"
            typ, data = m.search(None, "TEXT", '"%s"' % needle)
            assert typ == "OK"
            nums = data[0].split()
            if nums:
                typ, data = m.fetch(nums[-1], "(BODY.PEEK[])")
                assert typ == "OK"
                return data[0][1]
        finally:
            m.logout()
        assert time.monotonic() < deadline, ternd.log_tail()
        time.sleep(0.3)


def test_bounce_lands_in_sender_inbox(world):
    w = world
    tok = unique_token("bounce")
    submit(w, ["gus@bounce.test", "hal@bounce.test"], tok)
    m = wait_deferred(w, "gus@bounce.test")
    status, _, b = api(w, "POST", "/api/v1/queue/%s/bounce" % m["id"])
    assert status == 200, b
    assert b["bounced"] is True and b["dsn"] is True and b["recipients"] == 2, b
    wait_gone(w, m["id"])
    raw = imap_find(w.ternd, "alice", tok)
    dsn = email.message_from_bytes(raw)
    assert dsn.get_content_type() == "multipart/report", raw[:500]
    assert dsn["To"] and SENDER in dsn["To"]
    text = raw.decode(errors="replace")
    assert "deleted/bounced by the administrator" in text
    assert "Action: failed" in text and "Status: 5.0.0" in text
    assert "gus@bounce.test" in text and "hal@bounce.test" in text
    # nothing reaches the far side afterwards
    sink = w.sinks["bounce"]
    sink.start()
    time.sleep(1.5)
    assert delivered(sink, tok) == []
    status, _, b = api(w, "POST", "/api/v1/queue/%s/bounce" % m["id"])
    assert status == 404, b


def test_changes_need_ternd_reads_do_not(world):
    w = world
    tok = unique_token("down")
    submit(w, ["ivy@list.test"], tok)
    m = wait_deferred(w, "ivy@list.test")
    w.ternd.stop()
    try:
        status, _, b = api(w, "GET", "/api/v1/queue/" + m["id"])
        assert status == 200 and b["id"] == m["id"], b
        for method, path in [("POST", "hold"), ("POST", "release"), ("POST", "retry"),
                             ("POST", "bounce"), ("DELETE", "")]:
            url = "/api/v1/queue/" + m["id"] + ("/" + path if path else "")
            status, _, b = api(w, method, url)
            assert status == 503, (url, b)
            assert "ternd is not running" in b["error"]["message"], b
    finally:
        w.ternd.start()
    status, _, b = api(w, "DELETE", "/api/v1/queue/" + m["id"])
    assert status == 200, b


def test_errors(world):
    w = world
    qid = "00000000000000ff"
    routes = [("GET", "/api/v1/queue"), ("GET", "/api/v1/queue/" + qid),
              ("DELETE", "/api/v1/queue/" + qid)] + \
        [("POST", "/api/v1/queue/%s/%s" % (qid, v))
         for v in ("retry", "hold", "release", "bounce")]
    for method, path in routes:
        status, _, b = call(w.admind, method, path)
        assert status == 401, (path, b)
        status, _, b = call(w.admind, method, path, auth=basic(NON_ADMIN))
        assert status == 403, (path, b)
        status, _, b = api(w, method, path)
        if path == "/api/v1/queue":
            assert status == 200, b
        else:
            assert status == 404 and b["error"]["field"] == "id", (path, b)
    bad = [("state=frozen", "state"), ("older_than=soon", "older_than"),
           ("limit=0", "limit"), ("limit=5000", "limit"), ("cursor=xyz", "cursor"),
           ("recipient=nodomain", "recipient"), ("domain=a@b", "domain"),
           ("sender=", "sender")]
    for q, field in bad:
        status, _, b = api(w, "GET", "/api/v1/queue?" + q)
        assert status == 400 and b["error"]["field"] == field, (q, b)
    for method, path in [("GET", "/api/v1/queue/not-hex"), ("POST", "/api/v1/queue/zz/hold"),
                         ("DELETE", "/api/v1/queue/0"),
                         ("POST", "/api/v1/queue/12345678901234567/retry")]:
        status, _, b = api(w, method, path)
        assert status == 400 and b["error"]["field"] == "id", (path, b)
    # every change was audited with a summary
    with open(os.path.join(w.ternd.state_dir, "audit.log")) as f:
        audit = f.read()
    assert "bounced " in audit and "deleted " in audit and "hold " in audit
