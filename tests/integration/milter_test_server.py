"""milter_test_server.py - a small milter (Sendmail milter protocol v6,
libmilter's wire format) for the integration tests, scripted per test.

A script maps a stage name to a list of replies:
  stages: "connect", "helo", "mail", "rcpt", "data", "header", "eoh",
          "body", "eom"
  replies: ("continue",), ("accept",), ("reject",), ("tempfail",),
           ("discard",), ("replycode", "550 5.7.1 text"), ("skip",),
           ("progress",), ("hang",)                      # never answers
           and at "eom" also ("addheader", name, value),
           ("insheader", index, name, value), ("chgheader", index, name,
           value) (value "" deletes), ("replbody", bytes),
           ("quarantine", reason), and the envelope changes ("addrcpt",
           "<a@b>"), ("addrcpt_par", "<a@b>", "ARGS"), ("delrcpt", "<a@b>"),
           ("chgfrom", "<a@b>"[, "ARGS"])
The last reply of a stage's list that is not a modification decides; a
stage not in the script answers continue. A "rcpt" entry may be a dict
{address: replies} to script recipients one by one.

Everything received is recorded in .log as (command, data) tuples so that
a test can check what the MTA sent, macros included. Options: protocol
flags (SMFIP_*) and actions (SMFIF_*) to ask for in the negotiation.
Loopback only; one thread per connection.
"""
import socket
import struct
import threading
import time

SMFIF_ALL = 0x1FF


class MilterServer:
    def __init__(self, script=None, protocol=0, actions=SMFIF_ALL, unix_path=None,
                 symlist=None):
        self.script = script or {}
        self.protocol = protocol
        self.actions = actions
        self.symlist = symlist or {}
        self.log = []  # (connection number, command, data)
        self.connections = 0
        self.unix_path = unix_path
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.socket_spec = "unix:" + unix_path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
            self.socket_spec = "inet:127.0.0.1:%d" % self.port
        self.sock.listen(16)
        self.stop_flag = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.stop_flag = True
        try:
            self.sock.close()
        except OSError:
            pass

    def commands(self, cmd=None):
        with self.lock:
            return [(c, d) for _, c, d in self.log if cmd is None or c == cmd]

    def _accept(self):
        while not self.stop_flag:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    @staticmethod
    def _recv_exact(c, n):
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    @staticmethod
    def _send(c, cmd, data=b""):
        c.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def _replies(self, stage, data):
        r = self.script.get(stage)
        if isinstance(r, dict):
            addr = data.split(b"\0")[0].decode().strip("<>")
            r = r.get(addr)
        return r or [("continue",)]

    def _answer(self, c, stage, data, no_reply):
        replies = self._replies(stage, data)
        for rep in replies:
            kind = rep[0]
            if kind == "hang":
                time.sleep(3600)
            elif kind == "progress":
                self._send(c, b"p")
                time.sleep(rep[1] if len(rep) > 1 else 0)
            elif kind == "addheader":
                self._send(c, b"h", rep[1].encode() + b"\0" + rep[2].encode() + b"\0")
            elif kind == "insheader":
                self._send(c, b"i", struct.pack(">I", rep[1]) + rep[2].encode() + b"\0" +
                           rep[3].encode() + b"\0")
            elif kind == "chgheader":
                self._send(c, b"m", struct.pack(">I", rep[1]) + rep[2].encode() + b"\0" +
                           rep[3].encode() + b"\0")
            elif kind == "replbody":
                body = rep[1]
                for i in range(0, len(body), 65535):
                    self._send(c, b"b", body[i:i + 65535])
            elif kind == "quarantine":
                self._send(c, b"q", rep[1].encode() + b"\0")
            elif kind in ("addrcpt", "delrcpt", "chgfrom", "addrcpt_par"):
                code = {"addrcpt": b"+", "delrcpt": b"-", "chgfrom": b"e",
                        "addrcpt_par": b"2"}[kind]
                data = rep[1].encode() + b"\0"
                if len(rep) > 2:
                    data += rep[2].encode() + b"\0"
                self._send(c, code, data)
            elif kind == "raw":
                c.sendall(rep[1])
            elif no_reply:
                continue
            elif kind == "continue":
                self._send(c, b"c")
            elif kind == "accept":
                self._send(c, b"a")
            elif kind == "reject":
                self._send(c, b"r")
            elif kind == "tempfail":
                self._send(c, b"t")
            elif kind == "discard":
                self._send(c, b"d")
            elif kind == "skip":
                self._send(c, b"s")
            elif kind == "replycode":
                self._send(c, b"y", rep[1].encode() + b"\0")
            else:
                raise ValueError(kind)
        last = [r for r in replies if r[0] in ("continue", "accept", "reject", "tempfail",
                                                "discard", "skip", "replycode")]
        if not last and not no_reply:
            self._send(c, b"c")

    def _serve(self, c, n):
        stage_of = {b"C": "connect", b"H": "helo", b"M": "mail", b"R": "rcpt", b"T": "data",
                    b"L": "header", b"N": "eoh", b"B": "body", b"E": "eom"}
        nr_of = {b"C": 0x1000, b"H": 0x2000, b"M": 0x4000, b"R": 0x8000, b"T": 0x10000,
                 b"L": 0x80, b"N": 0x40000, b"B": 0x80000}
        try:
            while True:
                (length,) = struct.unpack(">I", self._recv_exact(c, 4))
                pkt = self._recv_exact(c, length)
                cmd, data = pkt[:1], pkt[1:]
                with self.lock:
                    self.log.append((n, cmd, data))
                if cmd == b"O":
                    version, actions, protocol = struct.unpack(">III", data[:12])
                    extra = b""
                    for stage, names in self.symlist.items():
                        extra += struct.pack(">I", stage) + names.encode() + b"\0"
                    self._send(c, b"O", struct.pack(">III", 6, self.actions & actions,
                                                     self.protocol & protocol) + extra)
                elif cmd in (b"D", b"A"):
                    continue
                elif cmd in (b"Q", b"K"):
                    return
                elif cmd in stage_of:
                    no_reply = bool(self.protocol & nr_of.get(cmd, 0))
                    self._answer(c, stage_of[cmd], data, no_reply)
        except (EOFError, OSError):
            pass
        finally:
            c.close()
