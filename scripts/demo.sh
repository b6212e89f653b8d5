#!/bin/sh
# demo.sh - `make demo`: a throwaway slapd with a demo organisation and a
# ternd in front of it, on loopback only, until Ctrl-C.
#
# Usage: sh scripts/demo.sh path/to/ternd
# Everything lives in .demo/ in the checkout (recreated each run). Both
# daemons are children of this script and are stopped by PID on Ctrl-C,
# SIGTERM or any failure. Fails with a message if slapd or ternd do not
# come up; their logs stay in .demo/.
set -eu

TERND=${1:-build/ternd}
BIN=$(dirname "$TERND")
ADMIND="$BIN/tern-admind"
TERNCTL="$BIN/ternctl"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=$ROOT/.demo
FIX=$ROOT/tests/fixtures

case $TERND in
/*) ;;
*) TERND=$(pwd)/$TERND ;;
esac
[ -x "$TERND" ] || { echo "demo: $TERND is not an executable (build first: make build)" >&2; exit 1; }

SLAPD_PID=
TERND_PID=
ADMIND_PID=
# shellcheck disable=SC2317 # called from the traps
cleanup() {
	trap - INT TERM EXIT
	if [ -n "$ADMIND_PID" ]; then
		kill -TERM "$ADMIND_PID" 2>/dev/null || true
		wait "$ADMIND_PID" 2>/dev/null || true
	fi
	if [ -n "$TERND_PID" ]; then
		kill -TERM "$TERND_PID" 2>/dev/null || true
		wait "$TERND_PID" 2>/dev/null || true
	fi
	if [ -n "$SLAPD_PID" ]; then
		kill -TERM "$SLAPD_PID" 2>/dev/null || true
		wait "$SLAPD_PID" 2>/dev/null || true
	fi
	echo
	echo "demo: stopped (logs in $DEMO)"
}
trap cleanup EXIT
trap 'exit 0' INT   # Ctrl-C is the normal way to end the demo
trap 'exit 143' TERM

# A free loopback port: the preferred one if nobody listens there.
pick_port() {
	python3 - "$1" <<'EOF'
import socket, sys
want = int(sys.argv[1])
s = socket.socket()
try:
    s.bind(("127.0.0.1", want))
except OSError:
    s.close()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# Waits until something accepts on 127.0.0.1:$1, or the PID $2 is gone.
wait_port() {
	python3 - "$1" "$2" <<'EOF'
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

rm -rf "$DEMO"
mkdir -p "$DEMO"
chmod 700 "$DEMO"

LDAP_PORT=$(pick_port 3389)
SMTP_PORT=$(pick_port 2525)
POP3_PORT=$(pick_port 2110)
POP3S_PORT=$(pick_port 2995)
IMAP_PORT=$(pick_port 2143)
IMAPS_PORT=$(pick_port 2993)
SUBM_PORT=$(pick_port 2587)
SUBMS_PORT=$(pick_port 2465)
LMTP_PORT=$(pick_port 2024)
ADMIN_PORT=$(pick_port 8443)

# The directory: slapd.conf and the demo organisation from the test fixture.
CONF=$(python3 "$FIX/slapd_fixture.py" setup "$DEMO/ldap")
/usr/sbin/slapd -h "ldap://127.0.0.1:$LDAP_PORT/" -f "$CONF" -d 0 >"$DEMO/slapd.log" 2>&1 &
SLAPD_PID=$!
wait_port "$LDAP_PORT" "$SLAPD_PID" || { echo "demo: slapd did not start; see $DEMO/slapd.log" >&2; exit 1; }

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2 \
	-keyout "$DEMO/key.pem" -out "$DEMO/cert.pem" >/dev/null 2>&1
chmod 600 "$DEMO/key.pem"

SERVICE_PW=$(python3 -c "import sys; sys.path.insert(0, '$FIX'); import org_ldif; print(org_ldif.SERVICE_PASSWORD)")
ALICE_PW=$(python3 -c "import sys; sys.path.insert(0, '$FIX'); import org_ldif; print(org_ldif.password_for('alice'))")
ADMIN_PW=$(python3 -c "import sys; sys.path.insert(0, '$FIX'); import org_ldif; print(org_ldif.password_for('user45'))")
WRITER_PW=$(python3 -c "import sys; sys.path.insert(0, '$FIX'); import org_ldif; print(org_ldif.WRITER_PASSWORD)")
BOB_PW=$(python3 -c "import sys; sys.path.insert(0, '$FIX'); import org_ldif; print(org_ldif.password_for('bob'))")
umask 077
printf '%s\n' "$SERVICE_PW" >"$DEMO/ldap.secret"
printf '%s\n' "$WRITER_PW" >"$DEMO/writer.secret"
umask 022

cat >"$DEMO/tern.conf" <<EOF
; written by scripts/demo.sh
[server]
hostname = mail.example.test
domains = example.test, example.net
state_dir = $DEMO/state
workers = 2
log_level = info

[tls]
cert = $DEMO/cert.pem
key = $DEMO/key.pem

[directory]
uri = ldap://127.0.0.1:$LDAP_PORT
base = dc=example,dc=test
bind_dn = cn=tern,ou=services,dc=example,dc=test
bind_password_file = $DEMO/ldap.secret
profile = openldap
cache_ttl = 5s
negative_ttl = 5s

[limits]
auth_fail_delay = 500ms

[dns]
; A dead loopback port: the demo never sends DNS (or mail) off this
; machine; mail to other domains waits in the queue.
resolver = 127.0.0.1:9

; With no resolver, SPF, DKIM verification and DMARC could only say
; "temperror", after the first message had waited for the resolver to
; time out (~17 s).
[spf]
check = no

[dkim]
verify = no

[dmarc]
check = no

[smtp]
listen = 127.0.0.1:$SMTP_PORT

[submission]
listen = 127.0.0.1:$SUBM_PORT

[submissions]
listen = 127.0.0.1:$SUBMS_PORT

[lmtp]
listen = 127.0.0.1:$LMTP_PORT

[imap]
listen = 127.0.0.1:$IMAP_PORT
plaintext_auth = yes

[imaps]
listen = 127.0.0.1:$IMAPS_PORT

[pop3]
listen = 127.0.0.1:$POP3_PORT
plaintext_auth = yes

[pop3s]
listen = 127.0.0.1:$POP3S_PORT

[admin]
listen = 127.0.0.1:$ADMIN_PORT
admin_group = cn=mail-admins,ou=groups,dc=example,dc=test
writer_bind_dn = cn=tern-admin,ou=services,dc=example,dc=test
writer_password_file = $DEMO/writer.secret
EOF

"$TERND" -c "$DEMO/tern.conf" 2>"$DEMO/ternd.log" &
TERND_PID=$!
if ! wait_port "$SMTP_PORT" "$TERND_PID" || ! wait_port "$POP3_PORT" "$TERND_PID"; then
	echo "demo: ternd did not start; its log:" >&2
	cat "$DEMO/ternd.log" >&2
	exit 1
fi

"$ADMIND" -c "$DEMO/tern.conf" 2>"$DEMO/tern-admind.log" &
ADMIND_PID=$!
if ! wait_port "$ADMIN_PORT" "$ADMIND_PID"; then
	echo "demo: tern-admind did not start; its log:" >&2
	cat "$DEMO/tern-admind.log" >&2
	exit 1
fi

cat <<EOF

Tern demo is running (loopback only). Everything is in $DEMO.
  ternd  pid $TERND_PID   log: $DEMO/ternd.log   config: $DEMO/tern.conf
  tern-admind pid $ADMIND_PID   https://127.0.0.1:$ADMIN_PORT/   log: $DEMO/tern-admind.log
  slapd  pid $SLAPD_PID   ldap://127.0.0.1:$LDAP_PORT/  base dc=example,dc=test
  SMTP 127.0.0.1:$SMTP_PORT   submission $SUBM_PORT (STARTTLS) / $SUBMS_PORT (TLS)   LMTP $LMTP_PORT
  IMAP 127.0.0.1:$IMAP_PORT   IMAPS $IMAPS_PORT   POP3 $POP3_PORT   POP3S $POP3S_PORT

Users (password):
  alice  $ALICE_PW   alice@example.test, a.smith@example.test, alice@example.net
  bob    $BOB_PW     bob@example.test
  list   staff@example.test (alice, bob, user01; carol is disabled)
  user01 .. user60   password userNN-pw-1

Send a message:
  swaks --server 127.0.0.1:$SMTP_PORT --from you@example.org --to alice@example.test
  swaks --server 127.0.0.1:$SMTP_PORT --to staff@example.test --header "Subject: hello staff"

Submit as alice (AUTH after STARTTLS; the demo certificate is self-signed):
  swaks --server 127.0.0.1:$SUBM_PORT --tls --auth PLAIN --auth-user alice --auth-password '$ALICE_PW' --from alice@example.test --to bob@example.test

Read it over IMAP:
  python3 -c 'import imaplib; m = imaplib.IMAP4("127.0.0.1", $IMAP_PORT); m.login("alice", "$ALICE_PW"); print(m.select("INBOX")); print(m.fetch("1:*", "(FLAGS ENVELOPE)")); m.logout()'
  openssl s_client -quiet -crlf -connect 127.0.0.1:$IMAPS_PORT     (then: a LOGIN alice $ALICE_PW / b SELECT INBOX / c FETCH 1 BODY[] / d LOGOUT)

Or over POP3:
  python3 -c 'import poplib; p = poplib.POP3("127.0.0.1", $POP3_PORT); p.user("alice"); p.pass_("$ALICE_PW"); print(p.stat()); [print(b"\n".join(p.retr(i + 1)[1]).decode(errors="replace")) for i in range(p.stat()[0])]; p.quit()'
  openssl s_client -quiet -crlf -connect 127.0.0.1:$POP3S_PORT     (then: USER alice / PASS $ALICE_PW / LIST / RETR 1 / QUIT)

Administer it (user45 is in the admins' group cn=mail-admins):
  export TERN_ADMIN_PASSWORD='$ADMIN_PW'
  $TERNCTL -c $DEMO/tern.conf --admin user45 user add new.hire@example.test --password 'Welcome-2026'
  $TERNCTL -c $DEMO/tern.conf --admin user45 user list
  $TERNCTL -c $DEMO/tern.conf --admin user45 mailbox show alice
  $TERNCTL -c $DEMO/tern.conf --admin user45 backup start
  $TERNCTL -c $DEMO/tern.conf --admin user45 --help
  curl -sk -u user45:'$ADMIN_PW' https://127.0.0.1:$ADMIN_PORT/metrics | head

Ctrl-C stops them all.
EOF

# Wait for either daemon to exit (or for Ctrl-C, which runs cleanup).
while kill -0 "$TERND_PID" 2>/dev/null && kill -0 "$SLAPD_PID" 2>/dev/null &&
	kill -0 "$ADMIND_PID" 2>/dev/null; do
	sleep 1
done
echo "demo: a daemon exited on its own; see $DEMO/ternd.log, $DEMO/tern-admind.log and $DEMO/slapd.log" >&2
exit 1
