/*
 * smtp_inauth.c - DKIM verification (RFC 6376), DMARC (RFC 7489) and
 * DNSBL checks (RFC 5782) of mail arriving on [smtp] (port 25).
 *
 * DKIM and DMARC start when the message is complete: every key record
 * (up to SMTP_DKIM_SIGS_MAX signatures, the rest are skipped and
 * logged) and the _dmarc record are asked in parallel through core/dns;
 * the message waits for them and for SPF (smtp_spf_wait), then
 * smtp_authres_apply evaluates DMARC and applies its policy. DNSBL
 * zones are asked at connect; MAIL waits for the answer so a listed
 * client gets its 554 there.
 *
 * How it fails: DNS failures give temperror (DKIM, DMARC) or "not
 * listed" (DNSBL), never a reject; every wait ends with libunbound's
 * own timeout. A session freed while lookups are out cancels them; the
 * answers free the checks when they come.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dns.h"
#include "core/log.h"
#include "dmarc_job.h"
#include "smtp_internal.h"

struct inauth_key {
	struct smtp_inauth *ia;
	size_t sig;
};

struct smtp_inauth {
	struct arena *a; /* owns the check */
	struct smtp_session *s;
	struct dkim_verify *v; /* NULL: no DKIM */
	size_t nsigs;	       /* verified: at most SMTP_DKIM_SIGS_MAX */
	size_t pending;
	bool cancelled;
	bool dmarc_org_asked;
	const char *org; /* the From domain's organizational domain */
	/* the DMARC record lookup */
	enum smtp_dmarc_state dstate;
	const char *dreason;
	struct dmarc_record rec;
	bool at_org;
	char from[256];
};

static void
inauth_free(struct smtp_inauth *ia)
{
	struct arena *a = ia->a;
	dkim_verify_free(&ia->v);
	arena_destroy(&a);
}

static void
inauth_done(struct smtp_inauth *ia)
{
	struct smtp_session *s = ia->s;
	struct conn *c = &s->conn;

	/* With [dkim] verify = no but DMARC on, the signatures are still
	 * verified (DMARC needs them) but not recorded. */
	bool record = s->cfg->dkim_verify;
	if (ia->v != NULL) {
		if (ia->nsigs == 0 && record)
			authres_add(&s->authres, "dkim", "none", NULL, NULL, NULL);
		s->dkim_pass_d = arena_alloc(s->tx, (ia->nsigs + 1) * sizeof(*s->dkim_pass_d));
		s->dkim_res = arena_alloc(s->tx, (ia->nsigs + 1) * sizeof(*s->dkim_res));
		for (size_t i = 0; i < ia->nsigs; i++) {
			const struct dkim_sig *g = &ia->v->sigs[i];
			const char *name = dkim_result_name(g->result);
			const char *d = arena_strdup(s->tx, g->domain != NULL ? g->domain : "");
			if (g->result == DKIM_PASS)
				s->dkim_pass_d[s->ndkim_pass++] = d;
			if (s->ndkim_res < DMARC_ROW_DKIM_MAX && d[0] != '\0')
				s->dkim_res[s->ndkim_res++] = (struct dmarc_row_dkim){
				    .domain = d,
				    .selector =
					arena_strdup(s->tx, g->selector != NULL ? g->selector : ""),
				    .result = name};
			if (!record)
				continue;
			authres_add(&s->authres, "dkim", name,
				    g->reason != NULL ? arena_strdup(s->tx, g->reason) : NULL,
				    "header.d", d);
			authres_add_prop(&s->authres, "header.s", arena_strdup(s->tx, g->selector));
			if (g->header_b != NULL && g->header_b[0] != '\0')
				authres_add_prop(&s->authres, "header.b",
						 arena_strdup(s->tx, g->header_b));
			log_info(c->id, c->service,
				 "dkim id=%016" PRIx64 " result=%s d=%s s=%s reason=\"%s\"",
				 s->msg_id, name, g->domain, g->selector,
				 g->reason != NULL ? g->reason : "");
		}
		if (ia->v->nsigs > ia->nsigs)
			log_info(c->id, c->service,
				 "dkim-skipped id=%016" PRIx64 " signatures=%zu verified=%zu",
				 s->msg_id, ia->v->nsigs, ia->nsigs);
	}
	s->dmarc_state = ia->dstate;
	s->dmarc_reason = ia->dreason;
	s->dmarc_rec = ia->rec;
	s->dmarc_at_org = ia->at_org;
	s->dmarc_from = ia->from[0] != '\0' ? arena_strdup(s->tx, ia->from) : NULL;
	s->inauth = NULL;
	inauth_free(ia);
	smtp_checks_continue(s);
}

/* One answer in; the last one finishes. */
static void
answered(struct smtp_inauth *ia)
{
	if (--ia->pending > 0)
		return;
	if (ia->cancelled)
		inauth_free(ia);
	else
		inauth_done(ia);
}

static void
key_answered(void *arg, const struct dns_result *res)
{
	struct inauth_key *k = arg;
	struct smtp_inauth *ia = k->ia;

	if (!ia->cancelled) {
		enum dkim_key_status st = res->status == DNS_OK		? DKIM_KEY_FOUND
					  : res->status == DNS_TEMPFAIL ? DKIM_KEY_TEMPFAIL
									: DKIM_KEY_MISSING;
		/* RFC 6376 3.6.2.2: with several TXT records, the first */
		dkim_verify_one(ia->v, k->sig, st, st == DKIM_KEY_FOUND ? res->rr[0].text : NULL,
				st == DKIM_KEY_FOUND ? res->rr[0].len : 0);
	}
	answered(ia);
}

static void dmarc_answered(void *arg, const struct dns_result *res);

static void
ask_dmarc(struct smtp_inauth *ia, const char *domain)
{
	char *name = arena_printf(ia->a, "_dmarc.%s", domain);
	ia->pending++;
	dns_lookup(ia->s->conn.worker, name, DNS_T_TXT, dmarc_answered, ia);
}

static void
dmarc_answered(void *arg, const struct dns_result *res)
{
	struct smtp_inauth *ia = arg;

	if (ia->cancelled) {
		answered(ia);
		return;
	}
	if (res->status == DNS_TEMPFAIL) {
		ia->dstate = SMTP_DMARC_TEMPERROR;
		ia->dreason = arena_printf(ia->s->tx, "DNS failure for %s", res->name);
		answered(ia);
		return;
	}
	switch (dmarc_select(res, &ia->rec)) {
	case DMARC_SEL_FOUND:
		ia->dstate = SMTP_DMARC_FOUND;
		ia->at_org = ia->dmarc_org_asked;
		/* rua= points into the answer, which goes after this call */
		if (ia->rec.rua != NULL)
			ia->rec.rua = arena_strndup(ia->s->tx, ia->rec.rua, ia->rec.rua_len);
		break;
	case DMARC_SEL_NOPOLICY:
		ia->dstate = SMTP_DMARC_NONE;
		ia->dreason = arena_printf(ia->s->tx, "no usable policy record at %s", res->name);
		break;
	case DMARC_SEL_NONE:
		/* 6.6.3 step 5: then the organizational domain */
		if (!ia->dmarc_org_asked && strcmp(ia->org, ia->from) != 0) {
			ia->dmarc_org_asked = true;
			ask_dmarc(ia, ia->org);
		} else {
			ia->dstate = SMTP_DMARC_NONE;
			ia->dreason = "no policy record";
		}
		break;
	}
	answered(ia);
}

void
smtp_inauth_start(struct smtp_session *s)
{
	const struct config *cfg = s->cfg;

	if (s->svc != SVC_SMTP || (!cfg->dkim_verify && !cfg->dmarc_check))
		return;
	const char *msg = s->body.data + s->msg_off;
	size_t len = s->body.len - s->msg_off;
	struct arena *a = arena_new(0);
	struct smtp_inauth *ia = arena_alloc(a, sizeof(*ia));
	memset(ia, 0, sizeof(*ia));
	ia->a = a;
	ia->s = s;
	/* +1 until every query is out */
	ia->pending = 1;
	s->inauth = ia;
	/* DMARC needs the DKIM results, so verify when either is on. */
	if (dkim_verify_prepare(msg, len, time(NULL), &ia->v) == 0) {
		ia->nsigs = ia->v->nsigs < SMTP_DKIM_SIGS_MAX ? ia->v->nsigs : SMTP_DKIM_SIGS_MAX;
		for (size_t i = 0; i < ia->nsigs; i++) {
			const char *name = dkim_sig_key_name(ia->v, i);
			if (name == NULL)
				continue; /* settled by the parse */
			struct inauth_key *k = arena_alloc(a, sizeof(*k));
			k->ia = ia;
			k->sig = i;
			ia->pending++;
			dns_lookup(s->conn.worker, name, DNS_T_TXT, key_answered, k);
		}
	}
	if (cfg->dmarc_check) {
		switch (dmarc_from_domain(msg, len, ia->from, sizeof(ia->from))) {
		case DMARC_FROM_OK:
			ia->org = arena_strdup(a, dmarc_org_domain(ia->from));
			ask_dmarc(ia, ia->from);
			break;
		case DMARC_FROM_MULTI:
			/* 6.6.1: no single Author Domain to evaluate */
			ia->dstate = SMTP_DMARC_PERMERROR;
			ia->dreason = "several From authors";
			ia->from[0] = '\0';
			break;
		case DMARC_FROM_NONE:
			ia->dstate = SMTP_DMARC_PERMERROR;
			ia->dreason = "no From field";
			break;
		case DMARC_FROM_INVALID:
			ia->dstate = SMTP_DMARC_PERMERROR;
			ia->dreason = "unusable From field";
			ia->from[0] = '\0';
			break;
		}
	}
	/* Nothing asked: settled now, before the caller decides to wait. */
	if (--ia->pending == 0)
		inauth_done(ia);
}

void
smtp_inauth_cancel(struct smtp_session *s)
{
	struct smtp_inauth *ia = s->inauth;
	s->inauth = NULL;
	if (ia != NULL)
		ia->cancelled = true;
}

void
smtp_checks_continue(struct smtp_session *s)
{
	if (!s->spf_wait || s->spf != NULL || s->inauth != NULL)
		return;
	s->spf_wait = false;
	smtp_message_milters(s);
	conn_resume(&s->conn);
}

void
smtp_tx_quarantine(struct smtp_session *s, const char *reason)
{
	/* smtp_store_message delivers to each recipient's Junk folder. */
	if (s->quarantine == NULL)
		s->quarantine = arena_strdup(s->tx, reason);
	log_info(s->conn.id, s->conn.service, "quarantine id=%016" PRIx64 " reason=%s", s->msg_id,
		 reason);
}

/* A lower-case copy of a domain in the tx arena (rows that differ only
 * in case are one row). */
static const char *
lower(struct smtp_session *s, const char *d)
{
	char *c = arena_strdup(s->tx, d);
	for (char *p = c; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return c;
}

/* RFC 7489 7.2: the message's row in the policy domain's next aggregate
 * report ([dmarc] reports, a policy with a rua=). */
static void
report_note(struct smtp_session *s, const struct dmarc_outcome *out, enum dmarc_policy applied)
{
	const char *from = s->dmarc_from;
	bool helo = s->sender == NULL || s->sender[0] == '\0';
	const char *at = helo ? NULL : strrchr(s->sender, '@');
	char env[256];
	size_t n = 0;

	for (; at != NULL && at[1 + n] != '\0' && n < sizeof(env) - 1; n++)
		env[n] = (char)tolower((unsigned char)at[1 + n]);
	env[n] = '\0';
	struct dmarc_row row = {
	    .source_ip = s->conn.peer_ip,
	    .header_from = from,
	    .envelope_from = env,
	    .disposition = dmarc_policy_name(applied),
	    .dkim_pass = out->dkim_aligned,
	    .spf_pass = out->spf_aligned,
	    /* 7.2 PolicyOverrideType: pct (6.6.4), or [dmarc] reject = no */
	    .reason = out->pass			    ? ""
		      : out->applied != out->policy ? "sampled_out"
		      : applied != out->applied	    ? "local_policy"
						    : "",
	    .spf_domain = s->spf_done && s->spf_domain != NULL ? lower(s, s->spf_domain)
			  : helo			       ? lower(s, buf_cstr(&s->helo))
							       : env,
	    .spf_scope = helo ? "helo" : "mfrom",
	    .spf_result = s->spf_done ? spf_result_name(s->spf_result) : "none",
	};
	for (size_t i = 0; i < s->ndkim_res; i++) {
		row.dkim[row.ndkim] = s->dkim_res[i];
		row.dkim[row.ndkim++].domain = lower(s, s->dkim_res[i].domain);
	}
	dmarc_report_note(s->dmarc_at_org ? dmarc_org_domain(from) : from, &s->dmarc_rec, &row);
}

/* RFC 7489 6.6.2-6.6.4 with the SPF and DKIM results in: the A-R entry,
 * then the policy. False when the message was refused. */
bool
smtp_dmarc_apply(struct smtp_session *s)
{
	struct conn *c = &s->conn;
	const char *from = s->dmarc_from;

	if (!s->cfg->dmarc_check)
		return true;
	switch (s->dmarc_state) {
	case SMTP_DMARC_OFF:
		return true;
	case SMTP_DMARC_NONE:
	case SMTP_DMARC_TEMPERROR:
	case SMTP_DMARC_PERMERROR: {
		const char *name = s->dmarc_state == SMTP_DMARC_NONE	    ? "none"
				   : s->dmarc_state == SMTP_DMARC_TEMPERROR ? "temperror"
									    : "permerror";
		authres_add(&s->authres, "dmarc", name, s->dmarc_reason,
			    from != NULL ? "header.from" : NULL, from);
		log_info(c->id, c->service,
			 "dmarc id=%016" PRIx64 " result=%s from=%s reason=\"%s\"", s->msg_id, name,
			 from != NULL ? from : "-", s->dmarc_reason != NULL ? s->dmarc_reason : "");
		return true;
	}
	case SMTP_DMARC_FOUND:
		break;
	}
	struct dmarc_input in = {
	    .from_domain = from,
	    .spf_domain = s->spf_domain,
	    .spf_pass = s->spf_done && s->spf_result == SPF_PASS,
	    .dkim_pass_d = s->dkim_pass_d,
	    .ndkim_pass = s->ndkim_pass,
	    .rec = &s->dmarc_rec,
	    .at_org = s->dmarc_at_org,
	    .sample = arc4random_uniform(100),
	};
	struct dmarc_outcome out;
	dmarc_evaluate(&in, &out);
	enum dmarc_policy applied = out.applied;
	bool reject = applied == DMARC_P_REJECT && s->cfg->dmarc_reject;
	if (applied == DMARC_P_REJECT && !reject)
		applied = DMARC_P_QUARANTINE; /* [dmarc] reject = no */
	const char *reason =
	    arena_printf(s->tx, "%s, p=%s%s%s pct=%u", out.reason, dmarc_policy_name(out.policy),
			 s->dmarc_at_org ? " at " : "",
			 s->dmarc_at_org ? dmarc_org_domain(from) : "", s->dmarc_rec.pct);
	log_info(c->id, c->service,
		 "dmarc id=%016" PRIx64 " result=%s from=%s policy=%s applied=%s reason=\"%s\"",
		 s->msg_id, out.pass ? "pass" : "fail", from, dmarc_policy_name(out.policy),
		 dmarc_policy_name(applied), reason);
	if (s->cfg->dmarc_reports && s->dmarc_rec.rua != NULL)
		report_note(s, &out, applied);
	if (reject) {
		/* RFC 7489 6.6.4, 10.3: reject during the SMTP transaction */
		log_info(c->id, c->service, "rejected id=%016" PRIx64 " reason=dmarc from=%s",
			 s->msg_id, from);
		smtp_reply(s, "550 5.7.1 Message rejected by the DMARC policy of %s", from);
		smtp_reset_transaction(s);
		return false;
	}
	if (applied == DMARC_P_QUARANTINE)
		smtp_tx_quarantine(s, "dmarc");
	authres_add(&s->authres, "dmarc", out.pass ? "pass" : "fail", reason, "header.from", from);
	authres_add_prop(&s->authres, "policy.dmarc", dmarc_policy_name(applied));
	return true;
}

/* ---- DNSBL ---- */

static void
dnsbl_done(void *arg, const struct dnsbl_outcome *out)
{
	struct smtp_session *s = arg;
	struct conn *c = &s->conn;

	s->dnsbl = NULL;
	if (out->ntempfail > 0)
		log_info(c->id, c->service, "dnsbl-tempfail ip=%s zones=%zu", c->peer_ip,
			 out->ntempfail);
	if (out->nlisted > 0) {
		struct buf b;
		buf_init(&b, 4096);
		for (size_t i = 0; i < out->nlisted; i++)
			buf_printf(&b, "%s%s", i > 0 ? ", " : "", out->listed[i]);
		s->dnsbl_listed = arena_strdup(s->arena, buf_cstr(&b));
		s->dnsbl_first = arena_strdup(s->arena, out->listed[0]);
		buf_free(&b);
		log_info(c->id, c->service, "dnsbl-listed ip=%s zones=\"%s\" action=%s", c->peer_ip,
			 s->dnsbl_listed, s->cfg->dnsbl_reject ? "reject" : "mark");
	}
	if (s->dnsbl_held.len > 0) {
		/* the MAIL command that waited */
		smtp_replay_line(s, &s->dnsbl_held);
		buf_reset(&s->dnsbl_held);
		conn_resume(c);
	}
}

void
smtp_dnsbl_start(struct smtp_session *s)
{
	struct spf_ip ip;

	if (s->svc != SVC_SMTP || s->cfg->dnsbl_zones[0] == '\0' ||
	    spf_ip_parse(s->conn.peer_ip, &ip) < 0)
		return;
	s->dnsbl = dnsbl_check_start(s->conn.worker, &ip, s->cfg->dnsbl_zones, dnsbl_done, s);
}

bool
smtp_dnsbl_hold(struct smtp_session *s, const char *line, size_t len)
{
	if (s->dnsbl == NULL || s->dnsbl_held.len > 0 || len < 4 ||
	    strncasecmp(line, "MAIL", 4) != 0 || (len > 4 && line[4] != ' '))
		return false;
	if (buf_append(&s->dnsbl_held, line, len) < 0)
		return false;
	conn_pause(&s->conn);
	return true;
}

bool
smtp_dnsbl_refuse(struct smtp_session *s)
{
	if (s->dnsbl_listed == NULL || !s->cfg->dnsbl_reject)
		return false;
	log_info(s->conn.id, s->conn.service, "rejected ip=%s reason=dnsbl zone=%s",
		 s->conn.peer_ip, s->dnsbl_first);
	smtp_reply(s, "554 5.7.1 Service unavailable; client [%s] blocked using %s",
		   s->conn.peer_ip, s->dnsbl_first);
	return true;
}
