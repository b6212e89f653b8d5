/*
 * store_tool.h - `ternd store ...`: the mail store's maintenance commands
 * (check, dump, backup, restore) and the mailbox lifecycle (users, usage,
 * orphans, purge, export, import), run as a separate process beside or
 * instead of a running ternd. docs/store-tool.md describes them.
 */
#ifndef TERN_STORE_TOOL_H
#define TERN_STORE_TOOL_H

#include <stdbool.h>

/* argv[0] is "store", argv[1] the subcommand. Prints to stdout (results)
 * and stderr (errors); returns the exit code: 0 ok, 1 problems found or
 * the operation refused, 2 usage or system error. Main thread only. */
int store_tool_main(int argc, char **argv);

/* Shared by the subcommands (store_tool.c, store_tool_admin.c). */
struct config;
/* Loads conf (logging at warn), which must set [server] state_dir; NULL
 * with the reason on stderr. */
struct config *store_tool_config(const char *conf);
/* users, usage, orphans, mark-orphan, unmark-orphan, purge, export,
 * import (store_tool_admin.c): argv[0] is the subcommand. */
int store_tool_admin_main(const char *sub, int argc, char **argv);
bool store_tool_is_admin(const char *sub);

#endif
