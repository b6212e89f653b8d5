/*
 * dmarc_job.h - DMARC aggregate reports in ternd (RFC 7489 7.2): the
 * counts the [smtp] front end notes, the report job that sends them,
 * its control commands and the `ternd dmarc-report` command line.
 *
 * Counting: dmarc_report_note() merges a message into an in-memory
 * table (one mutex, one hash lookup: nothing that can slow a delivery);
 * the job's thread flushes the table into the store (`dmarc` database,
 * storage/store_dmarc.h) in one write request every FLUSH interval, and
 * before every report and at shutdown.
 *
 * Reporting: every [dmarc] report_interval (aligned on multiples of it
 * since the epoch, so 24h reports cover UTC days), for each policy
 * domain with counts, the rua= mailto: addresses are checked (7.1: a
 * destination outside the policy domain's organizational domain needs
 * <policy-domain>._report._dmarc.<destination domain> TXT "v=DMARC1"),
 * and a report goes into the outbound queue with origin "report", in
 * the transaction that takes its counts off. Only with [dmarc] reports
 * = yes (counting too).
 *
 * Threads: note from any worker; flush blocks (not on a worker's loop);
 * start/stop/register from the main thread. How it fails: a flush that
 * cannot commit loses that interval's counts (logged); a destination
 * whose check meets a DNS failure is skipped this time, and its counts
 * wait for the next report when no destination was usable.
 */
#ifndef TERN_DMARC_JOB_H
#define TERN_DMARC_JOB_H

#include "protocols/smtp/dmarc.h"
#include "protocols/smtp/dmarc_report.h"

/* Counts one message evaluated against the policy of policy_domain. */
void dmarc_report_note(const char *policy_domain, const struct dmarc_record *rec,
		       const struct dmarc_row *row);

/* Writes the counts kept in memory to the store; blocks until
 * committed. STORE_OK or a STORE_* status. */
int dmarc_report_flush(void);

/* The job's thread: start after store_open() and dns_start(); stop
 * (joins the thread) after the workers and before dns_stop(); free (runs
 * the DNS answers that came late, flushes) after dns_stop() and before
 * store_close(). */
int dmarc_job_start(char **error_r);
void dmarc_job_stop(void);
void dmarc_job_free(void);

/* "dmarc.flush" and "dmarc.report" (send now: the answer lists each
 * domain's fate) on the control socket. Main thread, before
 * control_start(). */
void dmarc_control_register(void);

/* `ternd dmarc-report -c FILE [--dry-run]`: --dry-run prints the pending
 * reports' XML (after asking a running ternd to flush), else asks the
 * running ternd to send them now. argv[0] is "dmarc-report". */
int dmarc_report_main(int argc, char **argv);

#endif
