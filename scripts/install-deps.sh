#!/bin/sh
# Installs the Debian packages Tern needs to build, test and run its demo,
# only those missing, without letting Debian start its own daemons.
# dnsmasq-base is the outbound tests' loopback DNS server (no service: the
# -base package ships no init script; tests start and stop it by PID).
set -eu
# python3-prometheus-client parses /metrics in test_admind.py.
# python3-dkim (with python3-nacl for Ed25519) is the independent DKIM
# signer and verifier of test_dkim.py; opendkim (+ opendkim-tools for
# opendkim-genkey) is the real milter test_smtp_milter.py runs on loopback.
# The Kerberos packages are for GSSAPI: libsasl2-modules-gssapi-mit is
# Cyrus's GSSAPI plugin (ternd), the rest is the tests' private KDC
# (tests/integration/krb5kdc.py: kdb5_util and krb5kdc from krb5-kdc,
# kadmin.local from krb5-admin-server, kinit/klist from krb5-user) and
# their client (python3-gssapi). The system KDC is never used.
PKGS="build-essential cmake pkg-config openssl
libldap-dev libsasl2-dev libsasl2-modules libssl-dev liblmdb-dev lmdb-utils
libevent-dev libunbound-dev libinih-dev libjansson-dev libzstd-dev zlib1g-dev libpsl-dev publicsuffix
libunistring-dev libcmocka-dev
slapd ldap-utils python3 python3-pytest python3-prometheus-client swaks libnet-ssleay-perl libauthen-sasl-perl isync
dnsmasq-base python3-openssl python3-dkim python3-nacl opendkim opendkim-tools
libsasl2-modules-gssapi-mit krb5-kdc krb5-admin-server krb5-user python3-gssapi"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing:$missing"
# policy-rc.d exit 101 keeps Debian from starting slapd (or anything else)
# as a system service; removed again afterwards if we created it.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 755 /usr/sbin/policy-rc.d
	created_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends $missing
[ $created_policy -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
# Debian's slapd and krb5-kdc/krb5-admin-server packages may still have
# left system instances enabled; we never use them, and make sure they
# are not running.
if command -v systemctl >/dev/null 2>&1; then
	for unit in slapd krb5-kdc krb5-admin-server opendkim; do
		$SUDO systemctl disable --now $unit >/dev/null 2>&1 || true
	done
fi
exit 0
