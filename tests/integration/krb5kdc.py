#!/usr/bin/python3
"""krb5kdc.py - a throwaway MIT Kerberos realm on loopback, and a SASL
GSSAPI (RFC 4752) client for IMAP, POP3 and SMTP tests.

Kdc(workdir) writes krb5.conf and kdc.conf for a realm of its own
(TERN.TEST by default) into workdir, creates the database with a random
master password (kdb5_util create -s), adds a principal per user with the
given password and the service principals SERVICE/HOST for imap, pop and
smtp, exports the service keys to workdir/tern.keytab and runs krb5kdc as
a direct child in the foreground (-n) on a free 127.0.0.1 port (UDP and
TCP). start() returns once the KDC answers a kinit; stop() sends SIGTERM
and waits by PID. Every command gets KRB5_CONFIG and KRB5_KDC_PROFILE
pointing at the files in workdir, so /etc/krb5.conf and /etc/krb5kdc are
never read or written.

Host name: the tests connect to 127.0.0.1, but Kerberos names a service
by host name, so the service principals are imap/localhost@REALM (and
pop/, smtp/) and the client asks for "imap@localhost". krb5.conf turns
off DNS and reverse-DNS canonicalisation (dns_canonicalize_hostname =
false, rdns = false), so "localhost" is used as given on both sides and
nothing is looked up; [domain_realm] maps localhost to the realm. A server
using this keytab must be told its host name is "localhost" (Cyrus SASL:
serverFQDN "localhost" in sasl_server_new).

Environments:
  server_env()  KRB5_CONFIG + KRB5_KTNAME (the keytab), for ternd or any
                acceptor run as a subprocess;
  client_env()  KRB5_CONFIG + KRB5CCNAME (a private FILE: cache that
                kinit() fills), for kinit/klist or a client subprocess.

The client side (gssapi_client / SaslGssapiClient) is python3-gssapi. MIT
reads KRB5_CONFIG whenever it makes a krb5 context, which it does per GSS
call, so the test process sets os.environ["KRB5_CONFIG"] (use_config())
and names the credential cache and keytab explicitly through the GSS
credential store (gss_acquire_cred_from), never through KRB5CCNAME or
KRB5_KTNAME of the test process; see SaslGssapiClient. No subprocess is
needed.

Failures raise KdcError with the command's own output attached.
"""
import base64
import os
import secrets
import signal
import socket
import struct
import subprocess
import time

KDB5_UTIL = "/usr/sbin/kdb5_util"
KADMIN_LOCAL = "/usr/sbin/kadmin.local"
KRB5KDC = "/usr/sbin/krb5kdc"
KINIT = "/usr/bin/kinit"
KLIST = "/usr/bin/klist"

REALM = "TERN.TEST"
HOST = "localhost"
SERVICES = ("imap", "pop", "smtp")

# What a test needs to run at all; missing() names the absent ones.
_NEEDED = {
    KDB5_UTIL: "krb5-kdc",
    KRB5KDC: "krb5-kdc",
    KADMIN_LOCAL: "krb5-admin-server",
    KINIT: "krb5-user",
}


class KdcError(Exception):
    pass


def missing():
    """A reason string naming what is not installed, or None."""
    absent = sorted({pkg for path, pkg in _NEEDED.items() if not os.access(path, os.X_OK)})
    try:
        import gssapi  # noqa: F401
    except ImportError:
        absent.append("python3-gssapi")
    if absent:
        return "Kerberos test packages not installed: " + " ".join(absent)
    return None


def free_port():
    """A loopback port free for both TCP and UDP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise KdcError("no free loopback port for TCP and UDP")


def use_config(krb5_conf):
    """Points this process's MIT library at krb5_conf. MIT re-reads the
    profile for every krb5 context (one per GSS call), so this takes
    effect even after earlier gssapi calls."""
    os.environ["KRB5_CONFIG"] = krb5_conf


class Kdc:
    """One krb5kdc on 127.0.0.1:port for realm, with its files in workdir."""

    def __init__(self, workdir, realm=REALM, host=HOST, services=SERVICES, port=None):
        self.workdir = os.path.abspath(workdir)
        self.realm = realm
        self.host = host
        self.services = tuple(services)
        self.port = port if port is not None else free_port()
        self.krb5_conf = os.path.join(self.workdir, "krb5.conf")
        self.kdc_conf = os.path.join(self.workdir, "kdc.conf")
        self.keytab = os.path.join(self.workdir, "tern.keytab")
        self.ccache = os.path.join(self.workdir, "ccache")
        self.log_path = os.path.join(self.workdir, "krb5kdc.log")
        self.db = os.path.join(self.workdir, "principal")
        self.proc = None
        self.users = {}

    # --- files and environments ---------------------------------------

    def service_principal(self, service):
        return "%s/%s@%s" % (service, self.host, self.realm)

    def base_env(self):
        env = dict(os.environ)
        env.pop("KRB5CCNAME", None)
        env.pop("KRB5_KTNAME", None)
        env["KRB5_CONFIG"] = self.krb5_conf
        env["KRB5_KDC_PROFILE"] = self.kdc_conf
        return env

    def server_env(self):
        """For an acceptor subprocess (ternd): config and keytab."""
        return {"KRB5_CONFIG": self.krb5_conf, "KRB5_KTNAME": "FILE:" + self.keytab}

    def client_env(self, ccache=None):
        """For a client subprocess: config and the cache kinit() fills."""
        return {"KRB5_CONFIG": self.krb5_conf, "KRB5CCNAME": "FILE:" + (ccache or self.ccache)}

    def _write_conf(self):
        # No DNS anywhere: the KDC is found from [realms], and host names
        # in service principals are used as given.
        with open(self.krb5_conf, "w") as f:
            f.write("""[libdefaults]
	default_realm = {realm}
	dns_lookup_kdc = false
	dns_lookup_realm = false
	dns_canonicalize_hostname = false
	rdns = false
	udp_preference_limit = 1
	ignore_acceptor_hostname = false
	forwardable = false

[realms]
	{realm} = {{
		kdc = 127.0.0.1:{port}
	}}

[domain_realm]
	{host} = {realm}
	127.0.0.1 = {realm}

[logging]
	kdc = FILE:{log}
""".format(realm=self.realm, port=self.port, host=self.host, log=self.log_path))
        # udp_preference_limit = 1 makes clients use TCP, which fails fast
        # with "connection refused" if the KDC is down instead of waiting
        # for UDP retries.
        with open(self.kdc_conf, "w") as f:
            f.write("""[kdcdefaults]
	kdc_ports = {port}
	kdc_tcp_ports = {port}
	kdc_listen = 127.0.0.1:{port}
	kdc_tcp_listen = 127.0.0.1:{port}

[realms]
	{realm} = {{
		database_name = {db}
		key_stash_file = {dir}/stash
		acl_file = {dir}/kadm5.acl
		max_life = 1h
		max_renewable_life = 0
		supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
	}}

[logging]
	kdc = FILE:{log}
""".format(realm=self.realm, port=self.port, db=self.db, dir=self.workdir, log=self.log_path))
        with open(os.path.join(self.workdir, "kadm5.acl"), "w") as f:
            f.write("")

    def _run(self, argv, input_text=None, env=None, timeout=60):
        r = subprocess.run(argv, input=input_text.encode() if input_text is not None else None,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env or self.base_env(), timeout=timeout)
        if r.returncode != 0:
            raise KdcError("%s failed (%d): %s" % (" ".join(argv[:3]), r.returncode,
                                                   r.stdout.decode(errors="replace")))
        return r.stdout.decode(errors="replace")

    def kadmin(self, query):
        """One kadmin.local query against this realm's database."""
        return self._run([KADMIN_LOCAL, "-r", self.realm, "-q", query])

    # --- lifecycle ------------------------------------------------------

    def setup(self, users=None):
        """Writes the config, creates the database, adds users (a dict
        login -> password) and the service principals, exports the keytab."""
        os.makedirs(self.workdir, exist_ok=True)
        self._write_conf()
        master = secrets.token_hex(16)
        self._run([KDB5_UTIL, "-r", self.realm, "create", "-s", "-P", master])
        for login, pw in (users or {}).items():
            self.add_user(login, pw)
        for svc in self.services:
            self.kadmin("addprinc -randkey " + self.service_principal(svc))
        if os.path.exists(self.keytab):
            os.unlink(self.keytab)
        for svc in self.services:
            self.kadmin("ktadd -k %s %s" % (self.keytab, self.service_principal(svc)))
        return self

    def add_user(self, login, pw):
        self.kadmin("addprinc -pw %s %s@%s" % (pw, login, self.realm))
        self.users[login] = pw

    def start(self, timeout=10):
        if self.proc is not None:
            raise KdcError("already running")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([KRB5KDC, "-n", "-r", self.realm], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, env=self.base_env())
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                raise KdcError("krb5kdc exited: " + self.log_tail())
            if self._answers():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise KdcError("krb5kdc did not answer within %ds: %s" % (timeout, self.log_tail()))
            time.sleep(0.05)

    def _answers(self):
        # The TCP listener is up once connect() succeeds; krb5kdc opens its
        # sockets after loading the database, so that is "ready".
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout=10):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill(self):
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def log_tail(self, nbytes=4000):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - nbytes))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- client side ----------------------------------------------------

    def kinit(self, login, pw=None, ccache=None):
        """Gets login's TGT into ccache (default: this realm's private
        cache); returns the cache's path."""
        ccache = ccache or self.ccache
        if pw is None:
            pw = self.users[login]
        env = self.base_env()
        env["KRB5CCNAME"] = "FILE:" + ccache
        self._run([KINIT, "%s@%s" % (login, self.realm)], input_text=pw + "\n", env=env)
        return ccache

    def klist(self, ccache=None):
        env = self.base_env()
        env["KRB5CCNAME"] = "FILE:" + (ccache or self.ccache)
        return self._run([KLIST], env=env)

    def client(self, service, ccache=None, authzid=""):
        """A SaslGssapiClient for service@host using ccache."""
        use_config(self.krb5_conf)
        return SaslGssapiClient(service, self.host, ccache or self.ccache, authzid=authzid)

    def acceptor_creds(self):
        """GSS acceptor credentials from this realm's keytab (for tests
        that play the server in Python)."""
        import gssapi
        use_config(self.krb5_conf)
        return gssapi.Credentials(usage="accept", store={"keytab": "FILE:" + self.keytab})


class SaslGssapiClient:
    """The client side of SASL GSSAPI (RFC 4752).

    step(challenge_bytes) -> response_bytes, or call the object itself with
    a challenge: that is imaplib's authenticate() callback shape
    (imap.authenticate("GSSAPI", client); imaplib sends no initial
    response, so the first, empty "+ " gets the first token). For POP3
    and SMTP use pop3_auth_gssapi() / smtp_auth_gssapi(), or
    sasl_exchange() for any other line protocol.

    The exchange: GSS context tokens until the context is established
    (the server may need one more empty response after the last token),
    then the server's 4-byte wrapped security-layer offer, answered with
    "no security layer" (0x01), max size 0 and the authzid, wrapped.
    """

    def __init__(self, service, host, ccache, authzid=""):
        import gssapi
        self._gssapi = gssapi
        self.target = gssapi.Name("%s@%s" % (service, host), gssapi.NameType.hostbased_service)
        # The cache is named explicitly (gss_acquire_cred_from) so that
        # KRB5CCNAME of the test process plays no part.
        self.creds = gssapi.Credentials(usage="initiate", store={"ccache": "FILE:" + ccache})
        self.ctx = gssapi.SecurityContext(name=self.target, creds=self.creds, usage="initiate",
                                          flags=gssapi.RequirementFlag.mutual_authentication
                                          | gssapi.RequirementFlag.integrity)
        self.authzid = authzid.encode() if isinstance(authzid, str) else authzid
        self.done = False
        self.offered = None  # (layers, max size) the server offered

    def initial(self):
        """The first token (the SASL initial response; a server that
        starts with an empty challenge gets the same from step(b""))."""
        return self.step(b"")

    def step(self, challenge):
        if self.done:
            raise KdcError("GSSAPI exchange already finished")
        if not self.ctx.complete:
            out = self.ctx.step(challenge if challenge else None)
            return out or b""
        if not challenge:
            # The server acknowledges our last context token with an empty
            # challenge before it sends the security-layer offer.
            return b""
        offer = self.ctx.unwrap(challenge).message
        if len(offer) != 4:
            raise KdcError("security layer offer is %d bytes, not 4" % len(offer))
        self.offered = (offer[0], struct.unpack(">I", b"\0" + offer[1:])[0])
        if not offer[0] & 0x01:
            raise KdcError("server does not offer 'no security layer': %r" % offer)
        self.done = True
        return self.ctx.wrap(b"\x01\x00\x00\x00" + self.authzid, False).message

    def __call__(self, challenge):
        # imaplib passes the decoded challenge and base64-encodes our answer.
        return self.step(challenge)

    @property
    def initiator(self):
        return str(self.ctx.initiator_name) if self.ctx.complete else None


def sasl_exchange(client, send):
    """Runs client against a line protocol. send(b64) sends one base64
    response (the first one is the initial response, to go on the AUTH
    command line) and returns the server's decoded challenge, or None once
    the server has given its final answer."""
    challenge = send(base64.b64encode(client.initial()).decode())
    while challenge is not None:
        challenge = send(base64.b64encode(client.step(challenge)).decode())


def smtp_auth_gssapi(smtp, client):
    """AUTH GSSAPI on an smtplib.SMTP (after EHLO, and STARTTLS if
    wanted) with the initial response on the command line. smtplib's own
    auth() only carries ASCII responses, hence docmd(). Returns the final
    (code, text); raises smtplib.SMTPAuthenticationError on failure."""
    import smtplib
    first = [True]
    last = []

    def send(b64):
        code, text = smtp.docmd("AUTH", "GSSAPI " + b64) if first[0] else smtp.docmd(b64)
        first[0] = False
        if code == 334:
            return base64.b64decode(text)
        last.append((code, text))
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, text)
        return None

    sasl_exchange(client, send)
    return last[0]


def pop3_auth_gssapi(pop, client):
    """AUTH GSSAPI (RFC 5034, initial response on the command line) on a
    poplib.POP3. Returns the final +OK line; raises poplib.error_proto on
    -ERR."""
    import poplib
    first = [True]
    last = []

    def send(b64):
        pop._putcmd("AUTH GSSAPI " + b64 if first[0] else b64)
        first[0] = False
        line, _ = pop._getline()
        if line == b"+" or line.startswith(b"+ "):
            return base64.b64decode(line[2:])
        if not line.startswith(b"+OK"):
            raise poplib.error_proto(line)
        last.append(line)
        return None

    sasl_exchange(client, send)
    return last[0]
