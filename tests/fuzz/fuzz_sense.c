/* fuzz_sense.c: libFuzzer harness for sense data from a target
 * (scsi.c): scsi_sense_parse() on fixed and descriptor formats, then
 * everything that consumes its result (describe, errno mapping, names).
 *
 * Input: byte 0 is the size of the buffer scsi_sense_describe() writes
 * into (0..255); byte 1 is the status byte for scsi_status_to_errno();
 * the rest is the sense data, without the iSCSI SenseLength prefix.
 *
 * Checked promises (scsi.h): no read beyond @len; on failure the output
 * is zeroed and the error is EPROTO; the description is a NUL-terminated
 * string within its buffer; the errno mapping gives what the table of
 * scsi.h says for every key.
 *
 * Thread model: single-threaded.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "scsi.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scsi_sense s;

	if (size < 2)
		return 0;
	size_t cap = data[0];
	uint8_t status = data[1];
	data += 2;
	size -= 2;

	/* exactly the sense bytes, so that ASan sees any read beyond them */
	uint8_t *buf = malloc(size ? size : 1);
	/* the description buffer, one guard byte after it */
	char *text = malloc(cap + 1);
	if (!buf || !text)
		abort();
	memcpy(buf, data, size);
	memset(text, 'x', cap + 1);

	int rc = scsi_sense_parse(buf, size, &s);
	if (rc < 0) {
		struct scsi_sense zero;
		memset(&zero, 0, sizeof zero);
		FUZZ_ASSERT(rc == -1 && err_errno() == EPROTO);
		FUZZ_ASSERT(memcmp(&s, &zero, sizeof s) == 0);
	} else {
		FUZZ_ASSERT(rc == 0 && s.valid);
		FUZZ_ASSERT(s.key <= 0x0f);
		FUZZ_ASSERT(s.descriptor == ((buf[0] & 0x7e) == 0x72));
		FUZZ_ASSERT(s.deferred == ((buf[0] & 0x7f) == 0x71 || (buf[0] & 0x7f) == 0x73));
	}

	scsi_sense_describe(&s, text, cap);
	FUZZ_ASSERT(text[cap] == 'x');
	if (cap > 0)
		FUZZ_ASSERT(memchr(text, '\0', cap) != NULL);

	int e = scsi_sense_to_errno(&s);
	if (!s.valid) {
		FUZZ_ASSERT(e == EIO);
	} else {
		switch (s.key) {
		case SCSI_SENSE_NO_SENSE:
		case SCSI_SENSE_RECOVERED_ERROR:
		case SCSI_SENSE_COMPLETED:
			FUZZ_ASSERT(e == 0);
			break;
		case SCSI_SENSE_NOT_READY:
			FUZZ_ASSERT(e == EAGAIN || e == ENOMEDIUM);
			break;
		case SCSI_SENSE_UNIT_ATTENTION:
		case SCSI_SENSE_ABORTED_COMMAND:
			FUZZ_ASSERT(e == EAGAIN);
			break;
		case SCSI_SENSE_DATA_PROTECT:
			FUZZ_ASSERT(e == EROFS || e == ENOSPC);
			break;
		case SCSI_SENSE_ILLEGAL_REQUEST:
			FUZZ_ASSERT(e == ENOSPC || e == EOPNOTSUPP || e == ENXIO || e == EINVAL);
			break;
		default:
			FUZZ_ASSERT(e == EIO);
			break;
		}
	}
	FUZZ_ASSERT(scsi_sense_key_name(s.key) != NULL);
	FUZZ_ASSERT(scsi_sense_key_name(status) != NULL);
	FUZZ_ASSERT(scsi_status_name(status) != NULL);
	(void)scsi_asc_name(s.asc, s.ascq);
	e = scsi_status_to_errno(status);
	FUZZ_ASSERT(e == 0 || e == EAGAIN || e == EBUSY || e == EIO);

	free(buf);
	free(text);
	return 0;
}
