/*
 * version.h - the one place Tern's version is written.
 */
#ifndef TERN_VERSION_H
#define TERN_VERSION_H

#define TERN_VERSION "0.1.0"

#endif
