/* conn.c: TCP connection and PDU framing (see conn.h).
 *
 * Receiving goes through the conn's pdu_rx (pdu_rx.c): one recv() fills
 * its buffer with as many PDUs as the socket has, so a 48-byte header does
 * not cost a system call of its own; a large data segment bypasses the
 * buffer and is read straight into its destination.
 *
 * A host name is looked up within the same bounds (resolve.h).
 *
 * Two bounds on waiting for the peer: recv_timeout_ms for each wait for
 * input (a peer that falls silent), and deadline_ns for the whole
 * exchange under way (a peer that keeps talking without ever finishing,
 * or trickles a byte at a time).  Every wait — poll() for input, for
 * room to send, for a connect — ends at the nearer of the two.
 */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "deadline.h"
#include "log.h"
#include "portal.h"
#include "resolve.h"

int64_t conn_deadline_after(int ms)
{
	return mono_now_ns() + (int64_t)ms * 1000000;
}

bool conn_deadline_passed(const struct conn *c)
{
	return c->deadline_ns && mono_now_ns() >= c->deadline_ns;
}

/* How long one wait of @timeout_ms (-1: no limit) may last on @c, its
 * deadline considered: -1 for no limit, 0 when the deadline has passed.
 * Sets *@by_deadline when the deadline is the nearer bound. */
static int wait_budget_ms(const struct conn *c, int timeout_ms, bool *by_deadline)
{
	*by_deadline = false;
	if (!c->deadline_ns)
		return timeout_ms;
	int64_t left = c->deadline_ns - mono_now_ns();
	int64_t left_ms = left <= 0 ? 0 : (left + 999999) / 1000000;
	if (timeout_ms >= 0 && timeout_ms < left_ms)
		return timeout_ms;
	*by_deadline = true;
	return left_ms > INT_MAX ? INT_MAX : (int)left_ms;
}

/* The error of a wait that ran into the deadline of @c. */
static void deadline_error(const struct conn *c, const char *doing)
{
	err_set(ETIMEDOUT, "%s: out of time while %s (the deadline of this exchange passed)",
		c->peer, doing);
}

int conn_connect(struct conn *c, const char *host, uint16_t port, int timeout_ms)
{
	return conn_connect_until(c, host, port, timeout_ms, 0);
}

int conn_connect_until(struct conn *c, const char *host, uint16_t port, int timeout_ms,
		       int64_t deadline_ns)
{
	struct addrinfo *res, *ai;
	int rc, saved = ECONNREFUSED;
	char why[128] = "";

	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->recv_timeout_ms = timeout_ms;
	portal_format(c->peer, sizeof c->peer, host, port);
	snprintf(c->host, sizeof c->host, "%s", host);
	c->port = port;
	c->connect_timeout_ms = timeout_ms;
	c->deadline_ns = deadline_ns;
	/* the lookup too ends by the nearer of the timeout and the deadline */
	int64_t lookup_by = timeout_ms > 0 ? conn_deadline_after(timeout_ms) : 0;
	if (deadline_ns && (!lookup_by || deadline_ns < lookup_by))
		lookup_by = deadline_ns;
	if (resolve_until(host, port, lookup_by, &res) < 0)
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			saved = errno;
			close(fd);
			continue;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		bool by_deadline;
		int wait_ms = wait_budget_ms(c, timeout_ms, &by_deadline);
		rc = by_deadline && wait_ms == 0 ? 0 : poll(&pfd, 1, wait_ms);
		if (rc == 0) {
			saved = ETIMEDOUT;
			if (by_deadline)
				snprintf(why, sizeof why, " (out of time: the deadline passed)");
			else
				snprintf(why, sizeof why, " (no answer within %d s)", timeout_ms / 1000);
			close(fd);
			continue;
		}
		int soerr = 0;
		socklen_t len = sizeof soerr;
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr) {
			saved = soerr ? soerr : errno;
			close(fd);
			continue;
		}
		int flags = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->fd = fd;
		break;
	}
	freeaddrinfo(res);
	if (c->fd < 0) {
		err_set(saved, "cannot connect to %s: %s%s", c->peer, strerror(saved), why);
		return -1;
	}
	if (pdu_rx_init(&c->rx, CONN_RX_BUFFER) < 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

int conn_reconnect(struct conn *c)
{
	char host[sizeof c->host];
	uint16_t port = c->port;
	int timeout_ms = c->connect_timeout_ms;
	int64_t deadline_ns = c->deadline_ns;

	if (!c->host[0]) {
		err_set(ENOTCONN, "cannot connect %s again: it was not made by connecting",
			c->peer);
		return -1;
	}
	memcpy(host, c->host, sizeof host);
	conn_close(c);
	return conn_connect_until(c, host, port, timeout_ms, deadline_ns);
}

int conn_attach_fd(struct conn *c, int fd, const char *peer, int timeout_ms)
{
	memset(c, 0, sizeof *c);
	c->fd = fd;
	c->recv_timeout_ms = timeout_ms;
	snprintf(c->peer, sizeof c->peer, "%s", peer);
	if (pdu_rx_init(&c->rx, CONN_RX_BUFFER) < 0) {
		conn_close(c);
		return -1;
	}
	return 0;
}

void conn_set_keepalive(struct conn *c, unsigned idle_s, unsigned timeout_s)
{
	int on = 1;
	/* (0: off to us, 5 s to TCP; Linux takes at most 32767 s) */
	int idle = idle_s ? (int)(idle_s < 32767 ? idle_s : 32767) : 5;
	int intvl = timeout_s ? (int)(timeout_s < 32767 ? timeout_s : 32767) : 5;
	int cnt = 3;
	unsigned user_timeout = (unsigned)(idle + intvl * cnt) * 1000u;

	setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
	setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	setsockopt(c->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	pdu_rx_free(&c->rx);
}

void conn_shutdown(struct conn *c)
{
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
}

/* Under a deadline: wait until @c may be written to, at most until then. */
static int wait_writable(struct conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
	bool by_deadline;
	int rc;

	do {
		int wait_ms = wait_budget_ms(c, -1, &by_deadline);
		rc = wait_ms == 0 ? 0 : poll(&pfd, 1, wait_ms);
	} while (rc < 0 && errno == EINTR);
	if (rc == 0) {
		deadline_error(c, "sending");
		return -1;
	}
	return 0;
}

/* Write all of @iov, retrying short writes.  Under a deadline the socket
 * is written without blocking, so that a peer that stops reading cannot
 * hold us past it. */
static int send_all(struct conn *c, struct iovec *iov, int iovcnt, bool more)
{
	int flags = MSG_NOSIGNAL | (more ? MSG_MORE : 0) | (c->deadline_ns ? MSG_DONTWAIT : 0);

	while (iovcnt > 0) {
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
		if (c->deadline_ns && wait_writable(c) < 0)
			return -1;
		ssize_t n = sendmsg(c->fd, &msg, flags);
		if (n < 0) {
			if (errno == EINTR || (c->deadline_ns && (errno == EAGAIN || errno == EWOULDBLOCK)))
				continue;
			err_set(errno, "send to %s failed: %s", c->peer, strerror(errno));
			return -1;
		}
		c->bytes_sent += (uint64_t)n;
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Send entries first..count-1 of c->tx without waiting, as far as the
 * socket takes them: 0 when all went, CONN_SEND_PARTIAL when it is full,
 * -1 with err_set(). */
static int send_some(struct conn *c, bool more)
{
	struct conn_tx *tx = &c->tx;
	int flags = MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0);

	while (tx->first < tx->count) {
		struct msghdr msg = { .msg_iov = &tx->iov[tx->first],
				      .msg_iovlen = (size_t)(tx->count - tx->first) };
		ssize_t n = sendmsg(c->fd, &msg, flags);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return CONN_SEND_PARTIAL;
			err_set(errno, "send to %s failed: %s", c->peer, strerror(errno));
			return -1;
		}
		c->bytes_sent += (uint64_t)n;
		while (tx->first < tx->count && (size_t)n >= tx->iov[tx->first].iov_len) {
			n -= (ssize_t)tx->iov[tx->first].iov_len;
			tx->first++;
		}
		if (tx->first < tx->count) {
			tx->iov[tx->first].iov_base = (uint8_t *)tx->iov[tx->first].iov_base + n;
			tx->iov[tx->first].iov_len -= (size_t)n;
		}
	}
	return 0;
}

int conn_send_pdu(struct conn *c, union iscsi_bhs *bhs, const struct iovec *iov,
		  int iovcnt, uint32_t data_len, bool more)
{
	static const uint8_t zeros[4];
	struct conn_tx *tx = &c->tx;
	int n = 0;

	if (tx->first < tx->count) {
		err_set(EINVAL, "internal error: a PDU sent to %s while another is half sent",
			c->peer);
		return -1;
	}
	if (iovcnt > CONN_DATA_IOV_MAX) {
		err_set(EINVAL, "internal error: data segment in %d pieces", iovcnt);
		return -1;
	}
	pdu_set_data_len(bhs, data_len);
	tx->bhs = *bhs;
	tx->iov[n++] = (struct iovec){ tx->bhs.bytes, ISCSI_BHS_SIZE };
	if (c->header_digest) {
		put_le32(tx->hdigest, crc32c(tx->bhs.bytes, ISCSI_BHS_SIZE));
		tx->iov[n++] = (struct iovec){ tx->hdigest, 4 };
	}
	if (data_len) {
		uint32_t left = data_len;
		uint32_t state = crc32c_begin();
		for (int i = 0; i < iovcnt && left; i++) {
			size_t take = iov[i].iov_len < left ? iov[i].iov_len : left;
			tx->iov[n++] = (struct iovec){ iov[i].iov_base, take };
			if (c->data_digest)
				state = crc32c_update(state, iov[i].iov_base, take);
			left -= (uint32_t)take;
		}
		if (left) {
			err_set(EINVAL, "internal error: data segment shorter than %u", data_len);
			return -1;
		}
		uint32_t pad = pdu_pad(data_len);
		if (pad) {
			tx->iov[n++] = (struct iovec){ (void *)zeros, pad };
			if (c->data_digest)
				state = crc32c_update(state, zeros, pad);
		}
		if (c->data_digest) {
			put_le32(tx->ddigest, crc32c_end(state));
			tx->iov[n++] = (struct iovec){ tx->ddigest, 4 };
		}
	}
	if (c->nonblocking) {
		tx->first = 0;
		tx->count = n;
		return send_some(c, more);
	}
	/* blocking (login, discovery): the entries are the caller's to wait on */
	tx->first = tx->count = 0;
	return send_all(c, tx->iov, n, more);
}

int conn_send_rest(struct conn *c)
{
	return send_some(c, false);
}

void conn_send_forget(struct conn *c)
{
	c->tx.first = c->tx.count = 0;
}

int conn_set_nonblocking(struct conn *c)
{
	int flags = fcntl(c->fd, F_GETFL);

	if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		err_set(errno, "%s: cannot make the socket non-blocking: %s", c->peer,
			strerror(errno));
		return -1;
	}
	c->nonblocking = true;
	return 0;
}

/* Wait until the socket is readable, within the receive timeout and the
 * deadline. */
static int wait_readable(struct conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	bool by_deadline;
	int rc, wait_ms;

	do {
		/* (-1: no limit, poll() waits as long as it takes) */
		wait_ms = wait_budget_ms(c, c->recv_timeout_ms, &by_deadline);
		rc = by_deadline && wait_ms == 0 ? 0 : poll(&pfd, 1, wait_ms);
	} while (rc < 0 && errno == EINTR);
	if (rc == 0 && by_deadline) {
		deadline_error(c, "receiving");
		return -1;
	}
	if (rc == 0) {
		err_set(ETIMEDOUT, "%s did not answer within %d s", c->peer,
			c->recv_timeout_ms / 1000);
		return -1;
	}
	return 0;
}

int conn_rx_try(struct conn *c)
{
	/* (a conn that was on a loop has no buffer of its own) */
	if (pdu_rx_own_buffer(&c->rx, CONN_RX_BUFFER) < 0)
		return -1;
	for (;;) {
		ssize_t n = pdu_rx_recv(&c->rx, c->fd, MSG_DONTWAIT);
		if (n > 0) {
			c->bytes_received += (uint64_t)n;
			return 1;
		}
		if (n == 0) {
			err_set(EPIPE, "%s closed the connection", c->peer);
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		err_set(errno, "receive from %s failed: %s", c->peer, strerror(errno));
		return -1;
	}
}

int conn_rx_fill(struct conn *c)
{
	for (;;) {
		if (wait_readable(c) < 0)
			return -1;
		int rc = conn_rx_try(c);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
		/* (readable, yet nothing came: wait again) */
	}
}

/* Parse until pdu_rx_next() says @want (or fails), receiving as needed. */
static int rx_until(struct conn *c, int want)
{
	for (;;) {
		int rc = pdu_rx_next(&c->rx, c->peer);
		if (rc < 0 || rc == want)
			return rc < 0 ? -1 : 0;
		if (rc != PDU_RX_MORE) {
			err_set(EPROTO, "internal error: receiver of %s out of step", c->peer);
			return -1;
		}
		if (conn_rx_fill(c) < 0)
			return -1;
	}
}

void conn_rx_setup(struct conn *c, pdu_rx_place_fn place, void *arg, uint32_t max_data)
{
	c->rx.header_digest = c->header_digest;
	c->rx.data_digest = c->data_digest;
	c->rx.check_target = true;
	c->rx.max_data = max_data;
	c->rx.place = place;
	c->rx.place_arg = arg;
}

int conn_rx_next(struct conn *c)
{
	return pdu_rx_next(&c->rx, c->peer);
}

int conn_recv_bhs(struct conn *c, union iscsi_bhs *bhs)
{
	/* the two-step receive: the caller checks the header and places
	 * the data (conn_recv_data()) */
	c->rx.header_digest = c->header_digest;
	c->rx.data_digest = c->data_digest;
	c->rx.check_target = false;
	c->rx.place = NULL;
	if (rx_until(c, PDU_RX_HEADER) < 0)
		return -1;
	*bhs = c->rx.bhs;
	return 0;
}

int conn_recv_data(struct conn *c, void *buf, uint32_t len)
{
	if (c->rx.state != PDU_RX_PLACE || len != c->rx.data_len) {
		err_set(EINVAL, "internal error: %u bytes of data asked of %s, not the segment of the header received",
			len, c->peer);
		return -1;
	}
	pdu_rx_place(&c->rx, buf);
	return rx_until(c, PDU_RX_COMPLETE);
}
