"""[directory] profile = ad against an AD-shaped slapd (tests/fixtures/
ad.schema, org_ldif.generate_ad): the same end-to-end mail paths as the
openldap profile. SMTP delivery to mail and to proxyAddresses (SMTP:
primary, smtp: aliases compared without case, X500:/SIP: ignored), a
group with nested groups and a cycle, the depth cap of the walk (slapd
has no LDAP_MATCHING_RULE_IN_CHAIN, found out from the rootDSE), a user
disabled through userAccountControl refused for RCPT and every login
(though slapd itself would accept the password), IMAP and POP3 logins
by sAMAccountName and by userPrincipalName into one mailbox keyed by the
objectGUID, submission senders from proxyAddresses and managedBy, quota
from a configured attribute, and a computer account that cannot log in."""
import imaplib
import poplib
import smtplib
import subprocess

import pytest

import harness
from harness import count_token, free_port, make_message, password, unique_token

O = harness.org_ldif
UPN = "@" + O.AD_UPN_SUFFIX


@pytest.fixture(scope="module")
def env():
    sub = free_port()
    e = harness.Env(flavour="ad", overrides={
        "directory": {"profile": "ad", "quota_attr": "mDBStorageQuota", "quota_unit": "1k"},
        "submission": {"listen": "127.0.0.1:%d" % sub},
        "outbound": {"relayhost": "127.0.0.1:%d" % free_port()},
        "dns": {"resolver": "127.0.0.1:%d" % free_port()},
    })
    e.sub_port = sub
    yield e
    e.close()


def rcpt(t, addr):
    s = t.smtp()
    try:
        code, text = s.mail("sender@example.org")
        assert code == 250, (code, text)
        return s.rcpt(addr)
    finally:
        s.close()


def deliver(t, addr, body=None):
    token = unique_token("ad")
    code, text = t.send(addr, make_message(token, to=addr, body=body))
    assert code == 250, text
    return token


def test_delivery_to_mail_and_proxy_addresses(env):
    t = env.ternd
    tokens = []
    # The stored value is smtp:A.SMITH@EXAMPLE.TEST; the RCPT is lower
    # case, or mixed.
    for addr in O.AD_ALICE_ADDRS + ("A.Smith@Example.Test",):
        tokens.append(deliver(t, addr))
    box = t.mailbox("alice")
    for token in tokens:
        assert count_token(box, token) == 1, token


def test_primary_from_proxy_addresses_without_mail(env):
    # bob has no mail attribute: SMTP: is his primary, smtp: an alias.
    t = env.ternd
    t1, t2 = deliver(t, O.AD_BOB_PRIMARY), deliver(t, O.AD_BOB_ALIAS)
    box = t.mailbox("bob")
    assert count_token(box, t1) == 1 and count_token(box, t2) == 1


@pytest.mark.parametrize("addr", [O.AD_ALICE_OTHER, "sip:alice.voice@example.test",
                                  "nobody-here@example.test"])
def test_other_proxy_types_are_not_addresses(env, addr):
    code, text = rcpt(env.ternd, addr)
    assert code == 550 and text.startswith(b"5.1.1"), (addr, code, text)


def test_nested_groups_with_a_cycle(env):
    t = env.ternd
    for addr in O.AD_STAFF_ADDRS:
        token = deliver(t, addr)
        for login in O.AD_STAFF_USERS:
            assert count_token(t.mailbox(login), token) == 1, (addr, login)
    log = t.log()
    # Team B lists Staff again: the walk stops there; carol is disabled.
    assert b'list-cycle address=staff@example.test list="cn=Staff,ou=groups' in log
    assert b"rcpt to=<staff@example.test> result=ok mailboxes=4 forwards=0" in log
    assert b"capabilities ad_matching_rules=no source=rootdse" in log


def test_depth_cap(env):
    t = env.ternd
    token = deliver(t, O.AD_DEEP_ADDR)
    assert count_token(t.mailbox(O.AD_DEEP_NEAR), token) == 1
    assert count_token(t.mailbox(O.AD_DEEP_FAR), token) == 0
    assert b"list-too-deep address=deep@example.test" in t.log()


def test_disabled_user_refused_everywhere(env):
    t = env.ternd
    code, text = rcpt(t, O.CAROL_ADDR)
    assert code == 550 and text.startswith(b"5.1.1"), text
    # slapd knows nothing about userAccountControl: it accepts the bind.
    r = subprocess.run(["ldapwhoami", "-x", "-H", env.slapd.uri, "-D", O.ad_user_dn("carol"),
                        "-w", password("carol")], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    for login in ("carol", "carol" + UPN):
        with pytest.raises(imaplib.IMAP4.error):
            t.imap_login(login, password("carol"))
        with pytest.raises(poplib.error_proto):
            t.pop3_login(login, password("carol"))
    assert b'reason="account disabled"' in t.log()


def test_logins_by_sam_and_upn_share_one_mailbox(env):
    t = env.ternd
    token = deliver(t, "user05@example.test")
    for login in ("user05", "user05" + UPN, "USER05" + UPN.upper()):
        m = t.imap_login(login, password("user05"))
        try:
            typ, data = m.select("INBOX")
            assert typ == "OK"
            typ, data = m.search(None, "SUBJECT", token)
            assert typ == "OK" and len(data[0].split()) == 1, (login, data)
            m.logout()
        finally:
            try:
                m.shutdown()
            except OSError:
                pass
        assert count_token(t.mailbox(login, password("user05")), token) == 1, login


def test_mailbox_keyed_by_object_guid(env):
    t = env.ternd
    _, guid = O.ad_guid("user06")
    deliver(t, "user06@example.test")
    t.imap_login("user06" + UPN, password("user06")).logout()
    # The storage key is the GUID in its canonical text form (first three
    # fields byte-swapped, as AD tools show it), whatever the login.
    r = subprocess.run([harness.ternd_path(), "store", "users", "-c", t.conf_path],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert guid.encode() in r.stdout, (guid, r.stdout)
    _, alice = O.ad_guid("alice")
    assert alice.encode() in r.stdout


def test_wrong_password_and_computer_account(env):
    t = env.ternd
    with pytest.raises(imaplib.IMAP4.error):
        t.imap_login("alice", "wrong")
    # ws01$ binds fine in the directory but is no user (sAMAccountType).
    with pytest.raises(imaplib.IMAP4.error):
        t.imap_login("ws01$", password("ws01$"))
    with pytest.raises(poplib.error_proto):
        t.pop3_login("ws01$" + UPN, password("ws01$"))


def test_quota_from_configured_attribute(env):
    t = env.ternd
    addr = "%s@example.test" % O.AD_QUOTA_USER
    deliver(t, addr, body=b"small\r\n")
    big = make_message(unique_token("big"), to=addr, body=(b"y" * 78 + b"\r\n") * 60)
    s = t.smtp()
    try:
        assert s.mail("sender@example.org")[0] == 250
        assert s.rcpt(addr)[0] == 250
        code, text = s.data(big)
        assert code == 552 and text.startswith(b"5.2.2"), (code, text)
    finally:
        s.close()


def sub587(env, login):
    s = smtplib.SMTP("127.0.0.1", env.sub_port, local_hostname="client.example.org",
                     timeout=harness.TIMEOUT)
    s.ehlo()
    s.starttls(context=harness.client_tls_context())
    s.ehlo()
    s.login(login, password(login.split("@")[0]))
    return s


def test_submission_senders_from_proxy_addresses(env):
    s = sub587(env, "bob" + UPN)
    try:
        for own in (O.AD_BOB_PRIMARY, O.AD_BOB_ALIAS.upper()):
            code, text = s.mail(own)
            assert code == 250, (own, code, text)
            s.rset()
        for forged in ("alice@example.test", O.AD_STAFF_ADDRS[0]):
            code, text = s.mail(forged)
            assert code == 553 and text.startswith(b"5.7.1"), (forged, code, text)
            s.rset()
    finally:
        s.close()
    # managedBy: alice may send as the group she manages.
    s = sub587(env, "alice")
    try:
        token = unique_token("managed")
        s.sendmail(O.AD_STAFF_ADDRS[1], [O.AD_BOB_ALIAS],
                   make_message(token, sender=O.AD_STAFF_ADDRS[1], to=O.AD_BOB_ALIAS))
        s.quit()
    finally:
        s.close()
    assert count_token(env.ternd.mailbox("bob"), token) == 1


def test_ternd_still_healthy(env):
    env.ternd.check_alive()
