"""ldap_range_proxy.py - a test-only LDAP proxy that makes slapd answer
like Active Directory with a small MaxValRange.

slapd has no ranged attribute retrieval (MS-ADTS 3.1.1.3.1.3.3), so this
sits between ternd (plain ldap://, no TLS) and slapd and rewrites, with a
few lines of BER and the standard library only:

  - a SearchResultEntry whose `member` (the attributes in `ranged`) has
    more than `max_range` values: only the first max_range come back, as
    "member;range=0-<max_range-1>", as AD does;
  - a SearchRequest asking for "member;range=<lo>-<hi|*>": slapd is asked
    for plain "member" and the answer cut to that range, named
    "member;range=<lo>-<last>" or "member;range=<lo>-*" for the end.

mode "empty" plays a broken server: every follow-up answer is an empty
range that is not the last one (a client without a guard would ask for
ever). Every range request seen is counted in `requests`."""
import re
import socket
import threading

RANGE_RE = re.compile(rb"^(.*?);range=(\d+)-(\d+|\*)$", re.I)


def _len(b, i):
    n = b[i]
    if n < 0x80:
        return n, i + 1
    k = n & 0x7F
    return int.from_bytes(b[i + 1:i + 1 + k], "big"), i + 1 + k


def tlv(b, i):
    """(tag, content start, content end) of the TLV at i."""
    tag = b[i]
    n, j = _len(b, i + 1)
    return tag, j, j + n


def children(b, start, end):
    out = []
    i = start
    while i < end:
        t, s, e = tlv(b, i)
        out.append((t, s, e, i))
        i = e
    return out


def enc(tag, content):
    n = len(content)
    if n < 0x80:
        ln = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        ln = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + ln + content


def frame(buf):
    """A complete TLV at the start of buf: its length, or 0."""
    if len(buf) < 2:
        return 0
    n = buf[1]
    if n < 0x80:
        total = 2 + n
    else:
        k = n & 0x7F
        if len(buf) < 2 + k:
            return 0
        total = 2 + k + int.from_bytes(buf[2:2 + k], "big")
    return total if len(buf) >= total else 0


class RangeProxy:
    def __init__(self, upstream_port, max_range=3, ranged=(b"member",), mode="ok"):
        self.upstream_port = upstream_port
        self.max_range = max_range
        self.ranged = {a.lower() for a in ranged}
        self.mode = mode
        self.requests = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.uri = "ldap://127.0.0.1:%d/" % self.port
        self.closing = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closing = True
        self.sock.close()
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.conns += [c, u]
            asked = {}  # msgid bytes -> {attr lower: lo}
            threading.Thread(target=self._pump, args=(c, u, self._request, asked),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, self._answer, asked),
                             daemon=True).start()

    def _pump(self, src, dst, rewrite, asked):
        buf = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    n = frame(buf)
                    if n == 0:
                        break
                    msg, buf = buf[:n], buf[n:]
                    dst.sendall(rewrite(msg, asked))
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # LDAPMessage ::= SEQUENCE { messageID, protocolOp, controls [0] OPTIONAL }
    def _request(self, msg, asked):
        _, s, e = tlv(msg, 0)
        parts = children(msg, s, e)
        if len(parts) < 2 or parts[1][0] != 0x63:  # SearchRequest
            return msg
        msgid = msg[parts[0][3]:parts[0][2]]
        t, os_, oe, _ = parts[1]
        fields = children(msg, os_, oe)
        at, as_, ae, astart = fields[-1]  # attributes SEQUENCE OF OCTET STRING
        new_attrs = b""
        ranges = {}
        for _, vs, ve, _ in children(msg, as_, ae):
            name = msg[vs:ve]
            m = RANGE_RE.match(name)
            if m:
                ranges[m.group(1).lower()] = int(m.group(2))
                self.requests.append(name.decode())
                name = m.group(1)
            new_attrs += enc(0x04, name)
        if not ranges:
            return msg
        asked[msgid] = ranges
        op = msg[os_:astart] + enc(0x30, new_attrs)
        rest = b"".join(msg[p[3]:p[2]] for p in parts[2:])
        return enc(0x30, msg[parts[0][3]:parts[0][2]] + enc(t, op) + rest)

    def _answer(self, msg, asked):
        _, s, e = tlv(msg, 0)
        parts = children(msg, s, e)
        if len(parts) < 2:
            return msg
        msgid = msg[parts[0][3]:parts[0][2]]
        if parts[1][0] == 0x65:  # SearchResultDone
            asked.pop(msgid, None)
            return msg
        if parts[1][0] != 0x64:  # SearchResultEntry
            return msg
        ranges = asked.get(msgid, {})
        t, os_, oe, _ = parts[1]
        name_t, ns, ne, nstart = children(msg, os_, oe)[0]
        _, as_, ae, _ = children(msg, os_, oe)[1]
        changed = False
        attrs = b""
        for _, ps, pe, pstart in children(msg, as_, ae):
            (_, ts, te, _), (vt, vs, ve, _) = children(msg, ps, pe)
            typ = msg[ts:te]
            vals = [msg[x[3]:x[2]] for x in children(msg, vs, ve)]
            lo = ranges.get(typ.lower())
            if typ.lower() in self.ranged and (lo is not None or len(vals) > self.max_range):
                lo = lo or 0
                changed = True
                part = vals[lo:lo + self.max_range]
                if self.mode == "empty" and lo > 0:
                    typ += b";range=%d-%d" % (lo, lo + self.max_range - 1)
                    part = []
                elif lo + self.max_range >= len(vals):
                    typ += b";range=%d-*" % lo
                else:
                    typ += b";range=%d-%d" % (lo, lo + len(part) - 1)
                attrs += enc(0x30, enc(0x04, typ) + enc(0x31, b"".join(part)))
            else:
                attrs += msg[pstart:pe]
        if not changed:
            return msg
        op = msg[nstart:ne] + enc(0x30, attrs)
        rest = b"".join(msg[p[3]:p[2]] for p in parts[2:])
        return enc(0x30, msg[parts[0][3]:parts[0][2]] + enc(t, op) + rest)
