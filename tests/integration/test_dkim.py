"""DKIM (RFC 6376, RFC 8463) against an independent implementation,
Debian's python3-dkim (dkimpy; Ed25519 through python3-nacl).

- Mail submitted to ternd (authenticated, port 587 style) and relayed out
  through a [routes] entry to an SmtpSink carries a DKIM-Signature that
  dkimpy verifies with the key record `ternd dkim-keygen` printed: RSA,
  then Ed25519 after the key file is swapped and ternd reloaded (SIGHUP);
  the copy fails once its body or a signed header is changed.
- Mail from a domain without a key leaves unsigned, with a log line.
- Messages signed by dkimpy (RSA and Ed25519, each canonicalisation) pass
  `ternd dkim-verify`, Tern's verifier; tampered copies fail.
- A key file that does not load fails `ternd -t`, naming the file.
"""
import base64
import os
import re
import signal
import smtplib
import subprocess
import time

import dkim
import pytest

import harness
from harness import SmtpSink, free_port, password, unique_token

SELECTOR = "tern2026"


def txt_of(keygen_out):
    """The TXT record's strings joined, from dkim-keygen's zone line."""
    m = re.match(r'^(\S+)\._domainkey\.(\S+)\. IN TXT \(', keygen_out)
    assert m, keygen_out
    return "".join(re.findall(r'"([^"]*)"', keygen_out)), m.group(1), m.group(2)


def keygen(key_dir, domain, typ):
    out = subprocess.run([harness.ternd_path(), "dkim-keygen", "--domain", domain,
                          "--selector", SELECTOR, "--type", typ, "--key-dir", key_dir],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    path = os.path.join(key_dir, domain + ".key")
    assert os.stat(path).st_mode & 0o777 == 0o600
    for line in out.stdout.splitlines():
        for s in re.findall(r'"([^"]*)"', line):
            assert len(s) <= 255
    txt, sel, dom = txt_of(out.stdout)
    assert (sel, dom) == (SELECTOR, domain)
    assert txt.startswith("v=DKIM1; k=%s; p=" % typ)
    return txt


def dnsfunc_for(records):
    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return records.get(n.rstrip("."), "").encode()
    return dnsfunc


@pytest.fixture(scope="module")
def world():
    e = harness.Env(start_ternd=False)
    w = type("W", (), {})()
    w.env = e
    try:
        w.key_dir = os.path.join(e.tmp, "dkim")
        os.mkdir(w.key_dir)
        w.txt = {"rsa": keygen(w.key_dir, "example.test", "rsa")}
        w.route_port = free_port()
        w.sink = SmtpSink("127.0.0.1", w.route_port).start()
        w.sub_port = free_port()
        w.ternd = e.new_ternd(overrides={
            "submission": {"listen": "127.0.0.1:%d" % w.sub_port, "plaintext_auth": "yes"},
            "outbound": {"retry_initial": "1s", "retry_max": "2s"},
            "routes": {"far.test": "127.0.0.1:%d" % w.route_port},
            "dkim": {"selector": SELECTOR, "key_dir": w.key_dir},
        })
        yield w
    finally:
        w.sink.stop() if hasattr(w, "sink") else None
        e.close()


def submit(w, msg, sender="alice@example.test"):
    s = smtplib.SMTP("127.0.0.1", w.sub_port, local_hostname="client.example.org",
                     timeout=harness.TIMEOUT)
    try:
        s.ehlo()
        s.login("alice", password("alice"))
        assert not s.sendmail(sender, ["z@far.test"], msg)
    finally:
        s.quit()


def relayed(w, tok):
    deadline = time.time() + 30
    while time.time() < deadline:
        got = [m for m in w.sink.messages if tok.encode() in m.data]
        if got:
            return got[0].data
        time.sleep(0.2)
    raise AssertionError("not relayed: " + w.ternd.log_tail())


def tlog(w):
    return w.ternd.log().decode(errors="replace")


def make_msg(tok, sender="alice@example.test"):
    return ("From: Alice <%s>\r\nTo: z@far.test\r\nSubject: dkim %s\r\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <%s@example.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
            "Hello  %s\r\n\r\nsecond paragraph\r\n" % (sender, tok, tok, tok))


def check_signed(w, data, typ):
    records = {"%s._domainkey.example.test" % SELECTOR: w.txt[typ]}
    m = re.search(rb"^DKIM-Signature:.*?(?=^\S)", data, re.M | re.S)
    assert m, data[:500]
    sig = m.group(0)
    assert b"a=%s-sha256" % typ.encode() in sig
    assert b"c=relaxed/relaxed" in sig and b"d=example.test" in sig
    assert re.search(rb"s=" + SELECTOR.encode() + rb";", sig)
    # From over-signed: listed once more than it appears.
    h = re.search(rb"h=([^;]*);", sig).group(1).replace(b"\r\n\t", b"").replace(b" ", b"")
    assert h.lower().split(b":").count(b"from") == 2, h
    assert dkim.verify(data, dnsfunc=dnsfunc_for(records)), data[:800]
    assert not dkim.verify(data.replace(b"second paragraph", b"second Paragraph"),
                           dnsfunc=dnsfunc_for(records))
    assert not dkim.verify(data.replace(b"Subject: dkim", b"Subject: DKIM"),
                           dnsfunc=dnsfunc_for(records))
    # a second From added above the signed one breaks it (over-signing)
    assert not dkim.verify(data.replace(b"From: Alice", b"From: evil@bad.test\r\nFrom: Alice", 1),
                           dnsfunc=dnsfunc_for(records))
    # Tern's own verifier agrees
    path = os.path.join(w.env.tmp, "relayed.eml")
    with open(path, "wb") as f:
        f.write(data)
    r = subprocess.run([harness.ternd_path(), "dkim-verify", "--key", w.txt[typ], path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("pass d=example.test s=%s" % SELECTOR), \
        r.stdout + r.stderr


def test_relayed_mail_is_signed_rsa_then_ed25519(world):
    w = world
    tok = unique_token("dkrsa")
    submit(w, make_msg(tok))
    check_signed(w, relayed(w, tok), "rsa")
    assert "dkim-signed" in tlog(w) and "a=rsa-sha256" in tlog(w)

    # Swap in an Ed25519 key and reload: the next message uses it.
    os.unlink(os.path.join(w.key_dir, "example.test.key"))
    w.txt["ed25519"] = keygen(w.key_dir, "example.test", "ed25519")
    before = tlog(w).count("reload config=")
    w.ternd.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while tlog(w).count("reload config=") == before and time.time() < deadline:
        time.sleep(0.1)
    assert tlog(w).count("reload config=") > before
    tok = unique_token("dked")
    submit(w, make_msg(tok))
    check_signed(w, relayed(w, tok), "ed25519")


def test_unsigned_without_key(world):
    w = world
    tok = unique_token("dknokey")
    # alice has addresses in example.test only: take its key away.
    os.rename(os.path.join(w.key_dir, "example.test.key"), os.path.join(w.key_dir, "x.off"))
    try:
        w.ternd.proc.send_signal(signal.SIGHUP)
        n = tlog(w).count("reload config=")
        deadline = time.time() + 10
        while tlog(w).count("reload config=") < n + 1 and time.time() < deadline:
            time.sleep(0.1)
        submit(w, make_msg(tok))
        data = relayed(w, tok)
        assert b"DKIM-Signature" not in data
        assert re.search(r"dkim-unsigned id=\S+ domain=example.test reason=no-key",
                         tlog(w))
    finally:
        os.rename(os.path.join(w.key_dir, "x.off"), os.path.join(w.key_dir, "example.test.key"))
        w.ternd.proc.send_signal(signal.SIGHUP)


def ed25519_seed(pem_path):
    der = subprocess.run(["openssl", "pkey", "-in", pem_path, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return base64.b64encode(der[-32:])  # PKCS#8 Ed25519 ends in the 32-byte seed


@pytest.mark.parametrize("typ", ["rsa", "ed25519"])
def test_dkimpy_signed_verifies_in_tern(world, tmp_path, typ):
    key_dir = str(tmp_path)
    txt = keygen(key_dir, "signer.test", typ)
    pem = os.path.join(key_dir, "signer.test.key")
    priv = open(pem, "rb").read() if typ == "rsa" else ed25519_seed(pem)
    msg = make_msg("pysigned", sender="bob@signer.test").encode()
    for canon in ((b"relaxed", b"relaxed"), (b"simple", b"simple"), (b"relaxed", b"simple"),
                  (b"simple", b"relaxed")):
        sig = dkim.sign(msg, SELECTOR.encode(), b"signer.test", priv, canonicalize=canon,
                        signature_algorithm=b"%s-sha256" % typ.encode())
        cases = [(sig + msg, 0, "pass"),
                 (sig + msg.replace(b"second paragraph", b"second paragraph!"), 1, "fail"),
                 (sig + msg.replace(b"Subject: dkim", b"Subject: dKim"), 1, "fail"),
                 ]
        for data, rc, word in cases:
            path = os.path.join(key_dir, "m.eml")
            with open(path, "wb") as f:
                f.write(data)
            r = subprocess.run([harness.ternd_path(), "dkim-verify", "--key", txt, path],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == rc, (canon, r.stdout, r.stderr)
            assert r.stdout.startswith("%s d=signer.test s=%s" % (word, SELECTOR)), r.stdout
        # no key record / revoked key / DNS failure
        for key, word in (("", "permerror"), ("v=DKIM1; p=", "permerror"),
                          ("TEMPFAIL", "temperror")):
            with open(path, "wb") as f:
                f.write(sig + msg)
            r = subprocess.run([harness.ternd_path(), "dkim-verify", "--key", key, path],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 1 and r.stdout.startswith(word), r.stdout


def test_keygen_key_signs(tmp_path):
    """dkim-keygen's key, through ternd dkim-sign, verifies in dkimpy."""
    for typ in ("rsa", "ed25519"):
        d = tmp_path / typ
        d.mkdir()
        txt = keygen(str(d), "gen.test", typ)
        msg = make_msg("gen", sender="a@gen.test").encode()
        (d / "m.eml").write_bytes(msg)
        r = subprocess.run([harness.ternd_path(), "dkim-sign", "--key", str(d / "gen.test.key"),
                            "--domain", "gen.test", "--selector", SELECTOR, str(d / "m.eml")],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        rec = {"%s._domainkey.gen.test" % SELECTOR: txt}
        assert dkim.verify(r.stdout + msg, dnsfunc=dnsfunc_for(rec))
        # refuses to overwrite
        again = subprocess.run([harness.ternd_path(), "dkim-keygen", "--domain", "gen.test",
                                "--selector", SELECTOR, "--key-dir", str(d)],
                               capture_output=True, text=True, timeout=30)
        assert again.returncode == 1 and "File exists" in again.stderr


def test_bad_key_fails_config_check(world, tmp_path):
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    (key_dir / "broken.test.key").write_text("-----BEGIN PRIVATE KEY-----\nnope\n"
                                             "-----END PRIVATE KEY-----\n")
    conf = open(world.ternd.conf_path).read()
    conf = re.sub(r"(?m)^key_dir = .*$", "key_dir = %s" % key_dir, conf)
    path = tmp_path / "t.conf"
    path.write_text(conf)
    r = subprocess.run([harness.ternd_path(), "-c", str(path), "-t"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert "%s/broken.test.key: not a PEM private key" % key_dir in r.stderr, r.stderr
    # and a good one is counted
    (key_dir / "broken.test.key").unlink()
    keygen(str(key_dir), "good.test", "ed25519")
    r = subprocess.run([harness.ternd_path(), "-c", str(path), "-t"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "[dkim] 1 signing key(s)" in r.stdout
