/*
 * worker.h - worker threads, each running its own libevent loop.
 * Sessions live on one worker for their whole life. Other threads (the
 * directory and storage threads) hand results back with worker_post(),
 * which is the only cross-thread entry point here.
 */
#ifndef TERN_WORKER_H
#define TERN_WORKER_H

#include <stdbool.h>

struct event_base;
struct worker;

typedef void worker_fn(void *arg);

/* Creates n workers (not started). Call once from the main thread. */
void worker_pool_create(unsigned n);
/* Starts every worker's thread; they run until worker_pool_stop(). */
void worker_pool_start(void);
/* Asks every loop to finish, then joins the threads. */
void worker_pool_stop(void);
void worker_pool_destroy(void);
unsigned worker_pool_size(void);
struct worker *worker_get(unsigned i);

/* Runs fn(arg) on every started worker's thread (directly for workers not
 * started) and waits until all have run. Main thread only. */
void worker_pool_run_everywhere(worker_fn *fn, void *arg);

/* Runs fn(arg) on w's loop thread, soon. Any thread; never blocks for long;
 * calls keep their order. Used for completions of directory and storage
 * requests. */
void worker_post(struct worker *w, worker_fn *fn, void *arg);

/* A worker outside the pool, for a service thread with a loop of its own
 * (the outbound runner): worker_post() to it works like to any worker, so
 * directory and storage completions can come back to that thread. Create
 * and start from the main thread; stop joins the thread; destroy runs
 * late posts and frees it (sets *w to NULL). */
struct worker *worker_solo_create(void);
void worker_solo_start(struct worker *w);
void worker_solo_stop(struct worker *w);
void worker_solo_destroy(struct worker **w);

struct event_base *worker_base(struct worker *w);
/* The worker whose loop runs on this thread, or NULL. */
struct worker *worker_current(void);
/* Index of w in the pool (for logs). */
unsigned worker_index(const struct worker *w);

#endif
