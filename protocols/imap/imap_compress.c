/*
 * imap_compress.c - COMPRESS DEFLATE (RFC 4978). The stream work is the
 * connection's (conn_compress_start in core/conn.c); this is the command.
 *
 * Valid in the authenticated and selected states (command-auth in RFC
 * 4978 5). An algorithm other than DEFLATE is BAD. A second COMPRESS gets
 * NO [COMPRESSIONACTIVE]: the same mechanism is already active (RFC 4978
 * 3 requires that code whenever that is why the server says NO).
 */
#include "protocols/imap/imap_internal.h"
#include "core/log.h"

static void
cmd_compress(struct imap_session *s, const struct imap_cmd *cmd)
{
	if (cmd->count != 1 || cmd->args[0].type != IMAP_ARG_ATOM) {
		imap_bad(s, "COMPRESS takes an algorithm name");
		return;
	}
	if (!imap_arg_is_atom_ci(&cmd->args[0], "DEFLATE")) {
		imap_bad(s, "Unknown compression algorithm");
		return;
	}
	if (conn_compressed(&s->conn)) {
		imap_tagged(s, "NO", "[COMPRESSIONACTIVE] DEFLATE active via COMPRESS");
		return;
	}
	/* The OK goes out uncompressed; everything after it, both ways, is
	 * compressed (RFC 4978 3). */
	imap_tagged(s, "OK", "DEFLATE active");
	if (conn_compress_start(&s->conn) < 0) {
		log_error(s->conn.id, s->conn.service, "compress-failed reason=\"zlib init\"");
		conn_close(&s->conn, "compression unavailable");
		return;
	}
	log_debug(s->conn.id, s->conn.service, "compress algorithm=DEFLATE tls=%s",
		  s->conn.tls ? "yes" : "no");
}

const struct imap_command imap_compress_cmds[] = {
    {"COMPRESS", IMAP_ST_AUTHED, false, cmd_compress},
    {NULL, 0, false, NULL},
};
