#!/bin/sh
# Installs what the benchmarks need on top of scripts/install-deps.sh:
# Dovecot's IMAP server, run side by side with ternd by tests/bench/imap_*.py,
# and Postfix (with its smtp-sink / smtp-source tools), run side by side by
# tests/bench/smtp_compare.py; both from private configs, never as system
# services. Only missing packages are installed; policy-rc.d (exit 101)
# keeps Debian from starting either, Postfix's debconf question is answered
# "No configuration" (no /etc/postfix/main.cf is written), and any system
# instance the packages enabled is disabled and stopped.
set -eu
PKGS="dovecot-core dovecot-imapd postfix"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ -n "$missing" ]; then
	echo "install-bench-deps: installing:$missing"
	created_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
		$SUDO chmod 755 /usr/sbin/policy-rc.d
		created_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	echo "postfix postfix/main_mailer_type select No configuration" |
		$SUDO debconf-set-selections
	$SUDO apt-get update -qq || true
	$SUDO apt-get install -y -qq --no-install-recommends $missing
	[ $created_policy -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi
# The benches start their own dovecot (dovecot -F -c CONF in a temp dir)
# and postfix (master -c DIR in a temp dir); a system instance would only
# compete for the two cores.
if command -v systemctl >/dev/null 2>&1; then
	$SUDO systemctl disable --now dovecot >/dev/null 2>&1 || true
	$SUDO systemctl disable --now dovecot.socket >/dev/null 2>&1 || true
	$SUDO systemctl disable --now postfix >/dev/null 2>&1 || true
	$SUDO systemctl disable --now postfix@- >/dev/null 2>&1 || true
fi
# Without systemd (containers), make sure no system postfix master runs:
# the one whose config is /etc/postfix, never a bench's private instance.
if [ -x /usr/sbin/postfix ] && [ -f /etc/postfix/main.cf ] &&
	$SUDO /usr/sbin/postfix -c /etc/postfix status >/dev/null 2>&1; then
	$SUDO /usr/sbin/postfix -c /etc/postfix stop >/dev/null 2>&1 || true
fi
exit 0
