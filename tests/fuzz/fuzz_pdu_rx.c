/* fuzz_pdu_rx.c: libFuzzer harness for the resumable receiver
 * (pdu_rx.h): whatever the target sends, in whatever pieces it arrives,
 * the receiver must give the same PDUs, the same data and the same error.
 *
 * Input: byte 0 chooses the digests (bit 0 header, bit 1 data), the
 * MaxRecvDataSegmentLength enforced (bits 2-4: 512 << n), whether every
 * other data segment is dropped (bit 5) and the mode (bit 6 clear: full
 * feature phase, with pdu_check_received()'s limits and a place callback;
 * set: the two-step receive of login, stopping at each header); byte 1
 * seeds the sizes of the pieces; the rest is the stream.  It is parsed
 * twice, all at once through a large buffer and in random pieces through
 * a small one, and the two transcripts (every header, every placed data
 * segment, the end: an error and its message, or where it stopped) must
 * be equal.  Each data segment is placed in a heap block of exactly its
 * size, so the sanitizer sees a write past it.
 *
 * Thread model: one thread.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "pdu.h"
#include "pdu_rx.h"

/* The largest segment of the two-step mode (login's own limit is less). */
#define TWO_STEP_MAX 65536

/* What one parse gave. */
struct transcript {
	uint8_t *bytes;         /* headers and data, in order */
	size_t len, cap;
	unsigned pdus;          /* complete PDUs */
	int end;                /* the last pdu_rx_next() result */
	char msg[256];          /* the error, when end is -1 */
	bool drop_odd;          /* drop the data of every other PDU */
	uint8_t *block;         /* the data block of the PDU under way */
};

static void append(struct transcript *t, const void *p, size_t n)
{
	if (t->len + n > t->cap) {
		t->cap = (t->len + n) * 2;
		t->bytes = realloc(t->bytes, t->cap);
		if (!t->bytes)
			abort();
	}
	memcpy(t->bytes + t->len, p, n);
	t->len += n;
}

static uint8_t *new_block(struct transcript *t, uint32_t len)
{
	free(t->block);
	t->block = malloc(len ? len : 1);
	if (!t->block)
		abort();
	return (t->drop_odd && t->pdus % 2) || !len ? NULL : t->block;
}

static int place(void *arg, const union iscsi_bhs *bhs, uint8_t **dst)
{
	struct transcript *t = arg;

	FUZZ_ASSERT(pdu_is_target_opcode(bhs->common.opcode) && !bhs->common.ahs_len);
	*dst = new_block(t, pdu_data_len(bhs));
	return 0;
}

/* Parse @data (@size bytes) through a @cap-byte buffer, in pieces from
 * @seed (0: as large as the room). */
static void parse(struct transcript *t, const uint8_t *data, size_t size, uint8_t flags,
		  size_t cap, uint32_t seed)
{
	struct pdu_rx rx;
	bool two_step = flags & 0x40;

	if (pdu_rx_init(&rx, cap) < 0)
		abort();
	rx.header_digest = flags & 0x01;
	rx.data_digest = flags & 0x02;
	rx.check_target = !two_step;
	rx.max_data = 512u << ((flags >> 2) & 7);
	rx.place = two_step ? NULL : place;
	rx.place_arg = t;
	t->drop_odd = flags & 0x20;
	size_t at = 0;
	for (;;) {
		int rc = pdu_rx_next(&rx, "fuzz target");
		FUZZ_ASSERT(rx.start <= rx.end && rx.end <= rx.cap);
		if (rc == PDU_RX_HEADER) {
			FUZZ_ASSERT(two_step && rx.state == PDU_RX_PLACE);
			if (rx.data_len > TWO_STEP_MAX) {
				rc = -1;
				snprintf(t->msg, sizeof t->msg, "too long");
			} else {
				pdu_rx_place(&rx, new_block(t, rx.data_len));
				continue;
			}
		}
		if (rc == PDU_RX_COMPLETE) {
			FUZZ_ASSERT(rx.state == PDU_RX_DONE);
			append(t, rx.bhs.bytes, ISCSI_BHS_SIZE);
			if (rx.dst)
				append(t, rx.dst, rx.data_len);
			t->pdus++;
			continue;
		}
		if (rc < 0) {
			FUZZ_ASSERT(t->msg[0] || (err_errno() == EPROTO && err_msg()[0]));
			if (!t->msg[0])
				snprintf(t->msg, sizeof t->msg, "%s", err_msg());
			t->end = -1;
			break;
		}
		FUZZ_ASSERT(rc == PDU_RX_MORE && rx.start == rx.end);
		if (at == size) {
			t->end = (int)rx.state * 1000 + (int)(rx.rx_offset % 1000);
			break;
		}
		size_t piece = size - at;
		if (seed) {
			seed = seed * 1103515245u + 12345u;
			size_t n = 1 + (seed >> 8) % 97;
			if (n < piece)
				piece = n;
		}
		at += pdu_rx_feed(&rx, data + at, piece);
	}
	free(t->block);
	t->block = NULL;
	pdu_rx_free(&rx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transcript whole = { 0 }, pieces = { 0 };

	if (size < 2)
		return 0;
	uint8_t flags = data[0];
	uint32_t seed = data[1] | 0x100u;

	parse(&whole, data + 2, size - 2, flags, 1 << 20, 0);
	parse(&pieces, data + 2, size - 2, flags, ISCSI_BHS_SIZE + (data[1] % 64), seed);
	FUZZ_ASSERT(whole.pdus == pieces.pdus);
	FUZZ_ASSERT(whole.len == pieces.len);
	FUZZ_ASSERT(whole.len == 0 || memcmp(whole.bytes, pieces.bytes, whole.len) == 0);
	FUZZ_ASSERT(whole.end == pieces.end);
	FUZZ_ASSERT(strcmp(whole.msg, pieces.msg) == 0);
	free(whole.bytes);
	free(pieces.bytes);
	return 0;
}
