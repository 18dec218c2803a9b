/* fuzz_pdu.c: libFuzzer harness for the first look at what a target
 * sends: pdu_check_received() and the BHS field decoders of pdu.h, and
 * the PDU framing of conn.c (conn_recv_bhs() with AHS and header digest,
 * conn_recv_data() with padding and data digest).
 *
 * Input: byte 0 chooses the conn's digests (bit 0 header, bit 1 data),
 * the MaxRecvDataSegmentLength we enforce (bits 2-4: 512 << n) and
 * whether data segments are kept or discarded (bit 5); the rest is what
 * the target sends.  Every 48-byte window of it is decoded as a BHS, then
 * the whole of it is read as a PDU stream from a socketpair until the
 * first error or end of input.
 *
 * Thread model: one harness thread and the peer thread of fuzz_peer.h.
 */
#include <errno.h>
#include <string.h>

#include "conn.h"
#include "fuzz.h"
#include "fuzz_peer.h"
#include "pdu.h"
#include "wire.h"

/* Largest MaxRecvDataSegmentLength byte 0 can choose. */
#define MAX_SEGMENT (512u << 7)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_init();
	return 0;
}

/* The decoders on one BHS: what they return must agree with the bytes. */
static void decode_bhs(const uint8_t *bytes, uint32_t max_data)
{
	union iscsi_bhs bhs;

	memcpy(bhs.bytes, bytes, ISCSI_BHS_SIZE);
	uint8_t op = pdu_opcode(&bhs);
	uint32_t len = pdu_data_len(&bhs);
	FUZZ_ASSERT(op == (bytes[0] & 0x3f));
	FUZZ_ASSERT(len == get_be24(bytes + 5) && len <= ISCSI_MAX_DATA_SEGMENT);
	FUZZ_ASSERT(pdu_itt(&bhs) == get_be32(bytes + 16));
	FUZZ_ASSERT(pdu_pad(len) < 4 && (len + pdu_pad(len)) % 4 == 0);
	FUZZ_ASSERT(pdu_opcode_name(bhs.common.opcode) != NULL);

	int rc = pdu_check_received(&bhs, max_data);
	/* pdu.h: a target opcode, no AHS, a segment within @max_data */
	bool ok = pdu_is_target_opcode(op) && bhs.common.ahs_len == 0 && len <= max_data;
	if (rc == 0) {
		FUZZ_ASSERT(ok);
	} else {
		FUZZ_ASSERT(rc == -1 && err_errno() == EPROTO && err_msg()[0]);
		FUZZ_ASSERT(!ok);
	}

	/* LUN field: a decoded number is addressable and encodes back to a
	 * form that decodes to itself. */
	int64_t lun = pdu_lun_decode(get_be64(bhs.common.lun));
	FUZZ_ASSERT(lun >= -1 && lun <= 16383);
	if (lun >= 0)
		FUZZ_ASSERT(pdu_lun_decode(pdu_lun_encode((uint32_t)lun)) == lun);
}

/* Read the stream as PDUs from a socketpair through conn.c. */
static void read_stream(const uint8_t *data, size_t size, uint8_t flags, uint32_t max_data)
{
	static uint8_t segment[MAX_SEGMENT];
	struct fuzz_peer peer;
	struct conn c;
	int sv[2];

	fuzz_socketpair(sv);
	if (conn_attach_fd(&c, sv[0], "fuzz target", -1) < 0)
		abort();
	c.header_digest = flags & 0x01;
	c.data_digest = flags & 0x02;
	fuzz_peer_start(&peer, sv[1], data, size);
	for (;;) {
		union iscsi_bhs bhs;

		if (conn_recv_bhs(&c, &bhs) < 0)
			break;
		if (pdu_check_received(&bhs, max_data) < 0)
			break;
		uint32_t len = pdu_data_len(&bhs);
		FUZZ_ASSERT(len <= max_data && max_data <= sizeof segment);
		if (conn_recv_data(&c, (flags & 0x20) ? NULL : segment, len) < 0)
			break;
	}
	FUZZ_ASSERT(err_msg()[0] != '\0');
	FUZZ_ASSERT(c.bytes_received <= size);
	conn_close(&c);
	fuzz_peer_join(&peer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	uint32_t max_data = 512u << ((flags >> 2) & 7);

	data++;
	size--;
	for (size_t off = 0; off + ISCSI_BHS_SIZE <= size; off += ISCSI_BHS_SIZE)
		decode_bhs(data + off, max_data);
	read_stream(data, size, flags, max_data);
	return 0;
}
