/*
 * store_tool.h - `ternd store ...`: the mail store's maintenance commands
 * (check, dump, backup, restore), run as a separate process beside or
 * instead of a running ternd. docs/store-tool.md describes them.
 */
#ifndef TERN_STORE_TOOL_H
#define TERN_STORE_TOOL_H

/* argv[0] is "store", argv[1] the subcommand. Prints to stdout (results)
 * and stderr (errors); returns the exit code: 0 ok, 1 problems found or
 * the operation refused, 2 usage or system error. Main thread only. */
int store_tool_main(int argc, char **argv);

#endif
