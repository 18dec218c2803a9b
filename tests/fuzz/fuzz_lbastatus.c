/* fuzz_lbastatus.c: libFuzzer harness for GET LBA STATUS parameter data
 * (scsi_parse_lba_status(), scsi.c) and what lun_sparse.c does with an
 * accepted answer: keep it in a provisioning map (lun_map.c).
 *
 * Input: bytes 0-7 the STARTING LBA asked for, bytes 8-15 the capacity in
 * blocks (both big-endian; the capacity taken modulo 2^20 + 1 so that
 * answers can fit it), bytes 16-17 the ALLOCATION LENGTH, byte 18 the room
 * for descriptors (0..255); the rest is the parameter data a target
 * returned.
 *
 * Checked promises (scsi.h, lun_map.h): no read beyond @len and no write
 * beyond the room given; a refusal says EPROTO and stores nothing; an
 * accepted answer has at least one descriptor, the first at the LBA
 * asked, each of at least one block, each starting where the previous
 * ended, the last ending within the capacity, never more than asked
 * room for; the map keeps exactly what the answer says, sorted and
 * merged, and reports the data blocks it holds.
 *
 * Thread model: single-threaded.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "lun_map.h"
#include "scsi.h"
#include "wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scsi_lba_status desc[256];
	struct lun_map_extent ext[256];
	size_t count = 12345;

	if (size < 19)
		return 0;
	uint64_t start = get_be64(data);
	uint64_t capacity = get_be64(data + 8) % ((1u << 20) + 1);
	uint32_t alloc = get_be16(data + 16);
	size_t max = data[18];
	data += 19;
	size -= 19;

	/* exactly the data bytes, so that ASan sees any read beyond them */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	memset(desc, 0xa5, sizeof desc);

	int rc = scsi_parse_lba_status(buf, size, alloc, start, capacity, desc, max, &count);
	free(buf);
	if (rc < 0) {
		FUZZ_ASSERT(rc == -1 && err_errno() == EPROTO && err_msg()[0] != '\0');
		FUZZ_ASSERT(count == 0);
		return 0;
	}
	FUZZ_ASSERT(rc == 0);
	FUZZ_ASSERT(size <= alloc);
	FUZZ_ASSERT(count <= max && count <= (size - SCSI_LBA_STATUS_HEADER) / SCSI_LBA_STATUS_DESC);
	/* nothing written past what was stored */
	if (count < 256)
		FUZZ_ASSERT(desc[count].blocks == 0xa5a5a5a5u);
	if (count == 0) {
		FUZZ_ASSERT(max == 0);
		return 0;
	}
	uint64_t next = start, data_blocks = 0;
	for (size_t i = 0; i < count; i++) {
		FUZZ_ASSERT(desc[i].lba == next && desc[i].blocks > 0);
		FUZZ_ASSERT(desc[i].lba + desc[i].blocks <= capacity);
		FUZZ_ASSERT(!(desc[i].mapped && desc[i].anchored));
		next = desc[i].lba + desc[i].blocks;
		ext[i] = (struct lun_map_extent){
			desc[i].lba, next, desc[i].mapped ? LUN_MAP_DATA : LUN_MAP_HOLE,
		};
		if (desc[i].mapped)
			data_blocks += desc[i].blocks;
	}

	/* the map keeps it as said */
	struct lun_map *m = lun_map_new(capacity, 256);
	uint64_t gen, got;
	if (!m)
		abort();
	FUZZ_ASSERT(lun_map_ticket(m, &gen));
	FUZZ_ASSERT(lun_map_learn(m, gen, ext, count) == 1);
	FUZZ_ASSERT(lun_map_allocated(m, &got) == (start == 0 && next == capacity));
	FUZZ_ASSERT(got == data_blocks);
	FUZZ_ASSERT(lun_map_extents(m) <= count);
	for (size_t i = 0; i < count; i++) {
		uint64_t end;
		FUZZ_ASSERT(lun_map_lookup(m, ext[i].start, &end) == ext[i].state);
		FUZZ_ASSERT(end >= ext[i].end && end <= next);
		FUZZ_ASSERT(lun_map_lookup(m, ext[i].end - 1, &end) == ext[i].state);
	}
	FUZZ_ASSERT(lun_map_next_unknown(m, start) == next);
	lun_map_free(m);
	return 0;
}
