/* resolve.c: host name lookups within a deadline (see resolve.h).
 *
 * A lookup (struct resolve_job) is shared by its waiter and the resolver
 * thread until one of them lets go, under resolve_lock:
 *   - the resolver answers (answered): a thread waiter is woken
 *     (resolve_cond) and frees the job; a loop waiter is posted
 *     answer_call, which frees it;
 *   - or the waiter gave up first (its deadline, or resolve_cancel()): a
 *     job no resolver has begun is taken out of the queue and freed at
 *     once (so the lookups given up during a long DNS outage do not pile
 *     up behind the one under way), one under way is marked abandoned
 *     and the resolver frees it when its getaddrinfo() returns.
 * Lock order: resolve_lock -> the resolver pool's lock.
 * The resolver threads start at a name's lookup, in the process that
 * uses them (the daemon forks before it looks anything up: main.c), up to
 * RESOLVER_THREADS at once, and leave after RESOLVER_IDLE_MS without one:
 * a mount whose portals are numbers never runs them, and one that looked
 * a name up does not keep them.
 */
#include "resolve.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "deadline.h"
#include "helpers.h"
#include "log.h"

struct resolve_job {
	struct helper_job job;        /* on the resolver */
	struct ev_call answer_call;   /* a loop waiter's: the answer, on its loop */
	struct evloop *loop;          /* read-only: a loop waiter's loop; NULL for
	                               * a thread waiter (resolve_until()) */
	resolve_done_fn done;         /* read-only: a loop waiter's callback */
	void *arg;                    /* read-only: ... and its argument */
	char host[256];               /* read-only: what to look up */
	char service[8];              /* read-only: the port, as text */
	bool answered;                /* resolve_lock: the answer below is in */
	bool abandoned;               /* resolve_lock: the waiter gave up; the
	                               * resolver frees the job */
	struct addrinfo *res;         /* the answer: written before answered */
	int gai_rc;                   /* getaddrinfo()'s result */
	int gai_errno;                /* errno for EAI_SYSTEM */
};

static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t resolve_cond = PTHREAD_COND_INITIALIZER; /* an answer for a
                                                                * thread waiter */
/* How long a resolver thread stays without a lookup. */
#define RESOLVER_IDLE_MS 2000

static struct helpers *resolver;            /* the resolver threads, started
                                             * by lookups */
static pthread_once_t resolver_once = PTHREAD_ONCE_INIT;
static atomic_ulong lookups;                /* getaddrinfo() calls it made */

static void resolver_start(void)
{
	resolver = helpers_on_demand(RESOLVER_THREADS, RESOLVER_IDLE_MS, "resolver");
}

unsigned long resolve_lookups(void)
{
	return atomic_load(&lookups);
}

/* getaddrinfo() of @host:@service as a numeric address only: EAI_NONAME
 * for a name. */
static int numeric_lookup(const char *host, const char *service, struct addrinfo **res)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };

	return getaddrinfo(host, service, &hints, res);
}

/* The outcome of getaddrinfo() for @host: 0, or -1 with err_set(). */
static int outcome(const char *host, int gai_rc, int gai_errno)
{
	if (gai_rc == 0)
		return 0;
	int e = gai_rc == EAI_SYSTEM && gai_errno ? gai_errno : EHOSTUNREACH;
	err_set(e, "cannot resolve host %s: %s", host, gai_strerror(gai_rc));
	return -1;
}

static void job_free(struct resolve_job *job)
{
	if (job->res)
		freeaddrinfo(job->res);
	free(job);
}

/* The answer is in: to its waiter, or freed when the waiter has gone. */
static void answer(struct resolve_job *job)
{
	pthread_mutex_lock(&resolve_lock);
	if (job->abandoned) {
		pthread_mutex_unlock(&resolve_lock);
		job_free(job);
		return;
	}
	job->answered = true;
	if (job->loop)
		evloop_post(job->loop, &job->answer_call);
	else
		pthread_cond_broadcast(&resolve_cond);
	pthread_mutex_unlock(&resolve_lock);
}

/* On the resolver: the lookup itself. */
static void lookup_run(struct helper_job *hj)
{
	struct resolve_job *job = (struct resolve_job *)((char *)hj -
							 offsetof(struct resolve_job, job));
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };

	job->gai_rc = getaddrinfo(job->host, job->service, &hints, &job->res);
	job->gai_errno = errno;
	if (job->gai_rc != 0)
		job->res = NULL;
	atomic_fetch_add(&lookups, 1);
	answer(job);
}

/* The resolver stopped before the lookup ran (never: it runs for the life
 * of the process): as a lookup that failed for now. */
static void lookup_drop(struct helper_job *hj)
{
	struct resolve_job *job = (struct resolve_job *)((char *)hj -
							 offsetof(struct resolve_job, job));

	job->gai_rc = EAI_AGAIN;
	job->res = NULL;
	answer(job);
}

/* A job for @host:@port, or NULL with err_set(). */
static struct resolve_job *job_new(const char *host, uint16_t port)
{
	struct resolve_job *job = calloc(1, sizeof *job);

	if (!job) {
		err_set(ENOMEM, "cannot resolve host %s: out of memory", host);
		return NULL;
	}
	job->job.run = lookup_run;
	job->job.drop = lookup_drop;
	snprintf(job->host, sizeof job->host, "%s", host);
	snprintf(job->service, sizeof job->service, "%u", port);
	return job;
}

/* Hand @job to the resolver.  Returns 0, or -1 with err_set() (@job
 * freed). */
static int job_post(struct resolve_job *job)
{
	pthread_once(&resolver_once, resolver_start);
	if (!resolver) {
		err_set(ENOMEM, "cannot resolve host %s: out of memory", job->host);
		free(job);
		return -1;
	}
	if (helpers_post(resolver, &job->job) < 0) {
		err_set(errno, "cannot resolve host %s: the resolver thread cannot start: %s",
			job->host, strerror(errno));
		free(job);
		return -1;
	}
	return 0;
}

int resolve_until(const char *host, uint16_t port, int64_t deadline_ns, struct addrinfo **res)
{
	char service[8];
	int64_t start = mono_now_ns();

	snprintf(service, sizeof service, "%u", port);
	int rc = numeric_lookup(host, service, res);
	if (rc != EAI_NONAME)
		return outcome(host, rc, errno);

	/* what is left of the deadline, in whole milliseconds (also for the
	 * message: "within 0.3 s", not "within 0.299999 s") */
	int64_t left_ms = deadline_ns ? (deadline_ns - start + 999999) / 1000000 : 0;
	if (deadline_ns && left_ms <= 0) {
		err_set(ETIMEDOUT, "cannot resolve host %s: out of time before the lookup began",
			host);
		return -1;
	}
	struct timespec until = deadline_in_ms(left_ms);
	struct resolve_job *job = job_new(host, port);
	if (!job || job_post(job) < 0)
		return -1;
	pthread_mutex_lock(&resolve_lock);
	while (!job->answered) {
		if (!deadline_ns)
			pthread_cond_wait(&resolve_cond, &resolve_lock);
		else if (deadline_cond_wait(&resolve_cond, &resolve_lock, &until) == ETIMEDOUT)
			break;
	}
	if (!job->answered) {
		/* not begun: gone at once; else the resolver frees it when
		 * getaddrinfo() returns */
		bool withdrawn = helpers_withdraw(resolver, &job->job);
		job->abandoned = !withdrawn;
		pthread_mutex_unlock(&resolve_lock);
		if (withdrawn)
			free(job);
		err_set(ETIMEDOUT, "cannot resolve host %s: no answer within %g s", host,
			(double)left_ms / 1000);
		return -1;
	}
	pthread_mutex_unlock(&resolve_lock);
	rc = outcome(host, job->gai_rc, job->gai_errno);
	*res = job->res;
	job->res = NULL;
	job_free(job);
	return rc;
}

/* On the waiter's loop: the answer. */
static void answer_run(struct ev_call *call)
{
	struct resolve_job *job = (struct resolve_job *)((char *)call -
							 offsetof(struct resolve_job, answer_call));
	/* (answered and posted: the job is the loop's alone now) */
	struct addrinfo *res = job->res;
	int rc = outcome(job->host, job->gai_rc, job->gai_errno);
	resolve_done_fn done = job->done;
	void *arg = job->arg;

	job->res = NULL;
	job_free(job);
	done(arg, rc, rc == 0 ? res : NULL);
}

struct resolve_job *resolve_start(struct evloop *loop, const char *host, uint16_t port,
				  resolve_done_fn done, void *arg)
{
	struct resolve_job *job = job_new(host, port);

	if (!job)
		return NULL;
	job->loop = loop;
	job->done = done;
	job->arg = arg;
	job->answer_call.run = answer_run;
	int rc = numeric_lookup(host, job->service, &job->res);
	if (rc != EAI_NONAME) {
		/* a number: answered at once, but run later as promised */
		job->gai_rc = rc;
		job->gai_errno = errno;
		if (rc != 0)
			job->res = NULL;
		answer(job);
		return job;
	}
	job->res = NULL;
	return job_post(job) < 0 ? NULL : job;
}

void resolve_cancel(struct resolve_job *job)
{
	if (!job)
		return;
	pthread_mutex_lock(&resolve_lock);
	bool answered = job->answered;
	/* not begun: gone at once; else the resolver frees it when
	 * getaddrinfo() returns */
	bool withdrawn = !answered && helpers_withdraw(resolver, &job->job);
	if (!answered && !withdrawn)
		job->abandoned = true;
	pthread_mutex_unlock(&resolve_lock);
	if (answered) {
		/* posted, and not run: this is its loop */
		evloop_cancel(job->loop, &job->answer_call);
		job_free(job);
	} else if (withdrawn) {
		free(job);
	}
}
