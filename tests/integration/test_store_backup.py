"""test_store_backup.py - hot backup and verified restore (DESIGN.md,
Storage; docs/store-tool.md): `ternd store backup` while deliveries keep
arriving, `ternd store restore` into a new state dir, a ternd started on
it: the check passes and every message acknowledged before the backup
started is there exactly once. Restore refuses a backup that fails its
check (a reference count changed with mdb_load), one that is not an LMDB
file, a directory without a manifest, and a store that a running ternd has
open - and changes nothing when it refuses. A second restore over an
existing store keeps the old one as mail.replaced-TIMESTAMP.
"""
import os
import shutil
import subprocess
import threading

import harness

USERS = 60
BEFORE = 100 if harness.SANITIZE else 300
CONNS = 10


def store_tool(conf, *args, timeout=120):
    return subprocess.run([harness.ternd_path(), "store", args[0], "-c", conf] + list(args[1:]),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def out(r):
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


class Load:
    """Connections delivering numbered messages until stopped; `acked`
    lists (token, rcpt) in the order their 250 arrived."""

    def __init__(self, port, prefix, limit=None):
        self.port = port
        self.prefix = prefix
        self.limit = limit
        self.lock = threading.Lock()
        self.acked = []
        self.next = 0
        self.stop = threading.Event()
        self.errors = []

    def worker(self):
        c = harness.RawLines(self.port, timeout=harness.TIMEOUT * 3)
        try:
            assert c.smtp_reply()[0] == 220
            c.send("EHLO backup.example.org\r\n")
            assert c.smtp_reply()[0] == 250
            while not self.stop.is_set():
                with self.lock:
                    n = self.next
                    if self.limit is not None and n >= self.limit:
                        break
                    self.next += 1
                rcpt = "user%02d@example.test" % (n % USERS + 1)
                token = "%s-%d-%s" % (self.prefix, n, harness.unique_token("b"))
                c.send("MAIL FROM:<load@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % rcpt)
                codes = [c.smtp_reply()[0] for _ in range(3)]
                assert codes == [250, 250, 354], codes
                c.send(harness.make_message(token, body="backup load %d\r\n" % n) + b".\r\n")
                code, text = c.smtp_reply()
                assert code == 250, (code, text)
                with self.lock:
                    self.acked.append((token, rcpt))
            c.send("QUIT\r\n")
        except Exception as e:  # reported by join()
            self.errors.append(repr(e))
        finally:
            c.close()

    def start(self, conns):
        self.threads = [threading.Thread(target=self.worker) for _ in range(conns)]
        for t in self.threads:
            t.start()
        return self

    def join(self):
        for t in self.threads:
            t.join(120)
            assert not t.is_alive()
        assert not self.errors, self.errors[:3]

    def snapshot(self):
        with self.lock:
            return list(self.acked)


def mailboxes(ternd):
    return {"user%02d@example.test" % i: ternd.mailbox("user%02d" % i)
            for i in range(1, USERS + 1)}


def corrupt_refcount(mail_dir):
    """Adds one to the first body's reference count with the LMDB tools
    (mdb_dump / mdb_load, hex value lines)."""
    dump = subprocess.run(["mdb_dump", "-s", "blobref", mail_dir], check=True,
                          stdout=subprocess.PIPE, timeout=30).stdout.decode()
    lines = dump.split("\n")
    start = lines.index("HEADER=END") + 1
    key, val = lines[start], lines[start + 1]
    assert key.startswith(" ") and val.startswith(" "), dump[:500]
    raw = bytearray.fromhex(val.strip())
    raw[7] = (raw[7] + 1) % 256  # low byte of the u32 refcount at offset 4
    lines[start + 1] = " " + raw.hex()
    subprocess.run(["mdb_load", "-s", "blobref", mail_dir], input="\n".join(lines).encode(),
                   check=True, timeout=30)
    lock = os.path.join(mail_dir, "lock.mdb")
    if os.path.exists(lock):
        os.unlink(lock)


def test_hot_backup_and_verified_restore():
    env = harness.Env({"server": {"log_level": "warn"}})
    try:
        t = env.ternd
        # Mail that is there well before the backup.
        first = Load(t.smtp_port, "before", limit=BEFORE).start(CONNS)
        first.join()
        assert len(first.acked) == BEFORE

        # Deliveries keep arriving while the backup runs.
        load = Load(t.smtp_port, "during").start(CONNS)
        while len(load.snapshot()) < 20:
            pass
        acked_at_start = first.snapshot() + load.snapshot()
        bdir = os.path.join(env.tmp, "backup1")
        r = store_tool(t.conf_path, "backup", bdir)
        during_backup = len(load.snapshot()) - (len(acked_at_start) - BEFORE)
        load.stop.set()
        load.join()
        assert r.returncode == 0, out(r)
        assert "check passed" in out(r)
        with open(os.path.join(bdir, "MANIFEST")) as f:
            manifest = f.read()
        assert manifest.startswith("tern-store-backup 1\nformat 2\n"), manifest
        assert "\ncheck ok 0\n" in manifest, manifest
        assert sorted(os.listdir(os.path.join(bdir, "mail"))) == ["data.mdb"]

        # A backup never goes into a non-empty directory.
        r = store_tool(t.conf_path, "backup", bdir)
        assert r.returncode == 2 and "not empty" in out(r), out(r)

        # Restore refuses a store that a running ternd has open.
        before_listing = sorted(os.listdir(t.state_dir))
        r = store_tool(t.conf_path, "restore", bdir)
        assert r.returncode == 1, out(r)
        assert "in use by process %d" % t.proc.pid in out(r), out(r)
        assert sorted(os.listdir(t.state_dir)) == before_listing

        # Restore into a new state dir and serve from it.
        n2 = env.new_ternd(name="restored", start=False)
        r = store_tool(n2.conf_path, "restore", bdir)
        assert r.returncode == 0, out(r)
        assert "check passed" in out(r)
        assert os.path.exists(os.path.join(n2.state_dir, "mail", "data.mdb"))
        n2.start()
        r = store_tool(n2.conf_path, "check")
        assert r.returncode == 0 and "OK, 0 problems" in out(r), out(r)
        boxes = mailboxes(n2)
        for token, rcpt in acked_at_start:
            c = harness.count_token(boxes[rcpt], token)
            assert c == 1, "%s acknowledged before the backup, found %d times in %s" % (
                token, c, rcpt)
        restored = sum(len(m) for m in boxes.values())
        assert len(acked_at_start) <= restored <= len(acked_at_start) + during_backup + CONNS
        # The restored store takes new mail.
        token = harness.unique_token("after-restore")
        assert n2.send("user01@example.test", harness.make_message(token))[0] == 250
        assert harness.count_token(n2.mailbox("user01"), token) == 1
        n2.stop()

        mail2 = os.path.join(n2.state_dir, "mail")

        def listing():
            return sorted(os.listdir(n2.state_dir)), os.stat(os.path.join(mail2, "data.mdb"))

        # A backup whose check fails is refused, and nothing moves.
        bad = os.path.join(env.tmp, "backup-bad")
        shutil.copytree(bdir, bad)
        corrupt_refcount(os.path.join(bad, "mail"))
        snap = listing()
        r = store_tool(n2.conf_path, "restore", bad)
        assert r.returncode == 1, out(r)
        assert "reference count" in out(r) and "nothing was changed" in out(r), out(r)
        assert listing() == snap

        # Not an LMDB file at all.
        with open(os.path.join(bad, "mail", "data.mdb"), "r+b") as f:
            f.write(b"\0" * 16384)
        r = store_tool(n2.conf_path, "restore", bad)
        assert r.returncode == 1 and "not usable" in out(r), out(r)
        assert listing() == snap

        # No manifest: not a backup made by the tool.
        os.unlink(os.path.join(bad, "MANIFEST"))
        r = store_tool(n2.conf_path, "restore", bad)
        assert r.returncode == 1 and "MANIFEST" in out(r), out(r)
        assert listing() == snap

        # Restoring over an existing (stopped) store keeps the old one.
        r = store_tool(n2.conf_path, "restore", bdir)
        assert r.returncode == 0, out(r)
        kept = [d for d in os.listdir(n2.state_dir) if d.startswith("mail.replaced-")]
        assert len(kept) == 1, os.listdir(n2.state_dir)
        assert "kept at" in out(r) and kept[0] in out(r)
        assert os.path.exists(os.path.join(n2.state_dir, kept[0], "data.mdb"))
        n2.start()
        # The message delivered after the first restore is in the kept
        # store, not in the freshly restored one.
        assert harness.count_token(n2.mailbox("user01"), token) == 0
        t.check_alive()
    finally:
        env.close()
