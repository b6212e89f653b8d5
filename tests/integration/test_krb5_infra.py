"""test_krb5_infra.py - the Kerberos test infrastructure on its own, no
ternd: krb5kdc.Kdc starts a private MIT KDC on loopback, kinit gets a
ticket, the Python SASL GSSAPI client establishes a context with a Python
acceptor using the exported keytab, and a full RFC 4752 exchange succeeds
against Cyrus SASL's GSSAPI plugin (tests/integration/sasl_gssapi_driver.c,
built as tern-sasl-gssapi-test beside ternd). Skipped when the Debian
Kerberos packages are missing."""
import base64
import os
import socket
import subprocess

import pytest

import krb5kdc

pytestmark = pytest.mark.skipif(krb5kdc.missing() is not None, reason=krb5kdc.missing() or "")

USERS = {"alice": "alice-krb-pw", "bob": "bob-krb-pw"}


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    k = krb5kdc.Kdc(str(tmp_path_factory.mktemp("kdc"))).setup(USERS).start()
    yield k
    k.stop()


def driver_path():
    ternd = os.environ.get("TERND")
    cands = [os.path.join(os.path.dirname(ternd), "tern-sasl-gssapi-test")] if ternd else []
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cands += [os.path.join(root, b, "tern-sasl-gssapi-test") for b in ("build", "build-asan")]
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    pytest.skip("tern-sasl-gssapi-test not built")


def cyrus_exchange(kdc, client, fqdn="localhost", user_realm="-", keytab=None, env_extra=None):
    """Runs client against Cyrus's acceptor; returns the driver's last
    line, with its stderr (Cyrus's log) after a newline if it failed."""
    env = dict(os.environ)
    env.pop("KRB5_KTNAME", None)
    env.pop("KRB5CCNAME", None)
    env["KRB5_CONFIG"] = kdc.krb5_conf
    # The driver is a test tool; libkrb5 keeps a few allocations on its
    # failure paths, which an ASan build would report as leaks.
    env["LSAN_OPTIONS"] = "detect_leaks=0"
    env.update(env_extra or {})
    p = subprocess.Popen([driver_path(), "imap", fqdn, user_realm, keytab or "-"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    resp = client.initial()
    while True:
        p.stdin.write(base64.b64encode(resp) + b"\n")
        p.stdin.flush()
        line = p.stdout.readline().decode().strip()
        if not line.startswith("C "):
            break
        resp = client.step(base64.b64decode(line[2:]))
    p.stdin.close()
    err = p.stderr.read().decode(errors="replace")
    p.stdout.close()
    p.stderr.close()
    rc = p.wait(timeout=10)
    ok = (rc, line[:3]) in ((0, "OK "), (1, "NO "))
    return line if ok else "%s (exit %d)\n%s" % (line, rc, err[-3000:])


def test_kinit_and_keytab(kdc):
    assert kdc.kinit("alice") == kdc.ccache
    out = kdc.klist()
    assert "Default principal: alice@TERN.TEST" in out
    assert "krbtgt/TERN.TEST@TERN.TEST" in out
    keys = subprocess.run([krb5kdc.KLIST, "-k", kdc.keytab], stdout=subprocess.PIPE,
                          env=kdc.base_env(), check=True).stdout.decode()
    for svc in ("imap", "pop", "smtp"):
        assert "%s/localhost@TERN.TEST" % svc in keys


def test_kinit_wrong_password(kdc, tmp_path):
    with pytest.raises(krb5kdc.KdcError):
        kdc.kinit("bob", "not-bobs-password", ccache=str(tmp_path / "cc"))


def test_gss_context_python_acceptor(kdc, tmp_path):
    import gssapi
    cc = kdc.kinit("bob", ccache=str(tmp_path / "cc"))
    client = kdc.client("imap", ccache=cc)
    acceptor = gssapi.SecurityContext(creds=kdc.acceptor_creds(), usage="accept")
    out = acceptor.step(client.initial())
    assert acceptor.complete
    assert client.step(out) == b""
    assert client.ctx.complete
    assert str(acceptor.initiator_name) == "bob@TERN.TEST"
    assert str(acceptor.target_name) == "imap/localhost@TERN.TEST"
    # The security layer step as a server would send it.
    reply = client.step(acceptor.wrap(b"\x01\x00\x00\x00", True).message)
    assert acceptor.unwrap(reply).message == b"\x01\x00\x00\x00"
    assert client.done


def test_cyrus_acceptor(kdc):
    """The settings ternd uses: serverFQDN "localhost", no user_realm, the
    keytab as the plugin's "keytab" option; the realm is stripped because
    it is the default_realm of the server's krb5.conf."""
    kdc.kinit("alice")
    assert cyrus_exchange(kdc, kdc.client("imap"), keytab=kdc.keytab) == "OK alice 0"
    # KRB5_KTNAME works as well when the option is not set.
    assert cyrus_exchange(kdc, kdc.client("imap"),
                          env_extra={"KRB5_KTNAME": "FILE:" + kdc.keytab}) == "OK alice 0"
    # A user_realm is appended to the stripped name, whatever it is.
    assert cyrus_exchange(kdc, kdc.client("imap"), user_realm="TERN.TEST",
                          keytab=kdc.keytab) == "OK alice@TERN.TEST 0"
    # Another host name than the principal's: no key in the keytab.
    line = cyrus_exchange(kdc, kdc.client("imap"), fqdn="127.0.0.1", keytab=kdc.keytab)
    assert line.startswith("NO ") and "imap/127.0.0.1" in line
    # Asking to act as someone else is refused.
    line = cyrus_exchange(kdc, kdc.client("imap", authzid="bob"), keytab=kdc.keytab)
    assert line.startswith("NO ")


def test_stop(tmp_path):
    k = krb5kdc.Kdc(str(tmp_path)).setup({"carol": "c-pw"}).start()
    pid = k.proc.pid
    k.kinit("carol")
    k.stop()
    assert k.proc is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", k.port), timeout=1).close()
    with pytest.raises(krb5kdc.KdcError):
        k.kinit("carol", ccache=str(tmp_path / "cc2"))
