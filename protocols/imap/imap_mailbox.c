/*
 * imap_mailbox.c - IMAP mailboxes: SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE, LIST, LSUB, STATUS, APPEND, CHECK, CLOSE, UNSELECT, EXPUNGE.
 * (The commands arrive in the following commits; the table is empty
 * until then, so they are answered as unknown, never half-done.)
 */
#include "protocols/imap/imap_internal.h"

const struct imap_command imap_mailbox_cmds[] = {
    {NULL, 0, false, NULL},
};
