/*
 * imap_search.c - IMAP SEARCH and UID SEARCH.
 * (The commands arrive in the following commits; the table is empty
 * until then, so they are answered as unknown, never half-done.)
 */
#include "protocols/imap/imap_internal.h"

const struct imap_command imap_search_cmds[] = {
    {NULL, 0, false, NULL},
};
