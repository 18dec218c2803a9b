/* resolve.h: the addresses of a portal, within a deadline.
 *
 * getaddrinfo() of a host name may wait on DNS for as long as the
 * resolver configuration says (tens of seconds with a server that does
 * not answer), and cannot be interrupted.  So a name is looked up on the
 * resolver, helper threads of the process (helpers.h) that do nothing
 * else, and whoever needs the answer waits for it only until its own
 * deadline: a thread with resolve_until(), an event loop with
 * resolve_start() and a callback.  A caller that gives up leaves the
 * lookup to the resolver, which frees it when it ends.  A numeric address
 * needs no lookup and is answered at once, on the caller's thread.
 *
 * Thread model: resolve_until() from any thread but a loop;
 * resolve_start() and resolve_cancel() on the loop given, where the
 * callback runs.
 */
#ifndef ISCSIFS_RESOLVE_H
#define ISCSIFS_RESOLVE_H

#include <netdb.h>
#include <stdint.h>

#include "evloop.h"

/* Lookups at once, at most (resolver threads): the sessions of a pool log
 * in at the same time (session_login.c), and each must get its own answer
 * within its own deadline even when DNS is slow, as when they logged in
 * one after the other; more lookups wait in turn. */
#define RESOLVER_THREADS 4

/* The addresses of @host:@port (SOCK_STREAM, any family) in *@res
 * (freeaddrinfo() them), waiting at most until @deadline_ns
 * (CLOCK_MONOTONIC).  Returns 0, or -1 with err_set(): "cannot resolve
 * host H: ..." with EHOSTUNREACH (no such name), the system's errno, or
 * ETIMEDOUT (no answer by the deadline: "no answer within N s", N being
 * what was left of it at the call). */
int resolve_until(const char *host, uint16_t port, int64_t deadline_ns, struct addrinfo **res);

/* A lookup under way for a loop. */
struct resolve_job;

/* The answer of a resolve_start(): 0 and the addresses in @res (the
 * callee's to freeaddrinfo()), or -1 with err_set() as resolve_until()
 * words it (but for the deadline, which is the caller's). */
typedef void (*resolve_done_fn)(void *arg, int rc, struct addrinfo *res);

/* Look @host:@port up for @loop (the calling thread): @done(@arg, ...)
 * runs on it with the answer, later, never within this call.  Returns
 * the lookup, or NULL with err_set() (out of memory, or no resolver thread
 * could start): then @done never runs. */
struct resolve_job *resolve_start(struct evloop *loop, const char *host, uint16_t port,
				  resolve_done_fn done, void *arg);

/* Give up the lookup @job before its answer ran: @done never runs.  On its
 * loop. */
void resolve_cancel(struct resolve_job *job);

/* Lookups the resolver threads made so far (statistics, tests). */
unsigned long resolve_lookups(void);

#endif /* ISCSIFS_RESOLVE_H */
