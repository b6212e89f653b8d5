"""postfix_server.py - a private Postfix MTA for the SMTP comparison bench.

Runs Debian's postfix (scripts/install-bench-deps.sh) side by side with
ternd, never as the system service and never touching /etc/postfix: its
own config_directory, queue_directory and data_directory in a temp dir,
`postfix -c DIR check` once to create the queue directories, then the
master in the foreground (`master -c DIR -d`) as our child, stopped by
its PID (SIGTERM, which also ends every Postfix daemon below it; a
bounded wait, then SIGKILL of the master and anything left below it).

What it is configured as, and what docs/performance.md records:
- one smtpd listener on 127.0.0.1:PORT (no chroot, no TLS, no SASL);
  mynetworks = 127.0.0.0/8, so a loopback client may relay without AUTH;
- mail for the test domain (example.test) goes durably to Maildirs by
  virtual(8): virtual_mailbox_domains, a hash: virtual_mailbox_maps of the
  same 60 users as the Tern fixture (user01..user60), one uid/gid (nobody);
- everything else goes to relayhost = [127.0.0.1]:SINKPORT with no DNS at
  all (smtp_dns_support_level = disabled, smtp_host_lookup = native);
- logs (Postfix's normal one line per event) to maillog_file through
  postlogd, since this machine has no syslog.
Concurrency knobs are passed in (smtp_destination_concurrency_limit and
friends) so the bench can say what it set.
"""
import os
import pwd
import grp
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

POSTFIX = "/usr/sbin/postfix"
POSTMAP = "/usr/sbin/postmap"
POSTCONF = "/usr/sbin/postconf"
MASTER = "/usr/lib/postfix/sbin/master"
VMAIL_USER = "nobody"
VMAIL_GROUP = "nogroup"


def available():
    return all(os.access(p, os.X_OK) for p in (POSTFIX, POSTMAP, MASTER))


def version():
    try:
        out = subprocess.run([POSTCONF, "-d", "-h", "mail_version"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        return out or "?"
    except OSError:
        return "?"


MAIN_CF = """\
# written by tests/bench/postfix_server.py
compatibility_level = 3.6
queue_directory = {tmp}/spool
data_directory = {tmp}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail-pf.example.test
mydomain = example.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
append_dot_mydomain = no
biff = no
maillog_file_prefixes = {tmp}
maillog_file = {tmp}/maillog

# Durable local delivery: Maildirs under virtual_mailbox_base.
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {tmp}/vmail
virtual_mailbox_maps = hash:{tmp}/etc/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1

# Everything else to the sink, no DNS anywhere.
relayhost = [127.0.0.1]:{sink_port}
smtp_dns_support_level = disabled
smtp_host_lookup = native
disable_dns_lookups = yes

# Concurrency (set by the bench, see docs/performance.md).
{tuning}
"""

MASTER_CF = """\
# written by tests/bench/postfix_server.py (Debian's services, chroot off)
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """users: local parts with a Maildir in `domain`; sink_port: where
    everything else is relayed; tuning: {main.cf key: value}."""

    def __init__(self, users, domain="example.test", sink_port=9, tuning=None, tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="tern-bench-postfix-")
        os.chmod(self.tmp, 0o755)
        self.confdir = os.path.join(self.tmp, "etc")
        self.port = free_port()
        self.host = "127.0.0.1"
        self.domain = domain
        self.users = list(users)
        self.tuning = dict(tuning or {})
        self.proc = None
        pw = pwd.getpwnam(VMAIL_USER)
        self.uid, self.gid = pw.pw_uid, grp.getgrnam(VMAIL_GROUP).gr_gid
        self.vmail = os.path.join(self.tmp, "vmail")
        for d in (self.confdir, os.path.join(self.tmp, "spool"), self.vmail):
            os.makedirs(d, exist_ok=True)
        os.makedirs(os.path.join(self.tmp, "data"), exist_ok=True)
        os.chown(os.path.join(self.tmp, "data"), pwd.getpwnam("postfix").pw_uid,
                 grp.getgrnam("postfix").gr_gid)
        os.chown(self.vmail, self.uid, self.gid)
        tuning_text = "\n".join("%s = %s" % kv for kv in sorted(self.tuning.items()))
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(tmp=self.tmp, domain=domain, uid=self.uid, gid=self.gid,
                                   sink_port=sink_port, tuning=tuning_text))
        with open(os.path.join(self.confdir, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        vmap = os.path.join(self.confdir, "vmailbox")
        with open(vmap, "w") as f:
            for u in self.users:
                f.write("%s@%s %s/\n" % (u, domain, u))  # trailing "/": Maildir
        self._run([POSTMAP, "-c", self.confdir, "hash:" + vmap])

    def _run(self, argv):
        env = dict(os.environ, MAIL_CONFIG=self.confdir)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (" ".join(argv), r.returncode,
                                                        r.stdout, r.stderr))
        return r.stdout

    def maildir(self, user):
        return os.path.join(self.vmail, user)

    def count_delivered(self):
        """Messages in every user's Maildir (new/ and cur/)."""
        n = 0
        for u in self.users:
            for sub in ("new", "cur"):
                try:
                    n += len(os.listdir(os.path.join(self.vmail, u, sub)))
                except FileNotFoundError:
                    pass
        return n

    def queue_count(self):
        """Files in the queue directories (incoming/active/deferred/...)."""
        n = 0
        for q in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(os.path.join(self.tmp, "spool", q)):
                n += len(files)
        return n

    def start(self, timeout=30):
        # Creates the queue directories with Postfix's own owners and modes
        # (post-install create-missing), and checks the config.
        self._run([POSTFIX, "-c", self.confdir, "check"])
        log = open(os.path.join(self.tmp, "master.stderr"), "ab")
        env = dict(os.environ, MAIL_CONFIG=self.confdir)
        try:
            self.proc = subprocess.Popen([MASTER, "-c", self.confdir, "-d"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError("postfix master exited with %d during start-up:\n%s"
                                   % (rc, self.log_tail()))
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    s.settimeout(5)
                    if s.recv(200).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("postfix did not listen within %ss:\n%s"
                                   % (timeout, self.log_tail()))
            time.sleep(0.05)

    def log_tail(self, nbytes=4000):
        out = b""
        for name in ("master.stderr", "maillog"):
            try:
                with open(os.path.join(self.tmp, name), "rb") as f:
                    out += f.read()[-nbytes:]
            except OSError:
                pass
        return out.decode(errors="replace")

    def log_text(self):
        try:
            with open(os.path.join(self.tmp, "maillog"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def pids(self):
        if self.proc is None:
            return []
        return descendants(self.proc.pid)

    def stop(self, timeout=20):
        """SIGTERM to the master (it stops its daemons), a bounded wait,
        then SIGKILL to the master and whatever is left below it."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        below = [(pid, starttime(pid)) for pid in descendants(proc.pid) if pid != proc.pid]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        deadline = time.monotonic() + 5
        for pid, started in below:
            # Only a process that is still the one seen below the master
            # (same start time), never a recycled PID.
            while time.monotonic() < deadline and starttime(pid) == started:
                time.sleep(0.05)
            if started is not None and starttime(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def close(self, keep=False):
        self.stop()
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def starttime(pid):
    """The process's start time (clock ticks since boot), None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    return int(st[st.rindex(")") + 2:].split()[19])


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
