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
 * In full feature phase a session makes its conn non-blocking
 * (conn_set_nonblocking()): conn_send_pdu() then sends what the socket
 * takes and keeps the rest of that one PDU in c->tx (CONN_SEND_PARTIAL),
 * for conn_send_rest() once the socket is writable again; the caller keeps
 * the data the PDU points to until then.  conn_rx_try() receives without
 * waiting.
 *
 * Thread model: the send functions may be called by one thread at a time
 * (whoever holds the session's socket, or the login code before); the
 * receive functions by one thread at a time (the session's event loop, or
 * login).  conn_shutdown() may be called from any thread to wake both.
 */
#ifndef ISCSIFS_CONN_H
#define ISCSIFS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "pdu.h"
#include "pdu_rx.h"

/* Most iovecs one PDU's data segment may use (R2T slices of a FUSE buffer
 * have one or two). */
#define CONN_DATA_IOV_MAX 60
/* The size of a conn's own receive buffer (login, discovery: before the
 * connection goes to a loop, which lends one of its own instead). */
#define CONN_RX_BUFFER (64 * 1024)

/* The PDU conn_send_pdu() is sending: what the socket has not taken yet.
 * The header and digests are copies; the data entries point to the
 * caller's buffers. */
struct conn_tx {
	union iscsi_bhs bhs;    /* the header */
	uint8_t hdigest[4];     /* its CRC32C (HeaderDigest) */
	uint8_t ddigest[4];     /* the data segment's (DataDigest) */
	struct iovec iov[CONN_DATA_IOV_MAX + 4]; /* header, digest, data, pad, digest */
	int first;              /* first entry not yet wholly sent */
	int count;              /* entries in use */
};

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
	                         * the session's first input */
	bool nonblocking;       /* sends never wait (conn_set_nonblocking()) */
	struct conn_tx tx;      /* the sender's: the PDU under way; entries
	                         * first..count-1 still to go (none when
	                         * first == count) */
	uint64_t bytes_sent;    /* statistics, by the sending thread */
	uint64_t bytes_received;/* statistics, by the receiving thread */
};

/* Resolve @host and connect to @port, each within @timeout_ms (the lookup
 * on a resolver thread, resolve.h), set TCP_NODELAY.  Returns 0, or -1
 * with err_set() naming the cause ("cannot resolve host", "connection
 * refused", "timed out").  No deadline. */
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

/* What conn_send_pdu() and conn_send_rest() return besides 0 and -1. */
#define CONN_SEND_PARTIAL 1   /* non-blocking: the socket is full; the rest of
                               * the PDU waits for conn_send_rest() */

/* Send one PDU: @bhs, then @data_len bytes from @iov (may be NULL when
 * @data_len is 0), padding and digests as negotiated.  Sets the
 * DataSegmentLength of @bhs.  @more hints that another PDU follows at once
 * (MSG_MORE).  Returns 0 (all of it sent), CONN_SEND_PARTIAL (non-blocking
 * conn: the data of @iov must stay until conn_send_rest() returns 0), or
 * -1 with err_set().  Not while a partial PDU waits. */
int conn_send_pdu(struct conn *c, union iscsi_bhs *bhs, const struct iovec *iov,
		  int iovcnt, uint32_t data_len, bool more);

/* Send more of the PDU a CONN_SEND_PARTIAL left: 0 once it is all sent,
 * CONN_SEND_PARTIAL when the socket is full again, -1 with err_set(). */
int conn_send_rest(struct conn *c);

/* Forget the rest of a partial PDU (the connection is gone). */
void conn_send_forget(struct conn *c);

/* Make the socket non-blocking for the event loop (sends as
 * conn_send_pdu() says, conn_rx_try()).  Returns 0, or -1 with
 * err_set(). */
int conn_set_nonblocking(struct conn *c);

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

/* One recv() without waiting: 1 when bytes came, 0 when the socket has
 * none now, -1 with err_set() (EOF, socket error). */
int conn_rx_try(struct conn *c);

#endif /* ISCSIFS_CONN_H */
