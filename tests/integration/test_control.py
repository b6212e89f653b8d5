"""test_control.py - ternd's control socket (core/control.h): the file is
0600, ping answers with ternd's pid, bad requests get a clear refusal on
the same connection, directory.flush makes a directory change visible
before the cache would have let it, and mailbox.changed wakes an IDLE
session after another process (`ternd store import`) added mail.
"""
import json
import os
import socket
import stat
import subprocess
import time

import pytest

import harness


@pytest.fixture(scope="module")
def env():
    # A long negative TTL: only a flush can make a new address known.
    # No sync consumer either (the fixture's slapd has syncprov): it would
    # make the change visible by itself.
    e = harness.Env(overrides={"directory": {"cache_ttl": "300s", "negative_ttl": "300s",
                                             "sync": "no"}})
    yield e
    e.close()


def test_socket_mode_and_ping(env):
    t = env.ternd
    st = os.stat(t.control_path())
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    ans = t.control({"cmd": "ping"})
    assert ans["ok"] is True
    assert ans["pid"] == t.proc.pid
    assert ans["version"]


def test_bad_requests_answered_on_one_connection(env):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(env.ternd.control_path())
    s.sendall(b'not json\n{"nocmd": 1}\n{"cmd": "no.such"}\n'
              b'{"cmd": "mailbox.changed"}\n{"cmd": "ping"}\n')
    buf = b""
    while buf.count(b"\n") < 5:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    s.close()
    answers = [json.loads(line) for line in buf.split(b"\n")[:5]]
    assert answers[0] == {"ok": False, "code": "bad_request",
                          "error": "the request is not a JSON object"}
    assert answers[1]["code"] == "bad_request" and "cmd" in answers[1]["error"]
    assert answers[2] == {"ok": False, "code": "bad_request",
                          "error": 'unknown command "no.such"'}
    assert answers[3]["ok"] is False and "user" in answers[3]["error"]
    assert answers[4]["ok"] is True


def rcpt_code(t, address):
    s = t.smtp()
    try:
        s.mail("sender@example.org")
        code, _ = s.rcpt(address)
        return code
    finally:
        s.quit()


def test_directory_flush_makes_a_change_visible_at_once(env):
    t = env.ternd
    alias = "flush-%s@example.test" % harness.unique_token("a")
    assert rcpt_code(t, alias) == 550  # now cached as unknown for 300 s
    env.slapd.modify("dn: uid=user20,%s\nchangetype: modify\nadd: objectClass\nobjectClass: inetLocalMailRecipient\n-\nadd: mailLocalAddress\n"
                     "mailLocalAddress: %s\n" % (harness.org_ldif.PEOPLE, alias))
    assert rcpt_code(t, alias) == 550  # the cache still says no
    assert t.control({"cmd": "directory.flush"}) == {"ok": True}
    assert rcpt_code(t, alias) == 250


def test_mailbox_changed_wakes_idle(env, tmp_path):
    t = env.ternd
    uuid = None
    ldif = env.slapd.ldapsearch(harness.org_ldif.PEOPLE, "(uid=user21)", "entryUUID")
    for line in ldif.splitlines():
        if line.lower().startswith("entryuuid:"):
            uuid = line.split(":", 1)[1].strip()
    assert uuid
    # One delivery so the user's mailboxes exist.
    token = harness.unique_token("c")
    t.send(["user21@example.test"], harness.make_message(token))

    c = harness.RawLines(t.imap_port)
    c.readline()
    c.imap("a", "LOGIN user21 %s" % harness.password("user21"))
    untagged, tagged = c.imap("b", "SELECT INBOX")
    assert tagged.startswith(b"b OK"), tagged
    assert b"* 1 EXISTS" in untagged
    c.send("i IDLE\r\n")
    assert c.readline().startswith(b"+ ")

    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(b"From someone@example.org Mon Jan  5 10:00:00 2026\n"
                     b"Subject: imported\n\nfrom another process\n")
    r = subprocess.run([harness.ternd_path(), "store", "import", "-c", t.conf_path, uuid,
                        str(mbox), "--format", "mbox", "--mailbox", "INBOX"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr
    # Nothing told ternd yet: the session hears of it only when asked.
    c.sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        c.readline()
    c.sock.settimeout(harness.TIMEOUT)
    assert t.control({"cmd": "mailbox.changed", "user": uuid}) == {"ok": True}
    deadline = time.monotonic() + (5 if harness.SANITIZE else 2)
    seen = []
    while b"* 2 EXISTS" not in seen:
        assert time.monotonic() < deadline, seen
        seen.append(c.readline())
    c.send("DONE\r\n")
    _, tagged = c.imap("i")
    assert tagged.startswith(b"i OK"), tagged
    c.close()


def test_second_ternd_on_same_state_dir_refused(env):
    # The socket answers, so a second ternd must not take it over.
    t = env.ternd
    r = subprocess.run([harness.ternd_path(), "-c", t.conf_path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert r.returncode != 0
    assert b"another ternd runs on this state_dir" in r.stderr, r.stderr
    assert t.control({"cmd": "ping"})["pid"] == t.proc.pid
