/* scsi.h: SCSI commands and what targets answer (SPC-4, SBC-3).
 *
 * CDB builders fill a 16-byte array (zeroed first) and return how many of
 * its bytes the command uses.  Parsers read data a target returned and
 * treat it as hostile: they never read past @len, trust a length field only
 * as far as @len backs it, and reject values the rest of iscsifs cannot
 * live with.  Parsers return 0 (or the documented positive value), or -1
 * after err_set(EPROTO, ...) naming what was wrong.
 *
 * Thread model: pure functions, no state; safe from any thread.
 */
#ifndef ISCSIFS_SCSI_H
#define ISCSIFS_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define SCSI_CDB_MAX 16

/* Operation codes of the commands iscsifs issues. */
enum scsi_opcode {
	SCSI_OP_TEST_UNIT_READY = 0x00,
	SCSI_OP_INQUIRY = 0x12,
	SCSI_OP_MODE_SENSE6 = 0x1a,
	SCSI_OP_READ_CAPACITY10 = 0x25,
	SCSI_OP_READ10 = 0x28,
	SCSI_OP_WRITE10 = 0x2a,
	SCSI_OP_SYNC_CACHE10 = 0x35,
	SCSI_OP_UNMAP = 0x42,
	SCSI_OP_MODE_SENSE10 = 0x5a,
	SCSI_OP_READ16 = 0x88,
	SCSI_OP_WRITE16 = 0x8a,
	SCSI_OP_SYNC_CACHE16 = 0x91,
	SCSI_OP_WRITE_SAME16 = 0x93,
	SCSI_OP_SERVICE_ACTION_IN16 = 0x9e,
	SCSI_OP_REPORT_LUNS = 0xa0,
};

/* SERVICE ACTION IN(16) service actions. */
#define SCSI_SAI_READ_CAPACITY16 0x10
#define SCSI_SAI_GET_LBA_STATUS 0x12

/* VPD pages iscsifs reads. */
enum scsi_vpd_page {
	SCSI_VPD_SUPPORTED = 0x00,
	SCSI_VPD_SERIAL = 0x80,
	SCSI_VPD_DEVICE_ID = 0x83,
	SCSI_VPD_BLOCK_LIMITS = 0xb0,
	SCSI_VPD_LBP = 0xb2,
};

/* Peripheral device types (INQUIRY byte 0) that matter here. */
#define SCSI_TYPE_DISK 0x00
#define SCSI_TYPE_NONE 0x1f     /* unknown or no device type */

/* SCSI status (the status byte of a SCSI Response). */
enum scsi_status {
	SCSI_STATUS_GOOD = 0x00,
	SCSI_STATUS_CHECK_CONDITION = 0x02,
	SCSI_STATUS_CONDITION_MET = 0x04,
	SCSI_STATUS_BUSY = 0x08,
	SCSI_STATUS_RESERVATION_CONFLICT = 0x18,
	SCSI_STATUS_TASK_SET_FULL = 0x28,
	SCSI_STATUS_ACA_ACTIVE = 0x30,
	SCSI_STATUS_TASK_ABORTED = 0x40,
};

/* Sense keys. */
enum scsi_sense_key {
	SCSI_SENSE_NO_SENSE = 0x0,
	SCSI_SENSE_RECOVERED_ERROR = 0x1,
	SCSI_SENSE_NOT_READY = 0x2,
	SCSI_SENSE_MEDIUM_ERROR = 0x3,
	SCSI_SENSE_HARDWARE_ERROR = 0x4,
	SCSI_SENSE_ILLEGAL_REQUEST = 0x5,
	SCSI_SENSE_UNIT_ATTENTION = 0x6,
	SCSI_SENSE_DATA_PROTECT = 0x7,
	SCSI_SENSE_BLANK_CHECK = 0x8,
	SCSI_SENSE_VENDOR_SPECIFIC = 0x9,
	SCSI_SENSE_COPY_ABORTED = 0xa,
	SCSI_SENSE_ABORTED_COMMAND = 0xb,
	SCSI_SENSE_VOLUME_OVERFLOW = 0xd,
	SCSI_SENSE_MISCOMPARE = 0xe,
	SCSI_SENSE_COMPLETED = 0xf,
};

/* ---- CDB builders ------------------------------------------------------
 * Each zeroes @cdb, fills it and returns the CDB length (6, 10, 12 or 16).
 * Block counts are in logical blocks; a count of 0 means 0 blocks for
 * READ/WRITE, "to the end of the medium" for SYNCHRONIZE CACHE. */

size_t scsi_cdb_test_unit_ready(uint8_t cdb[SCSI_CDB_MAX]);
/* Standard INQUIRY data when !@evpd (then @page must be 0), else VPD @page. */
size_t scsi_cdb_inquiry(uint8_t cdb[SCSI_CDB_MAX], bool evpd, uint8_t page, uint16_t alloc_len);
size_t scsi_cdb_read_capacity10(uint8_t cdb[SCSI_CDB_MAX]);
/* WRITE(10/16) byte 1: Force Unit Access. */
#define SCSI_CDB_FUA 0x08
/* The allocation length READ CAPACITY(16) is sent with: its whole data. */
#define SCSI_READ_CAPACITY16_LEN 32u
size_t scsi_cdb_read_capacity16(uint8_t cdb[SCSI_CDB_MAX], uint32_t alloc_len);
/* SELECT REPORT 0: every LUN; the target wants @alloc_len >= 16. */
size_t scsi_cdb_report_luns(uint8_t cdb[SCSI_CDB_MAX], uint32_t alloc_len);
size_t scsi_cdb_read10(uint8_t cdb[SCSI_CDB_MAX], uint32_t lba, uint16_t blocks);
size_t scsi_cdb_read16(uint8_t cdb[SCSI_CDB_MAX], uint64_t lba, uint32_t blocks);
/* @fua: Force Unit Access, the data is on stable media when GOOD returns. */
size_t scsi_cdb_write10(uint8_t cdb[SCSI_CDB_MAX], uint32_t lba, uint16_t blocks, bool fua);
size_t scsi_cdb_write16(uint8_t cdb[SCSI_CDB_MAX], uint64_t lba, uint32_t blocks, bool fua);
size_t scsi_cdb_sync_cache10(uint8_t cdb[SCSI_CDB_MAX], uint32_t lba, uint16_t blocks);
size_t scsi_cdb_sync_cache16(uint8_t cdb[SCSI_CDB_MAX], uint64_t lba, uint32_t blocks);
/* Current values of mode page @page (0x3f: all pages), without block
 * descriptors (DBD set): enough for the WP bit of the header. */
size_t scsi_cdb_mode_sense6(uint8_t cdb[SCSI_CDB_MAX], uint8_t page, uint8_t alloc_len);
size_t scsi_cdb_mode_sense10(uint8_t cdb[SCSI_CDB_MAX], uint8_t page, uint16_t alloc_len);
/* UNMAP with a @param_len-byte parameter list (scsi_unmap_param()). */
size_t scsi_cdb_unmap(uint8_t cdb[SCSI_CDB_MAX], uint16_t param_len);
/* WRITE SAME(16) of one block of data-out to @blocks blocks; with @unmap
 * the target may deallocate them instead (the data-out block must then
 * be zeros). */
size_t scsi_cdb_write_same16(uint8_t cdb[SCSI_CDB_MAX], uint64_t lba, uint32_t blocks, bool unmap);

/* GET LBA STATUS (SBC-3): the provisioning status of the blocks from
 * @lba on, into at most @alloc_len bytes (scsi_parse_lba_status()). */
size_t scsi_cdb_get_lba_status(uint8_t cdb[SCSI_CDB_MAX], uint64_t lba, uint32_t alloc_len);

/* The UNMAP parameter list for one descriptor (@blocks blocks from @lba)
 * into @buf.  Returns its length (SCSI_UNMAP_PARAM_LEN), or 0 when @cap is
 * smaller than that. */
#define SCSI_UNMAP_PARAM_LEN 24
size_t scsi_unmap_param(uint8_t *buf, size_t cap, uint64_t lba, uint32_t blocks);

/* ---- Status and sense --------------------------------------------------- */

/* Decoded sense data. */
struct scsi_sense {
	bool valid;         /* a sense key was found */
	bool descriptor;    /* descriptor format (0x72/0x73), not fixed */
	bool deferred;      /* a deferred error (0x71/0x73): about an earlier
			     * command, not the one that got it */
	uint8_t key;        /* enum scsi_sense_key */
	uint8_t asc;        /* additional sense code, 0 when absent */
	uint8_t ascq;       /* its qualifier, 0 when absent */
	bool info_valid;    /* @info holds the INFORMATION field */
	uint64_t info;      /* INFORMATION: for medium errors, the first bad
			     * LBA */
};

/* Decode the sense data @buf (without the iSCSI SenseLength prefix) into
 * @out.  A lying ADDITIONAL SENSE LENGTH is clamped to @len; fields past
 * the end read as 0.  Returns 0, or -1 with err_set(EPROTO) when @buf is
 * too short to hold a sense key or its response code is not 0x70-0x73 (then
 * @out is zeroed, valid false). */
int scsi_sense_parse(const uint8_t *buf, size_t len, struct scsi_sense *out);

/* "ILLEGAL REQUEST"; "RESERVED" for 0xc, "INVALID" above 0xf. */
const char *scsi_sense_key_name(uint8_t key);
/* "CHECK CONDITION", "BUSY", ...; "UNKNOWN STATUS" otherwise. */
const char *scsi_status_name(uint8_t status);
/* The text of an ASC/ASCQ pair ("LOGICAL BLOCK ADDRESS OUT OF RANGE"), or
 * NULL when the table does not know it. */
const char *scsi_asc_name(uint8_t asc, uint8_t ascq);

/* One line for logs and error messages into @buf (truncated to @cap):
 * "ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE (0x21/0x00)",
 * "MEDIUM ERROR: UNRECOVERED READ ERROR (0x11/0x00), information 0x1234"
 * (when INFORMATION is valid; ", deferred" is added for deferred errors),
 * "ABORTED COMMAND: ASC 0x4b ASCQ 0x99" for pairs the table does not
 * know, "no sense data" when !@s->valid. */
void scsi_sense_describe(const struct scsi_sense *s, char *buf, size_t cap);

/* ---- Outcome of a command -----------------------------------------------
 * One rule for every caller (reads, writes, SYNCHRONIZE CACHE, UNMAP and
 * WRITE SAME, probing, the identity check after a reconnect): what the
 * iSCSI response, SCSI status and sense data of a finished command mean.
 * scsi_outcome() holds the whole table; callers only choose what an
 * action means for their command (a fallback for SCSI_ACT_UNSUPPORTED,
 * how many retries) and log the text at the level given. */

/* What the caller does with a finished command. */
enum scsi_action {
	SCSI_ACT_DONE,        /* it did what was asked */
	SCSI_ACT_RETRY,       /* it was not performed, or what ended it is
			       * over: send it again at once (a bounded
			       * number of times, then fail with @err) */
	SCSI_ACT_BACKOFF,     /* the logical unit asks to come back later:
			       * send it again after a growing pause
			       * (bounded, then fail with @err) */
	SCSI_ACT_FAIL,        /* give up with @err */
	SCSI_ACT_UNSUPPORTED, /* the logical unit does not implement the
			       * command or a field of its CDB: take the
			       * fallback where there is one, else fail
			       * with @err */
};

/* What a UNIT ATTENTION reports that the owner of the LUN acts on. */
enum scsi_change {
	SCSI_CHANGE_NONE,     /* nothing, or nothing iscsifs acts on */
	SCSI_CHANGE_RESET,    /* POWER ON, RESET (29h/xx): every login gets one */
	SCSI_CHANGE_CAPACITY, /* CAPACITY DATA HAS CHANGED (2Ah/09h) */
	SCSI_CHANGE_LUNS,     /* REPORTED LUNS DATA HAS CHANGED (3Fh/0Eh) */
	SCSI_CHANGE_IDENTITY, /* INQUIRY DATA HAS CHANGED (3Fh/03h), DEVICE
			       * IDENTIFIER CHANGED (3Fh/05h): what names the
			       * unit may be another's */
};

/* What a finished command means (scsi_outcome()). */
struct scsi_outcome {
	enum scsi_action action;  /* what to do */
	int err;                  /* the errno it fails with: for FAIL and
				   * UNSUPPORTED now, for RETRY and BACKOFF
				   * once the retries run out; 0 for DONE */
	enum log_level level;     /* how loud a line about it is */
	enum scsi_change change;  /* what a UNIT ATTENTION says changed */
	struct scsi_sense sense;  /* the decoded sense data (valid false when
				   * there was none or it was unusable);
				   * sense.deferred: it is about an earlier
				   * command, not this one */
	bool transition;          /* NOT READY while the LU becomes ready (04h/01h)
				   * or changes its asymmetric access state
				   * (04h/0Ah), or the UNIT ATTENTION that ends
				   * such a change (2Ah/06h): retried for longer
				   * than the rest (seconds, a failover) */
	bool port_inaccessible;   /* NOT READY, TARGET PORT IN STANDBY or
				   * UNAVAILABLE STATE (04h/0Bh, 0Ch): this
				   * target port cannot reach the LU now
				   * (ALUA); another port may */
	bool earlier_lost;        /* a deferred error whose key is a failure:
				   * data an earlier command (a cached write)
				   * reported as done may be lost */
	char text[224];           /* one line for logs: "SCSI status BUSY
				   * (0x08)", "UNIT ATTENTION: POWER ON
				   * OCCURRED (0x29/0x01)", ... */
};

/* Decide what a command that ended with iSCSI response @response (the
 * Response field of the SCSI Response PDU, RFC 7143 11.4.3; 0 when its
 * status came on a Data-In PDU), SCSI status @status and the @sense_len
 * bytes of sense data @sense (without the SenseLength prefix) means, into
 * @out.  The table, first match wins:
 *
 *   iSCSI response not 0 (the target failed it;      RETRY, EIO, warn
 *     status and sense mean nothing then)
 *   GOOD, CONDITION MET                              DONE
 *   BUSY, TASK SET FULL, ACA ACTIVE                  BACKOFF, EIO, info
 *   TASK ABORTED (another I_T nexus's task           RETRY, EIO, info
 *     management ended it, TAS=1)
 *   RESERVATION CONFLICT                             FAIL, EBUSY, error
 *   any other status                                 FAIL, EIO, error
 *   CHECK CONDITION, and the sense data:
 *   none, or unusable                                RETRY, EIO, warn
 *   a deferred error (71h/73h): about an earlier     RETRY, EIO, error (warn
 *     command; this one was not performed (SPC-4)      when its key is not a failure)
 *   NO SENSE (no transfer to count on)               RETRY, EIO, info
 *   RECOVERED ERROR                                  DONE, warn
 *   COMPLETED                                        DONE
 *   NOT READY: MEDIUM NOT PRESENT (3Ah/xx)           FAIL, ENOMEDIUM, error
 *     MANUAL INTERVENTION REQUIRED (04h/03h)         FAIL, EIO, error
 *     anything else (becoming ready, ...)            BACKOFF, EIO, info
 *   MEDIUM ERROR, HARDWARE ERROR                     FAIL, EIO, error
 *   ILLEGAL REQUEST: INVALID COMMAND OPERATION       UNSUPPORTED, EOPNOTSUPP, debug
 *     CODE (20h/00h), INVALID FIELD IN CDB (24h/00h)
 *     LOGICAL BLOCK ADDRESS OUT OF RANGE (21h/00h)   FAIL, ENOSPC, error
 *     LOGICAL UNIT NOT SUPPORTED (25h/00h)           FAIL, ENXIO, error
 *     anything else                                  FAIL, EINVAL, error
 *   UNIT ATTENTION: POWER ON, RESET (29h/xx)         RETRY, EIO, debug, RESET
 *     CAPACITY DATA HAS CHANGED (2Ah/09h)            RETRY, EIO, info, CAPACITY
 *     REPORTED LUNS DATA HAS CHANGED (3Fh/0Eh)       RETRY, EIO, info, LUNS
 *     anything else                                  RETRY, EIO, info
 *   DATA PROTECT: SPACE ALLOCATION FAILED WRITE      FAIL, ENOSPC, error
 *     PROTECT (27h/07h, a thin pool is full)
 *     WRITE PROTECTED (27h/xx)                       FAIL, EROFS, error
 *     anything else (access denied, 74h/71h)         FAIL, EACCES, error
 *   ABORTED COMMAND: a protection information        FAIL, EIO, error
 *     check failed (10h/xx)
 *     anything else                                  RETRY, EIO, info
 *   BLANK CHECK, VENDOR SPECIFIC, COPY ABORTED,      FAIL, EIO, error
 *     VOLUME OVERFLOW, MISCOMPARE, reserved
 *
 * Never fails and never logs; the thread's error record (log.h) may be
 * overwritten while the sense data is decoded. */
void scsi_outcome(uint8_t response, uint8_t status, const uint8_t *sense, size_t sense_len,
		  struct scsi_outcome *out);

/* ---- INQUIRY ------------------------------------------------------------ */

/* Standard INQUIRY data. */
struct scsi_inquiry {
	uint8_t qualifier;     /* peripheral qualifier: 0 = LU connected,
				* 1 = supported but not connected, 3 = none */
	uint8_t device_type;   /* peripheral device type (SCSI_TYPE_DISK) */
	bool removable;        /* RMB: removable medium */
	uint8_t version;       /* SPC version the LU claims (6 = SPC-4) */
	uint8_t tpgs;          /* target port group support (ALUA), 0..3 */
	bool protect;          /* supports protection information */
	bool cmdque;           /* supports command queuing */
	char vendor[9];        /* T10 VENDOR IDENTIFICATION */
	char product[17];      /* PRODUCT IDENTIFICATION */
	char revision[5];      /* PRODUCT REVISION LEVEL */
	/* The strings are NUL terminated, trailing spaces trimmed, bytes
	 * outside printable ASCII replaced by '?'; "" when not returned. */
};

/* Decode standard INQUIRY data.  Only min(@len, 5 + ADDITIONAL LENGTH)
 * bytes are used; at least the 5-byte header must be there.  Fields the
 * data stops short of read as 0 or "" (SPC says 36 bytes, but the device
 * type is what matters and a short answer still carries it).
 * Returns 0, or -1 with err_set(EPROTO) when shorter than 5 bytes. */
int scsi_parse_inquiry(const uint8_t *buf, size_t len, struct scsi_inquiry *out);

/* Each VPD parser checks the 4-byte header: the PAGE CODE must be the page
 * asked for, and only min(@len, 4 + PAGE LENGTH) bytes are used.  They
 * return -1 with err_set(EPROTO) when the header is short or the page code
 * wrong. */

/* VPD 0x00: set *@present when @page is in the list of supported pages. */
int scsi_parse_vpd_supported(const uint8_t *buf, size_t len, uint8_t page, bool *present);

/* VPD 0x80: the PRODUCT SERIAL NUMBER into @out (@cap bytes with the NUL;
 * truncated when longer), leading and trailing spaces trimmed, non-
 * printable bytes as '?'.  "" when the page holds none.  Returns 0 or -1. */
int scsi_parse_vpd_serial(const uint8_t *buf, size_t len, char *out, size_t cap);

/* VPD 0x83: the best designator of the logical unit itself (association
 * 0), as text into @out (@cap bytes with the NUL, truncated when longer):
 * NAA "naa.6001405...", then EUI-64 "eui.0123...", then T10 vendor ID
 * "t10.VENDOR  ID...", then SCSI name string "iqn....".  Malformed
 * descriptors are skipped; a descriptor running past the page ends the
 * walk.  "" when none is usable.  Returns 0 or -1. */
int scsi_parse_vpd_device_id(const uint8_t *buf, size_t len, char *out, size_t cap);

/* VPD 0xB0 Block Limits.  All counts in logical blocks; 0 = not reported. */
struct scsi_block_limits {
	uint16_t opt_transfer_granularity; /* OPTIMAL TRANSFER LENGTH GRANULARITY */
	uint32_t max_transfer_blocks;      /* MAXIMUM TRANSFER LENGTH (0: no limit) */
	uint32_t opt_transfer_blocks;      /* OPTIMAL TRANSFER LENGTH */
	uint32_t max_unmap_blocks;         /* MAXIMUM UNMAP LBA COUNT
					    * (0xffffffff: no limit) */
	uint32_t max_unmap_descriptors;    /* MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT */
	uint32_t unmap_granularity;        /* OPTIMAL UNMAP GRANULARITY */
	uint32_t unmap_alignment;          /* UNMAP GRANULARITY ALIGNMENT */
	bool unmap_alignment_valid;        /* UGAVALID: @unmap_alignment holds */
	uint64_t max_write_same_blocks;    /* MAXIMUM WRITE SAME LENGTH */
};

/* Decode VPD 0xB0.  Old targets return the short (PAGE LENGTH 0x0c) form:
 * fields the page does not reach are 0.  Returns 0 or -1. */
int scsi_parse_vpd_block_limits(const uint8_t *buf, size_t len, struct scsi_block_limits *out);

/* VPD 0xB2 Logical Block Provisioning. */
struct scsi_lbp {
	bool unmap;                /* LBPU: UNMAP supported */
	bool write_same16;         /* LBPWS: WRITE SAME(16) with UNMAP */
	bool write_same10;         /* LBPWS10: WRITE SAME(10) with UNMAP */
	bool lbprz;                /* unmapped blocks read as zeros */
	uint8_t provisioning_type; /* 0 full, 1 resource, 2 thin (0 if absent) */
};

/* Decode VPD 0xB2; needs the first flag byte (byte 5).  Returns 0 or -1. */
int scsi_parse_vpd_lbp(const uint8_t *buf, size_t len, struct scsi_lbp *out);

/* ---- Capacity, LUNs, mode ----------------------------------------------- */

/* Smallest and largest logical block length iscsifs accepts. */
#define SCSI_MIN_BLOCK_SIZE 512u
#define SCSI_MAX_BLOCK_SIZE (1024u * 1024u)

struct scsi_capacity {
	uint64_t blocks;         /* number of logical blocks (last LBA + 1) */
	uint32_t block_size;     /* logical block length in bytes: a power of
				  * two in SCSI_MIN..SCSI_MAX_BLOCK_SIZE */
	uint8_t lbppbe;          /* logical blocks per physical block
				  * exponent (16 only; else 0) */
	uint16_t lowest_aligned; /* LOWEST ALIGNED LBA (16 only; else 0) */
	bool lbpme;              /* thin provisioning enabled (16 only) */
	bool lbprz;              /* unmapped blocks read as zeros (16 only) */
};

/* Decode READ CAPACITY(10) data (8 bytes).  Returns 0; 1 when the LU is
 * too big for it (RETURNED LOGICAL BLOCK ADDRESS 0xffffffff: issue READ
 * CAPACITY(16); @out holds only the block size then); -1 with
 * err_set(EPROTO) when short or when the block length is 0, not a power
 * of two or outside 512..1 MiB. */
int scsi_parse_read_capacity10(const uint8_t *buf, size_t len, struct scsi_capacity *out);

/* Decode READ CAPACITY(16) data: 12 bytes needed, the flags of bytes
 * 12..15 read when present (32 are normally returned).  Returns 0, or -1
 * with err_set(EPROTO) when short, for a bad block length as above, or
 * when the capacity is 0 or its size in bytes does not fit in an off_t. */
int scsi_parse_read_capacity16(const uint8_t *buf, size_t len, struct scsi_capacity *out);

/* Decode REPORT LUNS data: up to @max raw 8-byte LUNs (SAM encoding, as
 * in the iSCSI LUN field; see pdu_lun_decode()) into @luns, their number
 * into *@count.  Only complete entries inside @len are used, whatever LUN
 * LIST LENGTH claims.  Returns 0 when that is the whole list; 1 when the
 * list is longer than what was stored (@len or @max cut it): re-issue with
 * an allocation length of scsi_report_luns_needed(); -1 with
 * err_set(EPROTO) when shorter than the 8-byte header or LUN LIST LENGTH
 * is not a multiple of 8. */
int scsi_parse_report_luns(const uint8_t *buf, size_t len, uint64_t *luns, size_t max,
			   size_t *count);
/* The allocation length REPORT LUNS needs for its whole list (header
 * included), from the first @len bytes it returned; 0 when @len < 4. */
uint64_t scsi_report_luns_needed(const uint8_t *buf, size_t len);

/* Read the WP and DPOFUA bits (SBC-3 6.4.2: the LUN takes the FUA bit of
 * WRITE) from a mode parameter header: of MODE SENSE(6) data (4-byte
 * header) or, with @ten_byte, of MODE SENSE(10) data (8-byte header).
 * MODE DATA LENGTH is clamped to @len.  @dpofua may be NULL.  Returns 0,
 * or -1 with err_set(EPROTO) when the device-specific parameter byte is
 * not there (both false then). */
int scsi_parse_mode_sense_wp(const uint8_t *buf, size_t len, bool ten_byte, bool *write_protected,
			     bool *dpofua);

/* ---- GET LBA STATUS ------------------------------------------------------ */

/* Bytes of the parameter data header and of one LBA status descriptor. */
#define SCSI_LBA_STATUS_HEADER 8
#define SCSI_LBA_STATUS_DESC 16

/* One LBA status descriptor: @blocks blocks from @lba, all in one state. */
struct scsi_lba_status {
	uint64_t lba;        /* first block */
	uint32_t blocks;     /* number of blocks, never 0 */
	bool mapped;         /* PROVISIONING STATUS 0 (mapped), 3 (mapped or
			      * unknown, SBC-4) and the reserved values:
			      * blocks whose content counts as data */
	bool anchored;       /* PROVISIONING STATUS 2 (anchored); with
			      * !@mapped and !@anchored: 1, deallocated */
};

/* Decode GET LBA STATUS parameter data, returned for STARTING LOGICAL
 * BLOCK ADDRESS @start with ALLOCATION LENGTH @alloc_len on a logical
 * unit of @capacity blocks, into at most @max descriptors at @out, their
 * number into *@count.  Strict: the answer is used whole or not at all,
 * since a wrong "deallocated" would make data look like a hole.  It is
 * refused (-1, err_set(EPROTO) naming the fault) when:
 *   - @len is larger than @alloc_len (more than asked), or shorter than
 *     the 8-byte header plus one descriptor;
 *   - PARAMETER DATA LENGTH is below 4 + 16 or not 4 + a multiple of 16,
 *     or less than the data the target sent (bytes after it: more
 *     descriptors than the header says);
 *   - the first descriptor does not start at @start;
 *   - a descriptor has 0 blocks, ends past @capacity, starts before the
 *     end of the previous one (overlapping, out of order) or after it (a
 *     gap the answer says nothing about).
 * Descriptors that PARAMETER DATA LENGTH declares but @len or @max cut off
 * are left out (a longer answer than the allocation length allowed is
 * normal: ask again from where this one ends).  Returns 0, or -1. */
int scsi_parse_lba_status(const uint8_t *buf, size_t len, uint32_t alloc_len, uint64_t start,
			  uint64_t capacity, struct scsi_lba_status *out, size_t max,
			  size_t *count);

#endif /* ISCSIFS_SCSI_H */
