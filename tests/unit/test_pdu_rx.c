/* test_pdu_rx.c: the resumable receiver (pdu_rx.h) against streams of
 * PDUs made here: with and without digests, with AHS, with data segments
 * of every length from 0 to MaxRecvDataSegmentLength (so every padding),
 * some dropped, delivered in every split (one byte at a time, random
 * pieces, all at once, and through a socket, where large segments go
 * straight into their destination); each delivery must give the same
 * headers and data.  Then what must be refused, with the line the daemon
 * logs: over-long segments, AHS and initiator opcodes in full feature
 * phase, bad digests, the owner's refusal; a truncated stream that never
 * completes; EAGAIN; many small PDUs for one recv().
 *
 * Single-threaded but for the writer of the socket cases.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "crc32c.h"
#include "log.h"
#include "pdu_rx.h"
#include "testlib.h"

#define MRDSL 65536             /* the largest data segment of the streams */
#define MAX_PDUS 160

/* One PDU of a stream, as made. */
struct made {
	union iscsi_bhs bhs;    /* its header */
	uint32_t ahs;           /* bytes of AHS */
	uint32_t len;           /* DataSegmentLength */
	uint32_t at;            /* where its data is in data[] */
	bool drop;              /* the owner drops its data */
};

/* A stream and what it should give. */
struct stream {
	uint8_t *bytes;         /* the wire bytes */
	size_t len;             /* their count */
	struct made pdus[MAX_PDUS];
	unsigned n;             /* PDUs in it */
	uint8_t *data;          /* every data segment, one after the other */
	size_t data_len;
	bool hd, dd;            /* digests */
};

/* What a receiver gave. */
struct got {
	const struct stream *st;
	uint8_t *data;          /* where placed data went: as st->data */
	unsigned placed;        /* place callbacks so far */
	unsigned complete;      /* PDUs completed */
	bool bad;               /* a header or data differs */
};

static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

static const uint8_t target_ops[] = {
	ISCSI_OP_DATA_IN, ISCSI_OP_SCSI_RSP, ISCSI_OP_NOP_IN, ISCSI_OP_ASYNC_MSG,
	ISCSI_OP_TEXT_RSP, ISCSI_OP_REJECT,
};

/* Make a stream of @n PDUs: digests @hd/@dd, AHS when @ahs; lengths from
 * @lens (cycled) when given, else random up to MRDSL. */
static void make_stream(struct stream *st, unsigned n, bool hd, bool dd, bool ahs,
			const uint32_t *lens, unsigned nlens)
{
	size_t cap = (size_t)n * (ISCSI_BHS_SIZE + 64 + 4 + MRDSL + 8);
	memset(st, 0, sizeof *st);
	st->bytes = malloc(cap);
	st->data = malloc((size_t)n * MRDSL);
	st->hd = hd;
	st->dd = dd;
	for (unsigned i = 0; i < n; i++) {
		struct made *m = &st->pdus[i];
		m->len = lens ? lens[i % nlens] : (rnd() % 4 == 0 ? rnd() % 8 : rnd() % (MRDSL + 1));
		m->ahs = ahs && rnd() % 3 == 0 ? 4 * (1 + rnd() % 5) : 0;
		m->drop = rnd() % 5 == 0;
		m->at = (uint32_t)st->data_len;
		pdu_init(&m->bhs, target_ops[rnd() % sizeof target_ops], false);
		for (int b = 16; b < ISCSI_BHS_SIZE; b++)
			m->bhs.bytes[b] = (uint8_t)rnd();
		m->bhs.common.ahs_len = (uint8_t)(m->ahs / 4);
		pdu_set_data_len(&m->bhs, m->len);

		uint8_t *p = st->bytes + st->len;
		uint8_t *start = p;
		memcpy(p, m->bhs.bytes, ISCSI_BHS_SIZE);
		p += ISCSI_BHS_SIZE;
		for (uint32_t a = 0; a < m->ahs; a++)
			*p++ = (uint8_t)rnd();
		if (hd) {
			put_le32(p, crc32c(start, (size_t)(p - start)));
			p += 4;
		}
		uint8_t *d = p;
		for (uint32_t k = 0; k < m->len; k++)
			st->data[st->data_len + k] = *p++ = (uint8_t)rnd();
		st->data_len += m->len;
		if (m->len) {
			uint32_t pad = pdu_pad(m->len);
			memset(p, 0, pad);
			p += pad;
			if (dd) {
				put_le32(p, crc32c(d, (size_t)(p - d)));
				p += 4;
			}
		}
		st->len += (size_t)(p - start);
	}
	st->n = n;
}

static void free_stream(struct stream *st)
{
	free(st->bytes);
	free(st->data);
}

static int place(void *arg, const union iscsi_bhs *bhs, uint8_t **dst)
{
	struct got *g = arg;
	const struct made *m = &g->st->pdus[g->placed];

	if (g->placed >= g->st->n || memcmp(bhs->bytes, m->bhs.bytes, ISCSI_BHS_SIZE) != 0) {
		g->bad = true;
		return -1;
	}
	g->placed++;
	*dst = m->drop ? NULL : g->data + m->at;
	return 0;
}

static void setup(struct pdu_rx *rx, struct got *g, const struct stream *st, size_t cap,
		  bool check_target)
{
	CHECK(pdu_rx_init(rx, cap) == 0);
	rx->header_digest = st->hd;
	rx->data_digest = st->dd;
	rx->check_target = check_target;
	rx->max_data = MRDSL;
	rx->place = place;
	rx->place_arg = g;
	memset(g, 0, sizeof *g);
	g->st = st;
	g->data = malloc(st->data_len ? st->data_len : 1);
	memset(g->data, 0xee, st->data_len);
}

/* Parse everything buffered; returns -1 on error. */
static int drain(struct pdu_rx *rx, struct got *g)
{
	for (;;) {
		int rc = pdu_rx_next(rx, "peer");
		if (rc < 0)
			return -1;
		if (rc == PDU_RX_MORE)
			return 0;
		CHECK(rc == PDU_RX_COMPLETE);
		if (rc == PDU_RX_COMPLETE) {
			const struct made *m = &g->st->pdus[g->complete];
			if (memcmp(rx->bhs.bytes, m->bhs.bytes, ISCSI_BHS_SIZE) != 0 ||
			    rx->dst != (m->drop ? NULL : g->data + m->at))
				g->bad = true;
			g->complete++;
		}
	}
}

/* Whether @g received all of its stream right: every PDU, every placed
 * data segment equal, every dropped one untouched. */
static bool got_all(const struct got *g)
{
	const struct stream *st = g->st;

	if (g->bad || g->complete != st->n || g->placed != st->n)
		return false;
	for (unsigned i = 0; i < st->n; i++) {
		const struct made *m = &st->pdus[i];
		for (uint32_t k = 0; k < m->len; k++) {
			uint8_t want = m->drop ? 0xee : st->data[m->at + k];
			if (g->data[m->at + k] != want)
				return false;
		}
	}
	return true;
}

/* Feed @st in pieces of @piece bytes (0: random sizes up to 70000). */
static bool feed_split(const struct stream *st, size_t piece, size_t cap, bool check_target)
{
	struct pdu_rx rx;
	struct got g;
	bool ok = true;

	setup(&rx, &g, st, cap, check_target);
	for (size_t at = 0; at < st->len && ok;) {
		size_t want = piece ? piece : 1 + rnd() % 70000;
		if (want > st->len - at)
			want = st->len - at;
		while (want && ok) {
			size_t took = pdu_rx_feed(&rx, st->bytes + at, want);
			at += took;
			want -= took;
			if (drain(&rx, &g) < 0) {
				fprintf(stderr, "refused: %s\n", err_msg());
				ok = false;
			}
		}
	}
	ok = ok && got_all(&g) && pdu_rx_idle(&rx);
	free(g.data);
	pdu_rx_free(&rx);
	return ok;
}

/* The writer of a socket case: @st in random pieces, then EOF. */
struct writer {
	int fd;
	const struct stream *st;
	uint32_t seed;
};

static void *write_stream(void *arg)
{
	struct writer *w = arg;
	uint32_t s = w->seed;

	for (size_t at = 0; at < w->st->len;) {
		s = s * 1103515245u + 12345u;
		size_t n = 1 + (s >> 8) % 50000;
		if (n > w->st->len - at)
			n = w->st->len - at;
		ssize_t k = write(w->fd, w->st->bytes + at, n);
		if (k <= 0)
			break;
		at += (size_t)k;
	}
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

/* Through a socket with pdu_rx_recv(): large segments go straight into
 * their destination, so fewer bytes pass through the buffer. */
static bool recv_socket(const struct stream *st, uint64_t *direct)
{
	int sv[2];
	struct pdu_rx rx;
	struct got g;
	bool ok = true;
	pthread_t th;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct writer w = { .fd = sv[1], .st = st, .seed = rnd() };
	setup(&rx, &g, st, 64 * 1024, true);
	pthread_create(&th, NULL, write_stream, &w);
	uint64_t buffered = 0, total = 0;
	for (;;) {
		if (drain(&rx, &g) < 0) {
			fprintf(stderr, "refused: %s\n", err_msg());
			ok = false;
			break;
		}
		enum pdu_rx_state was = rx.state;
		uint32_t offset = rx.rx_offset;
		ssize_t n = pdu_rx_recv(&rx, sv[0], 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += (uint64_t)n;
		if (!(was == PDU_RX_DATA && rx.rx_offset > offset))
			buffered += (uint64_t)n;
	}
	shutdown(sv[0], SHUT_RDWR);     /* (a writer stuck after a refusal) */
	pthread_join(th, NULL);
	*direct = total - buffered;
	ok = ok && total == st->len && got_all(&g) && pdu_rx_idle(&rx);
	free(g.data);
	pdu_rx_free(&rx);
	close(sv[0]);
	close(sv[1]);
	return ok;
}

static void test_splits(void)
{
	static const uint32_t edge[] = { 0, 1, 2, 3, 4, 5, 47, 48, 49, 8191, 8192, 16383,
					 16384, 16385, 65535, MRDSL };
	for (int variant = 0; variant < 8; variant++) {
		bool hd = variant & 1, dd = variant & 2, ahs = variant & 4;
		struct stream st;
		make_stream(&st, 40, hd, dd, ahs, NULL, 0);
		/* AHS only passes without the full feature phase checks */
		bool ff = !ahs;
		CHECK(feed_split(&st, st.len, 1 << 20, ff));         /* all in one */
		CHECK(feed_split(&st, 0, 64 * 1024, ff));            /* random pieces */
		CHECK(feed_split(&st, 0, 100, ff));                  /* a small buffer */
		free_stream(&st);

		make_stream(&st, (unsigned)(sizeof edge / sizeof edge[0]), hd, dd, ahs,
			    edge, (unsigned)(sizeof edge / sizeof edge[0]));
		CHECK(feed_split(&st, 1, 64 * 1024, ff));            /* byte by byte */
		CHECK(feed_split(&st, 7, 64 * 1024, ff));
		CHECK(feed_split(&st, 0, 64 * 1024, ff));
		free_stream(&st);
	}
}

static void test_socket(void)
{
	for (int variant = 0; variant < 4; variant++) {
		struct stream st;
		uint64_t direct = 0;
		make_stream(&st, 60, variant & 1, variant & 2, false, NULL, 0);
		CHECK(recv_socket(&st, &direct));
		/* (segments of up to 64 KiB in pieces of up to 50000 bytes:
		 * some rest of 16 KiB or more comes straight to its place) */
		CHECK(direct > 0);
		free_stream(&st);
	}
}

/* ---- what is refused ---- */

/* Feed @bytes whole to a full feature phase receiver (digests @hd/@dd,
 * max_data 8192) whose owner places data in a scratch buffer; returns
 * what pdu_rx_next() returned last, the message in @msg. */
static int feed_bad(const uint8_t *bytes, size_t len, bool hd, bool dd, char *msg, size_t cap)
{
	struct pdu_rx rx;
	static uint8_t scratch[8192 + 4];
	int rc;

	CHECK(pdu_rx_init(&rx, 64 * 1024) == 0);
	rx.header_digest = hd;
	rx.data_digest = dd;
	rx.check_target = true;
	rx.max_data = 8192;
	rx.place = NULL;
	pdu_rx_feed(&rx, bytes, len);
	while ((rc = pdu_rx_next(&rx, "10.0.0.1:3260")) == PDU_RX_HEADER)
		pdu_rx_place(&rx, scratch);
	while (rc == PDU_RX_COMPLETE)
		rc = pdu_rx_next(&rx, "10.0.0.1:3260");
	if (rc == PDU_RX_HEADER)
		rc = 2;
	snprintf(msg, cap, "%s", rc < 0 ? err_msg() : "");
	if (rc == PDU_RX_MORE && !pdu_rx_idle(&rx))
		snprintf(msg, cap, "incomplete");
	pdu_rx_free(&rx);
	return rc;
}

/* One PDU on the wire: @op with @dsl data bytes (of value 0x5a), AHS of
 * @ahs bytes, digests as asked; returns its length. */
static size_t one_pdu(uint8_t *out, uint8_t op, uint32_t dsl, uint32_t ahs, bool hd, bool dd)
{
	union iscsi_bhs bhs;
	uint8_t *p = out;

	pdu_init(&bhs, op, false);
	bhs.common.ahs_len = (uint8_t)(ahs / 4);
	pdu_set_data_len(&bhs, dsl);
	memcpy(p, bhs.bytes, ISCSI_BHS_SIZE);
	p += ISCSI_BHS_SIZE;
	memset(p, 0, ahs);
	p += ahs;
	if (hd) {
		put_le32(p, crc32c(out, (size_t)(p - out)));
		p += 4;
	}
	if (dsl) {
		uint8_t *d = p;
		memset(p, 0x5a, dsl);
		p += dsl;
		memset(p, 0, pdu_pad(dsl));
		p += pdu_pad(dsl);
		if (dd) {
			put_le32(p, crc32c(d, (size_t)(p - d)));
			p += 4;
		}
	}
	return (size_t)(p - out);
}

static void test_refused(void)
{
	static uint8_t buf[20000];
	char msg[256];
	size_t n;

	/* the limits of pdu_check_received(), as the daemon logs them */
	n = one_pdu(buf, ISCSI_OP_DATA_IN, 8193, 0, false, false);
	CHECK(feed_bad(buf, n, false, false, msg, sizeof msg) == -1);
	CHECK_STR(msg, "protocol error: Data-In with a 8193-byte data segment, over the 8192 we accept");
	n = one_pdu(buf, ISCSI_OP_DATA_IN, 8192, 0, false, false);
	CHECK(feed_bad(buf, n, false, false, msg, sizeof msg) == PDU_RX_MORE);
	CHECK_STR(msg, "");
	n = one_pdu(buf, ISCSI_OP_NOP_IN, 0, 8, false, false);
	CHECK(feed_bad(buf, n, false, false, msg, sizeof msg) == -1);
	CHECK_STR(msg, "protocol error: NOP-In with a 8-byte AHS; target PDUs carry none");
	n = one_pdu(buf, ISCSI_OP_SCSI_CMD, 0, 0, false, false);
	CHECK(feed_bad(buf, n, false, false, msg, sizeof msg) == -1);
	CHECK_STR(msg, "protocol error: target sent opcode 0x01, not a target PDU");

	/* digests */
	n = one_pdu(buf, ISCSI_OP_DATA_IN, 101, 0, true, true);
	CHECK(feed_bad(buf, n, true, true, msg, sizeof msg) == PDU_RX_MORE);
	buf[ISCSI_BHS_SIZE] ^= 1;       /* the header digest */
	CHECK(feed_bad(buf, n, true, true, msg, sizeof msg) == -1);
	CHECK_STR(msg, "header digest error on Data-In from 10.0.0.1:3260");
	buf[ISCSI_BHS_SIZE] ^= 1;
	buf[ISCSI_BHS_SIZE + 4 + 50] ^= 0x80;   /* a data byte */
	CHECK(feed_bad(buf, n, true, true, msg, sizeof msg) == -1);
	CHECK_STR(msg, "data digest error from 10.0.0.1:3260");
	buf[ISCSI_BHS_SIZE + 4 + 50] ^= 0x80;
	buf[n - 5] ^= 1;                /* padding counts in the data digest */
	CHECK(feed_bad(buf, n, true, true, msg, sizeof msg) == -1);
	CHECK_STR(msg, "data digest error from 10.0.0.1:3260");

	/* truncated: every prefix of a PDU is incomplete, never complete */
	n = one_pdu(buf, ISCSI_OP_SCSI_RSP, 13, 0, true, true);
	for (size_t cut = 1; cut < n; cut++) {
		int rc = feed_bad(buf, cut, true, true, msg, sizeof msg);
		CHECK(rc == PDU_RX_MORE);
		CHECK_STR(msg, "incomplete");
	}
}

static int refuse(void *arg, const union iscsi_bhs *bhs, uint8_t **dst)
{
	(void)arg;
	(void)dst;
	err_set(EPROTO, "protocol error: %s refused by its owner", pdu_opcode_name(bhs->common.opcode));
	return -1;
}

/* The owner's refusal stops the receiver before any data is taken. */
static void test_owner_refuses(void)
{
	static uint8_t buf[300];
	struct pdu_rx rx;
	size_t n = one_pdu(buf, ISCSI_OP_R2T, 200, 0, false, false);

	CHECK(pdu_rx_init(&rx, 4096) == 0);
	rx.check_target = true;
	rx.max_data = 8192;
	rx.place = refuse;
	pdu_rx_feed(&rx, buf, n);
	CHECK(pdu_rx_next(&rx, "p") == -1);
	CHECK_STR(err_msg(), "protocol error: R2T refused by its owner");
	CHECK_EQ_U64(rx.start, ISCSI_BHS_SIZE);
	pdu_rx_free(&rx);
}

/* Many small PDUs already in the socket: one recv(), all of them parsed;
 * an empty non-blocking socket: EAGAIN and nothing changed. */
static void test_one_recv(void)
{
	int sv[2];
	struct stream st;
	struct pdu_rx rx;
	struct got g;
	static const uint32_t small[] = { 0, 0, 4, 0, 17 };

	make_stream(&st, 150, true, true, false, small, 5);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	setup(&rx, &g, &st, 64 * 1024, true);
	CHECK(pdu_rx_recv(&rx, sv[0], MSG_DONTWAIT) == -1 && errno == EAGAIN);
	CHECK(pdu_rx_idle(&rx));
	CHECK(write(sv[1], st.bytes, st.len) == (ssize_t)st.len);
	CHECK(pdu_rx_recv(&rx, sv[0], MSG_DONTWAIT) == (ssize_t)st.len);
	CHECK(drain(&rx, &g) == 0);
	CHECK(got_all(&g));
	CHECK_EQ_U64(rx.recvs, 1);
	CHECK(pdu_rx_recv(&rx, sv[0], MSG_DONTWAIT) == -1 && errno == EAGAIN);
	free(g.data);
	pdu_rx_free(&rx);
	free_stream(&st);
	close(sv[0]);
	close(sv[1]);
}

/* The two-step receive of conn.h on the same receiver: headers one at a
 * time, data where the caller says; EOF in the middle of a PDU is "closed
 * the connection". */
static void test_conn_two_step(void)
{
	int sv[2];
	struct conn c;
	static uint8_t buf[2 * 9000];
	static uint8_t data[9000];
	union iscsi_bhs bhs;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(conn_attach_fd(&c, sv[0], "peer:3260", 2000) == 0);
	c.header_digest = c.data_digest = true;
	size_t n = one_pdu(buf, ISCSI_OP_TEXT_RSP, 8999, 0, true, true);
	size_t m = one_pdu(buf + n, ISCSI_OP_NOP_IN, 5, 0, true, true);
	CHECK(write(sv[1], buf, n + m - 3) == (ssize_t)(n + m - 3));
	shutdown(sv[1], SHUT_WR);
	CHECK(conn_recv_bhs(&c, &bhs) == 0);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_TEXT_RSP);
	CHECK(conn_recv_data(&c, data, 8999) == 0);
	CHECK(data[0] == 0x5a && data[8998] == 0x5a);
	CHECK(conn_recv_bhs(&c, &bhs) == 0);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_NOP_IN);
	CHECK(conn_recv_data(&c, data, 4) == -1);       /* not its length */
	CHECK(conn_recv_data(&c, NULL, 5) == -1);
	CHECK_STR(err_msg(), "peer:3260 closed the connection");
	conn_close(&c);
	close(sv[1]);
}

/* A receiver that borrows a buffer per receive (a loop's, evloop.h): its
 * own buffer is dropped only when empty; a loan handed back empty leaves
 * it with none; one handed back with a partial header keeps those bytes
 * in a buffer of its own, so the stream goes on whole, whatever pieces it
 * comes in.  The lent buffer is never freed by the receiver. */
static void test_lend(void)
{
	static const uint32_t sizes[] = { 0, 4, 100, 5000, 20000 };
	struct stream st;
	struct pdu_rx rx;
	struct got g;
	static uint8_t loan[4096];

	make_stream(&st, 60, true, true, false, sizes, 5);
	setup(&rx, &g, &st, 4096, true);
	/* own buffer with bytes in it: kept */
	CHECK(pdu_rx_feed(&rx, st.bytes, 10) == 10);
	CHECK(!pdu_rx_drop_buffer(&rx));
	CHECK(rx.buf != NULL && !rx.lent);
	size_t at = 10;
	CHECK(drain(&rx, &g) == 0);
	/* empty now (the 10 bytes are in the header under way): dropped */
	CHECK(pdu_rx_drop_buffer(&rx));
	CHECK(rx.buf == NULL && rx.cap == 0);
	unsigned loans = 0, kept = 0;
	while (at < st.len) {
		if (pdu_rx_drop_buffer(&rx)) {
			pdu_rx_lend(&rx, loan, sizeof loan);
			loans++;
		}
		size_t want = 1 + rnd() % 3000;
		if (want > st.len - at)
			want = st.len - at;
		size_t took = pdu_rx_feed(&rx, st.bytes + at, want);
		at += took;
		/* sometimes hand the loan back before parsing: the bytes stay */
		if (rx.lent && rnd() % 4 == 0) {
			CHECK(pdu_rx_unlend(&rx, 4096) == 0);
			CHECK(!rx.lent && (rx.end - rx.start == 0) == (rx.buf == NULL));
			kept += rx.buf != NULL;
		}
		CHECK(drain(&rx, &g) == 0);
		if (rx.lent) {
			CHECK(pdu_rx_unlend(&rx, 4096) == 0);
			CHECK(rx.buf == NULL);      /* parsed to the end: nothing left */
		}
	}
	CHECK(got_all(&g));
	CHECK(pdu_rx_idle(&rx));
	CHECK(loans > 10 && kept > 0);
	/* freeing a receiver while it has a loan leaves the loan alone */
	pdu_rx_lend(&rx, loan, sizeof loan);
	pdu_rx_free(&rx);
	CHECK(rx.buf == NULL && !rx.lent);
	free(g.data);
	free_stream(&st);
}

int main(void)
{
	test_splits();
	test_socket();
	test_refused();
	test_owner_refuses();
	test_one_recv();
	test_conn_two_step();
	test_lend();
	return test_done("test_pdu_rx");
}
