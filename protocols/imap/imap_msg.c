/*
 * imap_msg.c - IMAP STORE, COPY, MOVE and their UID forms.
 * (The commands arrive in the following commits; the table is empty
 * until then, so they are answered as unknown, never half-done.)
 */
#include "protocols/imap/imap_internal.h"

const struct imap_command imap_msg_cmds[] = {
    {NULL, 0, false, NULL},
};
