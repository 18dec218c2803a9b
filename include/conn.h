/* conn.h: one TCP connection to an iSCSI portal, framing PDUs.
 *
 * A conn knows nothing of sessions or tasks: it connects, sends one PDU
 * (BHS + data segment from iovecs, with padding and digests), and
 * receives through its pdu_rx (pdu_rx.h): either a PDU at a time in two
 * steps, the header first and then its data segment (login, discovery),
 * or, in full feature phase, one recv() at a time (conn_rx_fill()) parsed
 * into as many PDUs as it brought (conn_rx_next()), the owner's callback
 * choosing where each data segment goes (a Data-In lands straight in the
 * reader's buffer).
 *
 * Thread model: conn_send() may be called by one thread at a time (the
 * session's TX thread, or the login code before the TX thread exists); the
 * receive functions by one thread at a time (the RX thread, or login).
 * conn_shutdown() may be called from any thread to wake both.
 */
#ifndef ISCSIFS_CONN_H
#define ISCSIFS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "pdu.h"
#include "pdu_rx.h"

struct conn {
	int fd;                 /* the socket; -1 when closed */
	char peer[300];         /* "host:port" for log lines */
	char host[256];         /* what conn_connect() was given, for conn_reconnect();
	                         * "" for an attached fd */
	uint16_t port;          /* the port conn_connect() was given */
	int connect_timeout_ms; /* the timeout conn_connect() was given */
	bool header_digest;     /* CRC32C after each BHS; set after login */
	bool data_digest;       /* CRC32C after each data segment; set after login */
	int recv_timeout_ms;    /* receive deadline per PDU, -1 = none (full feature phase) */
	int64_t deadline_ns;    /* CLOCK_MONOTONIC time by which the exchange under way
	                         * (a login, a discovery) must be over: no wait for
	                         * the peer (receive, send, connect) lasts past it,
	                         * and once it has passed they fail with ETIMEDOUT;
	                         * 0 = none.  Set by its owner (conn_connect_until(),
	                         * login_connect(), discovery_run()), kept by
	                         * conn_reconnect() */
	struct pdu_rx rx;       /* the receiver and its buffer, owned by the
	                         * receiving thread; what login left in it is
	                         * the RX thread's first input */
	uint64_t bytes_sent;    /* statistics, by the sending thread */
	uint64_t bytes_received;/* statistics, by the receiving thread */
};

/* Resolve @host, connect to @port within @timeout_ms, set TCP_NODELAY.
 * Returns 0, or -1 with err_set() naming the cause ("no such host",
 * "connection refused", "timed out").  No deadline. */
int conn_connect(struct conn *c, const char *host, uint16_t port, int timeout_ms);

/* conn_connect() under the deadline @deadline_ns (CLOCK_MONOTONIC, 0 =
 * none): the connect waits for the nearer of the two, and the deadline
 * stays on @c (struct conn, deadline_ns). */
int conn_connect_until(struct conn *c, const char *host, uint16_t port, int timeout_ms,
		       int64_t deadline_ns);

/* The time @ms milliseconds from now on DEADLINE_CLOCK (CLOCK_MONOTONIC,
 * deadline.h), as a deadline for struct conn's deadline_ns. */
int64_t conn_deadline_after(int ms);

/* Whether @c has a deadline and it has passed. */
bool conn_deadline_passed(const struct conn *c);

/* Close @c and connect again to the host and port of its conn_connect()
 * (a login that must start over on a new connection: RFC 7143 has the
 * target drop a connection whose login it rejected), under the same
 * deadline.  Returns 0, or -1 with err_set(): as conn_connect(), or
 * ENOTCONN for an attached fd. */
int conn_reconnect(struct conn *c);

/* For tests and fuzz harnesses: make @c a conn over @fd, a stream socket
 * that is already connected (one end of a socketpair), named @peer in log
 * lines, with @timeout_ms as the receive deadline (-1: none).  @c owns @fd
 * from then on, also on failure.  Returns 0, or -1 with err_set(ENOMEM). */
int conn_attach_fd(struct conn *c, int fd, const char *peer, int timeout_ms);

/* TCP keepalive after @idle_s of silence and TCP_USER_TIMEOUT, as a second
 * net under the NOP-Out keepalive: a peer that vanishes is noticed even
 * while we only send. */
void conn_set_keepalive(struct conn *c, unsigned idle_s, unsigned timeout_s);

/* Close the socket and free buffers; safe on a closed conn. */
void conn_close(struct conn *c);

/* Wake any thread blocked in send or receive (they then fail with EPIPE). */
void conn_shutdown(struct conn *c);

/* Send one PDU: @bhs, then @data_len bytes from @iov (may be NULL when
 * @data_len is 0), padding and digests as negotiated.  Sets the
 * DataSegmentLength of @bhs.  @more hints that another PDU follows at once
 * (MSG_MORE).  Returns 0, or -1 with err_set(). */
int conn_send_pdu(struct conn *c, union iscsi_bhs *bhs, const struct iovec *iov,
		  int iovcnt, uint32_t data_len, bool more);

/* Receive the next BHS, skip its AHS, check the header digest.  Returns 0,
 * or -1 with err_set() (EOF, timeout, digest mismatch, oversized AHS). */
int conn_recv_bhs(struct conn *c, union iscsi_bhs *bhs);

/* Receive the data segment of the PDU whose BHS was just received: @len
 * bytes (its DataSegmentLength; anything else is refused with EINVAL) into
 * @buf (NULL: discard), then padding and the data digest, which is
 * checked.  Returns 0, or -1 with err_set(). */
int conn_recv_data(struct conn *c, void *buf, uint32_t len);

/* Receive for the full feature phase: every PDU's header is checked with
 * pdu_check_received(@max_data) and @place(@arg, ...) says where its data
 * goes; digests as negotiated on @c.  Between PDUs only. */
void conn_rx_setup(struct conn *c, pdu_rx_place_fn place, void *arg, uint32_t max_data);

/* The next complete PDU from what is buffered: PDU_RX_COMPLETE (header in
 * c->rx.bhs, data at c->rx.dst), PDU_RX_MORE (conn_rx_fill() next), or -1
 * with err_set(). */
int conn_rx_next(struct conn *c);

/* One recv() of as much as the receiver has room for, waiting within the
 * receive timeout and the deadline.  Returns 0, or -1 with err_set() (EOF,
 * timeout, socket error). */
int conn_rx_fill(struct conn *c);

#endif /* ISCSIFS_CONN_H */
