/* fuzz_scsi.c: libFuzzer harness for the SCSI data a target returns
 * (scsi.c): REPORT LUNS, standard INQUIRY, the VPD pages 0x00, 0x80,
 * 0x83, 0xB0 and 0xB2, READ CAPACITY(10) and (16), and the MODE SENSE(6)
 * and (10) headers.
 *
 * Input: byte 0 chooses the size of the caller's output (the room for
 * LUNs, the string buffers: 0..255); the rest is the data a target
 * returned.  Every parser runs on it, as lun.c would call it with a
 * Data-In buffer of exactly that many bytes.
 *
 * Checked promises (scsi.h): no read beyond @len and no write beyond the
 * caller's buffers; a parser that fails says EPROTO; a capacity that is
 * accepted is a power-of-two block size within bounds, at least one
 * block, and fits in an off_t; REPORT LUNS stores no more than fits and
 * says when the list was cut; strings are NUL-terminated and printable.
 *
 * Thread model: single-threaded.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "scsi.h"
#include "wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_init();
	return 0;
}

/* A NUL-terminated printable string within @size bytes at @s. */
static void check_text(const char *s, size_t size)
{
	const char *nul = memchr(s, '\0', size);

	FUZZ_ASSERT(nul != NULL);
	for (const char *p = s; p < nul; p++)
		FUZZ_ASSERT(*p >= 0x20 && *p < 0x7f);
}

/* A string a parser wrote into @cap bytes at @s (guard byte at s[cap]). */
static void check_string(const char *s, size_t cap)
{
	FUZZ_ASSERT(s[cap] == 'x');
	if (cap > 0)
		check_text(s, cap);
}

static void check_failure(int rc)
{
	FUZZ_ASSERT(rc == -1 && err_errno() == EPROTO && err_msg()[0] != '\0');
}

static void check_capacity(const struct scsi_capacity *c)
{
	FUZZ_ASSERT(c->block_size >= SCSI_MIN_BLOCK_SIZE && c->block_size <= SCSI_MAX_BLOCK_SIZE);
	FUZZ_ASSERT((c->block_size & (c->block_size - 1)) == 0);
	FUZZ_ASSERT(c->blocks >= 1);
	FUZZ_ASSERT(c->blocks <= (uint64_t)INT64_MAX / c->block_size);
}

static void report_luns(const uint8_t *buf, size_t len, size_t max)
{
	uint64_t *luns = malloc((max ? max : 1) * sizeof *luns);
	size_t count = 12345;

	if (!luns)
		abort();
	int rc = scsi_parse_report_luns(buf, len, luns, max, &count);
	if (rc < 0) {
		check_failure(rc);
		FUZZ_ASSERT(count == 0);
	} else {
		uint64_t claimed = get_be32(buf) / 8;
		FUZZ_ASSERT(count <= max && count <= (len - 8) / 8 && count <= claimed);
		FUZZ_ASSERT(rc == (count < claimed ? 1 : 0));
		for (size_t i = 0; i < count; i++)
			FUZZ_ASSERT(luns[i] == get_be64(buf + 8 + 8 * i));
	}
	uint64_t needed = scsi_report_luns_needed(buf, len);
	FUZZ_ASSERT(len < 4 ? needed == 0 : needed == 8 + (uint64_t)get_be32(buf));
	free(luns);
}

static void inquiry(const uint8_t *buf, size_t len)
{
	struct scsi_inquiry inq;
	int rc = scsi_parse_inquiry(buf, len, &inq);

	if (rc < 0) {
		check_failure(rc);
		return;
	}
	FUZZ_ASSERT(rc == 0 && len >= 5);
	FUZZ_ASSERT(inq.qualifier <= 7 && inq.device_type <= 0x1f && inq.tpgs <= 3);
	check_text(inq.vendor, sizeof inq.vendor);
	check_text(inq.product, sizeof inq.product);
	check_text(inq.revision, sizeof inq.revision);
}

static void vpd(const uint8_t *buf, size_t len, size_t cap)
{
	char *text = malloc(cap + 1);
	struct scsi_block_limits bl;
	struct scsi_lbp lbp;
	bool present;
	int rc;

	if (!text)
		abort();
	rc = scsi_parse_vpd_supported(buf, len, len > 4 ? buf[len - 1] : 0x80, &present);
	if (rc < 0)
		check_failure(rc);

	memset(text, 'x', cap + 1);
	rc = scsi_parse_vpd_serial(buf, len, text, cap);
	if (rc < 0)
		check_failure(rc);
	check_string(text, cap);

	memset(text, 'x', cap + 1);
	rc = scsi_parse_vpd_device_id(buf, len, text, cap);
	if (rc < 0)
		check_failure(rc);
	check_string(text, cap);

	rc = scsi_parse_vpd_block_limits(buf, len, &bl);
	if (rc < 0)
		check_failure(rc);
	FUZZ_ASSERT(bl.unmap_alignment <= 0x7fffffffu);

	rc = scsi_parse_vpd_lbp(buf, len, &lbp);
	if (rc < 0)
		check_failure(rc);
	FUZZ_ASSERT(lbp.provisioning_type <= 7);
	free(text);
}

static void capacity(const uint8_t *buf, size_t len)
{
	struct scsi_capacity c;
	int rc = scsi_parse_read_capacity10(buf, len, &c);

	if (rc < 0) {
		check_failure(rc);
	} else if (rc == 0) {
		check_capacity(&c);
		FUZZ_ASSERT(c.blocks <= (uint64_t)UINT32_MAX);
	} else {
		FUZZ_ASSERT(rc == 1 && get_be32(buf) == UINT32_MAX);
	}
	rc = scsi_parse_read_capacity16(buf, len, &c);
	if (rc < 0)
		check_failure(rc);
	else
		check_capacity(&c);
}

static void mode_sense(const uint8_t *buf, size_t len)
{
	bool wp, dpofua;

	for (int ten = 0; ten <= 1; ten++) {
		int rc = scsi_parse_mode_sense_wp(buf, len, ten, &wp, &dpofua);
		if (rc < 0) {
			check_failure(rc);
			FUZZ_ASSERT(!wp && !dpofua);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cap = data[0];
	data++;
	size--;

	/* exactly the returned bytes, so that ASan sees any read beyond */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	report_luns(buf, size, cap);
	inquiry(buf, size);
	vpd(buf, size, cap);
	capacity(buf, size);
	mode_sense(buf, size);
	free(buf);
	return 0;
}
