"""test_store_crash.py - the durability rule under a crash (DESIGN.md,
Storage): 1,000 deliveries over 50 concurrent raw SMTP connections, ternd
killed with SIGKILL part-way, restarted on the same state dir, the rest
delivered. Then every message acknowledged with 250 is in each of its
recipients' mailboxes exactly once (read back over POP3), nothing
unacknowledged is there twice, and `ternd store check` - run beside the
live ternd - finds no problem: every reference count, mailbox counter and
quota total is right. Under ASan the counts are scaled down (same shape).
"""
import signal
import subprocess
import threading

import harness

TOTAL = 400 if harness.SANITIZE else 1000
CONNS = 20 if harness.SANITIZE else 50
USERS = 60


def rcpts_for(n):
    """Most messages go to one user; every 7th to two (a shared body)."""
    first = "user%02d@example.test" % (n % USERS + 1)
    if n % 7 == 0:
        return [first, "user%02d@example.test" % ((n + 13) % USERS + 1)]
    return [first]


def run_load(port, numbers, conns, acked, attempted, lock, stop_after=None, on_stop=None,
             acked_n=None):
    """Delivers messages numbered from the list over `conns` connections;
    records each token acknowledged with 250 in `acked` (its number in
    acked_n, returned) and each whose DATA was sent in `attempted`. When stop_after acks are reached, calls
    on_stop() once (the kill). Connection errors end that connection."""
    queue = list(numbers)
    state = {"fired": False}
    if acked_n is None:
        acked_n = set()

    def worker():
        try:
            c = harness.RawLines(port, timeout=harness.TIMEOUT * 3)
            code, _ = c.smtp_reply()
            assert code == 220
            c.send("EHLO crash.example.org\r\n")
            assert c.smtp_reply()[0] == 250
        except (OSError, EOFError):
            return
        try:
            while True:
                with lock:
                    if not queue:
                        break
                    n = queue.pop(0)
                token = "crash-%d-%s" % (n, harness.unique_token("m"))
                rcpts = rcpts_for(n)
                cmds = "MAIL FROM:<load@example.org>\r\n"
                cmds += "".join("RCPT TO:<%s>\r\n" % r for r in rcpts)
                cmds += "DATA\r\n"
                c.send(cmds)
                ok = c.smtp_reply()[0] == 250
                for _ in rcpts:
                    ok = c.smtp_reply()[0] == 250 and ok
                if c.smtp_reply()[0] != 354 or not ok:
                    raise AssertionError("message %d refused before DATA" % n)
                with lock:
                    attempted[token] = rcpts
                c.send(harness.make_message(token, body=("n=%d\r\n" % n) * 20) + b".\r\n")
                code, text = c.smtp_reply()
                if code == 250:
                    with lock:
                        acked[token] = rcpts
                        acked_n.add(n)
                        fire = (stop_after is not None and not state["fired"]
                                and len(acked) >= stop_after)
                        if fire:
                            state["fired"] = True
                    if fire:
                        on_stop()
                else:
                    raise AssertionError("message %d: %d %s" % (n, code, text))
            c.send("QUIT\r\n")
        except (OSError, EOFError):
            pass  # the kill
        finally:
            c.close()

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a delivery connection hung"
    return acked_n


def store_tool(ternd, *args, timeout=120):
    return subprocess.run([harness.ternd_path(), "store"] + list(args[:1])
                          + ["-c", ternd.conf_path] + list(args[1:]),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def entry_uuid(env, login):
    ldif = env.slapd.ldapsearch(harness.org_ldif.PEOPLE, "(uid=%s)" % login, "entryUUID")
    for line in ldif.splitlines():
        if line.lower().startswith("entryuuid:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no entryUUID for %s: %r" % (login, ldif))


def mailboxes(ternd):
    """{address: [message bytes]} for every test user."""
    out = {}
    for i in range(1, USERS + 1):
        login = "user%02d" % i
        out["%s@example.test" % login] = ternd.mailbox(login)
    return out


def test_sigkill_during_deliveries_loses_nothing_acknowledged():
    env = harness.Env({"server": {"log_level": "warn"}})
    try:
        t = env.ternd
        acked, attempted = {}, {}
        lock = threading.Lock()
        killed = {"at": None}

        def kill():
            killed["at"] = len(acked)
            t.proc.send_signal(signal.SIGKILL)

        # Phase 1: killed once about half has been acknowledged, with
        # deliveries in flight on every connection.
        done = run_load(t.smtp_port, range(TOTAL), CONNS, acked, attempted, lock,
                        stop_after=TOTAL // 2, on_stop=kill)
        assert killed["at"] is not None, "the kill never fired"
        t.proc.wait(10)
        assert t.proc.returncode == -signal.SIGKILL
        t.proc = None
        in_flight = set(attempted) - set(acked)
        phase1 = len(acked)

        # The store is consistent as the crash left it (before any
        # recovery by a new ternd).
        r = store_tool(t, "check")
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()

        # Phase 2: same state dir; what was not acknowledged is sent again
        # (as a client would retry, under a new Message-ID here), so all
        # 1,000 end up acknowledged.
        t.start()
        left = [n for n in range(TOTAL) if n not in done]
        run_load(t.smtp_port, left, CONNS, acked, attempted, lock, acked_n=done)
        assert len(done) == TOTAL, "only %d of %d acknowledged" % (len(done), TOTAL)

        # The check beside the running ternd.
        r = store_tool(t, "check")
        out = r.stdout.decode()
        assert r.returncode == 0, out + r.stderr.decode()
        assert "OK, 0 problems" in out, out

        boxes = mailboxes(t)
        # Every acknowledged message exactly once in each recipient's box.
        missing, dup = [], []
        for token, rcpts in acked.items():
            for addr in rcpts:
                c = harness.count_token(boxes[addr], token)
                if c == 0:
                    missing.append((token, addr))
                elif c > 1:
                    dup.append((token, addr, c))
        assert not missing, "acknowledged but lost: %r" % missing[:5]
        assert not dup, "stored more than once: %r" % dup[:5]
        # Unacknowledged (in flight at the kill): absent or present once.
        for token in in_flight:
            for addr in attempted[token]:
                assert harness.count_token(boxes[addr], token) <= 1, token
        # Nothing else: every message in the store was at least sent.
        total_stored = sum(len(m) for m in boxes.values())
        expected_min = sum(len(r) for r in acked.values())
        expected_max = expected_min + sum(len(attempted[tk]) for tk in in_flight)
        assert expected_min <= total_stored <= expected_max

        # dump agrees with what POP3 showed for one user.
        uuid = entry_uuid(env, "user01")
        r = store_tool(t, "dump", uuid)
        out = r.stdout.decode()
        assert r.returncode == 0, out + r.stderr.decode()
        assert out.startswith('user "%s"' % uuid), out[:200]
        inbox = out.split('mailbox 1 "INBOX"', 1)[1].split("\nmailbox ", 1)[0]
        assert inbox.count("\n  uid=") == len(boxes["user01@example.test"]), out[:2000]
        r = store_tool(t, "dump", "00000000-0000-4000-8000-000000000000")
        assert r.returncode == 1 and b"no user" in r.stderr, r.stderr
        t.check_alive()
    finally:
        env.close()
