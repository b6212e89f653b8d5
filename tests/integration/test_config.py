"""ternd's start-up contract: `ternd -t` accepts a good config and rejects
a bad one naming the file and the line or key; ternd exits 0 on SIGTERM;
a directory that is down at start-up does not keep ternd from starting,
and it serves as soon as the directory appears."""
import os
import re
import signal
import subprocess
import time

import pytest

import harness
from harness import Ternd, free_port, make_message, unique_token


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("cfg"))
    harness.make_cert(d)
    return d


def write_ternd(workdir, overrides=None, uri="ldap://127.0.0.1:1"):
    cert, key = harness.make_cert(workdir)
    return Ternd(workdir, uri, cert, key, overrides, name="t%s" % unique_token("")[2:10])


def check(path):
    return subprocess.run([harness.ternd_path(), "-t", "-c", path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30)


def lines_of(path):
    with open(path) as f:
        return f.read().split("\n")


def line_no(path, needle):
    for i, line in enumerate(lines_of(path), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in %s" % (needle, path))


def test_good_config_ok(workdir):
    t = write_ternd(workdir)
    r = check(t.conf_path)
    assert r.returncode == 0, r.stderr


def test_example_config_sections_are_known(workdir):
    """Every key the lead documents in config/tern.conf.example parses
    (paths replaced by ones that exist here)."""
    src = os.path.join(harness.ROOT, "config", "tern.conf.example")
    cert, key = harness.make_cert(workdir)
    secret = os.path.join(workdir, "ex.secret")
    with open(secret, "w") as f:
        f.write("x\n")
    os.chmod(secret, 0o600)
    out = []
    section = None
    for line in lines_of(src):
        m = re.match(r"^\[(\w+)\]", line)
        if m:
            section = m.group(1)
        # Services ternd does not run yet would stop it; -t only loads.
        if line.startswith("cert ="):
            line = "cert = " + cert
        elif line.startswith("key ="):
            line = "key = " + key
        elif line.startswith("bind_password_file ="):
            line = "bind_password_file = " + secret
        elif line.startswith("writer_password_file ="):
            line = "writer_password_file = " + secret
        elif line.startswith("state_dir ="):
            line = "state_dir = " + os.path.join(workdir, "ex-state")
        elif line.startswith("user =") and section == "server":
            line = "user ="
        out.append(line)
    path = os.path.join(workdir, "example.conf")
    with open(path, "w") as f:
        f.write("\n".join(out))
    r = check(path)
    assert r.returncode == 0, r.stderr


def test_unknown_key_names_file_and_line(workdir):
    t = write_ternd(workdir, {"limits": {"message_size_maximum": "1M"}})
    r = check(t.conf_path)
    assert r.returncode != 0
    err = r.stderr.decode()
    line = line_no(t.conf_path, "message_size_maximum")
    assert "%s:%d" % (t.conf_path, line) in err, err
    assert "message_size_maximum" in err, err


def test_unknown_section_rejected(workdir):
    t = write_ternd(workdir, {"smtpx": {"listen": "127.0.0.1:2"}})
    r = check(t.conf_path)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "%s:%d" % (t.conf_path, line_no(t.conf_path, "[smtpx]")) in err, err


@pytest.mark.parametrize("section,key,value", [
    ("limits", "message_size_max", "lots"),
    ("limits", "auth_fail_delay", "-1s"),
    ("storage", "group_commit", "perhaps"),
    ("directory", "cache_ttl", "10 parsecs"),
    ("directory", "sync", "sometimes"),
    ("server", "workers", "-3"),
    ("smtp", "listen", "127.0.0.1:99999"),
])
def test_bad_value_names_file_and_line(workdir, section, key, value):
    t = write_ternd(workdir, {section: {key: value}})
    r = check(t.conf_path)
    assert r.returncode != 0, (section, key, value)
    err = r.stderr.decode()
    line = line_no(t.conf_path, "%s = %s" % (key, value))
    assert "%s:%d" % (t.conf_path, line) in err, err


@pytest.mark.parametrize("section,key", [
    ("server", "hostname"),
    ("server", "domains"),
    ("directory", "uri"),
    ("smtp", "listen"),
])
def test_missing_required_key_named(workdir, section, key):
    t = write_ternd(workdir, {section: {key: None}})
    r = check(t.conf_path)
    assert r.returncode != 0, (section, key)
    err = r.stderr.decode()
    assert t.conf_path in err and key in err, err


def test_key_given_twice_rejected(workdir):
    t = write_ternd(workdir)
    with open(t.conf_path, "a") as f:
        f.write("\n[limits]\nmax_recipients = 5\nmax_recipients = 6\n")
    r = check(t.conf_path)
    assert r.returncode != 0
    assert t.conf_path in r.stderr.decode()


def test_missing_config_file(workdir):
    r = check(os.path.join(workdir, "does-not-exist.conf"))
    assert r.returncode != 0
    assert "does-not-exist.conf" in r.stderr.decode()


def test_sigterm_exits_zero(workdir):
    env = harness.Env(start_ternd=False)
    try:
        t = env.new_ternd()
        # Something in flight: an idle SMTP and POP3 client stay connected.
        s = t.smtp()
        p = t.pop3_login("user57")
        t.proc.send_signal(signal.SIGTERM)
        try:
            rc = t.proc.wait(timeout=30 if harness.SANITIZE else 10)
        finally:
            s.close()
            p.close()
        assert rc == 0, t.log_tail()
        assert t.sanitizer_report() is None, t.sanitizer_report()
        t.proc = None
        t.returncode = rc
    finally:
        env.close()


def test_directory_down_at_startup(workdir):
    """ternd starts with its directory unreachable; mail is deferred (451),
    not refused; once slapd appears on that port, it is delivered."""
    env = harness.Env(start_ternd=False)
    try:
        env.slapd.stop()
        t = env.new_ternd()  # start() waits until SMTP and POP3 accept
        s = t.smtp()
        try:
            assert s.mail("sender@example.org")[0] == 250
            code, text = s.rcpt("user58@example.test")
            assert code == 451, text
            assert text.startswith(b"4.4.3"), text
        finally:
            s.close()
        env.slapd.start()
        deadline = time.monotonic() + 30
        token = unique_token("late")
        while True:
            s = t.smtp()
            try:
                assert s.mail("sender@example.org")[0] == 250
                code, text = s.rcpt("user58@example.test")
                if code == 250:
                    assert s.data(make_message(token))[0] == 250
                    break
                assert code == 451, text
            finally:
                s.close()
            assert time.monotonic() < deadline, "directory never came back for ternd"
            time.sleep(0.2)
        assert harness.count_token(t.mailbox("user58"), token) == 1
    finally:
        env.close()


def test_port_in_use_fails_cleanly(workdir):
    """A port that cannot be bound stops start-up with exit 1 and a line
    saying so (not a hang, not a crash)."""
    import socket
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        t = write_ternd(workdir, {"smtp": {"listen": "127.0.0.1:%d" % port}},
                        uri="ldap://127.0.0.1:%d" % free_port())
        r = subprocess.run([harness.ternd_path(), "-c", t.conf_path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 1, r.stderr
        assert str(port) in r.stderr.decode(), r.stderr
    finally:
        busy.close()


def _ehlo_size(t):
    s = t.smtp()
    try:
        return int(s.esmtp_features["size"])
    finally:
        s.close()


def test_sighup_reload(workdir):
    """SIGHUP applies a changed limit to new connections; a broken config
    on reload is refused and the running one kept; mail and logins keep
    working across reloads (the directory and store threads still use the
    start-up config, which a reload must not free)."""
    env = harness.Env(start_ternd=False)
    try:
        t = env.new_ternd()
        assert _ehlo_size(t) == 1024 * 1024

        def rewrite(old, new):
            with open(t.conf_path) as f:
                text = f.read()
            assert old in text
            with open(t.conf_path, "w") as f:
                f.write(text.replace(old, new))

        def wait_size(expected):
            deadline = time.monotonic() + 10
            while _ehlo_size(t) != expected:
                assert time.monotonic() < deadline, t.log_tail()
                time.sleep(0.1)

        rewrite("message_size_max = 1M", "message_size_max = 2M")
        t.proc.send_signal(signal.SIGHUP)
        wait_size(2 * 1024 * 1024)

        rewrite("message_size_max = 2M", "message_size_max = lots")
        t.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while b"reload-failed" not in t.log():
            assert time.monotonic() < deadline, t.log_tail()
            time.sleep(0.1)
        assert b"message_size_max" in t.log()
        assert _ehlo_size(t) == 2 * 1024 * 1024

        # A reload after the first one frees the start-up config unless
        # something holds it; the directory uses it for every lookup.
        rewrite("message_size_max = lots", "message_size_max = 3M")
        t.proc.send_signal(signal.SIGHUP)
        wait_size(3 * 1024 * 1024)
        time.sleep(1.2)  # past cache_ttl: the next lookups go to slapd
        token = unique_token("reload")
        t.send(["user59@example.test"], make_message(token))
        assert harness.count_token(t.mailbox("user59"), token) == 1
        t.check_alive()

        # log_level applies at once: at "warn", an EHLO logs nothing. (The
        # reload's own line is info, so it is not there to wait for.)
        assert b" helo name=" in t.log()
        rewrite("log_level = info", "log_level = warn")
        t.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            before = t.log().count(b" helo name=")
            _ehlo_size(t)
            time.sleep(0.2)
            if t.log().count(b" helo name=") == before:
                break
            assert time.monotonic() < deadline, "log_level not applied by SIGHUP"
    finally:
        env.close()
