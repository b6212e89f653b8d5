"""test_ternctl.py - ternctl, the admin command line, against a real slapd,
a real ternd and a real tern-admind on one config file.

Admins are the fixture's cn=mail-admins (user45, user46); alice is a
directory user who is not an admin. Checks: help for the whole tool,
every noun and every command; usage errors exit 2 without a server
call; a wrong password and a non-admin exit 3; whoami, health, metrics,
login/logout tokens; --json output parses; the password comes from
TERN_ADMIN_PASSWORD or from a prompt on a terminal (a pty) that never
echoes it; TLS is verified against [tls] cert, --cacert with the name
checked, or --insecure; mailbox and backup commands make real calls,
long jobs print progress and exit from the job's final state; a stopped
tern-admind exits 4.
"""
import json
import os
import pty
import select
import signal
import subprocess
import time

import pytest

import harness
import org_ldif
from prometheus_client.parser import text_string_to_metric_families
from test_admind import Admind

ADMIN = org_ldif.ADMIN_LOGINS[0]  # user45, in cn=mail-admins
NON_ADMIN = "alice"


def ternctl_path():
    path = os.environ.get("TERNCTL")
    if not path:
        path = os.path.join(os.path.dirname(harness.ternd_path()), "ternctl")
    if not os.access(path, os.X_OK):
        raise RuntimeError("set TERNCTL to the ternctl binary (got %r)" % path)
    return path


@pytest.fixture(scope="module")
def setup():
    port = harness.free_port()
    env = harness.Env(start_ternd=False)
    writer_secret = os.path.join(env.tmp, "writer.secret")
    with open(writer_secret, "w") as f:
        f.write(org_ldif.WRITER_PASSWORD + "\n")
    os.chmod(writer_secret, 0o600)
    overrides = {
        "admin": {"listen": "127.0.0.1:%d" % port, "admin_group": org_ldif.ADMIN_GROUP_DN,
                  "threads": "2", "writer_bind_dn": org_ldif.WRITER_DN,
                  "writer_password_file": writer_secret, "auth_cache_ttl": "30s"},
        "backup": {"dir": os.path.join(env.tmp, "backups")},
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


def ctl(setup, *args, login=ADMIN, password=None, env=None, conf=None, timeout=None):
    """Runs ternctl -c CONF [--admin LOGIN] ARGS; returns CompletedProcess
    (text). The password goes through TERN_ADMIN_PASSWORD."""
    e = dict(os.environ)
    for k in ("TERN_ADMIN", "TERN_ADMIN_PASSWORD", "TERN_ADMIN_TOKEN", "TERN_CONFIG"):
        e.pop(k, None)
    if login is not None:
        e["TERN_ADMIN_PASSWORD"] = password if password is not None else harness.password(login)
    e.update(env or {})
    cmd = [ternctl_path(), "-c", conf or setup[0].ternd.conf_path]
    if login is not None:
        cmd += ["--admin", login]
    cmd += list(args)
    p = subprocess.run(cmd, env=e, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout or (harness.TIMEOUT + 60))
    for mark in harness.SANITIZER_MARKS:
        assert mark.decode() not in p.stderr, p.stderr
    return p


def ok(p):
    assert p.returncode == 0, (p.args, p.returncode, p.stdout, p.stderr)
    return p


NOUNS = ["user", "quota", "alias", "list", "member", "mailbox", "job", "queue", "backup",
         "health", "metrics", "whoami", "login", "logout"]
VERBS = {
    "user": ["list", "show", "add", "update", "delete", "disable", "enable", "password",
             "rename"],
    "quota": ["show", "set"], "alias": ["list", "add", "delete"],
    "list": ["list", "show", "add", "update", "delete"], "member": ["list", "add", "remove"],
    "mailbox": ["list", "show", "orphans", "purge", "export", "import"],
    "job": ["list", "show", "wait"],
    "queue": ["list", "show", "retry", "hold", "release", "delete", "bounce"],
    "backup": ["start", "list", "verify", "restore"],
}


def test_help_everywhere(setup):
    top = ok(ctl(setup, "--help", login=None)).stdout
    for section in ("SYNOPSIS", "GLOBAL OPTIONS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT",
                    "EXAMPLES", "TERN_ADMIN_PASSWORD"):
        assert section in top, section
    assert ok(ctl(setup, "help", login=None)).stdout == top
    for noun in NOUNS:
        assert "\n    %s " % noun in top, noun
    for noun, verbs in VERBS.items():
        for form in ([noun, "--help"], ["help", noun], [noun, "help"]):
            text = ok(ctl(setup, *form, login=None)).stdout
            for verb in verbs:
                assert "  %s %s " % (noun, verb) in text, (form, verb)
        for verb in verbs:
            text = ok(ctl(setup, noun, verb, "--help", login=None)).stdout
            assert text.startswith("usage: ternctl [GLOBAL OPTIONS] %s %s" % (noun, verb))
            assert "API: " in text and "Example:" in text, text
            assert ok(ctl(setup, "help", noun, verb, login=None)).stdout == text
    for noun in ("health", "metrics", "whoami", "login", "logout"):
        text = ok(ctl(setup, noun, "--help", login=None)).stdout
        assert text.startswith("usage: ternctl [GLOBAL OPTIONS] %s" % noun), text
    # Required options and arguments are in the usage line.
    text = ok(ctl(setup, "user", "add", "--help", login=None)).stdout
    assert "user add ADDRESS --password SECRET [--login TEXT]" in text
    assert ok(ctl(setup, "--version", login=None)).stdout.startswith("ternctl ")


@pytest.mark.parametrize("args,needle", [
    ([], "usage:"),
    (["frobnicate"], 'unknown command "frobnicate"'),
    (["user"], "user needs a command"),
    (["user", "explode"], 'no command "explode"'),
    (["user", "show"], "missing user"),
    (["user", "add", "x@example.org"], "--password is required"),
    (["user", "show", "a", "b"], 'unexpected argument "b"'),
    (["user", "list", "--colour", "red"], "unknown option --colour"),
    (["whoami", "--frob"], "unknown option --frob"),
    (["quota", "set", "alice", "lots"], '"lots" is not a size'),
    (["user", "add", "x@example.org", "--password", "p", "--quota", "-5"], "not a size"),
    (["mailbox", "export", "alice", "--format"], "--format needs a value"),
    (["mailbox", "purge", "x", "--force=yes"], "--force takes no value"),
    (["--timeout", "soon", "whoami"], "--timeout"),
    (["help", "nothing"], 'unknown command "nothing"'),
    (["help", "user", "nothing"], 'no command "nothing"'),
])
def test_usage_errors_exit_2(setup, args, needle):
    p = ctl(setup, *args)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert needle in p.stderr, (args, p.stderr)
    assert p.stdout == ""


def test_usage_errors_config_and_credentials(setup):
    env, _ = setup
    # No --admin for a command that needs credentials.
    p = ctl(setup, "whoami", login=None)
    assert p.returncode == 2 and "--admin" in p.stderr, p.stderr
    # No password and no terminal (stdin is /dev/null, no controlling tty).
    e = dict(os.environ)
    e.pop("TERN_ADMIN_PASSWORD", None)
    p = subprocess.run([ternctl_path(), "-c", env.ternd.conf_path, "--admin", ADMIN, "whoami"],
                       env=e, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=30, start_new_session=True)
    assert p.returncode == 2 and "TERN_ADMIN_PASSWORD" in p.stderr, p.stderr
    # A config file that is not there, and one without [admin].
    p = ctl(setup, "whoami", conf=os.path.join(env.tmp, "nope.conf"))
    assert p.returncode == 2 and "nope.conf" in p.stderr, p.stderr
    bare = os.path.join(env.tmp, "bare.conf")
    with open(bare, "w") as f:
        f.write("[server]\nhostname = x\n")
    p = ctl(setup, "whoami", conf=bare)
    assert p.returncode == 2 and "[admin] listen" in p.stderr, p.stderr
    # Plain HTTP only with plaintext_auth on loopback.
    plain = os.path.join(env.tmp, "plain.conf")
    with open(plain, "w") as f:
        f.write("[admin]\nlisten = 192.0.2.1:8443\nplaintext_auth = yes\n")
    p = ctl(setup, "whoami", conf=plain)
    assert p.returncode == 2 and "clear text" in p.stderr, p.stderr
    with open(plain, "w") as f:
        f.write("[admin]\nlisten = 127.0.0.1:8443\n")
    p = ctl(setup, "whoami", conf=plain)
    assert p.returncode == 2 and "plaintext_auth" in p.stderr, p.stderr
    # logout needs a token.
    p = ctl(setup, "logout")
    assert p.returncode == 2 and "--token" in p.stderr, p.stderr


def test_whoami_and_json(setup):
    p = ok(ctl(setup, "whoami"))
    lines = dict(l.split(":", 1) for l in p.stdout.splitlines())
    assert lines["login"].strip() == ADMIN
    assert lines["dn"].strip() == "uid=%s,%s" % (ADMIN, org_ldif.PEOPLE)
    body = json.loads(ok(ctl(setup, "whoami", "--json")).stdout)
    assert body == {"login": ADMIN, "dn": "uid=%s,%s" % (ADMIN, org_ldif.PEOPLE)}
    # Global options anywhere on the line; TERN_ADMIN instead of --admin.
    p = ok(ctl(setup, "--json", "whoami", login=None,
               env={"TERN_ADMIN": "user46", "TERN_ADMIN_PASSWORD": harness.password("user46")}))
    assert json.loads(p.stdout)["login"] == "user46"


def test_wrong_password_and_non_admin_exit_3(setup):
    p = ctl(setup, "whoami", password="not-the-password")
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "HTTP 401" in p.stderr and "not-the-password" not in p.stderr + p.stdout
    p = ctl(setup, "whoami", login="no-such-user-here", password="x")
    assert p.returncode == 3, p.stderr
    for args in (["whoami"], ["mailbox", "list"], ["backup", "list"], ["job", "list"],
                 ["metrics"]):
        p = ctl(setup, *args, login=NON_ADMIN)
        assert p.returncode == 3, (args, p.stdout, p.stderr)
        assert "HTTP 403" in p.stderr and "admin_group" in p.stderr, p.stderr
    # --json also prints the error object for scripts.
    p = ctl(setup, "whoami", "--json", login=NON_ADMIN)
    assert p.returncode == 3 and json.loads(p.stdout)["error"]["code"] == "forbidden"
    p = ctl(setup, "login", login=NON_ADMIN)
    assert p.returncode == 3, p.stderr


def test_health_and_metrics(setup):
    p = ok(ctl(setup, "health", login=None))
    lines = dict((k.strip(), v.strip()) for k, v in
                 (l.split(":", 1) for l in p.stdout.splitlines() if ":" in l))
    assert lines["status"] == "ok"
    for check in ("directory", "storage", "listeners"):
        assert lines["checks.%s.status" % check] == "ok", p.stdout
    body = json.loads(ok(ctl(setup, "health", "--json")).stdout)
    assert body["status"] == "ok"

    text = ok(ctl(setup, "metrics")).stdout
    names = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert "tern_ternd_up" in names and "tern_store_file_bytes" in names
    # metrics_public is off: without credentials it is refused (exit 3).
    p = ctl(setup, "metrics", login=None)
    assert p.returncode == 3, p.stderr


def test_login_token_logout(setup):
    token = ok(ctl(setup, "login")).stdout.strip()
    assert len(token) == 64 and int(token, 16) >= 0
    # The token alone is enough: no --admin, no password.
    p = ok(ctl(setup, "--token", token, "whoami", login=None))
    assert "login: %s" % ADMIN in p.stdout
    p = ok(ctl(setup, "whoami", login=None, env={"TERN_ADMIN_TOKEN": token}))
    assert ADMIN in p.stdout
    ok(ctl(setup, "--token", token, "logout", login=None))
    p = ctl(setup, "--token", token, "whoami", login=None)
    assert p.returncode == 3, p.stderr
    body = json.loads(ok(ctl(setup, "login", "--json")).stdout)
    assert body["login"] == ADMIN and body["expires"].endswith("Z")


def run_pty(argv, env, answers, timeout=30):
    """Runs argv on a new pty (its controlling terminal); answers is a list
    of (prompt, reply). Returns (exit status, everything the terminal
    showed)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    seen = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "ternctl on the pty timed out: %r" % seen
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                break  # EIO: the child closed the terminal
            if not data:
                break
            seen += data
            if pending and pending[0][0] in seen:
                os.write(fd, pending.pop(0)[1])
                seen += b"<answered>"
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_password_prompt_without_echo(setup):
    env, _ = setup
    e = dict(os.environ)
    for k in ("TERN_ADMIN_PASSWORD", "TERN_ADMIN_TOKEN", "TERN_ADMIN"):
        e.pop(k, None)
    pw = harness.password(ADMIN)
    argv = [ternctl_path(), "-c", env.ternd.conf_path, "--admin", ADMIN, "whoami"]
    rc, shown = run_pty(argv, e, [(b"Password for %s: " % ADMIN.encode(), pw.encode() + b"\n")])
    assert rc == 0, shown
    assert "login: %s" % ADMIN in shown
    assert pw not in shown, shown
    # A wrong answer at the prompt: exit 3, and still nothing echoed.
    rc, shown = run_pty(argv, e, [(b"Password for ", b"wrong-secret-typed\n")])
    assert rc == 3, shown
    assert "wrong-secret-typed" not in shown
    # TERN_ADMIN_PASSWORD wins: no prompt on the terminal.
    e["TERN_ADMIN_PASSWORD"] = pw
    rc, shown = run_pty(argv, e, [])
    assert rc == 0 and "Password" not in shown, shown
    # A command's SECRET option given as "-" is asked for the same way.
    # (Exit 5 until tern-admind serves /api/v1/users, 0 after.)
    argv = [ternctl_path(), "-c", env.ternd.conf_path, "--admin", ADMIN, "user", "add",
            "pty.user@example.test", "--password", "-"]
    rc, shown = run_pty(argv, e, [(b"password: ", b"typed-user-secret-42\n")])
    assert rc in (0, 5), shown
    assert "<answered>" in shown and "typed-user-secret-42" not in shown, shown


def test_tls_verification(setup):
    env, _ = setup
    # The default (every other test): [tls] cert is the trust anchor.
    # --cacert checks the name too: the test certificate says localhost.
    ok(ctl(setup, "whoami", "--cacert", env.cert, "--tls-name", "localhost"))
    p = ctl(setup, "whoami", "--cacert", env.cert)
    assert p.returncode == 4 and "not trusted" in p.stderr, p.stderr
    other = os.path.join(env.tmp, "other")
    os.makedirs(other, exist_ok=True)
    other_cert, _ = harness.make_cert(other)
    p = ctl(setup, "whoami", "--cacert", other_cert, "--tls-name", "localhost")
    assert p.returncode == 4 and "not trusted" in p.stderr, p.stderr
    ok(ctl(setup, "whoami", "--cacert", other_cert, "--insecure"))
    # A config whose [tls] cert is not the server's: refused.
    conf = os.path.join(env.tmp, "othercert.conf")
    with open(env.ternd.conf_path) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace(env.cert, other_cert))
    p = ctl(setup, "whoami", conf=conf)
    assert p.returncode == 4 and "not trusted" in p.stderr, p.stderr


def test_mailbox_commands(setup):
    env, _ = setup
    t = env.ternd
    token = harness.unique_token("ctl")
    t.send("user11@example.test", harness.make_message(token, to="user11@example.test"))
    p = ok(ctl(setup, "mailbox", "show", "user11"))
    lines = dict((k.strip(), v.strip()) for k, v in
                 (l.split(":", 1) for l in p.stdout.split("\n\n")[0].splitlines()))
    assert lines["login"] == "user11" and int(lines["messages"]) >= 1, p.stdout
    assert "\nmailboxes:\nNAME" in p.stdout and "INBOX" in p.stdout, p.stdout
    body = json.loads(ok(ctl(setup, "mailbox", "show", "user11", "--json")).stdout)
    assert body["login"] == "user11" and body["messages"] >= 1

    p = ok(ctl(setup, "mailbox", "list"))
    header = p.stdout.splitlines()[0].split()
    assert header[:3] == ["LOGIN", "MAIL", "MESSAGES"], p.stdout
    assert any(l.split()[0] == "user11" for l in p.stdout.splitlines()[1:]), p.stdout
    page = json.loads(ok(ctl(setup, "mailbox", "list", "--limit", "1", "--json")).stdout)
    assert len(page["mailboxes"]) == 1
    ok(ctl(setup, "mailbox", "orphans"))

    # 404: exit 5; a bad field: exit 1 with the field named.
    p = ctl(setup, "mailbox", "show", "nobody-at-all@example.org")
    assert p.returncode == 5, (p.stdout, p.stderr)
    p = ctl(setup, "mailbox", "export", "user11", "--format", "zip", "--path",
            os.path.join(env.tmp, "x"))
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "field: format" in p.stderr and "HTTP 400" in p.stderr, p.stderr
    # A purge of a live user is refused (409): exit 1.
    p = ctl(setup, "mailbox", "purge", "user11", "--force")
    assert p.returncode == 1 and "HTTP 409 live_user" in p.stderr, (p.stdout, p.stderr)


def test_long_jobs(setup):
    env, _ = setup
    t = env.ternd
    for i in range(3):
        t.send("user12@example.test",
               harness.make_message(harness.unique_token("job%d" % i), to="user12@example.test"))
    out = os.path.join(env.tmp, "export-user12")
    p = ok(ctl(setup, "mailbox", "export", "user12", "--format", "mbox", "--path", out,
               "--progress"))
    assert "export: " in p.stderr, p.stderr
    assert os.path.exists(out)
    # --json: the final job object.
    out2 = os.path.join(env.tmp, "export-user12-json")
    job = json.loads(ok(ctl(setup, "mailbox", "export", "user12", "--format", "maildir",
                            "--path", out2, "--json")).stdout)
    assert job["state"] == "done" and job["kind"] == "export", job

    # --no-wait returns the id at once; job wait follows it.
    job_id = ok(ctl(setup, "backup", "start", "--no-wait")).stdout.strip()
    assert len(job_id) >= 8 and " " not in job_id, job_id
    p = ok(ctl(setup, "job", "wait", job_id, "--progress"))
    assert "backup: " in p.stderr, p.stderr
    p = ok(ctl(setup, "job", "list"))
    assert job_id in p.stdout and p.stdout.startswith("ID"), p.stdout
    backups = json.loads(ok(ctl(setup, "backup", "list", "--json")).stdout)["backups"]
    assert backups, backups
    bid = backups[0]["id"]
    p = ok(ctl(setup, "backup", "list"))
    assert bid in p.stdout
    job = json.loads(ok(ctl(setup, "backup", "verify", bid, "--json")).stdout)
    assert job["state"] == "done" and job["kind"] == "verify", job
    # Restore while ternd runs: refused (409), exit 1.
    p = ctl(setup, "backup", "restore", bid)
    assert p.returncode == 1 and "HTTP 409" in p.stderr, (p.stdout, p.stderr)
    p = ctl(setup, "job", "show", "0000000000000000")
    assert p.returncode == 5, p.stderr


def test_failed_job_exits_6(setup):
    env, _ = setup
    # An import from a path that holds no mail: started, then fails.
    empty = os.path.join(env.tmp, "not-an-mbox")
    with open(empty, "w") as f:
        f.write("this is not a mailbox\n" * 3)
    p = ctl(setup, "mailbox", "import", "user13", "--format", "maildir", "--path", empty)
    assert p.returncode == 6, (p.stdout, p.stderr)
    assert "import job" in p.stderr and "failed" in p.stderr, p.stderr
    job_id = p.stderr.split("import job ")[1].split()[0]
    # job wait and job show agree on the final state.
    p = ctl(setup, "job", "wait", job_id)
    assert p.returncode == 6, p.stderr
    assert "state:" in ok(ctl(setup, "job", "show", job_id)).stdout


def test_admind_down_exits_4(setup):
    """Last: it stops tern-admind."""
    env, admind = setup
    p = ctl(setup, "--server", "127.0.0.1:%d" % harness.free_port(), "whoami")
    assert p.returncode == 4 and "cannot connect" in p.stderr, p.stderr
    admind.stop()
    p = ctl(setup, "whoami")
    assert p.returncode == 4 and "cannot connect" in p.stderr, p.stderr
    p = ctl(setup, "health", login=None)
    assert p.returncode == 4, p.stderr
