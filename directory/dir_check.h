/*
 * dir_check.h - `ternd check-directory -c FILE` (or `ternd
 * --check-directory -c FILE`): checks [directory] against the live
 * directory and explains every problem in plain words.
 *
 * A tool, not the daemon: synchronous, read-only (it binds as the
 * service account and never writes), output on stdout. Exit status 0
 * when nothing is wrong, 1 when a problem was found, 2 on a usage or
 * configuration error (the file does not load).
 */
#ifndef TERN_DIR_CHECK_H
#define TERN_DIR_CHECK_H

/* argv[0] is the command's name; takes -c FILE. Returns the exit status. */
int dir_check_main(int argc, char **argv);

#endif
