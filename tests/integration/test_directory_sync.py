"""test_directory_sync.py - change pickup through RFC 4533 (directory/dir_sync.c).

The fixture's slapd runs the syncprov overlay; ternd keeps directory
answers for 300 s (cache_ttl and negative_ttl), so only the sync consumer
can make a change visible quickly. Removing a user (ldapdelete), removing
an alias value and removing a group member each reach SMTP RCPT / list
expansion within 2 s (polled up to 5 s; the time is printed), and a new
address is accepted as quickly. A second ternd on the same slapd with
sync = no still answers from its cache after the first one has seen the
change: the test measures the consumer, not a short TTL. A missed change
(made with slapmodify while slapd is down) is seen right after the
consumer reconnects. Against a slapd without syncprov, sync = auto starts
fine and logs once that the TTLs rule; sync = yes logs the refusal.
"""
import re
import subprocess
import time

import pytest

import harness

O = harness.org_ldif
BOUND = 2.0  # seconds the issue allows
POLL_LIMIT = 5.0  # what the test waits before it calls it a failure

LONG_CACHE = {"cache_ttl": "300s", "negative_ttl": "300s"}


def wait_log(t, needle, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in t.log():
            return
        t.check_alive()
        time.sleep(0.05)
    raise AssertionError("%r not logged:\n%s" % (needle, t.log_tail()))


@pytest.fixture(scope="module")
def env():
    e = harness.Env(overrides={"directory": dict(LONG_CACHE, sync="auto")})
    try:
        wait_log(e.ternd, b"sync-ready")
        # The control: the same directory, the same caches, no consumer.
        e.nosync = e.new_ternd({"directory": dict(LONG_CACHE, sync="no")}, name="nosync")
    except BaseException:
        e.close()
        raise
    yield e
    e.close()


def rcpt_code(t, address):
    s = t.smtp()
    try:
        code, text = s.mail("sender@example.org")
        assert code == 250, (code, text)
        code, _ = s.rcpt(address)
        return code
    finally:
        s.close()


def list_mailboxes(t, address):
    """RCPT to a list; the number of mailboxes ternd expanded it to (from
    its log line for this RCPT)."""
    before = len(t.log())
    assert rcpt_code(t, address) == 250
    pat = re.compile(rb"rcpt to=<%s> result=ok mailboxes=(\d+)" % re.escape(address.encode()))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        m = pat.findall(t.log()[before:])
        if m:
            return int(m[-1])
        time.sleep(0.02)
    raise AssertionError("no rcpt log line for %s:\n%s" % (address, t.log_tail()))


def poll(fn, want):
    """Seconds until fn() == want (AssertionError after POLL_LIMIT)."""
    start = time.monotonic()
    while True:
        got = fn()
        took = time.monotonic() - start
        if got == want:
            return took
        assert took < POLL_LIMIT, "still %r after %.1f s (want %r)" % (got, took, want)
        time.sleep(0.05)


def report(what, took):
    print("sync pickup: %s took %.3f s" % (what, took))
    assert took <= BOUND, "%s took %.3f s (bound %.1f s)" % (what, took, BOUND)


def ldapdelete(slapd, dn):
    r = subprocess.run(["/usr/bin/ldapdelete", "-x", "-H", slapd.uri, "-D", O.ROOT_DN,
                        "-w", O.ROOT_PASSWORD, dn],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    assert r.returncode == 0, r.stderr


def test_removed_user_is_refused_within_two_seconds(env):
    t, ctl = env.ternd, env.nosync
    addr = "user30@example.test"
    # Both ternds now hold a positive answer for 300 s.
    assert rcpt_code(t, addr) == 250
    assert rcpt_code(ctl, addr) == 250
    ldapdelete(env.slapd, "uid=user30," + O.PEOPLE)
    report("ldapdelete of a user", poll(lambda: rcpt_code(t, addr), 550))
    # Without the consumer the cache still says yes well past the bound.
    time.sleep(BOUND)
    assert rcpt_code(ctl, addr) == 250


def test_removed_alias_value_is_refused_within_two_seconds(env):
    t, ctl = env.ternd, env.nosync
    alias = O.ALICE_ADDRS[1]  # a.smith@example.test, a mailLocalAddress value
    assert rcpt_code(t, alias) == 250
    assert rcpt_code(ctl, alias) == 250
    env.slapd.modify("dn: uid=alice,%s\nchangetype: modify\ndelete: mailLocalAddress\n"
                     "mailLocalAddress: %s\n" % (O.PEOPLE, alias))
    report("removing an alias value", poll(lambda: rcpt_code(t, alias), 550))
    assert rcpt_code(t, O.ALICE_ADDRS[0]) == 250  # alice herself is still there
    time.sleep(BOUND)
    assert rcpt_code(ctl, alias) == 250


def test_removed_group_member_leaves_the_list_within_two_seconds(env):
    t, ctl = env.ternd, env.nosync
    # staff: alice, bob, user01 (carol is disabled).
    assert list_mailboxes(t, O.STAFF_ADDR) == 3
    assert list_mailboxes(ctl, O.STAFF_ADDR) == 3
    env.slapd.modify("dn: cn=staff,%s\nchangetype: modify\ndelete: member\nmember: uid=bob,%s\n"
                     % (O.GROUPS, O.PEOPLE))
    report("removing a group member", poll(lambda: list_mailboxes(t, O.STAFF_ADDR), 2))
    # Mail to the list now reaches alice but not bob.
    token = harness.unique_token("sync")
    code, text = t.send(O.STAFF_ADDR, harness.make_message(token, to=O.STAFF_ADDR))
    assert code == 250, text
    assert harness.count_token(t.mailbox("alice"), token) == 1
    assert harness.count_token(t.mailbox("bob"), token) == 0
    time.sleep(BOUND)
    assert list_mailboxes(ctl, O.STAFF_ADDR) == 3


def test_new_address_is_accepted_within_two_seconds(env):
    t, ctl = env.ternd, env.nosync
    alias = "new-%s@example.test" % harness.unique_token("a")[2:14]
    # Both cache "no such address" for 300 s.
    assert rcpt_code(t, alias) == 550
    assert rcpt_code(ctl, alias) == 550
    env.slapd.modify("dn: uid=user20,%s\nchangetype: modify\nadd: objectClass\n"
                     "objectClass: inetLocalMailRecipient\n-\nadd: mailLocalAddress\n"
                     "mailLocalAddress: %s\n" % (O.PEOPLE, alias))
    report("adding an address", poll(lambda: rcpt_code(t, alias), 250))
    time.sleep(BOUND)
    assert rcpt_code(ctl, alias) == 550


def test_change_missed_while_disconnected_is_seen_after_reconnect(env):
    t = env.ternd
    addr = "user31@example.test"
    assert rcpt_code(t, addr) == 250  # cached for 300 s
    env.slapd.stop()
    # Offline, so no consumer can be told: slapmodify on slapd's database.
    r = subprocess.run(["/usr/sbin/slapmodify", "-q", "-f", env.slapd.conf],
                       input=("dn: uid=user31,%s\nchangetype: delete\n" % O.PEOPLE).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert r.returncode == 0, r.stdout
    before = t.log().count(b"sync-ready")
    env.slapd.start()
    start = time.monotonic()
    deadline = start + 15
    while t.log().count(b"sync-ready") == before:
        assert time.monotonic() < deadline, t.log_tail()
        time.sleep(0.05)
    print("sync pickup: reconnected after %.3f s" % (time.monotonic() - start))
    assert rcpt_code(t, addr) == 550
    # The reconnect resumed with the server's cookie: its refresh carried
    # only what changed, not every entry name under base as the first did.
    log = t.log().decode(errors="replace")
    starts = re.findall(r"sync-start uri=\S+ base=\S+ cookie=(yes|no)", log)
    readies = [int(n) for n in re.findall(r"sync-ready uri=\S+ entries=(\d+)", log)]
    assert starts[0] == "no" and starts[-1] == "yes", starts
    print("sync refresh entries: first %d, after the reconnect %d" % (readies[0], readies[-1]))
    assert readies[0] > 50 and readies[-1] < readies[0] // 4, readies
    # And the consumer listens again.
    alias = O.ALICE_ADDRS[2]
    assert rcpt_code(t, alias) == 250
    env.slapd.modify("dn: uid=alice,%s\nchangetype: modify\ndelete: mailLocalAddress\n"
                     "mailLocalAddress: %s\n" % (O.PEOPLE, alias))
    report("a change after reconnecting", poll(lambda: rcpt_code(t, alias), 550))
    t.check_alive()


def test_without_syncprov_ternd_falls_back_to_ttls():
    e = harness.Env(overrides={"directory": dict(LONG_CACHE, sync="auto")},
                    slapd_opts={"syncprov": False})
    try:
        t = e.ternd
        wait_log(t, b"sync-unavailable")
        assert rcpt_code(t, "bob@example.test") == 250
        assert rcpt_code(t, "nobody@example.test") == 550
        yes = e.new_ternd({"directory": dict(LONG_CACHE, sync="yes")}, name="syncyes")
        wait_log(yes, b"sync-unavailable")
        assert rcpt_code(yes, "bob@example.test") == 250
        time.sleep(1.0)
        for d in (t, yes):
            log = d.log()
            assert log.count(b"sync-unavailable") == 1, d.log_tail()  # logged once
            assert b"fallback=ttl cache_ttl=300s negative_ttl=300s" in log
            assert b"sync-ready" not in log
            d.check_alive()
        assert b"rootDSE" in t.log()  # auto: the control is not listed
        assert b"refused the sync request control" in yes.log()  # yes: tried and refused
    finally:
        e.close()
