"""TLS on ternd's directory connections against a real slapd with a test
CA made here (tests/fixtures/slapd_fixture.make_pki): ldaps:// and
StartTLS carry logins and deliveries; a certificate from another CA, or
one that does not name 127.0.0.1, is refused with a clear log line while
clients get temporary answers (SMTP 451 4.4.3, IMAP NO [UNAVAILABLE]);
a client certificate is presented when configured and slapd's
TLSVerifyClient demand accepts it. The plaintext-password rule for a
directory off this machine is checked with `ternd -t` (no traffic leaves
loopback) and, as pure logic, in tests/unit/test_dir_tls.c."""
import imaplib
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import harness
from harness import Slapd, make_message, password, unique_token

ORG = harness.org_ldif
fixture = harness.slapd_fixture


class Lab:
    """A test PKI, slapds started on demand and ternds pointed at them."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="tern-dirtls-")
        self.pki = fixture.make_pki(os.path.join(self.tmp, "pki"))
        self.cert, self.key = harness.make_cert(self.tmp)
        self.slapds = []
        self.ternds = []

    def slapd(self, name, **opts):
        s = Slapd(os.path.join(self.tmp, name), **opts)
        harness.SLAPDS.append(s)
        self.slapds.append(s)
        s.start()
        return s

    def ternd(self, uri, start=True, **directory):
        name = "ternd%d" % len(self.ternds)
        keys = {"uri": uri}
        keys.update(directory)
        t = harness.Ternd(self.tmp, uri, self.cert, self.key, {"directory": keys}, name)
        self.ternds.append(t)
        if start:
            t.start()
        return t

    def close(self):
        errors = []
        for t in self.ternds:
            try:
                t.stop()
            except AssertionError as e:
                errors.append(str(e))
            if t in harness.INSTANCES:
                harness.INSTANCES.remove(t)
        for s in self.slapds:
            s.stop()
            if s in harness.SLAPDS:
                harness.SLAPDS.remove(s)
        if errors:
            raise AssertionError("\n".join(errors))
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def lab():
    lb = Lab()
    # The main server: TLS with the test CA, and no simple bind outside
    # TLS, so a working login proves the password went over TLS.
    lb.main = lb.slapd("ldap", tls=lb.pki, require_tls_binds=True)
    yield lb
    lb.close()


def rcpt_reply(t, addr):
    s = t.smtp()
    try:
        assert s.mail("sender@example.org")[0] == 250
        return s.rcpt(addr)
    finally:
        s.close()


def imap_login_reply(t, login):
    m = t.imap()
    try:
        try:
            typ, data = m.login(login, password(login))
            m.logout()
            return typ, data
        except imaplib.IMAP4.error as e:
            return "NO", [str(e).encode()]
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def wait_log(t, needle, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in t.log():
            return True
        time.sleep(0.1)
    return False


def works(t, login="user20"):
    """Delivery and login through t, with the mail read back over POP3."""
    token = unique_token("tls")
    code, text = t.send("%s@example.test" % login, make_message(token))
    assert code == 250, text
    typ, data = imap_login_reply(t, login)
    assert typ == "OK", data
    msgs = t.mailbox(login)
    assert harness.count_token(msgs, token) == 1


def refused(t):
    """The directory is unreachable for t: temporary answers only."""
    code, text = rcpt_reply(t, "user21@example.test")
    assert code == 451 and text.startswith(b"4.4.3"), (code, text)
    typ, data = imap_login_reply(t, "user21")
    assert typ == "NO" and "[UNAVAILABLE]" in repr(data), (typ, data)
    t.check_alive()


def test_ldaps(lab):
    t = lab.ternd(lab.main.ldaps_uri, tls_ca_file=lab.pki.ca)
    works(t)
    assert ("connect uri=%s" % lab.main.ldaps_uri).encode() in t.log()
    t.stop()


def test_starttls(lab):
    t = lab.ternd(lab.main.uri, starttls="yes", tls_ca_file=lab.pki.ca)
    works(t, "user22")
    t.stop()


def test_plain_ldap_is_refused_by_this_server(lab):
    # The control: without StartTLS this slapd refuses simple binds, so
    # test_starttls really ran over TLS.
    t = lab.ternd(lab.main.uri)
    refused(t)
    assert wait_log(t, b"rc=13")  # confidentialityRequired from slapd
    t.stop()


def test_wrong_ca_refused(lab):
    t = lab.ternd(lab.main.ldaps_uri, tls_ca_file=lab.pki.other_ca)
    refused(t)
    assert wait_log(t, b"tls-failed uri=%s" % lab.main.ldaps_uri.encode()), t.log_tail()
    # What OpenSSL finds wrong, not GnuTLS's "(unknown error code)".
    assert b"certificate verify failed" in t.log(), t.log_tail()
    assert b"its CA is not in tls_ca_file/tls_ca_dir" in t.log()
    t.stop()
    # StartTLS is checked the same way.
    t = lab.ternd(lab.main.uri, starttls="yes", tls_ca_file=lab.pki.other_ca)
    refused(t)
    assert wait_log(t, b"tls-failed uri=%s" % lab.main.uri.encode()), t.log_tail()
    t.stop()


def test_hostname_mismatch_refused(lab):
    other = lab.slapd("wrongname", tls=(lab.pki.wrongname_cert, lab.pki.wrongname_key,
                                        lab.pki.ca))
    t = lab.ternd(other.ldaps_uri, tls_ca_file=lab.pki.ca)
    refused(t)
    assert wait_log(t, b"tls-failed uri=%s" % other.ldaps_uri.encode()), t.log_tail()
    assert b"the certificate does not name the host of the URI" in t.log()
    t.stop()
    # tls_verify = no takes any certificate (and says so at start-up).
    t = lab.ternd(other.ldaps_uri, tls_ca_file=lab.pki.ca, tls_verify="no")
    works(t, "user23")
    assert b"tls-verify-off" in t.log()
    t.stop()


def test_client_certificate(lab):
    demanding = lab.slapd("demand", tls=lab.pki, verify_client="demand")
    t = lab.ternd(demanding.ldaps_uri, tls_ca_file=lab.pki.ca)
    refused(t)
    # Under TLS 1.3 the server's refusal comes after the client's side of
    # the handshake is done: a dropped connection, which the probe explains.
    assert wait_log(t, b"tls-failed uri=%s" % demanding.ldaps_uri.encode()), t.log_tail()
    assert b"the server may want a client certificate" in t.log()
    t.stop()
    t = lab.ternd(demanding.ldaps_uri, tls_ca_file=lab.pki.ca, tls_cert=lab.pki.client_cert,
                  tls_key=lab.pki.client_key)
    works(t, "user24")
    t.stop()


def check_config(lab, **directory):
    """`ternd -t` on a config; (exit code, output)."""
    uri = directory.pop("uri", "ldap://127.0.0.1:1/")
    t = lab.ternd(uri, start=False, **directory)
    r = subprocess.run([harness.ternd_path(), "-t", "-c", t.conf_path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return r.returncode, r.stdout.decode(errors="replace")


def test_plaintext_passwords_to_remote_directory_startup_message(lab):
    # 192.0.2.0/24 is TEST-NET-1: `ternd -t` only reads the config, so
    # nothing is sent there.
    rc, out = check_config(lab, uri="ldap://192.0.2.10:389/, ldap://127.0.0.1:389/")
    assert rc == 0, out
    assert "plaintext-passwords-refused uri=ldap://192.0.2.10:389/" in out, out
    assert "starttls = yes" in out and "allow_plaintext_passwords = yes" in out
    assert "uri=ldap://127.0.0.1:389/" not in out  # loopback is fine
    rc, out = check_config(lab, uri="ldaps://192.0.2.10/ ldap://192.0.2.11/", starttls="yes")
    assert rc == 0 and "plaintext-passwords" not in out, out
    rc, out = check_config(lab, uri="ldap://192.0.2.10/", allow_plaintext_passwords="yes")
    assert rc == 0 and "plaintext-passwords uri=ldap://192.0.2.10/" in out, out
    assert "plaintext-passwords-refused" not in out


def test_bad_tls_config(lab):
    rc, out = check_config(lab, tls_cert=lab.pki.client_cert)
    assert rc != 0 and "tls_key" in out, out
    rc, out = check_config(lab, tls_ca_file=os.path.join(lab.tmp, "missing.pem"))
    assert rc != 0 and "tls_ca_file" in out, out


def admind_against(lab, uri, **directory):
    """A ternd config with an [admin] section, and tern-admind on it
    (test_admind.Admind); ternd itself is not started."""
    import test_admind
    port = harness.free_port()
    keys = {"uri": uri}
    keys.update(directory)
    # Admins log in through the directory writer (dir_admin).
    writer_secret = os.path.join(lab.tmp, "writer.secret")
    with open(writer_secret, "w") as f:
        f.write(ORG.WRITER_PASSWORD + "\n")
    os.chmod(writer_secret, 0o600)
    t = harness.Ternd(lab.tmp, uri, lab.cert, lab.key,
                      {"directory": keys,
                       "admin": {"listen": "127.0.0.1:%d" % port,
                                 "admin_group": ORG.ADMIN_GROUP_DN, "threads": "2",
                                 "writer_bind_dn": ORG.WRITER_DN,
                                 "writer_password_file": writer_secret}},
                      "admind%d" % len(lab.ternds))
    return test_admind, test_admind.Admind(t, port).start()


def test_admind_uses_the_same_tls_settings(lab):
    login = ORG.ADMIN_LOGINS[0]
    mod, a = admind_against(lab, lab.main.ldaps_uri, tls_ca_file=lab.pki.ca)
    try:
        status, _, body = mod.call(a, "GET", "/api/v1/whoami", auth=mod.basic(login))
        assert status == 200, body
        assert body["login"] == login
        # ternd is not running here: only the directory check matters.
        _, _, body = mod.call(a, "GET", "/healthz")
        assert body["checks"]["directory"]["status"] == "ok", body
    finally:
        a.stop()
    # A certificate tern-admind cannot verify: no login, and it says why.
    mod, a = admind_against(lab, lab.main.ldaps_uri, tls_ca_file=lab.pki.other_ca)
    try:
        status, _, body = mod.call(a, "GET", "/api/v1/whoami", auth=mod.basic(login))
        assert status == 503, (status, body)
        assert "its CA is not in tls_ca_file" in a.log(), a.log()[-3000:]
        _, _, body = mod.call(a, "GET", "/healthz")
        assert body["checks"]["directory"]["status"] != "ok", body
    finally:
        a.stop()
