"""test_store_admin.py - the mailbox lifecycle commands of `ternd store`
(docs/store-tool.md) beside a running ternd: mail delivered over SMTP and
flagged over IMAP is exported as Maildir and as mbox, imported into two
other users, and the three users' mailboxes are compared over IMAP (the
bytes of BODY.PEEK[], FLAGS, INTERNALDATE, in UID order). What the export
writes is read back with Python's mailbox module (an independent reader),
and mail written by Python's mailbox module is imported. Malformed input
and usage errors give the documented exit codes and name the file. An
orphan is marked, listed and purged, and `ternd store check` is clean
afterwards; ternd keeps delivering throughout.
"""
import email.utils
import imaplib
import mailbox
import os
import re
import subprocess
import time

import harness

PROJECTS = "Projects/2026.Q1"


def store_tool(ternd, *args, timeout=120):
    return subprocess.run([harness.ternd_path(), "store", args[0], "-c", ternd.conf_path]
                          + list(args[1:]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def out(r):
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def entry_uuid(env, login):
    ldif = env.slapd.ldapsearch(harness.org_ldif.PEOPLE, "(uid=%s)" % login, "entryUUID")
    for line in ldif.splitlines():
        if line.lower().startswith("entryuuid:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no entryUUID for %s: %r" % (login, ldif))


def quote(box):
    return '"%s"' % box


def fetch_all(m, box):
    """[(flags without \\Recent, INTERNALDATE, bytes)] of a mailbox in UID order."""
    typ, _ = m.select(quote(box), readonly=True)
    assert typ == "OK", box
    typ, data = m.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert typ == "OK", data
    msgs = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        head = item[0].decode()
        flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()
        date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
        uid = int(re.search(r"UID (\d+)", head).group(1))
        msgs.append((uid, sorted(f for f in flags if f.lower() != "\\recent"), date, item[1]))
    msgs.sort()
    return [m[1:] for m in msgs]


def internaldate_ts(s):
    return email.utils.mktime_tz(email.utils.parsedate_tz(
        "%s %s" % (s.split(" ")[0].replace("-", " "), " ".join(s.split(" ")[1:]))))


def mboxrd_unquote(data):
    return re.sub(rb"(?m)^>(>*From )", rb"\1", data)


def strip_meta(data):
    """The message without the Status/X-Status/X-Keywords lines the mbox
    export adds at the end of the header block."""
    return re.sub(rb"(?m)^(Status|X-Status|X-Keywords): [^\r\n]*\r?\n", b"", data, count=3)


def test_export_import_purge():
    env = harness.Env({"server": {"log_level": "warn"}})
    try:
        t = env.ternd
        tokens = [harness.unique_token("adm") for _ in range(4)]
        bodies = [
            "plain body\r\n",
            "From the start of a line\r\n>From quoted once\r\n>>From twice\r\n",
            "Fromage is not a separator\r\n\r\n",
            "last\r\n",
        ]
        for tok, body in zip(tokens, bodies):
            assert t.send("user01@example.test", harness.make_message(tok, body=body))[0] == 250

        m = t.imap_login("user01")
        m.select("INBOX")
        assert m.store("1", "+FLAGS", r"(\Seen \Flagged)")[0] == "OK"
        assert m.store("2", "+FLAGS", r"(\Answered $Forwarded work)")[0] == "OK"
        assert m.store("3", "+FLAGS", r"(\Seen \Deleted)")[0] == "OK"
        assert m.create(quote(PROJECTS))[0] == "OK"
        old = time.mktime((2020, 1, 1, 10, 0, 0, 0, 0, 0)) - time.timezone
        assert m.append(quote(PROJECTS), r"(\Draft \Seen)", imaplib.Time2Internaldate(old),
                        harness.make_message("appended", body="in a folder\r\n"))[0] == "OK"
        src_inbox = fetch_all(m, "INBOX")
        src_proj = fetch_all(m, PROJECTS)
        m.logout()
        assert len(src_inbox) == 4 and len(src_proj) == 1

        u1, u2, u3, u4 = (entry_uuid(env, "user%02d" % i) for i in (1, 2, 3, 4))

        # -- export as Maildir, read it with Python's mailbox module
        md = os.path.join(env.tmp, "export-md")
        r = store_tool(t, "export", u1, md, "--format", "maildir", "--progress", "2")
        assert r.returncode == 0, out(r)
        assert "exported %s" % u1 in out(r) and "5 messages" in out(r), out(r)
        assert "export: INBOX: 2 messages" in r.stderr.decode(), out(r)
        pm = mailbox.Maildir(md, factory=None, create=False)
        assert "Projects.2026%2EQ1" in pm.list_folders()
        py_msgs = {}
        for k in pm.keys():
            msg = pm.get_message(k)
            py_msgs[bytes(pm.get_bytes(k))] = msg
        assert len(py_msgs) == 4
        for flags, date, raw in src_inbox:
            msg = py_msgs[raw]  # byte for byte
            want = "".join(sorted(c for f, c in ((r"\Draft", "D"), (r"\Flagged", "F"),
                                                 ("$Forwarded", "P"), (r"\Answered", "R"),
                                                 (r"\Seen", "S"), (r"\Deleted", "T"))
                                  if f in flags))
            want += "a" if "work" in flags else ""  # dovecot-keywords letter 0
            assert msg.get_flags() == want, (msg.get_flags(), flags)
            assert int(msg.get_date()) == internaldate_ts(date)
        sub = pm.get_folder("Projects.2026%2EQ1")
        (k,) = sub.keys()
        assert sub.get_bytes(k) == src_proj[0][2]
        assert sub.get_message(k).get_flags() == "DS"
        assert int(sub.get_message(k).get_date()) == int(old)
        with open(os.path.join(md, "dovecot-keywords")) as f:
            assert f.read() == "0 work\n"

        # -- export as mbox, read it with Python's mailbox module
        mb = os.path.join(env.tmp, "export-mbox")
        r = store_tool(t, "export", u1, mb, "--format", "mbox")
        assert r.returncode == 0, out(r)
        assert "INBOX.mbox" in os.listdir(mb) and "Projects.2026%2EQ1.mbox" in os.listdir(mb)
        pbox = mailbox.mbox(os.path.join(mb, "INBOX.mbox"), create=False)
        got = [bytes(pbox.get_bytes(k)) for k in pbox.keys()]
        assert len(got) == 4
        for (flags, date, raw), mine, key in zip(src_inbox, got, pbox.keys()):
            assert strip_meta(mboxrd_unquote(mine)) == raw
            pf = pbox.get_message(key).get_flags()
            assert ("R" in pf) == (r"\Seen" in flags)
            assert ("F" in pf) == (r"\Flagged" in flags)
            assert ("A" in pf) == (r"\Answered" in flags)
            assert ("D" in pf) == (r"\Deleted" in flags)
            frm = pbox.get_message(key).get_from()
            assert frm.startswith("sender@example.org "), frm
        # mboxrd: the body's From lines got one more '>'
        assert b"\n>From the start" in got[1] and b"\n>>From quoted" in got[1]

        # -- import each into another user, compare over IMAP
        r = store_tool(t, "import", u2, md, "--format", "maildir")
        assert r.returncode == 0, out(r)
        r = store_tool(t, "import", u3, mb, "--format", "mbox", "--progress", "1")
        assert r.returncode == 0, out(r)
        assert "import: INBOX: 4 messages" in r.stderr.decode(), out(r)
        for login in ("user02", "user03"):
            c = t.imap_login(login)
            assert fetch_all(c, "INBOX") == src_inbox, login
            assert fetch_all(c, PROJECTS) == src_proj, login
            c.logout()

        # -- mail written by Python's mailbox module (LF line ends)
        pdir = os.path.join(env.tmp, "py-maildir")
        pmd = mailbox.Maildir(pdir, create=True)
        pmsg = mailbox.MaildirMessage(b"Subject: from python\n\nFrom here on\nline 2\n")
        pmsg.set_flags("FS")
        pmsg.set_date(1500000000)
        pmd.add(pmsg)
        pmd.close()
        r = store_tool(t, "import", u4, pdir, "--format", "maildir", "--mailbox", "FromPython")
        assert r.returncode == 0, out(r)
        ppath = os.path.join(env.tmp, "py.mbox")
        pmb = mailbox.mbox(ppath, create=True)
        pm2 = mailbox.mboxMessage(b"Subject: mbox from python\n\nFrom a line\nend\n")
        pm2.set_from("py@example.org", time.gmtime(1400000000))
        pm2.set_flags("RA")
        pmb.add(pm2)
        pmb.close()
        r = store_tool(t, "import", u4, ppath, "--format", "mbox", "--mailbox", "FromPython")
        assert r.returncode == 0, out(r)
        c = t.imap_login("user04")
        got = fetch_all(c, "FromPython")
        c.logout()
        assert got[0] == ([r"\Flagged", r"\Seen"], "14-Jul-2017 02:40:00 +0000",
                          b"Subject: from python\r\n\r\nFrom here on\r\nline 2\r\n"), got[0]
        assert got[1][0] == [r"\Answered", r"\Seen"], got[1]
        assert internaldate_ts(got[1][1]) == 1400000000
        assert got[1][2] == b"Subject: mbox from python\r\n\r\nFrom a line\r\nend\r\n", got[1]

        # -- malformed input and usage errors
        bad = os.path.join(env.tmp, "bad-maildir")
        os.makedirs(os.path.join(bad, "cur"))
        with open(os.path.join(bad, "cur", "1600000000.x.host:1,S"), "wb") as f:
            f.write(b"Subject: x\n\ny\n")
        r = store_tool(t, "import", u4, bad, "--format", "maildir")
        assert r.returncode == 1, out(r)
        assert "1600000000.x.host:1,S" in out(r) and "not a Maildir message file" in out(r)
        notmbox = os.path.join(env.tmp, "notmbox")
        with open(notmbox, "wb") as f:
            f.write(b"Subject: x\n\ny\n")
        r = store_tool(t, "import", u4, notmbox, "--format", "mbox")
        assert r.returncode == 1 and notmbox in out(r) and "line 1" in out(r), out(r)
        r = store_tool(t, "import", u4, notmbox)
        assert r.returncode == 2 and "--format" in out(r), out(r)
        r = store_tool(t, "export", u1, os.path.join(env.tmp, "x"), "--format", "pst")
        assert r.returncode == 2, out(r)
        r = store_tool(t, "export", "no-such-uuid", os.path.join(env.tmp, "x"),
                       "--format", "mbox")
        assert r.returncode == 1 and "no-such-uuid" in out(r), out(r)
        r = store_tool(t, "export", u1, md, "--format", "maildir")
        assert r.returncode == 1 and "not empty" in out(r), out(r)

        # -- users, usage, orphans, purge
        r = store_tool(t, "users")
        assert r.returncode == 0, out(r)
        rows = {l.split("\t")[0]: l.split("\t") for l in r.stdout.decode().splitlines()[1:]}
        assert rows[u1][2] == "5" and rows[u3][2] == "5", rows
        r = store_tool(t, "usage", u1)
        assert r.returncode == 0, out(r)
        assert "\nmessages 5\n" in out(r) and "\n%s\t1\t" % PROJECTS in out(r), out(r)
        assert "Sent\t0\t0\t0\t\\Sent\tyes" in out(r), out(r)
        r = store_tool(t, "usage", "no-such-uuid")
        assert r.returncode == 1, out(r)

        r = store_tool(t, "mark-orphan", u3)
        assert r.returncode == 0, out(r)
        r = store_tool(t, "orphans")
        assert r.returncode == 0 and u3 in out(r), out(r)
        assert "\tno\n" in out(r)  # 30 days of retention still to go
        r = store_tool(t, "purge", u3)
        assert r.returncode == 2 and "--yes" in out(r), out(r)
        r = store_tool(t, "purge", "--expired", "--yes")
        assert r.returncode == 0 and "purged 0 orphans" in out(r), out(r)
        r = store_tool(t, "purge", u3, "--yes")
        assert r.returncode == 0 and "purged %s: 5 messages" % u3 in out(r), out(r)
        r = store_tool(t, "check")
        assert r.returncode == 0 and "OK, 0 problems" in out(r), out(r)
        r = store_tool(t, "orphans")
        assert u3 not in out(r), out(r)
        r = store_tool(t, "users")
        assert u3 not in out(r) and u1 in out(r), out(r)

        # ternd kept running and keeps delivering; the store is sound.
        tok = harness.unique_token("after")
        assert t.send("user01@example.test", harness.make_message(tok))[0] == 250
        assert t.send("user03@example.test", harness.make_message(tok))[0] == 250
        assert harness.count_token(t.mailbox("user03"), tok) == 1
        c = t.imap_login("user02")
        assert fetch_all(c, "INBOX") == src_inbox
        c.logout()
        r = store_tool(t, "check")
        assert r.returncode == 0 and "OK, 0 problems" in out(r), out(r)
        t.check_alive()
    finally:
        env.close()
