/* scsi.c: SCSI CDB builders, sense decoding, the outcome of a command,
 * and parsers of INQUIRY, VPD, READ CAPACITY, REPORT LUNS, MODE SENSE and
 * GET LBA STATUS data.
 *
 * Owns: the ASC/ASCQ text table and the outcome tables (read-only).
 *
 * Everything a parser reads comes from the target and is treated as
 * hostile: each parser first works out how many bytes it may use (the
 * smaller of what arrived and what the length field claims) and reads
 * nothing beyond; every multi-byte field goes through wire.h.
 *
 * Thread model: pure functions, no state; safe from any thread.
 */
#include "scsi.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "wire.h"

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* ---- CDB builders ------------------------------------------------------ */

/* WRITE SAME(16) byte 1: deallocate instead of writing. */
#define CDB_UNMAP 0x08
/* MODE SENSE byte 1: Disable Block Descriptors. */
#define CDB_DBD 0x08
/* INQUIRY byte 1: Enable Vital Product Data. */
#define CDB_EVPD 0x01

static void cdb_start(uint8_t cdb[SCSI_CDB_MAX], enum scsi_opcode op)
{
	memset(cdb, 0, SCSI_CDB_MAX);
	cdb[0] = (uint8_t)op;
}

size_t scsi_cdb_test_unit_ready(uint8_t cdb[SCSI_CDB_MAX])
{
	cdb_start(cdb, SCSI_OP_TEST_UNIT_READY);
	return 6;
}

size_t scsi_cdb_inquiry(uint8_t cdb[SCSI_CDB_MAX], bool evpd, uint8_t page, uint16_t alloc_len)
{
	cdb_start(cdb, SCSI_OP_INQUIRY);
	cdb[1] = evpd ? CDB_EVPD : 0;
	cdb[2] = evpd ? page : 0;
	put_be16(cdb + 3, alloc_len);
	return 6;
}

size_t scsi_cdb_read_capacity10(uint8_t cdb[SCSI_CDB_MAX])
{
	cdb_start(cdb, SCSI_OP_READ_CAPACITY10);
	return 10;
}

size_t scsi_cdb_read_capacity16(uint8_t cdb[SCSI_CDB_MAX], uint32_t alloc_len)
{
	cdb_start(cdb, SCSI_OP_SERVICE_ACTION_IN16);
	cdb[1] = SCSI_SAI_READ_CAPACITY16;
	put_be32(cdb + 10, alloc_len);
	return 16;
}

size_t scsi_cdb_report_luns(uint8_t cdb[SCSI_CDB_MAX], uint32_t alloc_len)
{
	cdb_start(cdb, SCSI_OP_REPORT_LUNS);
	put_be32(cdb + 6, alloc_len);
	return 12;
}

size_t scsi_cdb_read10(uint8_t cdb[SCSI_CDB_MAX], uint32_t lba, uint16_t blocks)
{
	cdb_start(cdb, SCSI_OP_READ10);
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, blocks);
	return 10;
}

size_t scsi_cdb_read16(uint8_t cdb[SCSI_CDB_MAX], uint64_t lba, uint32_t blocks)
{
	cdb_start(cdb, SCSI_OP_READ16);
	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, blocks);
	return 16;
}

size_t scsi_cdb_write10(uint8_t cdb[SCSI_CDB_MAX], uint32_t lba, uint16_t blocks, bool fua)
{
	cdb_start(cdb, SCSI_OP_WRITE10);
	cdb[1] = fua ? SCSI_CDB_FUA : 0;
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, blocks);
	return 10;
}

size_t scsi_cdb_write16(uint8_t cdb[SCSI_CDB_MAX], uint64_t lba, uint32_t blocks, bool fua)
{
	cdb_start(cdb, SCSI_OP_WRITE16);
	cdb[1] = fua ? SCSI_CDB_FUA : 0;
	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, blocks);
	return 16;
}

size_t scsi_cdb_sync_cache10(uint8_t cdb[SCSI_CDB_MAX], uint32_t lba, uint16_t blocks)
{
	cdb_start(cdb, SCSI_OP_SYNC_CACHE10);
	put_be32(cdb + 2, lba);
	put_be16(cdb + 7, blocks);
	return 10;
}

size_t scsi_cdb_sync_cache16(uint8_t cdb[SCSI_CDB_MAX], uint64_t lba, uint32_t blocks)
{
	cdb_start(cdb, SCSI_OP_SYNC_CACHE16);
	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, blocks);
	return 16;
}

size_t scsi_cdb_mode_sense6(uint8_t cdb[SCSI_CDB_MAX], uint8_t page, uint8_t alloc_len)
{
	cdb_start(cdb, SCSI_OP_MODE_SENSE6);
	cdb[1] = CDB_DBD;
	cdb[2] = page & 0x3f; /* PC 0: current values */
	cdb[4] = alloc_len;
	return 6;
}

size_t scsi_cdb_mode_sense10(uint8_t cdb[SCSI_CDB_MAX], uint8_t page, uint16_t alloc_len)
{
	cdb_start(cdb, SCSI_OP_MODE_SENSE10);
	cdb[1] = CDB_DBD;
	cdb[2] = page & 0x3f;
	put_be16(cdb + 7, alloc_len);
	return 10;
}

size_t scsi_cdb_unmap(uint8_t cdb[SCSI_CDB_MAX], uint16_t param_len)
{
	cdb_start(cdb, SCSI_OP_UNMAP);
	put_be16(cdb + 7, param_len);
	return 10;
}

size_t scsi_cdb_write_same16(uint8_t cdb[SCSI_CDB_MAX], uint64_t lba, uint32_t blocks, bool unmap)
{
	cdb_start(cdb, SCSI_OP_WRITE_SAME16);
	cdb[1] = unmap ? CDB_UNMAP : 0;
	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, blocks);
	return 16;
}

size_t scsi_cdb_get_lba_status(uint8_t cdb[SCSI_CDB_MAX], uint64_t lba, uint32_t alloc_len)
{
	cdb_start(cdb, SCSI_OP_SERVICE_ACTION_IN16);
	cdb[1] = SCSI_SAI_GET_LBA_STATUS;
	put_be64(cdb + 2, lba);
	put_be32(cdb + 10, alloc_len);
	return 16;
}

size_t scsi_unmap_param(uint8_t *buf, size_t cap, uint64_t lba, uint32_t blocks)
{
	if (cap < SCSI_UNMAP_PARAM_LEN)
		return 0;
	memset(buf, 0, SCSI_UNMAP_PARAM_LEN);
	put_be16(buf, SCSI_UNMAP_PARAM_LEN - 2); /* UNMAP DATA LENGTH */
	put_be16(buf + 2, 16);                   /* BLOCK DESCRIPTOR DATA LENGTH */
	put_be64(buf + 8, lba);
	put_be32(buf + 16, blocks);
	return SCSI_UNMAP_PARAM_LEN;
}

/* ---- Sense data ---------------------------------------------------------- */

int scsi_sense_parse(const uint8_t *buf, size_t len, struct scsi_sense *out)
{
	size_t end;
	uint8_t code;

	memset(out, 0, sizeof *out);
	if (len == 0) {
		err_set(EPROTO, "empty sense data");
		return -1;
	}
	code = buf[0] & 0x7f;
	switch (code) {
	case 0x70: /* fixed, current */
	case 0x71: /* fixed, deferred */
		if (len < 3) {
			err_set(EPROTO, "fixed-format sense data of %zu bytes has no sense key", len);
			return -1;
		}
		end = len >= 8 ? min_size(len, 8 + (size_t)buf[7]) : len;
		out->key = buf[2] & 0x0f;
		if ((buf[0] & 0x80) && end >= 7) {
			out->info_valid = true;
			out->info = get_be32(buf + 3);
		}
		if (end > 12)
			out->asc = buf[12];
		if (end > 13)
			out->ascq = buf[13];
		break;
	case 0x72: /* descriptor, current */
	case 0x73: /* descriptor, deferred */
		if (len < 2) {
			err_set(EPROTO, "descriptor-format sense data of %zu bytes has no sense key", len);
			return -1;
		}
		out->descriptor = true;
		out->key = buf[1] & 0x0f;
		if (len > 2)
			out->asc = buf[2];
		if (len > 3)
			out->ascq = buf[3];
		end = len >= 8 ? min_size(len, 8 + (size_t)buf[7]) : len;
		/* Sense data descriptors: type, ADDITIONAL LENGTH, body. */
		for (size_t off = 8; off + 2 <= end;) {
			const uint8_t *d = buf + off;
			size_t dlen = 2 + (size_t)d[1];

			if (off + dlen > end)
				break;
			/* Information descriptor: VALID bit, 8-byte INFORMATION. */
			if (d[0] == 0x00 && dlen >= 12 && (d[2] & 0x80)) {
				out->info_valid = true;
				out->info = get_be64(d + 4);
			}
			off += dlen;
		}
		break;
	default:
		err_set(EPROTO, "sense data with unknown response code 0x%02x", code);
		return -1;
	}
	out->deferred = code == 0x71 || code == 0x73;
	out->valid = true;
	return 0;
}

const char *scsi_sense_key_name(uint8_t key)
{
	static const char *const names[16] = {
		[SCSI_SENSE_NO_SENSE] = "NO SENSE",
		[SCSI_SENSE_RECOVERED_ERROR] = "RECOVERED ERROR",
		[SCSI_SENSE_NOT_READY] = "NOT READY",
		[SCSI_SENSE_MEDIUM_ERROR] = "MEDIUM ERROR",
		[SCSI_SENSE_HARDWARE_ERROR] = "HARDWARE ERROR",
		[SCSI_SENSE_ILLEGAL_REQUEST] = "ILLEGAL REQUEST",
		[SCSI_SENSE_UNIT_ATTENTION] = "UNIT ATTENTION",
		[SCSI_SENSE_DATA_PROTECT] = "DATA PROTECT",
		[SCSI_SENSE_BLANK_CHECK] = "BLANK CHECK",
		[SCSI_SENSE_VENDOR_SPECIFIC] = "VENDOR SPECIFIC",
		[SCSI_SENSE_COPY_ABORTED] = "COPY ABORTED",
		[SCSI_SENSE_ABORTED_COMMAND] = "ABORTED COMMAND",
		[0xc] = "RESERVED",
		[SCSI_SENSE_VOLUME_OVERFLOW] = "VOLUME OVERFLOW",
		[SCSI_SENSE_MISCOMPARE] = "MISCOMPARE",
		[SCSI_SENSE_COMPLETED] = "COMPLETED",
	};

	return key < 16 ? names[key] : "INVALID";
}

const char *scsi_status_name(uint8_t status)
{
	switch (status) {
	case SCSI_STATUS_GOOD: return "GOOD";
	case SCSI_STATUS_CHECK_CONDITION: return "CHECK CONDITION";
	case SCSI_STATUS_CONDITION_MET: return "CONDITION MET";
	case SCSI_STATUS_BUSY: return "BUSY";
	case SCSI_STATUS_RESERVATION_CONFLICT: return "RESERVATION CONFLICT";
	case SCSI_STATUS_TASK_SET_FULL: return "TASK SET FULL";
	case SCSI_STATUS_ACA_ACTIVE: return "ACA ACTIVE";
	case SCSI_STATUS_TASK_ABORTED: return "TASK ABORTED";
	default: return "UNKNOWN STATUS";
	}
}

/* ASC/ASCQ texts (SPC-4 annex, the ones a disk over iSCSI may report).
 * An entry with ascq ASCQ_ANY names the whole ASC family and is used only
 * when no exact entry matches. */
#define ASCQ_ANY (-1)

static const struct asc_text {
	uint8_t asc;          /* ADDITIONAL SENSE CODE */
	int16_t ascq;         /* its QUALIFIER, or ASCQ_ANY */
	const char *text;     /* the T10 name */
} asc_table[] = {
	{ 0x00, 0x00, "NO ADDITIONAL SENSE INFORMATION" },
	{ 0x03, 0x00, "PERIPHERAL DEVICE WRITE FAULT" },
	{ 0x04, 0x00, "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE" },
	{ 0x04, 0x01, "LOGICAL UNIT IS IN PROCESS OF BECOMING READY" },
	{ 0x04, 0x02, "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED" },
	{ 0x04, 0x03, "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED" },
	{ 0x04, 0x04, "LOGICAL UNIT NOT READY, FORMAT IN PROGRESS" },
	{ 0x04, 0x07, "LOGICAL UNIT NOT READY, OPERATION IN PROGRESS" },
	{ 0x04, 0x0a, "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION" },
	{ 0x04, 0x0b, "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE" },
	{ 0x04, 0x0c, "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE" },
	{ 0x04, ASCQ_ANY, "LOGICAL UNIT NOT READY" },
	{ 0x05, 0x00, "LOGICAL UNIT DOES NOT RESPOND TO SELECTION" },
	{ 0x08, 0x00, "LOGICAL UNIT COMMUNICATION FAILURE" },
	{ 0x0c, 0x00, "WRITE ERROR" },
	{ 0x0c, ASCQ_ANY, "WRITE ERROR" },
	{ 0x10, 0x01, "LOGICAL BLOCK GUARD CHECK FAILED" },
	{ 0x10, 0x02, "LOGICAL BLOCK APPLICATION TAG CHECK FAILED" },
	{ 0x10, 0x03, "LOGICAL BLOCK REFERENCE TAG CHECK FAILED" },
	{ 0x11, 0x00, "UNRECOVERED READ ERROR" },
	{ 0x11, ASCQ_ANY, "UNRECOVERED READ ERROR" },
	{ 0x14, 0x01, "RECORD NOT FOUND" },
	{ 0x1a, 0x00, "PARAMETER LIST LENGTH ERROR" },
	{ 0x1d, 0x00, "MISCOMPARE DURING VERIFY OPERATION" },
	{ 0x20, 0x00, "INVALID COMMAND OPERATION CODE" },
	{ 0x21, 0x00, "LOGICAL BLOCK ADDRESS OUT OF RANGE" },
	{ 0x24, 0x00, "INVALID FIELD IN CDB" },
	{ 0x25, 0x00, "LOGICAL UNIT NOT SUPPORTED" },
	{ 0x26, 0x00, "INVALID FIELD IN PARAMETER LIST" },
	{ 0x26, 0x01, "PARAMETER NOT SUPPORTED" },
	{ 0x26, 0x02, "PARAMETER VALUE INVALID" },
	{ 0x27, 0x00, "WRITE PROTECTED" },
	{ 0x27, 0x01, "HARDWARE WRITE PROTECTED" },
	{ 0x27, 0x02, "LOGICAL UNIT SOFTWARE WRITE PROTECTED" },
	{ 0x27, 0x07, "SPACE ALLOCATION FAILED WRITE PROTECT" },
	{ 0x27, ASCQ_ANY, "WRITE PROTECTED" },
	{ 0x28, 0x00, "NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED" },
	{ 0x29, 0x00, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED" },
	{ 0x29, 0x01, "POWER ON OCCURRED" },
	{ 0x29, 0x02, "SCSI BUS RESET OCCURRED" },
	{ 0x29, 0x03, "BUS DEVICE RESET FUNCTION OCCURRED" },
	{ 0x29, 0x04, "DEVICE INTERNAL RESET" },
	{ 0x29, 0x07, "I_T NEXUS LOSS OCCURRED" },
	{ 0x29, ASCQ_ANY, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED" },
	{ 0x2a, 0x01, "MODE PARAMETERS CHANGED" },
	{ 0x2a, 0x03, "RESERVATIONS PREEMPTED" },
	{ 0x2a, 0x04, "RESERVATIONS RELEASED" },
	{ 0x2a, 0x05, "REGISTRATIONS PREEMPTED" },
	{ 0x2a, 0x06, "ASYMMETRIC ACCESS STATE CHANGED" },
	{ 0x2a, 0x09, "CAPACITY DATA HAS CHANGED" },
	{ 0x2a, ASCQ_ANY, "PARAMETERS CHANGED" },
	{ 0x2c, 0x00, "COMMAND SEQUENCE ERROR" },
	{ 0x2f, 0x00, "COMMANDS CLEARED BY ANOTHER INITIATOR" },
	{ 0x31, 0x00, "MEDIUM FORMAT CORRUPTED" },
	{ 0x38, 0x07, "THIN PROVISIONING SOFT THRESHOLD REACHED" },
	{ 0x3a, 0x00, "MEDIUM NOT PRESENT" },
	{ 0x3a, ASCQ_ANY, "MEDIUM NOT PRESENT" },
	{ 0x3e, 0x01, "LOGICAL UNIT FAILURE" },
	{ 0x3f, 0x01, "MICROCODE HAS BEEN CHANGED" },
	{ 0x3f, 0x03, "INQUIRY DATA HAS CHANGED" },
	{ 0x3f, 0x05, "DEVICE IDENTIFIER CHANGED" },
	{ 0x3f, 0x0e, "REPORTED LUNS DATA HAS CHANGED" },
	{ 0x44, 0x00, "INTERNAL TARGET FAILURE" },
	{ 0x47, 0x05, "PROTOCOL SERVICE CRC ERROR" },
	{ 0x4b, 0x00, "DATA PHASE ERROR" },
	{ 0x4e, 0x00, "OVERLAPPED COMMANDS ATTEMPTED" },
	{ 0x55, 0x03, "INSUFFICIENT RESOURCES" },
	{ 0x5d, 0x00, "FAILURE PREDICTION THRESHOLD EXCEEDED" },
	{ 0x74, 0x71, "LOGICAL UNIT ACCESS NOT AUTHORIZED" },
};

const char *scsi_asc_name(uint8_t asc, uint8_t ascq)
{
	const char *family = NULL;

	for (size_t i = 0; i < sizeof asc_table / sizeof asc_table[0]; i++) {
		const struct asc_text *t = &asc_table[i];

		if (t->asc != asc)
			continue;
		if (t->ascq == ascq)
			return t->text;
		if (t->ascq == ASCQ_ANY)
			family = t->text;
	}
	return family;
}

void scsi_sense_describe(const struct scsi_sense *s, char *buf, size_t cap)
{
	const char *text;
	size_t n;
	int r;

	if (cap == 0)
		return;
	if (!s->valid) {
		snprintf(buf, cap, "no sense data");
		return;
	}
	text = scsi_asc_name(s->asc, s->ascq);
	if (text)
		r = snprintf(buf, cap, "%s: %s (0x%02x/0x%02x)",
			     scsi_sense_key_name(s->key), text, s->asc, s->ascq);
	else
		r = snprintf(buf, cap, "%s: ASC 0x%02x ASCQ 0x%02x",
			     scsi_sense_key_name(s->key), s->asc, s->ascq);
	n = r < 0 ? 0 : min_size((size_t)r, cap - 1);
	if (s->info_valid) {
		r = snprintf(buf + n, cap - n, ", information 0x%" PRIx64, s->info);
		n = r < 0 ? n : min_size(n + (size_t)r, cap - 1);
	}
	if (s->deferred)
		snprintf(buf + n, cap - n, ", deferred");
}

/* ---- Outcome of a command ------------------------------------------------ */

/* A value of asc or ascq in sense_rules that matches any. */
#define SENSE_ANY (-1)

/* What CHECK CONDITION with a sense key (and ASC/ASCQ) means.  Read in
 * order: the first rule that matches wins, so the specific ones come
 * before the catch-all of their key; a key with no rule fails with EIO. */
static const struct sense_rule {
	uint8_t key;                 /* enum scsi_sense_key */
	int16_t asc;                 /* ADDITIONAL SENSE CODE, or SENSE_ANY */
	int16_t ascq;                /* its qualifier, or SENSE_ANY */
	enum scsi_action action;     /* what to do */
	int err;                     /* the errno (see struct scsi_outcome) */
	enum log_level level;        /* how loud */
	enum scsi_change change;     /* what a UNIT ATTENTION reports */
} sense_rules[] = {
	/* CHECK CONDITION and nothing wrong: the command did not do what was
	 * asked (no transfer can be counted on), so it is sent again */
	{ SCSI_SENSE_NO_SENSE, SENSE_ANY, SENSE_ANY, SCSI_ACT_RETRY, EIO, LOG_LEVEL_INFO,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_RECOVERED_ERROR, SENSE_ANY, SENSE_ANY, SCSI_ACT_DONE, 0, LOG_LEVEL_WARN,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_COMPLETED, SENSE_ANY, SENSE_ANY, SCSI_ACT_DONE, 0, LOG_LEVEL_DEBUG,
	  SCSI_CHANGE_NONE },
	/* NOT READY: no medium, or a person must act, is not worth waiting
	 * for; becoming ready and the rest are */
	{ SCSI_SENSE_NOT_READY, 0x3a, SENSE_ANY, SCSI_ACT_FAIL, ENOMEDIUM, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_NOT_READY, 0x04, 0x03, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_NOT_READY, SENSE_ANY, SENSE_ANY, SCSI_ACT_BACKOFF, EIO, LOG_LEVEL_INFO,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_MEDIUM_ERROR, SENSE_ANY, SENSE_ANY, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_HARDWARE_ERROR, SENSE_ANY, SENSE_ANY, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	/* ILLEGAL REQUEST: an opcode or CDB field the LU lacks is a question
	 * answered (probing asks such questions), not a failure */
	{ SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00, SCSI_ACT_UNSUPPORTED, EOPNOTSUPP, LOG_LEVEL_DEBUG,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00, SCSI_ACT_UNSUPPORTED, EOPNOTSUPP, LOG_LEVEL_DEBUG,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x00, SCSI_ACT_FAIL, ENOSPC, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_ILLEGAL_REQUEST, 0x25, 0x00, SCSI_ACT_FAIL, ENXIO, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_ILLEGAL_REQUEST, SENSE_ANY, SENSE_ANY, SCSI_ACT_FAIL, EINVAL, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	/* UNIT ATTENTION: reported once, the command was not performed */
	{ SCSI_SENSE_UNIT_ATTENTION, 0x29, SENSE_ANY, SCSI_ACT_RETRY, EIO, LOG_LEVEL_DEBUG,
	  SCSI_CHANGE_RESET },
	{ SCSI_SENSE_UNIT_ATTENTION, 0x2a, 0x09, SCSI_ACT_RETRY, EIO, LOG_LEVEL_INFO,
	  SCSI_CHANGE_CAPACITY },
	{ SCSI_SENSE_UNIT_ATTENTION, 0x3f, 0x0e, SCSI_ACT_RETRY, EIO, LOG_LEVEL_INFO,
	  SCSI_CHANGE_LUNS },
	{ SCSI_SENSE_UNIT_ATTENTION, 0x3f, 0x03, SCSI_ACT_RETRY, EIO, LOG_LEVEL_INFO,
	  SCSI_CHANGE_IDENTITY },
	{ SCSI_SENSE_UNIT_ATTENTION, 0x3f, 0x05, SCSI_ACT_RETRY, EIO, LOG_LEVEL_INFO,
	  SCSI_CHANGE_IDENTITY },
	{ SCSI_SENSE_UNIT_ATTENTION, SENSE_ANY, SENSE_ANY, SCSI_ACT_RETRY, EIO, LOG_LEVEL_INFO,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_DATA_PROTECT, 0x27, 0x07, SCSI_ACT_FAIL, ENOSPC, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_DATA_PROTECT, 0x27, SENSE_ANY, SCSI_ACT_FAIL, EROFS, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	/* not write protection: access denied (74h/71h), a security
	 * mechanism; a read may meet it too, and the LUN is not read-only */
	{ SCSI_SENSE_DATA_PROTECT, SENSE_ANY, SENSE_ANY, SCSI_ACT_FAIL, EACCES, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	/* ABORTED COMMAND: sent again, unless protection information did
	 * not match (the same data would not match again) */
	{ SCSI_SENSE_ABORTED_COMMAND, 0x10, SENSE_ANY, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR,
	  SCSI_CHANGE_NONE },
	{ SCSI_SENSE_ABORTED_COMMAND, SENSE_ANY, SENSE_ANY, SCSI_ACT_RETRY, EIO, LOG_LEVEL_INFO,
	  SCSI_CHANGE_NONE },
};

/* What a SCSI status other than CHECK CONDITION means; a status with no
 * rule fails with EIO. */
static const struct status_rule {
	uint8_t status;              /* enum scsi_status */
	enum scsi_action action;     /* what to do */
	int err;                     /* the errno (see struct scsi_outcome) */
	enum log_level level;        /* how loud */
} status_rules[] = {
	{ SCSI_STATUS_GOOD, SCSI_ACT_DONE, 0, LOG_LEVEL_DEBUG },
	{ SCSI_STATUS_CONDITION_MET, SCSI_ACT_DONE, 0, LOG_LEVEL_DEBUG },
	{ SCSI_STATUS_BUSY, SCSI_ACT_BACKOFF, EIO, LOG_LEVEL_INFO },
	{ SCSI_STATUS_TASK_SET_FULL, SCSI_ACT_BACKOFF, EIO, LOG_LEVEL_INFO },
	{ SCSI_STATUS_ACA_ACTIVE, SCSI_ACT_BACKOFF, EIO, LOG_LEVEL_INFO },
	/* a task management function of another I_T nexus (another of our
	 * sessions, or another initiator) ended it (SAM-5 5.3.1, TAS=1) */
	{ SCSI_STATUS_TASK_ABORTED, SCSI_ACT_RETRY, EIO, LOG_LEVEL_INFO },
	{ SCSI_STATUS_RESERVATION_CONFLICT, SCSI_ACT_FAIL, EBUSY, LOG_LEVEL_ERROR },
};

static bool rule_field_matches(int16_t rule, uint8_t value)
{
	return rule == SENSE_ANY || rule == value;
}

static const struct sense_rule *sense_rule_for(const struct scsi_sense *s)
{
	for (size_t i = 0; i < sizeof sense_rules / sizeof sense_rules[0]; i++) {
		const struct sense_rule *r = &sense_rules[i];

		if (r->key == s->key && rule_field_matches(r->asc, s->asc) &&
		    rule_field_matches(r->ascq, s->ascq))
			return r;
	}
	return NULL;
}

static void outcome_set(struct scsi_outcome *out, enum scsi_action action, int err,
			enum log_level level, enum scsi_change change)
{
	out->action = action;
	out->err = err;
	out->level = level;
	out->change = change;
}

/* CHECK CONDITION: the sense data decides. */
static void outcome_of_sense(const uint8_t *sense, size_t sense_len, struct scsi_outcome *out)
{
	struct scsi_sense *s = &out->sense;
	char what[160];

	/* No sense data, or none we can read: the target did not say what
	 * went wrong, so nothing says the command was performed; it is sent
	 * again, a bounded number of times (as Linux's error handler does) */
	if (sense_len == 0 || scsi_sense_parse(sense, sense_len, s) < 0) {
		memset(s, 0, sizeof *s);
		outcome_set(out, SCSI_ACT_RETRY, EIO, LOG_LEVEL_WARN, SCSI_CHANGE_NONE);
		snprintf(out->text, sizeof out->text, "CHECK CONDITION without %s sense data",
			 sense_len ? "usable" : "any");
		return;
	}
	const struct sense_rule *r = sense_rule_for(s);
	struct scsi_sense plain = *s;       /* described without ", deferred" */
	plain.deferred = false;
	scsi_sense_describe(&plain, what, sizeof what);
	if (s->deferred) {
		/* An earlier command failed after it had been reported as
		 * done (a cached write); this one was not performed and is
		 * sent again.  Loud when the earlier one's key is a failure:
		 * data it wrote may be lost. */
		bool failure = !r || r->action == SCSI_ACT_FAIL;
		outcome_set(out, SCSI_ACT_RETRY, EIO, failure ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN,
			    SCSI_CHANGE_NONE);
		out->earlier_lost = failure;
		snprintf(out->text, sizeof out->text,
			 "deferred error of an earlier command: %s", what);
		return;
	}
	/* (asc and ascq as they came: the rule of their key may be a
	 * catch-all) */
	out->port_inaccessible = s->key == SCSI_SENSE_NOT_READY && s->asc == 0x04 &&
				 (s->ascq == 0x0b || s->ascq == 0x0c);
	out->transition = (s->key == SCSI_SENSE_NOT_READY && s->asc == 0x04 &&
			   (s->ascq == 0x01 || s->ascq == 0x0a)) ||
		(s->key == SCSI_SENSE_UNIT_ATTENTION && s->asc == 0x2a && s->ascq == 0x06);
	if (r)
		outcome_set(out, r->action, r->err, r->level, r->change);
	else
		outcome_set(out, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR, SCSI_CHANGE_NONE);
	snprintf(out->text, sizeof out->text, "%s", what);
}

void scsi_outcome(uint8_t response, uint8_t status, const uint8_t *sense, size_t sense_len,
		  struct scsi_outcome *out)
{
	memset(out, 0, sizeof *out);
	if (response != 0) {
		/* 01h Target Failure, 80h-FFh vendor specific: the command
		 * did not complete, the status means nothing (RFC 7143
		 * 11.4.3); like Linux's DID_ERROR, worth sending again */
		outcome_set(out, SCSI_ACT_RETRY, EIO, LOG_LEVEL_WARN, SCSI_CHANGE_NONE);
		snprintf(out->text, sizeof out->text, "iSCSI response 0x%02x (%s)", response,
			 response == 0x01 ? "target failure" : "vendor specific");
		return;
	}
	if (status == SCSI_STATUS_CHECK_CONDITION) {
		outcome_of_sense(sense, sense_len, out);
		return;
	}
	outcome_set(out, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR, SCSI_CHANGE_NONE);
	for (size_t i = 0; i < sizeof status_rules / sizeof status_rules[0]; i++)
		if (status_rules[i].status == status) {
			outcome_set(out, status_rules[i].action, status_rules[i].err,
				    status_rules[i].level, SCSI_CHANGE_NONE);
			break;
		}
	snprintf(out->text, sizeof out->text, "SCSI status %s (0x%02x)", scsi_status_name(status),
		 status);
}

/* ---- INQUIRY and VPD ----------------------------------------------------- */

/* Copy the @n bytes at @src into @out (@cap bytes with the NUL) as text:
 * bytes outside printable ASCII become '?', trailing spaces and NULs go,
 * leading spaces too when @trim_leading. */
static void copy_text(char *out, size_t cap, const uint8_t *src, size_t n, bool trim_leading)
{
	size_t k = 0;

	if (cap == 0)
		return;
	while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\0'))
		n--;
	while (trim_leading && n > 0 && src[0] == ' ')
		src++, n--;
	for (size_t i = 0; i < n && k + 1 < cap; i++)
		out[k++] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
	out[k] = '\0';
}

/* A fixed-width INQUIRY field at [@off, @off + @width), of which only the
 * part before @end exists. */
static void inquiry_string(char *out, size_t cap, const uint8_t *buf, size_t end,
			   size_t off, size_t width)
{
	size_t n = end > off ? min_size(end - off, width) : 0;

	copy_text(out, cap, buf + (n ? off : 0), n, false);
}

int scsi_parse_inquiry(const uint8_t *buf, size_t len, struct scsi_inquiry *out)
{
	size_t end;

	memset(out, 0, sizeof *out);
	if (len < 5) {
		err_set(EPROTO, "INQUIRY data of %zu bytes, shorter than its 5-byte header", len);
		return -1;
	}
	end = min_size(len, 5 + (size_t)buf[4]);
	out->qualifier = buf[0] >> 5;
	out->device_type = buf[0] & 0x1f;
	out->removable = buf[1] & 0x80;
	out->version = buf[2];
	if (end > 5) {
		out->tpgs = (buf[5] >> 4) & 0x03;
		out->protect = buf[5] & 0x01;
	}
	if (end > 7)
		out->cmdque = buf[7] & 0x02;
	inquiry_string(out->vendor, sizeof out->vendor, buf, end, 8, 8);
	inquiry_string(out->product, sizeof out->product, buf, end, 16, 16);
	inquiry_string(out->revision, sizeof out->revision, buf, end, 32, 4);
	return 0;
}

/* Check the header of VPD page @page; *@end = the bytes usable. */
static int vpd_header(const uint8_t *buf, size_t len, uint8_t page, size_t *end)
{
	if (len < 4) {
		err_set(EPROTO, "VPD page 0x%02x of %zu bytes, shorter than its 4-byte header",
			page, len);
		return -1;
	}
	if (buf[1] != page) {
		err_set(EPROTO, "asked for VPD page 0x%02x, target returned page 0x%02x",
			page, buf[1]);
		return -1;
	}
	*end = min_size(len, 4 + (size_t)get_be16(buf + 2));
	return 0;
}

int scsi_parse_vpd_supported(const uint8_t *buf, size_t len, uint8_t page, bool *present)
{
	size_t end;

	*present = false;
	if (vpd_header(buf, len, SCSI_VPD_SUPPORTED, &end) < 0)
		return -1;
	for (size_t i = 4; i < end; i++) {
		if (buf[i] == page)
			*present = true;
	}
	return 0;
}

int scsi_parse_vpd_serial(const uint8_t *buf, size_t len, char *out, size_t cap)
{
	size_t end;

	if (cap > 0)
		out[0] = '\0';
	if (vpd_header(buf, len, SCSI_VPD_SERIAL, &end) < 0)
		return -1;
	copy_text(out, cap, buf + 4, end - 4, true);
	return 0;
}

/* Designator types of VPD 0x83, and their preference (higher wins). */
enum {
	DESIG_T10 = 0x1,
	DESIG_EUI64 = 0x2,
	DESIG_NAA = 0x3,
	DESIG_NAME = 0x8,
};

/* How good the designator of @type with @dlen bytes at @d is; 0 when
 * unusable. */
static int designator_rank(uint8_t type, const uint8_t *d, size_t dlen)
{
	switch (type) {
	case DESIG_NAA:
		return dlen == 8 || dlen == 16 ? 4 : 0;
	case DESIG_EUI64:
		return dlen == 8 || dlen == 12 || dlen == 16 ? 3 : 0;
	case DESIG_T10:
		return dlen > 8 ? 2 : 0; /* 8-byte vendor, then an identifier */
	case DESIG_NAME:
		return dlen > 0 && d[0] != '\0' ? 1 : 0;
	default:
		return 0;
	}
}

static void format_hex(char *out, size_t cap, const char *prefix, const uint8_t *d, size_t dlen)
{
	static const char digits[] = "0123456789abcdef";
	size_t k = 0;

	if (cap == 0)
		return;
	for (const char *p = prefix; *p && k + 1 < cap; p++)
		out[k++] = *p;
	for (size_t i = 0; i < dlen && k + 2 < cap; i++) {
		out[k++] = digits[d[i] >> 4];
		out[k++] = digits[d[i] & 0xf];
	}
	out[k] = '\0';
}

int scsi_parse_vpd_device_id(const uint8_t *buf, size_t len, char *out, size_t cap)
{
	const uint8_t *best = NULL;
	size_t best_len = 0, end;
	uint8_t best_type = 0;
	int best_rank = 0;

	if (cap > 0)
		out[0] = '\0';
	if (vpd_header(buf, len, SCSI_VPD_DEVICE_ID, &end) < 0)
		return -1;
	/* Designation descriptors: code set, association and type, reserved,
	 * DESIGNATOR LENGTH, designator. */
	for (size_t off = 4; off + 4 <= end;) {
		const uint8_t *d = buf + off;
		size_t dlen = d[3];
		uint8_t assoc = (d[1] >> 4) & 0x03;
		uint8_t type = d[1] & 0x0f;
		int rank;

		if (off + 4 + dlen > end)
			break;
		off += 4 + dlen;
		if (assoc != 0) /* about the target port or device, not the LU */
			continue;
		rank = designator_rank(type, d + 4, dlen);
		if (rank > best_rank) {
			best_rank = rank;
			best = d + 4;
			best_len = dlen;
			best_type = type;
		}
	}
	if (!best)
		return 0;
	switch (best_type) {
	case DESIG_NAA:
		format_hex(out, cap, "naa.", best, best_len);
		break;
	case DESIG_EUI64:
		format_hex(out, cap, "eui.", best, best_len);
		break;
	case DESIG_T10:
		if (cap > 4) {
			memcpy(out, "t10.", 4);
			copy_text(out + 4, cap - 4, best, best_len, false);
		}
		break;
	default: /* DESIG_NAME: NUL terminated and padded */
		copy_text(out, cap, best, strnlen((const char *)best, best_len), false);
		break;
	}
	return 0;
}

int scsi_parse_vpd_block_limits(const uint8_t *buf, size_t len, struct scsi_block_limits *out)
{
	size_t end;

	memset(out, 0, sizeof *out);
	if (vpd_header(buf, len, SCSI_VPD_BLOCK_LIMITS, &end) < 0)
		return -1;
	/* Each field only when the page reaches its last byte. */
	if (end >= 8)
		out->opt_transfer_granularity = get_be16(buf + 6);
	if (end >= 12)
		out->max_transfer_blocks = get_be32(buf + 8);
	if (end >= 16)
		out->opt_transfer_blocks = get_be32(buf + 12);
	if (end >= 24)
		out->max_unmap_blocks = get_be32(buf + 20);
	if (end >= 28)
		out->max_unmap_descriptors = get_be32(buf + 24);
	if (end >= 32)
		out->unmap_granularity = get_be32(buf + 28);
	if (end >= 36) {
		out->unmap_alignment_valid = buf[32] & 0x80;
		out->unmap_alignment = get_be32(buf + 32) & 0x7fffffffu;
	}
	if (end >= 44)
		out->max_write_same_blocks = get_be64(buf + 36);
	return 0;
}

int scsi_parse_vpd_lbp(const uint8_t *buf, size_t len, struct scsi_lbp *out)
{
	size_t end;

	memset(out, 0, sizeof *out);
	if (vpd_header(buf, len, SCSI_VPD_LBP, &end) < 0)
		return -1;
	if (end < 6) {
		err_set(EPROTO, "Logical Block Provisioning VPD page of %zu bytes has no flags", end);
		return -1;
	}
	out->unmap = buf[5] & 0x80;
	out->write_same16 = buf[5] & 0x40;
	out->write_same10 = buf[5] & 0x20;
	/* LBPRZ: one bit in SBC-3, three in SBC-4, where xx1b alone says
	 * unmapped blocks read as zeros (010b: as the provisioning
	 * initialization pattern, whatever that is) */
	out->lbprz = (buf[5] >> 2) & 0x01;
	if (end >= 7)
		out->provisioning_type = buf[6] & 0x07;
	return 0;
}

/* ---- READ CAPACITY, REPORT LUNS, MODE SENSE ------------------------------ */

/* The block length and capacity iscsifs can serve as a file. */
static int check_capacity(const char *cmd, uint64_t last_lba, uint32_t block_size)
{
	if (block_size < SCSI_MIN_BLOCK_SIZE || block_size > SCSI_MAX_BLOCK_SIZE ||
	    (block_size & (block_size - 1)) != 0) {
		err_set(EPROTO, "%s: logical block length %" PRIu32
			" is not a power of two from %u to %u", cmd, block_size,
			SCSI_MIN_BLOCK_SIZE, SCSI_MAX_BLOCK_SIZE);
		return -1;
	}
	if (last_lba == UINT64_MAX) {
		err_set(EPROTO, "%s: capacity of 0 blocks (last LBA 0x%" PRIx64 ")", cmd, last_lba);
		return -1;
	}
	if (last_lba + 1 > (uint64_t)INT64_MAX / block_size) {
		err_set(EPROTO, "%s: %" PRIu64 " blocks of %" PRIu32
			" bytes is more than a file can hold", cmd, last_lba + 1, block_size);
		return -1;
	}
	return 0;
}

int scsi_parse_read_capacity10(const uint8_t *buf, size_t len, struct scsi_capacity *out)
{
	uint32_t last_lba, block_size;

	memset(out, 0, sizeof *out);
	if (len < 8) {
		err_set(EPROTO, "READ CAPACITY(10) data of %zu bytes, 8 needed", len);
		return -1;
	}
	last_lba = get_be32(buf);
	block_size = get_be32(buf + 4);
	if (last_lba == UINT32_MAX) {
		out->block_size = block_size;
		return 1;
	}
	if (check_capacity("READ CAPACITY(10)", last_lba, block_size) < 0)
		return -1;
	out->blocks = (uint64_t)last_lba + 1;
	out->block_size = block_size;
	return 0;
}

int scsi_parse_read_capacity16(const uint8_t *buf, size_t len, struct scsi_capacity *out)
{
	uint64_t last_lba;
	uint32_t block_size;

	memset(out, 0, sizeof *out);
	if (len < 12) {
		err_set(EPROTO, "READ CAPACITY(16) data of %zu bytes, at least 12 needed", len);
		return -1;
	}
	last_lba = get_be64(buf);
	block_size = get_be32(buf + 8);
	if (check_capacity("READ CAPACITY(16)", last_lba, block_size) < 0)
		return -1;
	out->blocks = last_lba + 1;
	out->block_size = block_size;
	if (len >= 14)
		out->lbppbe = buf[13] & 0x0f;
	if (len >= 16) {
		out->lbpme = buf[14] & 0x80;
		out->lbprz = buf[14] & 0x40;
		out->lowest_aligned = get_be16(buf + 14) & 0x3fff;
	}
	return 0;
}

int scsi_parse_report_luns(const uint8_t *buf, size_t len, uint64_t *luns, size_t max,
			   size_t *count)
{
	uint32_t list_len;
	size_t claimed, n;

	*count = 0;
	if (len < 8) {
		err_set(EPROTO, "REPORT LUNS data of %zu bytes, shorter than its 8-byte header", len);
		return -1;
	}
	list_len = get_be32(buf);
	if (list_len % 8 != 0) {
		err_set(EPROTO, "REPORT LUNS: LUN LIST LENGTH %" PRIu32 " is not a multiple of 8",
			list_len);
		return -1;
	}
	claimed = list_len / 8;
	n = min_size(min_size(claimed, (len - 8) / 8), max);
	for (size_t i = 0; i < n; i++)
		luns[i] = get_be64(buf + 8 + 8 * i);
	*count = n;
	return n < claimed ? 1 : 0;
}

uint64_t scsi_report_luns_needed(const uint8_t *buf, size_t len)
{
	return len < 4 ? 0 : 8 + (uint64_t)get_be32(buf);
}

int scsi_parse_mode_sense_wp(const uint8_t *buf, size_t len, bool ten_byte, bool *write_protected,
			     bool *dpofua)
{
	size_t end, wp_byte;

	*write_protected = false;
	if (dpofua)
		*dpofua = false;
	if (ten_byte) {
		/* MODE DATA LENGTH (2 bytes, excluding itself), MEDIUM TYPE,
		 * DEVICE-SPECIFIC PARAMETER, ... */
		end = len >= 2 ? min_size(len, 2 + (size_t)get_be16(buf)) : len;
		wp_byte = 3;
	} else {
		/* MODE DATA LENGTH (1 byte), MEDIUM TYPE, DEVICE-SPECIFIC ... */
		end = len >= 1 ? min_size(len, 1 + (size_t)buf[0]) : len;
		wp_byte = 2;
	}
	if (end <= wp_byte) {
		err_set(EPROTO, "MODE SENSE(%d) data of %zu bytes has no device-specific parameter",
			ten_byte ? 10 : 6, end);
		return -1;
	}
	*write_protected = buf[wp_byte] & 0x80;
	if (dpofua)
		*dpofua = buf[wp_byte] & 0x10;
	return 0;
}

/* ---- GET LBA STATUS ------------------------------------------------------ */

/* PROVISIONING STATUS values (SBC-3 5.5.2, table 52). */
#define LBA_STATUS_MAPPED 0
#define LBA_STATUS_DEALLOCATED 1
#define LBA_STATUS_ANCHORED 2

int scsi_parse_lba_status(const uint8_t *buf, size_t len, uint32_t alloc_len, uint64_t start,
			  uint64_t capacity, struct scsi_lba_status *out, size_t max,
			  size_t *count)
{
	const size_t first = SCSI_LBA_STATUS_HEADER + SCSI_LBA_STATUS_DESC;
	uint64_t declared, end, next = start;
	size_t n = 0;

	*count = 0;
	if (len > alloc_len) {
		err_set(EPROTO, "GET LBA STATUS returned %zu bytes for an allocation length of %u",
			len, alloc_len);
		return -1;
	}
	if (len < first) {
		err_set(EPROTO, "GET LBA STATUS data of %zu bytes, at least %zu needed", len, first);
		return -1;
	}
	/* PARAMETER DATA LENGTH counts the bytes after itself */
	declared = get_be32(buf);
	if (declared < 4 + SCSI_LBA_STATUS_DESC || (declared - 4) % SCSI_LBA_STATUS_DESC) {
		err_set(EPROTO, "GET LBA STATUS parameter data length %" PRIu64
			" is not 4 + a positive multiple of 16", declared);
		return -1;
	}
	if (declared + 4 < len) {
		err_set(EPROTO, "GET LBA STATUS sent %zu bytes, more than its parameter data length "
			"%" PRIu64 " declares", len, declared);
		return -1;
	}
	end = min_size(len, (size_t)(declared + 4));
	for (size_t at = SCSI_LBA_STATUS_HEADER; at + SCSI_LBA_STATUS_DESC <= end && n < max;
	     at += SCSI_LBA_STATUS_DESC) {
		uint64_t lba = get_be64(buf + at);
		uint32_t blocks = get_be32(buf + at + 8);
		uint8_t status = buf[at + 12] & 0x0f;

		if (blocks == 0) {
			err_set(EPROTO, "GET LBA STATUS descriptor %zu (LBA %" PRIu64 ") has 0 blocks",
				n, lba);
			return -1;
		}
		if (n == 0 && lba != start) {
			err_set(EPROTO, "GET LBA STATUS for LBA %" PRIu64 " starts at LBA %" PRIu64,
				start, lba);
			return -1;
		}
		if (lba < next) {
			err_set(EPROTO, "GET LBA STATUS descriptor %zu (LBA %" PRIu64
				") overlaps the previous one, which ends at LBA %" PRIu64, n, lba, next);
			return -1;
		}
		if (lba > next) {
			err_set(EPROTO, "GET LBA STATUS descriptor %zu starts at LBA %" PRIu64
				", leaving out LBAs %" PRIu64 " to %" PRIu64, n, lba, next, lba - 1);
			return -1;
		}
		if (lba >= capacity || blocks > capacity - lba) {
			err_set(EPROTO, "GET LBA STATUS descriptor %zu (LBA %" PRIu64 ", %" PRIu32
				" blocks) ends past the capacity of %" PRIu64 " blocks", n, lba, blocks,
				capacity);
			return -1;
		}
		out[n].lba = lba;
		out[n].blocks = blocks;
		out[n].anchored = status == LBA_STATUS_ANCHORED;
		out[n].mapped = status != LBA_STATUS_DEALLOCATED && status != LBA_STATUS_ANCHORED;
		next = lba + blocks;
		n++;
	}
	*count = n;
	return 0;
}
