/*
 * worker.c - worker threads, one libevent base each, and worker_post(),
 * the one way other threads hand work (completions) to a worker.
 *
 * A post is a heap node on a mutex-protected FIFO; the poster activates a
 * per-worker event (libevent is set up with pthread locking, so
 * event_active() from another thread is safe) and the loop drains the
 * whole queue. Posts never fail; a post made after the loop stopped still
 * runs, from the worker's thread, just before the thread exits.
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "compat.h"
#include "log.h"
#include "worker.h"

struct post {
	struct post *next;
	worker_fn *fn;
	void *arg;
};

struct worker {
	unsigned index;
	pthread_t thread;
	bool started;
	struct event_base *base; /* owned */
	struct event *post_ev;	 /* owned: drains the post queue */
	pthread_mutex_t lock;	 /* protects head/tail */
	struct post *head, *tail;
};

static struct worker *workers; /* owned: the pool */
static unsigned nworkers;
static __thread struct worker *current_worker;

static void
run_posts(struct worker *w)
{
	for (;;) {
		pthread_mutex_lock(&w->lock);
		struct post *p = w->head;
		w->head = w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		if (p == NULL)
			return;
		while (p != NULL) {
			struct post *next = p->next;
			p->fn(p->arg);
			free(p);
			p = next;
		}
	}
}

static void
post_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_posts(arg);
}

void
worker_pool_create(unsigned n)
{
	static bool evthread_ready;

	if (!evthread_ready) {
		if (evthread_use_pthreads() < 0)
			fatal("libevent: no pthreads support");
		evthread_ready = true;
	}
	if (n == 0)
		n = 1;
	nworkers = n;
	workers = xcalloc(n, sizeof(*workers));
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &workers[i];
		w->index = i;
		pthread_mutex_init(&w->lock, NULL);
		w->base = event_base_new();
		if (w->base == NULL)
			fatal("libevent: cannot create an event base");
		w->post_ev = event_new(w->base, -1, EV_PERSIST, post_cb, w);
		if (w->post_ev == NULL)
			fatal("libevent: cannot create an event");
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	current_worker = w;
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	run_posts(w); /* late posts: completions racing with shutdown */
	current_worker = NULL;
	return NULL;
}

void
worker_pool_start(void)
{
	for (unsigned i = 0; i < nworkers; i++) {
		int rc = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
		if (rc != 0)
			fatal("cannot start worker thread: %s", strerror(rc));
		workers[i].started = true;
	}
}

struct everywhere {
	worker_fn *fn;
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned left;
};

static void
everywhere_one(void *arg)
{
	struct everywhere *e = arg;

	e->fn(e->arg);
	pthread_mutex_lock(&e->lock);
	if (--e->left == 0)
		pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

void
worker_pool_run_everywhere(worker_fn *fn, void *arg)
{
	struct everywhere e = {.fn = fn, .arg = arg, .left = 0};
	unsigned started = 0;

	pthread_mutex_init(&e.lock, NULL);
	pthread_cond_init(&e.cond, NULL);
	for (unsigned i = 0; i < nworkers; i++)
		started += workers[i].started;
	e.left = started;
	for (unsigned i = 0; i < nworkers; i++) {
		if (workers[i].started)
			worker_post(&workers[i], everywhere_one, &e);
		else
			fn(arg);
	}
	pthread_mutex_lock(&e.lock);
	while (e.left > 0)
		pthread_cond_wait(&e.cond, &e.lock);
	pthread_mutex_unlock(&e.lock);
	pthread_cond_destroy(&e.cond);
	pthread_mutex_destroy(&e.lock);
}

static void
loopbreak(void *arg)
{
	struct worker *w = arg;

	event_base_loopbreak(w->base);
}

void
worker_pool_stop(void)
{
	for (unsigned i = 0; i < nworkers; i++) {
		if (!workers[i].started)
			continue;
		worker_post(&workers[i], loopbreak, &workers[i]);
		pthread_join(workers[i].thread, NULL);
		workers[i].started = false;
	}
}

void
worker_pool_destroy(void)
{
	for (unsigned i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];
		run_posts(w); /* anything posted after the threads ended */
		event_free(w->post_ev);
		event_base_free(w->base);
		pthread_mutex_destroy(&w->lock);
	}
	free(workers);
	workers = NULL;
	nworkers = 0;
}

struct worker *
worker_solo_create(void)
{
	if (evthread_use_pthreads() < 0)
		fatal("libevent: no pthreads support");
	struct worker *w = xcalloc(1, sizeof(*w));
	w->index = UINT_MAX; /* not in the pool */
	pthread_mutex_init(&w->lock, NULL);
	w->base = event_base_new();
	if (w->base == NULL)
		fatal("libevent: cannot create an event base");
	w->post_ev = event_new(w->base, -1, EV_PERSIST, post_cb, w);
	if (w->post_ev == NULL)
		fatal("libevent: cannot create an event");
	return w;
}

void
worker_solo_start(struct worker *w)
{
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc != 0)
		fatal("cannot start a service thread: %s", strerror(rc));
	w->started = true;
}

void
worker_solo_stop(struct worker *w)
{
	if (w == NULL || !w->started)
		return;
	worker_post(w, loopbreak, w);
	pthread_join(w->thread, NULL);
	w->started = false;
}

void
worker_solo_destroy(struct worker **wp)
{
	struct worker *w = *wp;
	if (w == NULL)
		return;
	run_posts(w);
	event_free(w->post_ev);
	event_base_free(w->base);
	pthread_mutex_destroy(&w->lock);
	free(w);
	*wp = NULL;
}

unsigned
worker_pool_size(void)
{
	return nworkers;
}

struct worker *
worker_get(unsigned i)
{
	return i < nworkers ? &workers[i] : NULL;
}

void
worker_post(struct worker *w, worker_fn *fn, void *arg)
{
	struct post *p = xmalloc(sizeof(*p));

	p->next = NULL;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&w->lock);
	if (w->tail != NULL)
		w->tail->next = p;
	else
		w->head = p;
	w->tail = p;
	pthread_mutex_unlock(&w->lock);
	event_active(w->post_ev, EV_READ, 0);
}

struct event_base *
worker_base(struct worker *w)
{
	return w->base;
}

struct worker *
worker_current(void)
{
	return current_worker;
}

unsigned
worker_index(const struct worker *w)
{
	return w->index;
}
