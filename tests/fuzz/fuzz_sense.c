/* fuzz_sense.c: libFuzzer harness for sense data from a target
 * (scsi.c): scsi_sense_parse() on fixed and descriptor formats, then
 * everything that consumes it (describe, names, scsi_outcome()).
 *
 * Input: byte 0 is the size of the buffer scsi_sense_describe() writes
 * into (0..255); byte 1 is a status byte for scsi_outcome(); the rest is
 * the sense data, without the iSCSI SenseLength prefix.
 *
 * Checked promises (scsi.h): no read beyond @len; on failure the output
 * is zeroed and the error is EPROTO; the description is a NUL-terminated
 * string within its buffer; scsi_outcome() gives what the table of
 * scsi.h says for every key, never DONE with an error or for a command
 * the target failed.
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

	/* the outcome of CHECK CONDITION with this sense, and of the status
	 * byte with it */
	struct scsi_outcome o;
	scsi_outcome(0, SCSI_STATUS_CHECK_CONDITION, buf, size, &o);
	FUZZ_ASSERT(o.sense.valid == (rc == 0));
	FUZZ_ASSERT((o.err == 0) == (o.action == SCSI_ACT_DONE));
	FUZZ_ASSERT(o.action != SCSI_ACT_UNSUPPORTED || o.err == EOPNOTSUPP);
	FUZZ_ASSERT(memchr(o.text, '\0', sizeof o.text) != NULL);
	if (rc < 0 || s.deferred) {
		FUZZ_ASSERT(o.action == SCSI_ACT_RETRY && o.err == EIO);
	} else {
		switch (s.key) {
		case SCSI_SENSE_RECOVERED_ERROR:
		case SCSI_SENSE_COMPLETED:
			FUZZ_ASSERT(o.action == SCSI_ACT_DONE);
			break;
		case SCSI_SENSE_NO_SENSE:
		case SCSI_SENSE_UNIT_ATTENTION:
			FUZZ_ASSERT(o.action == SCSI_ACT_RETRY);
			break;
		case SCSI_SENSE_NOT_READY:
			FUZZ_ASSERT(o.action == SCSI_ACT_BACKOFF ||
				    (o.action == SCSI_ACT_FAIL &&
				     (s.asc == 0x3a || (s.asc == 0x04 && s.ascq == 0x03))));
			break;
		case SCSI_SENSE_DATA_PROTECT:
			/* write protection (27h): EROFS, or ENOSPC for a thin
			 * pool that is full (27h/07h); else access denied */
			FUZZ_ASSERT(o.action == SCSI_ACT_FAIL);
			if (s.asc == 0x27)
				FUZZ_ASSERT(o.err == (s.ascq == 0x07 ? ENOSPC : EROFS));
			else
				FUZZ_ASSERT(o.err == EACCES);
			break;
		case SCSI_SENSE_ILLEGAL_REQUEST:
			FUZZ_ASSERT(o.err == ENOSPC || o.err == EOPNOTSUPP || o.err == ENXIO ||
				    o.err == EINVAL);
			break;
		case SCSI_SENSE_ABORTED_COMMAND:
			FUZZ_ASSERT(o.action == SCSI_ACT_RETRY || o.action == SCSI_ACT_FAIL);
			break;
		default:
			FUZZ_ASSERT(o.action == SCSI_ACT_FAIL && o.err == EIO);
			break;
		}
	}
	FUZZ_ASSERT(scsi_sense_key_name(s.key) != NULL);
	FUZZ_ASSERT(scsi_sense_key_name(status) != NULL);
	FUZZ_ASSERT(scsi_status_name(status) != NULL);
	(void)scsi_asc_name(s.asc, s.ascq);
	scsi_outcome(0, status, buf, size, &o);
	FUZZ_ASSERT((o.action == SCSI_ACT_DONE) ==
		    (status == SCSI_STATUS_GOOD || status == SCSI_STATUS_CONDITION_MET ||
		     (status == SCSI_STATUS_CHECK_CONDITION && o.sense.valid &&
		      !o.sense.deferred && (o.sense.key == SCSI_SENSE_RECOVERED_ERROR ||
					    o.sense.key == SCSI_SENSE_COMPLETED))));
	/* a non-zero iSCSI response never counts as done */
	scsi_outcome(1, status, buf, size, &o);
	FUZZ_ASSERT(o.action == SCSI_ACT_RETRY && o.err == EIO);

	free(buf);
	free(text);
	return 0;
}
