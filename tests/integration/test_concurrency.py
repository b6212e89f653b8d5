"""Many senders at once: 200 messages over 20 concurrent SMTP connections
to several users; every message must arrive exactly once (counted by
Message-ID over POP3). Catches lost or doubled deliveries in the worker
hand-offs, the directory pipelining and the storage writer's batches."""
import re
import threading

from harness import make_message, unique_token

USERS = ["user50", "user51", "user52", "user53", "user54", "bob"]
CONNECTIONS = 20
PER_CONNECTION = 10


def test_200_messages_20_connections(env):
    t = env.ternd
    expected = {u: set() for u in USERS}
    errors = []
    lock = threading.Lock()

    def sender(n):
        try:
            s = t.smtp()
            try:
                for i in range(PER_CONNECTION):
                    user = USERS[(n * PER_CONNECTION + i) % len(USERS)]
                    addr = "%s@example.test" % user
                    token = unique_token("c%02d-%02d" % (n, i))
                    msg = make_message(token, to=addr,
                                       body=("connection %d message %d\r\n" % (n, i)).encode() * 20)
                    code, text = s.mail("sender%d@example.org" % n)
                    assert code == 250, text
                    code, text = s.rcpt(addr)
                    assert code == 250, text
                    code, text = s.data(msg)
                    assert code == 250, text
                    with lock:
                        expected[user].add("<%s@test.example.org>" % token)
                s.quit()
            finally:
                s.close()
        except BaseException as e:  # reported by the main thread
            with lock:
                errors.append("connection %d: %r" % (n, e))

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(CONNECTIONS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads), "senders hung"
    assert not errors, errors
    assert sum(len(v) for v in expected.values()) == CONNECTIONS * PER_CONNECTION

    for user in USERS:
        ids = []
        for m in t.mailbox(user):
            found = re.findall(rb"^Message-ID: (<[^>]+>)\r$", m, re.M | re.I)
            assert len(found) == 1, m[:400]
            ids.append(found[0].decode())
        assert sorted(ids) == sorted(expected[user]), user  # each exactly once
    t.check_alive()


def test_parallel_pop3_readers_and_writers(env):
    """POP3 sessions reading different mailboxes while mail arrives."""
    t = env.ternd
    errors = []

    def reader(user):
        try:
            for _ in range(5):
                t.mailbox(user)
        except BaseException as e:
            errors.append("%s: %r" % (user, e))

    def writer(user):
        try:
            for _ in range(5):
                code, text = t.send("%s@example.test" % user, make_message(unique_token("rw")))
                assert code == 250, text
        except BaseException as e:
            errors.append("%s: %r" % (user, e))

    threads = [threading.Thread(target=reader, args=(u,)) for u in USERS[:4]]
    threads += [threading.Thread(target=writer, args=(u,)) for u in ("user55", "user56")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors
    assert len(t.mailbox("user55")) == 5
    assert len(t.mailbox("user56")) == 5
