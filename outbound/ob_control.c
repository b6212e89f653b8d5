/*
 * ob_control.c - the queue commands of ternd's control socket
 * (core/control.h): "queue.hold", "queue.release", "queue.retry",
 * "queue.delete" and "queue.bounce", each {"cmd": ..., "id": "<queue id,
 * hex>"}, answered once the change is committed with {"ok": true, "id",
 * "changed", "in_flight"} (bounce adds "dsn" and "recipients").
 *
 * They go through the runner (ob_runner_admin) rather than straight to
 * the store because the runner keeps the schedule in memory: what is in
 * flight, what it is about to scan. Handlers run on the control thread
 * and block until the runner answers.
 *
 * Failures: "bad_request" (no or bad id), "not_found", "conflict"
 * (release of a message not held, retry of a held one, delete or bounce
 * during a delivery attempt), "unavailable", "error" (the store).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/compat.h"
#include "core/control.h"
#include "outbound/outbound.h"
#include "outbound/outbound_internal.h"
#include "storage/queue.h"

static json_t *
ctl_queue(void *ctx, json_t *req, const char **code_r, char **error_r)
{
	enum ob_admin_op op = (enum ob_admin_op)(intptr_t)ctx;
	const char *id = json_string_value(json_object_get(req, "id"));
	struct ob_admin_answer ans;
	uint64_t qid;

	if (queue_id_parse(id, &qid) < 0) {
		*code_r = CONTROL_E_BAD_REQUEST;
		xasprintf(error_r, "\"id\" must be a queue id (hex digits)");
		return NULL;
	}
	ob_runner_admin(op, qid, &ans);
	switch (ans.status) {
	case OB_ADMIN_OK:
		break;
	case OB_ADMIN_NOT_FOUND:
		*code_r = CONTROL_E_NOT_FOUND;
		break;
	case OB_ADMIN_CONFLICT:
		*code_r = CONTROL_E_CONFLICT;
		break;
	case OB_ADMIN_UNAVAILABLE:
		*code_r = CONTROL_E_UNAVAILABLE;
		break;
	case OB_ADMIN_ERROR:
		*code_r = CONTROL_E_ERROR;
		break;
	}
	if (ans.status != OB_ADMIN_OK) {
		*error_r = xstrdup(ans.error);
		return NULL;
	}
	char hex[17];
	snprintf(hex, sizeof(hex), "%016" PRIx64, qid);
	json_t *o = json_pack("{s:s, s:b, s:b}", "id", hex, "changed", ans.changed, "in_flight",
			      ans.in_flight);
	if (op == OB_ADMIN_BOUNCE) {
		json_object_set_new(o, "dsn", json_boolean(ans.dsn));
		json_object_set_new(o, "recipients", json_integer((json_int_t)ans.recipients));
	}
	return o;
}

void
outbound_control_register(void)
{
	control_register("queue.hold", ctl_queue, (void *)(intptr_t)OB_ADMIN_HOLD);
	control_register("queue.release", ctl_queue, (void *)(intptr_t)OB_ADMIN_RELEASE);
	control_register("queue.retry", ctl_queue, (void *)(intptr_t)OB_ADMIN_RETRY);
	control_register("queue.delete", ctl_queue, (void *)(intptr_t)OB_ADMIN_DELETE);
	control_register("queue.bounce", ctl_queue, (void *)(intptr_t)OB_ADMIN_BOUNCE);
}
