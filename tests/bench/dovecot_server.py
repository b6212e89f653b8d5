"""dovecot_server.py - a private Dovecot IMAP server for the IMAP benches.

Runs Debian's dovecot-imapd (scripts/install-bench-deps.sh) side by side
with ternd: `dovecot -F -c CONF` with a config written into a temp dir of
its own (base_dir, state_dir, logs and mail all inside it), listening on
127.0.0.1 on a free port, plaintext (ssl = no), users and passwords from a
passwd-file (no LDAP involved, unlike ternd), mail in sdbox (Dovecot's fast
single-file-per-message format) with Dovecot's default fsync settings,
mail processes running as the system user `mail`. It is stopped by the
master's PID (SIGTERM, bounded wait, SIGKILL), also when the bench fails.

Two tunings a large site would use and that the benches need, both written
into the config and into docs/performance.md:
- imap-login in "high-performance" mode (service_count = 0, one process per
  core holding many clients) instead of one process per connection; the
  default process_limit of 100 would otherwise refuse the idle bench;
- per-user and per-IP connection limits raised (mail_max_userip_connections
  defaults to 10 per user and IP), process limits raised for 10,000 clients.
hibernate=True also moves IDLE-ing clients to imap-hibernate after 1 s
(imap_hibernate_timeout), Dovecot's own answer to many idle connections.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fixtures"))

from slapd_fixture import free_port  # noqa: E402

DOVECOT = "/usr/sbin/dovecot"
MAIL_USER = "mail"


def available():
    return os.access(DOVECOT, os.X_OK)


def version():
    try:
        return subprocess.run([DOVECOT, "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except OSError:
        return "?"


CONFIG = """\
# written by tests/bench/dovecot_server.py
protocols = imap
listen = 127.0.0.1
base_dir = {tmp}/run
state_dir = {tmp}/state
instance_name = tern-bench-{port}
log_path = {tmp}/dovecot.log
info_log_path = {tmp}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = sdbox:~/sdbox
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
first_valid_gid = {gid}
default_vsz_limit = 1G
default_client_limit = {clients}
mail_max_userip_connections = {clients}
# Dovecot's defaults: mail_fsync = optimized, no fts plugin.

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {tmp}/passwd
  default_fields = uid={uid} gid={gid} home={tmp}/home/%u
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 2
  client_limit = {clients}
}}
service imap {{
  process_limit = {clients}
  {imap_master}
}}
service anvil {{
  client_limit = {anvil_clients}
}}
service auth {{
  client_limit = {anvil_clients}
}}
service config {{
  client_limit = {anvil_clients}
}}
service log {{
  client_limit = {anvil_clients}
}}
service stats {{
  client_limit = {anvil_clients}
}}
{hibernate}
"""

HIBERNATE = """\
imap_hibernate_timeout = 1s
service imap-hibernate {
  unix_listener imap-hibernate {
    mode = 0660
    group = $default_internal_group
  }
  client_limit = %d
}
"""


class Dovecot:
    """users: [(login, password)]. clients: the most connections the run
    needs (sizes the process and client limits)."""

    def __init__(self, users, clients=1000, hibernate=False, tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="tern-bench-dovecot-")
        os.chmod(self.tmp, 0o755)  # login and mail processes run as other users
        pw = pwd.getpwnam(MAIL_USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.port = free_port()
        self.host = "127.0.0.1"
        self.users = list(users)
        self.proc = None
        self.hibernate = hibernate
        self.conf_path = os.path.join(self.tmp, "dovecot.conf")
        home = os.path.join(self.tmp, "home")
        os.makedirs(home, exist_ok=True)
        os.chown(home, self.uid, self.gid)
        with open(os.path.join(self.tmp, "passwd"), "w") as f:
            for login, password in self.users:
                f.write("%s:{PLAIN}%s::::::\n" % (login, password))
        os.chmod(os.path.join(self.tmp, "passwd"), 0o644)
        clients = max(1000, clients + 100)
        imap_master = ""
        if hibernate:
            # imap-master must be reachable by imap-hibernate (runs as
            # $default_internal_user) to hand a client back on activity.
            imap_master = "unix_listener imap-master {\n    user = $default_internal_user\n  }"
        with open(self.conf_path, "w") as f:
            f.write(CONFIG.format(tmp=self.tmp, port=self.port, uid=self.uid, gid=self.gid,
                                  clients=clients, anvil_clients=clients * 2 + 1000,
                                  imap_master=imap_master,
                                  hibernate=HIBERNATE % clients if hibernate else ""))

    def start(self, timeout=30):
        log = open(os.path.join(self.tmp, "dovecot.stderr"), "ab")
        try:
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError("dovecot exited with %d during start-up:\n%s"
                                   % (rc, self.log_tail()))
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    s.settimeout(5)
                    if s.recv(200).startswith(b"* OK"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("dovecot did not listen within %ss:\n%s"
                                   % (timeout, self.log_tail()))
            time.sleep(0.05)

    def log_tail(self, nbytes=4000):
        out = b""
        for name in ("dovecot.stderr", "dovecot.log"):
            try:
                with open(os.path.join(self.tmp, name), "rb") as f:
                    out += f.read()[-nbytes:]
            except OSError:
                pass
        return out.decode(errors="replace")

    def pids(self):
        """The master and every process below it."""
        if self.proc is None:
            return []
        return descendants(self.proc.pid)

    def stop(self, timeout=20):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self, keep=False):
        self.stop()
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def descendants(root):
    """root and all its descendants, from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out
