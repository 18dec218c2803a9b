/* login_loop.h: a login driven by an event loop, none of it blocking.
 *
 * login_connect() (login.h) connects and logs in on the calling thread,
 * waiting on the network.  A login_loop does the same work on an event
 * loop (evloop.h): a non-blocking connect to each address of the portal
 * in turn, the Login Requests through the non-blocking conn (EPOLLOUT
 * when the socket is full), the answers through the conn's resumable
 * receiver, the redirects and the MD5-only retry of login_run() (the
 * login machine of login.h) on new connections, and one deadline for all
 * of it on a loop timer.  A loop thus logs in any number of sessions at
 * once, and a target that accepts the connection but never answers holds
 * only its own login, never another's.
 *
 * A portal named by a host name is looked up on a resolver thread
 * (resolve.h: getaddrinfo() may wait on DNS), within the login's
 * deadline; a numeric address needs no lookup and never leaves the loop.
 *
 * Thread model: login_loop_start() and login_loop_cancel() on the loop
 * given; the done callback runs on it.
 */
#ifndef ISCSIFS_LOGIN_LOOP_H
#define ISCSIFS_LOGIN_LOOP_H

#include <stdint.h>

#include "conn.h"
#include "evloop.h"
#include "login.h"

struct login_loop;

/* The login ended: @rc 0 with @c connected and logged in (its receiver
 * holding whatever the target sent after the last Login Response, the
 * socket non-blocking, no deadline) and @lr filled in; the callee owns @c
 * from now on.  Or @rc -1 with err_set() as login_connect() words it
 * (@c closed, @lr's status_class saying what the target answered, if
 * anything).  The login_loop is freed when the callback returns. */
typedef void (*login_loop_done_fn)(void *arg, int rc, struct conn *c,
				   const struct login_result *lr);

/* Start logging in to @host:@port as login_connect() does with @timeout_ms
 * and no start-up retry, on @loop (the calling thread), with @cfg (which
 * must outlive the login), @isid and @tsih.  @done(@arg, ...) is called
 * on the loop once it ends, never from within this call.  Returns the
 * login, or NULL with err_set(ENOMEM): then @done is never called. */
struct login_loop *login_loop_start(struct evloop *loop, const char *host, uint16_t port,
				    int timeout_ms, const struct text_config *cfg,
				    const uint8_t isid[6], uint16_t tsih,
				    login_loop_done_fn done, void *arg);

/* login_loop_start() that ends at @deadline_ns (CLOCK_MONOTONIC) instead
 * of @timeout_ms from now: @timeout_ms is still what its messages name as
 * the login's time, and what each connect and answer may take at most.
 * (The later tries of a start-up login end at the first try's deadline,
 * as login_connect() has them.) */
struct login_loop *login_loop_start_until(struct evloop *loop, const char *host,
					  uint16_t port, int timeout_ms, int64_t deadline_ns,
					  const struct text_config *cfg, const uint8_t isid[6],
					  uint16_t tsih, login_loop_done_fn done, void *arg);

/* Give up the login @ll before it ended: its connection is closed, its
 * timer and watch go, and @done is never called.  On its loop. */
void login_loop_cancel(struct login_loop *ll);

/* Logins started on loops so far, and those that ended logged in (for the
 * statistics and tests). */
unsigned long login_loop_started(void);
unsigned long login_loop_succeeded(void);

#endif /* ISCSIFS_LOGIN_LOOP_H */
