/*
 * smtp_spf.c - sender authentication of mail arriving on [smtp] (port
 * 25): SPF (spf.h) started at MAIL FROM and run while the client sends
 * recipients and data; the end of the message waits for it (and for
 * DKIM and DMARC, smtp_inauth.c) if needed; then the policies ([spf]
 * reject_fail, DMARC) and one Authentication-Results
 * header (authres.h) at the top of the stored message, after dropping
 * any that claims our authserv-id ([server] hostname).
 *
 * LMTP (a trusted MTA in front) and submission (authenticated users)
 * are not checked. How it fails: a temperror is recorded, never
 * rejected and never a pass; a header that does not fit in the message
 * buffer is left out (logged) rather than losing the mail.
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "smtp_internal.h"

static void
spf_done(void *arg, const struct spf_outcome *out)
{
	struct smtp_session *s = arg;
	bool helo = s->sender == NULL || s->sender[0] == '\0';

	s->spf = NULL;
	s->spf_done = true;
	s->spf_result = out->result;
	s->spf_domain = out->domain != NULL ? arena_strdup(s->tx, out->domain) : NULL;
	authres_add(&s->authres, "spf", spf_result_name(out->result),
		    out->reason != NULL ? arena_strdup(s->tx, out->reason) : NULL,
		    helo ? "smtp.helo" : "smtp.mailfrom",
		    arena_strdup(s->tx, helo ? buf_cstr(&s->helo) : s->sender));
	log_info(s->conn.id, s->conn.service,
		 "spf id=%016" PRIx64 " result=%s identity=%s domain=%s ip=%s reason=\"%s\"",
		 s->msg_id, spf_result_name(out->result), helo ? "helo" : "mailfrom",
		 out->domain != NULL ? out->domain : "", s->conn.peer_ip,
		 out->reason != NULL ? out->reason : "");
	smtp_checks_continue(s);
}

void
smtp_spf_start(struct smtp_session *s)
{
	struct spf_request req = {0};

	if (s->svc != SVC_SMTP || !s->cfg->spf_check)
		return;
	if (spf_ip_parse(s->conn.peer_ip, &req.ip) < 0)
		return;
	req.sender = s->sender;
	req.helo = buf_cstr(&s->helo);
	req.receiver = s->cfg->hostname;
	req.now = time(NULL);
	s->spf = spf_check_start(s->conn.worker, &req, spf_done, s);
}

bool
smtp_spf_wait(struct smtp_session *s)
{
	if (s->spf == NULL && s->inauth == NULL)
		return false;
	s->spf_wait = true;
	conn_pause(&s->conn);
	return true;
}

/* Puts the A-R header first in the body, after removing forged ones
 * from the message's own header section. */
static void
insert_header(struct smtp_session *s)
{
	struct conn *c = &s->conn;
	const char *id = s->cfg->hostname;
	unsigned removed = 0;
	char *msg = s->body.data + s->msg_off;
	size_t msg_len = s->body.len - s->msg_off;
	size_t kept = authres_strip(msg, msg_len, id, &removed);

	s->body.len = s->msg_off + kept;
	if (removed > 0)
		log_info(c->id, c->service,
			 "authres-removed id=%016" PRIx64 " count=%u authserv_id=%s", s->msg_id,
			 removed, id);
	struct buf h;
	buf_init(&h, 8192);
	/* [dnsbl] reject = no: the zones that list the client, for later
	 * spam stages. */
	if (s->dnsbl_listed != NULL &&
	    buf_printf(&h, "X-Tern-DNSBL: %s\r\n", s->dnsbl_listed) < 0) {
		buf_free(&h);
		return;
	}
	if ((s->cfg->spf_check || s->cfg->dkim_verify || s->cfg->dmarc_check) &&
	    authres_render(&s->authres, id, &h) < 0) {
		buf_free(&h);
		return;
	}
	char *room = buf_reserve(&s->body, h.len);
	if (room == NULL) {
		log_warn(c->id, c->service, "authres-skipped id=%016" PRIx64 " reason=no-room",
			 s->msg_id);
		buf_free(&h);
		return;
	}
	memmove(s->body.data + h.len, s->body.data, s->body.len);
	memcpy(s->body.data, h.data, h.len);
	buf_commit(&s->body, h.len);
	s->msg_off += h.len;
	buf_free(&h);
}

bool
smtp_authres_apply(struct smtp_session *s)
{
	const struct config *cfg = s->cfg;
	if (s->svc != SVC_SMTP)
		return true;
	if (s->spf_done && s->spf_result == SPF_FAIL && s->cfg->spf_reject_fail) {
		/* RFC 7372 3.2 */
		log_info(s->conn.id, s->conn.service, "rejected id=%016" PRIx64 " reason=spf-fail",
			 s->msg_id);
		smtp_reply(s, "550 5.7.23 SPF validation failed");
		smtp_reset_transaction(s);
		return false;
	}
	if (!smtp_dmarc_apply(s))
		return false;
	if (cfg->spf_check || cfg->dkim_verify || cfg->dmarc_check || s->dnsbl_listed != NULL)
		insert_header(s);
	return true;
}
