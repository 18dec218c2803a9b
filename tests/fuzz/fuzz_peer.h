/* fuzz_peer.h: the target's end of a socketpair, for the harnesses that
 * drive real iscsifs code over a socket (fuzz_pdu, fuzz_login,
 * fuzz_session).
 *
 * A peer sends a fixed byte string (what the fuzzer made the target say),
 * then shuts down its sending side so that the initiator always reaches
 * end of input, and meanwhile reads and discards whatever the initiator
 * sends, so the initiator never blocks on a full socket.  It ends when the
 * initiator closes or shuts down its end.
 *
 * Optionally (fuzz_peer_hold()) the peer stops at an offset of its bytes
 * until the initiator sends a PDU with a given opcode (a Logout Request,
 * say): it frames the initiator's stream to see the opcodes, so it must
 * know the digests in use.
 *
 * Thread model: fuzz_peer_start() runs the peer in a thread of its own;
 * the harness thread only calls fuzz_peer_wait_held() and
 * fuzz_peer_join().  The peer owns its fd and closes it in
 * fuzz_peer_join().  lock protects held; everything else belongs to the
 * peer thread once it runs.
 */
#ifndef ISCSIFS_FUZZ_PEER_H
#define ISCSIFS_FUZZ_PEER_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

/* The target side of one fuzz run. */
struct fuzz_peer {
	int fd;               /* the target's end of the socketpair */
	const uint8_t *out;   /* what the target sends; borrowed, outlives the peer */
	size_t out_len;       /* bytes at out */
	size_t sent;          /* bytes of out sent so far (peer thread only) */
	uint64_t received;    /* bytes the initiator sent, discarded (peer thread only) */
	pthread_t thread;     /* runs fuzz_peer_main() */

	/* fuzz_peer_hold(): stop at hold_at until release_opcode comes */
	size_t hold_at;       /* offset in out to stop at; out_len: never stop */
	uint8_t release_opcode; /* opcode of the initiator PDU that releases it */
	bool released;        /* that PDU came, or nothing is held (peer thread only) */
	bool header_digest;   /* the initiator's PDUs carry a header digest */
	bool data_digest;     /* ... and a data digest after a data segment */
	uint8_t hdr[48];      /* the initiator BHS being collected (peer thread) */
	size_t hdr_have;      /* bytes of it so far (peer thread) */
	uint64_t skip;        /* bytes of digests and data to skip (peer thread) */
	pthread_mutex_t lock; /* protects held */
	pthread_cond_t cond;  /* signalled when held becomes true */
	bool held;            /* everything before hold_at was sent, or the peer ended */
};

/* Follow the initiator's stream of @n bytes at @b, PDU by PDU, and note
 * when one with the release opcode passes. */
static inline void fuzz_peer_scan(struct fuzz_peer *p, const uint8_t *b, size_t n)
{
	while (n > 0) {
		if (p->skip > 0) {
			size_t take = p->skip < n ? (size_t)p->skip : n;
			p->skip -= take;
			b += take;
			n -= take;
			continue;
		}
		size_t take = sizeof p->hdr - p->hdr_have;
		if (take > n)
			take = n;
		memcpy(p->hdr + p->hdr_have, b, take);
		p->hdr_have += take;
		b += take;
		n -= take;
		if (p->hdr_have < sizeof p->hdr)
			continue;
		uint32_t dlen = (uint32_t)p->hdr[5] << 16 | (uint32_t)p->hdr[6] << 8 | p->hdr[7];
		if ((p->hdr[0] & 0x3f) == p->release_opcode)
			p->released = true;
		p->skip = (p->header_digest ? 4 : 0) + (uint64_t)p->hdr[4] * 4 + dlen +
			((4 - (dlen & 3)) & 3) + (p->data_digest && dlen ? 4 : 0);
		p->hdr_have = 0;
	}
}

/* Mark the peer held and wake fuzz_peer_wait_held(). */
static inline void fuzz_peer_set_held(struct fuzz_peer *p)
{
	pthread_mutex_lock(&p->lock);
	p->held = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* Send p->out while draining what comes in; stop at the initiator's EOF. */
static inline void *fuzz_peer_main(void *arg)
{
	struct fuzz_peer *p = arg;
	bool wr_open = true;
	uint8_t sink[16384];

	for (;;) {
		size_t limit = p->released ? p->out_len : p->hold_at;
		if (wr_open && p->sent == p->out_len) {
			shutdown(p->fd, SHUT_WR);
			wr_open = false;
		}
		if (p->sent >= limit && !p->held)
			fuzz_peer_set_held(p);
		bool want_out = wr_open && p->sent < limit;
		struct pollfd pfd = {
			.fd = p->fd,
			.events = (short)(POLLIN | (want_out ? POLLOUT : 0)),
		};
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (want_out && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = send(p->fd, p->out + p->sent, limit - p->sent,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				p->sent += (size_t)n;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				p->sent = p->out_len;   /* the initiator is gone */
				p->released = true;
			}
		}
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			ssize_t n = recv(p->fd, sink, sizeof sink, MSG_DONTWAIT);
			if (n > 0) {
				p->received += (uint64_t)n;
				if (!p->released)
					fuzz_peer_scan(p, sink, (size_t)n);
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				break;          /* the initiator closed its end */
			}
		}
	}
	fuzz_peer_set_held(p);
	return NULL;
}

/* Start a peer on @fd that sends the @len bytes at @out, but nothing from
 * offset @hold_at on until the initiator sends a PDU with @opcode (whose
 * PDUs carry digests as @header_digest and @data_digest say).  Aborts
 * when no thread can be started (the harness cannot go on without it). */
static inline void fuzz_peer_start_held(struct fuzz_peer *p, int fd, const uint8_t *out,
				 size_t len, size_t hold_at, uint8_t opcode,
				 bool header_digest, bool data_digest)
{
	memset(p, 0, sizeof *p);
	p->fd = fd;
	p->out = out;
	p->out_len = len;
	p->hold_at = hold_at < len ? hold_at : len;
	p->release_opcode = opcode;
	p->header_digest = header_digest;
	p->data_digest = data_digest;
	p->released = p->hold_at == len;   /* nothing to hold back */
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (pthread_create(&p->thread, NULL, fuzz_peer_main, p) != 0) {
		fprintf(stderr, "fuzz_peer: cannot start a thread\n");
		abort();
	}
}

/* Start a peer on @fd that sends the @len bytes at @out. */
static inline void fuzz_peer_start(struct fuzz_peer *p, int fd, const uint8_t *out, size_t len)
{
	fuzz_peer_start_held(p, fd, out, len, len, 0, false, false);
}

/* Wait until the peer has sent everything before its hold offset (or has
 * ended). */
static inline void fuzz_peer_wait_held(struct fuzz_peer *p)
{
	pthread_mutex_lock(&p->lock);
	while (!p->held)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

/* Wait for the peer to end (the initiator must have closed or shut down
 * its end) and close the peer's fd. */
static inline void fuzz_peer_join(struct fuzz_peer *p)
{
	pthread_join(p->thread, NULL);
	close(p->fd);
	p->fd = -1;
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
}

/* A socketpair for one run: sv[0] for iscsifs, sv[1] for the peer.  Aborts
 * on failure. */
static inline void fuzz_socketpair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("fuzz: socketpair");
		abort();
	}
}

#endif /* ISCSIFS_FUZZ_PEER_H */
