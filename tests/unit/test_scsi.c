/* test_scsi.c: CDB layouts, sense decoding, the outcome table, and the
 * parsers of INQUIRY, VPD, READ CAPACITY, REPORT LUNS, MODE SENSE and GET LBA
 * STATUS data with good, short, lying and bad input.
 *
 * Every parser call goes through a heap copy of exactly the bytes passed,
 * so under the sanitizer build any read past @len is caught.  At the end
 * every parser also gets every prefix of every sample and a few thousand
 * random buffers.  Single-threaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "scsi.h"
#include "testlib.h"

#define B(...) ((const uint8_t[]){ __VA_ARGS__ })
#define BLEN(...) sizeof((const uint8_t[]){ __VA_ARGS__ })
#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* A heap copy of exactly @len bytes (ASan catches reads past it). */
static uint8_t *exact(const uint8_t *src, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	if (!p) {
		perror("malloc");
		exit(2);
	}
	if (len)
		memcpy(p, src, len);
	return p;
}

/* ---- parser wrappers over exact-size copies ---- */

static int sense(const uint8_t *b, size_t len, struct scsi_sense *s)
{
	uint8_t *c = exact(b, len);
	int r = scsi_sense_parse(c, len, s);

	free(c);
	return r;
}

/* The outcome of CHECK CONDITION with the sense data @b. */
static struct scsi_outcome check_condition(const uint8_t *b, size_t len)
{
	struct scsi_outcome o;
	uint8_t *c = exact(b, len);

	scsi_outcome(0, SCSI_STATUS_CHECK_CONDITION, c, len, &o);
	free(c);
	return o;
}

static int inquiry(const uint8_t *b, size_t len, struct scsi_inquiry *q)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_inquiry(c, len, q);

	free(c);
	return r;
}

static int vpd_supported(const uint8_t *b, size_t len, uint8_t page, bool *present)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_vpd_supported(c, len, page, present);

	free(c);
	return r;
}

static int vpd_serial(const uint8_t *b, size_t len, char *out, size_t cap)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_vpd_serial(c, len, out, cap);

	free(c);
	return r;
}

static int vpd_devid(const uint8_t *b, size_t len, char *out, size_t cap)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_vpd_device_id(c, len, out, cap);

	free(c);
	return r;
}

static int vpd_bl(const uint8_t *b, size_t len, struct scsi_block_limits *bl)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_vpd_block_limits(c, len, bl);

	free(c);
	return r;
}

static int vpd_lbp(const uint8_t *b, size_t len, struct scsi_lbp *l)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_vpd_lbp(c, len, l);

	free(c);
	return r;
}

static int cap10(const uint8_t *b, size_t len, struct scsi_capacity *cap)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_read_capacity10(c, len, cap);

	free(c);
	return r;
}

static int cap16(const uint8_t *b, size_t len, struct scsi_capacity *cap)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_read_capacity16(c, len, cap);

	free(c);
	return r;
}

static int luns(const uint8_t *b, size_t len, uint64_t *out, size_t max, size_t *count)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_report_luns(c, len, out, max, count);

	free(c);
	return r;
}

static int mode_wp(const uint8_t *b, size_t len, bool ten, bool *wp)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_mode_sense_wp(c, len, ten, wp, NULL);

	free(c);
	return r;
}

/* ---- CDBs ---- */

struct cdb_case {
	const char *name;        /* for failure messages */
	uint8_t cdb[16];         /* what the builder produced */
	size_t len;              /* what it returned */
	uint8_t want[16];        /* expected bytes (the rest zero) */
	size_t want_len;         /* expected length */
};

static void check_cdb(const struct cdb_case *c)
{
	CHECK_EQ_U64(c->len, c->want_len);
	CHECK(memcmp(c->cdb, c->want, 16) == 0);
	if (c->len != c->want_len || memcmp(c->cdb, c->want, 16) != 0) {
		fprintf(stderr, "  %s:", c->name);
		for (int i = 0; i < 16; i++)
			fprintf(stderr, " %02x", c->cdb[i]);
		fprintf(stderr, "\n");
	}
}

#define CDB_CASE(builder_call, wlen, ...)                                 \
	do {                                                              \
		struct cdb_case c_ = { .name = #builder_call,             \
				       .want = { __VA_ARGS__ },           \
				       .want_len = (wlen) };              \
		memset(c_.cdb, 0xee, sizeof c_.cdb);                      \
		c_.len = builder_call;                                    \
		check_cdb(&c_);                                           \
	} while (0)

static void test_cdbs(void)
{
	uint8_t cdb[16];
	uint8_t param[32];

	CDB_CASE(scsi_cdb_test_unit_ready(c_.cdb), 6, 0x00);
	CDB_CASE(scsi_cdb_inquiry(c_.cdb, false, 0x83, 36), 6,
		 0x12, 0x00, 0x00, 0x00, 0x24, 0x00);
	CDB_CASE(scsi_cdb_inquiry(c_.cdb, true, 0x83, 0x1234), 6,
		 0x12, 0x01, 0x83, 0x12, 0x34, 0x00);
	CDB_CASE(scsi_cdb_read_capacity10(c_.cdb), 10, 0x25);
	CDB_CASE(scsi_cdb_read_capacity16(c_.cdb, 32), 16,
		 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x20, 0, 0);
	CDB_CASE(scsi_cdb_get_lba_status(c_.cdb, 0x0102030405060708ull, 0x1008), 16,
		 0x9e, 0x12, 1, 2, 3, 4, 5, 6, 7, 8, 0x00, 0x00, 0x10, 0x08, 0, 0);
	CDB_CASE(scsi_cdb_report_luns(c_.cdb, 0x01020304), 12,
		 0xa0, 0, 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0, 0);
	CDB_CASE(scsi_cdb_read10(c_.cdb, 0x01020304, 0x0506), 10,
		 0x28, 0, 0x01, 0x02, 0x03, 0x04, 0, 0x05, 0x06, 0);
	CDB_CASE(scsi_cdb_read16(c_.cdb, 0x0102030405060708ull, 0x090a0b0c), 16,
		 0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x09, 0x0a, 0x0b, 0x0c, 0, 0);
	CDB_CASE(scsi_cdb_write10(c_.cdb, 0xfffffffe, 0xffff, true), 10,
		 0x2a, 0x08, 0xff, 0xff, 0xff, 0xfe, 0, 0xff, 0xff, 0);
	CDB_CASE(scsi_cdb_write10(c_.cdb, 1, 2, false), 10,
		 0x2a, 0x00, 0, 0, 0, 1, 0, 0, 2, 0);
	CDB_CASE(scsi_cdb_write16(c_.cdb, 0x0102030405060708ull, 0x090a0b0c, false), 16,
		 0x8a, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x09, 0x0a, 0x0b, 0x0c, 0, 0);
	CDB_CASE(scsi_cdb_write16(c_.cdb, 0, 8, true), 16,
		 0x8a, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0);
	CDB_CASE(scsi_cdb_sync_cache10(c_.cdb, 0, 0), 10, 0x35);
	CDB_CASE(scsi_cdb_sync_cache10(c_.cdb, 0x10203040, 0x5060), 10,
		 0x35, 0, 0x10, 0x20, 0x30, 0x40, 0, 0x50, 0x60, 0);
	CDB_CASE(scsi_cdb_sync_cache16(c_.cdb, 0x0102030405060708ull, 0x090a0b0c), 16,
		 0x91, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x09, 0x0a, 0x0b, 0x0c, 0, 0);
	CDB_CASE(scsi_cdb_mode_sense6(c_.cdb, 0x3f, 0xff), 6,
		 0x1a, 0x08, 0x3f, 0x00, 0xff, 0x00);
	CDB_CASE(scsi_cdb_mode_sense6(c_.cdb, 0xc8, 4), 6,
		 0x1a, 0x08, 0x08, 0x00, 0x04, 0x00);
	CDB_CASE(scsi_cdb_mode_sense10(c_.cdb, 0x3f, 0x1000), 10,
		 0x5a, 0x08, 0x3f, 0, 0, 0, 0, 0x10, 0x00, 0);
	CDB_CASE(scsi_cdb_unmap(c_.cdb, 24), 10,
		 0x42, 0, 0, 0, 0, 0, 0, 0x00, 0x18, 0);
	CDB_CASE(scsi_cdb_write_same16(c_.cdb, 0x0102030405060708ull, 0x090a0b0c, true), 16,
		 0x93, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x09, 0x0a, 0x0b, 0x0c, 0, 0);
	CDB_CASE(scsi_cdb_write_same16(c_.cdb, 5, 6, false), 16,
		 0x93, 0x00, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0);

	/* The builders zero what they do not set. */
	memset(cdb, 0xff, sizeof cdb);
	CHECK_EQ_U64(scsi_cdb_read10(cdb, 0, 0), 10);
	for (int i = 0; i < 16; i++)
		CHECK(cdb[i] == (i == 0 ? 0x28 : 0));

	/* UNMAP parameter list. */
	static const uint8_t want_param[24] = {
		0x00, 0x16, 0x00, 0x10, 0, 0, 0, 0,
		1, 2, 3, 4, 5, 6, 7, 8, 0x09, 0x0a, 0x0b, 0x0c, 0, 0, 0, 0,
	};
	memset(param, 0xee, sizeof param);
	CHECK_EQ_U64(scsi_unmap_param(param, sizeof param, 0x0102030405060708ull, 0x090a0b0c), 24);
	CHECK(memcmp(param, want_param, 24) == 0);
	CHECK(param[24] == 0xee);
	CHECK_EQ_U64(scsi_unmap_param(param, 23, 0, 1), 0);
	CHECK_EQ_U64(SCSI_UNMAP_PARAM_LEN, 24);
}

/* ---- sense ---- */

static void test_sense_fixed(void)
{
	struct scsi_sense s;
	char text[128];

	/* ILLEGAL REQUEST, LBA out of range, 18 bytes. */
	const uint8_t lba[] = { 0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0 };
	CHECK(sense(lba, sizeof lba, &s) == 0);
	CHECK(s.valid && !s.descriptor && !s.deferred && !s.info_valid);
	CHECK_EQ_U64(s.key, SCSI_SENSE_ILLEGAL_REQUEST);
	CHECK_EQ_U64(s.asc, 0x21);
	CHECK_EQ_U64(s.ascq, 0x00);
	CHECK_EQ_U64(check_condition(lba, sizeof lba).err, ENOSPC);
	scsi_sense_describe(&s, text, sizeof text);
	CHECK_STR(text, "ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE (0x21/0x00)");

	/* MEDIUM ERROR with INFORMATION valid. */
	const uint8_t med[] = { 0xf0, 0, 0x03, 0x00, 0x00, 0x12, 0x34, 0x0a, 0, 0, 0, 0, 0x11, 0x00, 0, 0, 0, 0 };
	CHECK(sense(med, sizeof med, &s) == 0);
	CHECK(s.info_valid);
	CHECK_EQ_U64(s.info, 0x1234);
	CHECK_EQ_U64(check_condition(med, sizeof med).err, EIO);
	scsi_sense_describe(&s, text, sizeof text);
	CHECK_STR(text, "MEDIUM ERROR: UNRECOVERED READ ERROR (0x11/0x00), information 0x1234");

	/* Deferred. */
	const uint8_t def[] = { 0x71, 0, 0x04, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x44, 0x00, 0, 0, 0, 0 };
	CHECK(sense(def, sizeof def, &s) == 0);
	CHECK(s.deferred && !s.descriptor);
	scsi_sense_describe(&s, text, sizeof text);
	CHECK_STR(text, "HARDWARE ERROR: INTERNAL TARGET FAILURE (0x44/0x00), deferred");

	/* ADDITIONAL SENSE LENGTH claims 255 bytes; only 14 arrived. */
	const uint8_t liar[] = { 0x70, 0, 0x06, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0x29, 0x00 };
	CHECK(sense(liar, sizeof liar, &s) == 0);
	CHECK_EQ_U64(s.key, SCSI_SENSE_UNIT_ATTENTION);
	CHECK_EQ_U64(s.asc, 0x29);
	CHECK_EQ_U64(check_condition(liar, sizeof liar).action, SCSI_ACT_RETRY);

	/* ADDITIONAL SENSE LENGTH 0: the ASC bytes are not part of it. */
	const uint8_t zero_len[] = { 0x70, 0, 0x05, 0, 0, 0, 0, 0x00, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0 };
	CHECK(sense(zero_len, sizeof zero_len, &s) == 0);
	CHECK_EQ_U64(s.key, 5);
	CHECK_EQ_U64(s.asc, 0);
	CHECK_EQ_U64(check_condition(zero_len, sizeof zero_len).err, EINVAL);

	/* ASC there, ASCQ cut off. */
	CHECK(sense(lba, 13, &s) == 0);
	CHECK_EQ_U64(s.asc, 0x21);
	CHECK_EQ_U64(s.ascq, 0);

	/* Just the key. */
	CHECK(sense(lba, 3, &s) == 0);
	CHECK_EQ_U64(s.key, 5);
	CHECK(!s.info_valid);

	/* INFORMATION valid bit but the field is cut. */
	CHECK(sense(med, 6, &s) == 0);
	CHECK(!s.info_valid);

	/* Too short, or not sense data at all. */
	err_set(0, "%s", "");
	CHECK(sense(lba, 2, &s) == -1);
	CHECK(err_errno() == EPROTO);
	CHECK(!s.valid);
	CHECK(sense(lba, 0, &s) == -1);
	CHECK(sense(B(0x7f, 0, 5, 0, 0, 0, 0, 0), 8, &s) == -1);
	CHECK(strstr(err_msg(), "0x7f") != NULL);
	CHECK(sense(B(0x00, 0, 5, 0), 4, &s) == -1);
	CHECK(sense(B(0x74, 0, 5, 0), 4, &s) == -1);
}

static void test_sense_descriptor(void)
{
	struct scsi_sense s;
	char text[128];

	/* MEDIUM ERROR 0x11/0x00, then a sense-key-specific descriptor, then
	 * an information descriptor with VALID. */
	const uint8_t desc[] = {
		0x72, 0x03, 0x11, 0x00, 0, 0, 0, 20,
		0x02, 0x06, 0, 0, 0, 0, 0, 0,
		0x00, 0x0a, 0x80, 0x00, 0, 0, 0, 1, 0, 0, 0x12, 0x34,
	};
	CHECK(sense(desc, sizeof desc, &s) == 0);
	CHECK(s.valid && s.descriptor && !s.deferred);
	CHECK_EQ_U64(s.key, SCSI_SENSE_MEDIUM_ERROR);
	CHECK_EQ_U64(s.asc, 0x11);
	CHECK(s.info_valid);
	CHECK_EQ_U64(s.info, 0x100001234ull);
	scsi_sense_describe(&s, text, sizeof text);
	CHECK_STR(text, "MEDIUM ERROR: UNRECOVERED READ ERROR (0x11/0x00), information 0x100001234");

	/* The same with the information descriptor cut by len, and by the
	 * ADDITIONAL SENSE LENGTH. */
	CHECK(sense(desc, sizeof desc - 1, &s) == 0);
	CHECK(!s.info_valid);
	CHECK_EQ_U64(s.asc, 0x11);
	uint8_t *copy = exact(desc, sizeof desc);
	copy[7] = 19;
	CHECK(sense(copy, sizeof desc, &s) == 0);
	CHECK(!s.info_valid);
	/* ADDITIONAL SENSE LENGTH lies high: still only what arrived. */
	copy[7] = 0xff;
	CHECK(sense(copy, sizeof desc, &s) == 0);
	CHECK(s.info_valid);
	/* Without VALID the information is not used. */
	copy[7] = 20;
	copy[18] = 0x00;
	CHECK(sense(copy, sizeof desc, &s) == 0);
	CHECK(!s.info_valid);
	/* A descriptor whose length runs past the end stops the walk. */
	copy[18] = 0x80;
	copy[9] = 0xf0;
	CHECK(sense(copy, sizeof desc, &s) == 0);
	CHECK(!s.info_valid);
	free(copy);

	/* Deferred descriptor format, header only. */
	CHECK(sense(B(0x73, 0x06, 0x2a, 0x09), 4, &s) == 0);
	CHECK(s.deferred && s.descriptor);
	scsi_sense_describe(&s, text, sizeof text);
	CHECK_STR(text, "UNIT ATTENTION: CAPACITY DATA HAS CHANGED (0x2a/0x09), deferred");

	/* Key but no ASC. */
	CHECK(sense(B(0x72, 0x07), 2, &s) == 0);
	CHECK_EQ_U64(s.key, SCSI_SENSE_DATA_PROTECT);
	CHECK_EQ_U64(s.asc, 0);
	CHECK(sense(B(0x72), 1, &s) == -1);
}

/* ---- the outcome table ---- */

/* Sense data as a target sends it: fixed format (0x70, or 0x71 when
 * deferred) with ADDITIONAL SENSE LENGTH 10, or descriptor format (0x72,
 * 0x73) without descriptors. */
#define FIXED(key, asc, ascq) 0x70, 0, (key), 0, 0, 0, 0, 10, 0, 0, 0, 0, (asc), (ascq), 0, 0, 0, 0
#define FIXED_DEFERRED(key, asc, ascq) 0x71, 0, (key), 0, 0, 0, 0, 10, 0, 0, 0, 0, (asc), (ascq), 0, 0, 0, 0
#define DESC(key, asc, ascq) 0x72, (key), (asc), (ascq), 0, 0, 0, 0
#define DESC_DEFERRED(key, asc, ascq) 0x73, (key), (asc), (ascq), 0, 0, 0, 0

struct outcome_case {
	const char *name;          /* what the row is about */
	uint8_t response;          /* iSCSI Response */
	uint8_t status;            /* SCSI status */
	uint8_t sense[18];         /* sense data */
	size_t sense_len;          /* its length */
	enum scsi_action action;   /* expected: what to do */
	int err;                   /* the errno */
	enum log_level level;      /* how loud */
	enum scsi_change change;   /* what a UNIT ATTENTION says */
	const char *text;          /* the text, exactly */
};

#define CC SCSI_STATUS_CHECK_CONDITION
#define ROW_F(name, key, asc, ascq, act, err, lvl, chg, text) \
	{ name, 0, CC, { FIXED(key, asc, ascq) }, 18, act, err, lvl, chg, text }
#define ROW_D(name, key, asc, ascq, act, err, lvl, chg, text) \
	{ name, 0, CC, { DESC(key, asc, ascq) }, 8, act, err, lvl, chg, text }
#define ROW_S(name, status, act, err, lvl, text) \
	{ name, 0, status, { 0 }, 0, act, err, lvl, SCSI_CHANGE_NONE, text }

static const struct outcome_case outcome_cases[] = {
	/* statuses */
	ROW_S("good", SCSI_STATUS_GOOD, SCSI_ACT_DONE, 0, LOG_LEVEL_DEBUG,
	      "SCSI status GOOD (0x00)"),
	ROW_S("condition met", SCSI_STATUS_CONDITION_MET, SCSI_ACT_DONE, 0, LOG_LEVEL_DEBUG,
	      "SCSI status CONDITION MET (0x04)"),
	ROW_S("busy", SCSI_STATUS_BUSY, SCSI_ACT_BACKOFF, EIO, LOG_LEVEL_INFO,
	      "SCSI status BUSY (0x08)"),
	ROW_S("task set full", SCSI_STATUS_TASK_SET_FULL, SCSI_ACT_BACKOFF, EIO, LOG_LEVEL_INFO,
	      "SCSI status TASK SET FULL (0x28)"),
	ROW_S("aca active", SCSI_STATUS_ACA_ACTIVE, SCSI_ACT_BACKOFF, EIO, LOG_LEVEL_INFO,
	      "SCSI status ACA ACTIVE (0x30)"),
	ROW_S("task aborted", SCSI_STATUS_TASK_ABORTED, SCSI_ACT_RETRY, EIO, LOG_LEVEL_INFO,
	      "SCSI status TASK ABORTED (0x40)"),
	ROW_S("reservation conflict", SCSI_STATUS_RESERVATION_CONFLICT, SCSI_ACT_FAIL, EBUSY,
	      LOG_LEVEL_ERROR, "SCSI status RESERVATION CONFLICT (0x18)"),
	ROW_S("command terminated (obsolete)", 0x22, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR,
	      "SCSI status UNKNOWN STATUS (0x22)"),
	ROW_S("unknown status", 0xff, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR,
	      "SCSI status UNKNOWN STATUS (0xff)"),
	/* the iSCSI response overrides status and sense */
	{ "target failure", 0x01, SCSI_STATUS_GOOD, { 0 }, 0, SCSI_ACT_RETRY, EIO, LOG_LEVEL_WARN,
	  SCSI_CHANGE_NONE, "iSCSI response 0x01 (target failure)" },
	{ "vendor response with sense", 0x80, CC, { FIXED(SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0) },
	  18, SCSI_ACT_RETRY, EIO, LOG_LEVEL_WARN, SCSI_CHANGE_NONE,
	  "iSCSI response 0x80 (vendor specific)" },
	/* CHECK CONDITION without sense, or with garbage */
	{ "no sense data", 0, CC, { 0 }, 0, SCSI_ACT_RETRY, EIO, LOG_LEVEL_WARN, SCSI_CHANGE_NONE,
	  "CHECK CONDITION without any sense data" },
	{ "unknown response code", 0, CC, { 0x7f, 0, 5, 0, 0, 0, 0, 10 }, 8, SCSI_ACT_RETRY, EIO,
	  LOG_LEVEL_WARN, SCSI_CHANGE_NONE, "CHECK CONDITION without usable sense data" },
	{ "one byte", 0, CC, { 0x70 }, 1, SCSI_ACT_RETRY, EIO, LOG_LEVEL_WARN, SCSI_CHANGE_NONE,
	  "CHECK CONDITION without usable sense data" },
	/* NO SENSE: no transfer to count on */
	ROW_F("no sense", SCSI_SENSE_NO_SENSE, 0, 0, SCSI_ACT_RETRY, EIO, LOG_LEVEL_INFO,
	      SCSI_CHANGE_NONE, "NO SENSE: NO ADDITIONAL SENSE INFORMATION (0x00/0x00)"),
	ROW_F("recovered", SCSI_SENSE_RECOVERED_ERROR, 0x17, 0x01, SCSI_ACT_DONE, 0,
	      LOG_LEVEL_WARN, SCSI_CHANGE_NONE, "RECOVERED ERROR: ASC 0x17 ASCQ 0x01"),
	ROW_F("completed", SCSI_SENSE_COMPLETED, 0, 0, SCSI_ACT_DONE, 0, LOG_LEVEL_DEBUG,
	      SCSI_CHANGE_NONE, "COMPLETED: NO ADDITIONAL SENSE INFORMATION (0x00/0x00)"),
	/* NOT READY */
	ROW_F("becoming ready", SCSI_SENSE_NOT_READY, 0x04, 0x01, SCSI_ACT_BACKOFF, EIO,
	      LOG_LEVEL_INFO, SCSI_CHANGE_NONE,
	      "NOT READY: LOGICAL UNIT IS IN PROCESS OF BECOMING READY (0x04/0x01)"),
	ROW_F("alua transition", SCSI_SENSE_NOT_READY, 0x04, 0x0a, SCSI_ACT_BACKOFF, EIO,
	      LOG_LEVEL_INFO, SCSI_CHANGE_NONE,
	      "NOT READY: LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION (0x04/0x0a)"),
	ROW_F("alua standby", SCSI_SENSE_NOT_READY, 0x04, 0x0b, SCSI_ACT_BACKOFF, EIO,
	      LOG_LEVEL_INFO, SCSI_CHANGE_NONE,
	      "NOT READY: LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE (0x04/0x0b)"),
	ROW_D("alua unavailable", SCSI_SENSE_NOT_READY, 0x04, 0x0c, SCSI_ACT_BACKOFF, EIO,
	      LOG_LEVEL_INFO, SCSI_CHANGE_NONE,
	      "NOT READY: LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE (0x04/0x0c)"),
	ROW_F("manual intervention", SCSI_SENSE_NOT_READY, 0x04, 0x03, SCSI_ACT_FAIL, EIO,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "NOT READY: LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED (0x04/0x03)"),
	ROW_F("medium not present", SCSI_SENSE_NOT_READY, 0x3a, 0x00, SCSI_ACT_FAIL, ENOMEDIUM,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE, "NOT READY: MEDIUM NOT PRESENT (0x3a/0x00)"),
	ROW_D("medium not present, tray open", SCSI_SENSE_NOT_READY, 0x3a, 0x02, SCSI_ACT_FAIL,
	      ENOMEDIUM, LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "NOT READY: MEDIUM NOT PRESENT (0x3a/0x02)"),
	/* failures of the medium and the device */
	ROW_F("medium error", SCSI_SENSE_MEDIUM_ERROR, 0x11, 0x00, SCSI_ACT_FAIL, EIO,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE, "MEDIUM ERROR: UNRECOVERED READ ERROR (0x11/0x00)"),
	ROW_D("hardware error", SCSI_SENSE_HARDWARE_ERROR, 0x44, 0x00, SCSI_ACT_FAIL, EIO,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE, "HARDWARE ERROR: INTERNAL TARGET FAILURE (0x44/0x00)"),
	/* ILLEGAL REQUEST */
	ROW_F("invalid opcode", SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00, SCSI_ACT_UNSUPPORTED,
	      EOPNOTSUPP, LOG_LEVEL_DEBUG, SCSI_CHANGE_NONE,
	      "ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE (0x20/0x00)"),
	ROW_D("invalid opcode, descriptor", SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0x00,
	      SCSI_ACT_UNSUPPORTED, EOPNOTSUPP, LOG_LEVEL_DEBUG, SCSI_CHANGE_NONE,
	      "ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE (0x20/0x00)"),
	ROW_F("invalid field in cdb", SCSI_SENSE_ILLEGAL_REQUEST, 0x24, 0x00, SCSI_ACT_UNSUPPORTED,
	      EOPNOTSUPP, LOG_LEVEL_DEBUG, SCSI_CHANGE_NONE,
	      "ILLEGAL REQUEST: INVALID FIELD IN CDB (0x24/0x00)"),
	ROW_F("lba out of range", SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x00, SCSI_ACT_FAIL, ENOSPC,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE (0x21/0x00)"),
	ROW_F("lba out of range, ascq 1", SCSI_SENSE_ILLEGAL_REQUEST, 0x21, 0x01, SCSI_ACT_FAIL,
	      EINVAL, LOG_LEVEL_ERROR, SCSI_CHANGE_NONE, "ILLEGAL REQUEST: ASC 0x21 ASCQ 0x01"),
	ROW_F("lun not supported", SCSI_SENSE_ILLEGAL_REQUEST, 0x25, 0x00, SCSI_ACT_FAIL, ENXIO,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "ILLEGAL REQUEST: LOGICAL UNIT NOT SUPPORTED (0x25/0x00)"),
	ROW_F("invalid field in parameter list", SCSI_SENSE_ILLEGAL_REQUEST, 0x26, 0x00,
	      SCSI_ACT_FAIL, EINVAL, LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "ILLEGAL REQUEST: INVALID FIELD IN PARAMETER LIST (0x26/0x00)"),
	/* UNIT ATTENTION */
	ROW_F("power on", SCSI_SENSE_UNIT_ATTENTION, 0x29, 0x01, SCSI_ACT_RETRY, EIO,
	      LOG_LEVEL_DEBUG, SCSI_CHANGE_RESET, "UNIT ATTENTION: POWER ON OCCURRED (0x29/0x01)"),
	ROW_D("i_t nexus loss", SCSI_SENSE_UNIT_ATTENTION, 0x29, 0x07, SCSI_ACT_RETRY, EIO,
	      LOG_LEVEL_DEBUG, SCSI_CHANGE_RESET,
	      "UNIT ATTENTION: I_T NEXUS LOSS OCCURRED (0x29/0x07)"),
	ROW_F("capacity changed", SCSI_SENSE_UNIT_ATTENTION, 0x2a, 0x09, SCSI_ACT_RETRY, EIO,
	      LOG_LEVEL_INFO, SCSI_CHANGE_CAPACITY,
	      "UNIT ATTENTION: CAPACITY DATA HAS CHANGED (0x2a/0x09)"),
	ROW_D("luns changed", SCSI_SENSE_UNIT_ATTENTION, 0x3f, 0x0e, SCSI_ACT_RETRY, EIO,
	      LOG_LEVEL_INFO, SCSI_CHANGE_LUNS,
	      "UNIT ATTENTION: REPORTED LUNS DATA HAS CHANGED (0x3f/0x0e)"),
	ROW_D("inquiry data changed", SCSI_SENSE_UNIT_ATTENTION, 0x3f, 0x03, SCSI_ACT_RETRY, EIO,
	      LOG_LEVEL_INFO, SCSI_CHANGE_IDENTITY,
	      "UNIT ATTENTION: INQUIRY DATA HAS CHANGED (0x3f/0x03)"),
	ROW_F("device identifier changed", SCSI_SENSE_UNIT_ATTENTION, 0x3f, 0x05, SCSI_ACT_RETRY,
	      EIO, LOG_LEVEL_INFO, SCSI_CHANGE_IDENTITY,
	      "UNIT ATTENTION: DEVICE IDENTIFIER CHANGED (0x3f/0x05)"),
	ROW_F("access state changed", SCSI_SENSE_UNIT_ATTENTION, 0x2a, 0x06, SCSI_ACT_RETRY, EIO,
	      LOG_LEVEL_INFO, SCSI_CHANGE_NONE,
	      "UNIT ATTENTION: ASYMMETRIC ACCESS STATE CHANGED (0x2a/0x06)"),
	ROW_F("mode parameters changed", SCSI_SENSE_UNIT_ATTENTION, 0x2a, 0x01, SCSI_ACT_RETRY,
	      EIO, LOG_LEVEL_INFO, SCSI_CHANGE_NONE,
	      "UNIT ATTENTION: MODE PARAMETERS CHANGED (0x2a/0x01)"),
	/* DATA PROTECT */
	ROW_F("write protected", SCSI_SENSE_DATA_PROTECT, 0x27, 0x00, SCSI_ACT_FAIL, EROFS,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE, "DATA PROTECT: WRITE PROTECTED (0x27/0x00)"),
	ROW_F("thin pool full", SCSI_SENSE_DATA_PROTECT, 0x27, 0x07, SCSI_ACT_FAIL, ENOSPC,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "DATA PROTECT: SPACE ALLOCATION FAILED WRITE PROTECT (0x27/0x07)"),
	ROW_F("software write protected", SCSI_SENSE_DATA_PROTECT, 0x27, 0x02, SCSI_ACT_FAIL,
	      EROFS, LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "DATA PROTECT: LOGICAL UNIT SOFTWARE WRITE PROTECTED (0x27/0x02)"),
	ROW_F("access not authorized", SCSI_SENSE_DATA_PROTECT, 0x74, 0x71, SCSI_ACT_FAIL, EACCES,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "DATA PROTECT: LOGICAL UNIT ACCESS NOT AUTHORIZED (0x74/0x71)"),
	/* ABORTED COMMAND */
	ROW_F("aborted, crc", SCSI_SENSE_ABORTED_COMMAND, 0x47, 0x05, SCSI_ACT_RETRY, EIO,
	      LOG_LEVEL_INFO, SCSI_CHANGE_NONE,
	      "ABORTED COMMAND: PROTOCOL SERVICE CRC ERROR (0x47/0x05)"),
	ROW_F("aborted, guard check", SCSI_SENSE_ABORTED_COMMAND, 0x10, 0x01, SCSI_ACT_FAIL, EIO,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "ABORTED COMMAND: LOGICAL BLOCK GUARD CHECK FAILED (0x10/0x01)"),
	/* the rest fail */
	ROW_F("blank check", SCSI_SENSE_BLANK_CHECK, 0, 0, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR,
	      SCSI_CHANGE_NONE, "BLANK CHECK: NO ADDITIONAL SENSE INFORMATION (0x00/0x00)"),
	ROW_F("vendor specific", SCSI_SENSE_VENDOR_SPECIFIC, 0x80, 0x01, SCSI_ACT_FAIL, EIO,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE, "VENDOR SPECIFIC: ASC 0x80 ASCQ 0x01"),
	ROW_F("copy aborted", SCSI_SENSE_COPY_ABORTED, 0, 0, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR,
	      SCSI_CHANGE_NONE, "COPY ABORTED: NO ADDITIONAL SENSE INFORMATION (0x00/0x00)"),
	ROW_F("reserved key", 0x0c, 0, 0, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "RESERVED: NO ADDITIONAL SENSE INFORMATION (0x00/0x00)"),
	ROW_F("volume overflow", SCSI_SENSE_VOLUME_OVERFLOW, 0, 0, SCSI_ACT_FAIL, EIO,
	      LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	      "VOLUME OVERFLOW: NO ADDITIONAL SENSE INFORMATION (0x00/0x00)"),
	ROW_F("miscompare", SCSI_SENSE_MISCOMPARE, 0x1d, 0x00, SCSI_ACT_FAIL, EIO, LOG_LEVEL_ERROR,
	      SCSI_CHANGE_NONE, "MISCOMPARE: MISCOMPARE DURING VERIFY OPERATION (0x1d/0x00)"),
	/* deferred errors: an earlier command's; this one is sent again */
	{ "deferred medium error", 0, CC, { FIXED_DEFERRED(SCSI_SENSE_MEDIUM_ERROR, 0x0c, 0x00) },
	  18, SCSI_ACT_RETRY, EIO, LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	  "deferred error of an earlier command: MEDIUM ERROR: WRITE ERROR (0x0c/0x00)" },
	{ "deferred, descriptor", 0, CC, { DESC_DEFERRED(SCSI_SENSE_HARDWARE_ERROR, 0x44, 0) }, 8,
	  SCSI_ACT_RETRY, EIO, LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	  "deferred error of an earlier command: HARDWARE ERROR: INTERNAL TARGET FAILURE (0x44/0x00)" },
	{ "deferred data protect", 0, CC, { FIXED_DEFERRED(SCSI_SENSE_DATA_PROTECT, 0x27, 0) }, 18,
	  SCSI_ACT_RETRY, EIO, LOG_LEVEL_ERROR, SCSI_CHANGE_NONE,
	  "deferred error of an earlier command: DATA PROTECT: WRITE PROTECTED (0x27/0x00)" },
	{ "deferred recovered", 0, CC, { FIXED_DEFERRED(SCSI_SENSE_RECOVERED_ERROR, 0x17, 0) }, 18,
	  SCSI_ACT_RETRY, EIO, LOG_LEVEL_WARN, SCSI_CHANGE_NONE,
	  "deferred error of an earlier command: RECOVERED ERROR: ASC 0x17 ASCQ 0x00" },
	{ "deferred unit attention", 0, CC,
	  { DESC_DEFERRED(SCSI_SENSE_UNIT_ATTENTION, 0x2a, 0x09) }, 8, SCSI_ACT_RETRY, EIO,
	  LOG_LEVEL_WARN, SCSI_CHANGE_NONE,
	  "deferred error of an earlier command: UNIT ATTENTION: CAPACITY DATA HAS CHANGED (0x2a/0x09)" },
	{ "deferred invalid opcode", 0, CC,
	  { FIXED_DEFERRED(SCSI_SENSE_ILLEGAL_REQUEST, 0x20, 0) }, 18, SCSI_ACT_RETRY, EIO,
	  LOG_LEVEL_WARN, SCSI_CHANGE_NONE,
	  "deferred error of an earlier command: ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE (0x20/0x00)" },
};

static void test_outcome_table(void)
{
	for (size_t i = 0; i < N_ELEMENTS(outcome_cases); i++) {
		const struct outcome_case *c = &outcome_cases[i];
		uint8_t *sense = exact(c->sense, c->sense_len);
		struct scsi_outcome o;
		int failures = test_failures;

		memset(&o, 0x5a, sizeof o);
		scsi_outcome(c->response, c->status, sense, c->sense_len, &o);
		free(sense);
		CHECK_EQ_U64(o.action, c->action);
		CHECK_EQ_U64(o.err, c->err);
		CHECK_EQ_U64(o.level, c->level);
		CHECK_EQ_U64(o.change, c->change);
		CHECK_STR(o.text, c->text);
		/* data of an earlier command lost: the deferred failures */
		CHECK(o.earlier_lost == (strncmp(c->name, "deferred", 8) == 0 &&
					 c->level == LOG_LEVEL_ERROR));
		/* waited for longer: a LU becoming ready or in an ALUA change */
		CHECK(o.transition == (strcmp(c->name, "becoming ready") == 0 ||
				       strcmp(c->name, "alua transition") == 0 ||
				       strcmp(c->name, "access state changed") == 0));
		/* another target port may reach the LU: ALUA standby, unavailable */
		CHECK(o.port_inaccessible == (strncmp(c->name, "alua s", 6) == 0 ||
					      strncmp(c->name, "alua u", 6) == 0));
		if (test_failures != failures)
			fprintf(stderr, "  in row \"%s\"\n", c->name);
	}
}

/* Properties over every status, and over every sense key in both formats
 * with a few ASC/ASCQ pairs: DONE exactly when nothing went wrong, an
 * errno for everything else, the text always a line. */
static void test_outcome_properties(void)
{
	static const uint8_t ascs[][2] = {
		{ 0, 0 }, { 0x04, 0x01 }, { 0x20, 0x00 }, { 0x24, 0x00 }, { 0x29, 0x00 },
		{ 0x2a, 0x09 }, { 0x3a, 0x00 }, { 0xff, 0xff },
	};
	struct scsi_outcome o;

	for (unsigned st = 0; st < 256; st++) {
		scsi_outcome(0, (uint8_t)st, NULL, 0, &o);
		CHECK((o.action == SCSI_ACT_DONE) ==
		      (st == SCSI_STATUS_GOOD || st == SCSI_STATUS_CONDITION_MET));
		CHECK((o.err == 0) == (o.action == SCSI_ACT_DONE));
		CHECK(o.text[0] != '\0' && memchr(o.text, '\0', sizeof o.text) != NULL);
		for (unsigned r = 1; r < 256; r += 0x3f) {
			scsi_outcome((uint8_t)r, (uint8_t)st, NULL, 0, &o);
			CHECK(o.action == SCSI_ACT_RETRY && o.err == EIO);
		}
	}
	for (unsigned code = 0x70; code <= 0x73; code++)
		for (unsigned key = 0; key < 16; key++)
			for (size_t a = 0; a < N_ELEMENTS(ascs); a++) {
				bool descriptor = code >= 0x72, deferred = code & 1;
				uint8_t fixed[] = { FIXED(key, ascs[a][0], ascs[a][1]) };
				uint8_t desc[] = { DESC(key, ascs[a][0], ascs[a][1]) };

				fixed[0] = desc[0] = (uint8_t)code;
				o = descriptor ? check_condition(desc, sizeof desc) :
					check_condition(fixed, sizeof fixed);
				CHECK(o.sense.valid && o.sense.key == key);
				CHECK((o.action == SCSI_ACT_DONE) ==
				      (!deferred && (key == SCSI_SENSE_RECOVERED_ERROR ||
						     key == SCSI_SENSE_COMPLETED)));
				if (deferred)
					CHECK(o.action == SCSI_ACT_RETRY &&
					      o.change == SCSI_CHANGE_NONE);
				CHECK((o.err == 0) == (o.action == SCSI_ACT_DONE));
				CHECK(o.action != SCSI_ACT_UNSUPPORTED || o.err == EOPNOTSUPP);
				CHECK(o.change == SCSI_CHANGE_NONE ||
				      key == SCSI_SENSE_UNIT_ATTENTION);
				CHECK(memchr(o.text, '\0', sizeof o.text) != NULL);
				/* both formats decide the same */
				if (!descriptor) {
					struct scsi_outcome d;
					desc[0] = (uint8_t)(code + 2);
					d = check_condition(desc, sizeof desc);
					CHECK(d.action == o.action && d.err == o.err &&
					      d.level == o.level && d.change == o.change);
					CHECK_STR(d.text, o.text);
				}
			}
}

static void test_sense_names(void)
{
	struct scsi_sense s = { .valid = true };
	char text[128];

	CHECK_STR(scsi_sense_key_name(0), "NO SENSE");
	CHECK_STR(scsi_sense_key_name(5), "ILLEGAL REQUEST");
	CHECK_STR(scsi_sense_key_name(7), "DATA PROTECT");
	CHECK_STR(scsi_sense_key_name(0xc), "RESERVED");
	CHECK_STR(scsi_sense_key_name(0xf), "COMPLETED");
	CHECK_STR(scsi_sense_key_name(0x10), "INVALID");
	CHECK_STR(scsi_sense_key_name(0xff), "INVALID");
	for (unsigned int k = 0; k < 256; k++)
		CHECK(scsi_sense_key_name((uint8_t)k) != NULL);

	CHECK_STR(scsi_status_name(SCSI_STATUS_CHECK_CONDITION), "CHECK CONDITION");
	CHECK_STR(scsi_status_name(SCSI_STATUS_RESERVATION_CONFLICT), "RESERVATION CONFLICT");
	CHECK_STR(scsi_status_name(0x77), "UNKNOWN STATUS");

	CHECK_STR(scsi_asc_name(0x27, 0x00), "WRITE PROTECTED");
	CHECK_STR(scsi_asc_name(0x29, 0x00), "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED");
	CHECK_STR(scsi_asc_name(0x3f, 0x0e), "REPORTED LUNS DATA HAS CHANGED");
	CHECK_STR(scsi_asc_name(0x20, 0x00), "INVALID COMMAND OPERATION CODE");
	CHECK_STR(scsi_asc_name(0x24, 0x00), "INVALID FIELD IN CDB");
	CHECK_STR(scsi_asc_name(0x3a, 0x00), "MEDIUM NOT PRESENT");
	CHECK_STR(scsi_asc_name(0x25, 0x00), "LOGICAL UNIT NOT SUPPORTED");
	CHECK_STR(scsi_asc_name(0x04, 0x1b), "LOGICAL UNIT NOT READY");
	CHECK(scsi_asc_name(0x4b, 0x99) == NULL);
	CHECK(scsi_asc_name(0xff, 0xff) == NULL);

	s.key = SCSI_SENSE_ABORTED_COMMAND;
	s.asc = 0x4b;
	s.ascq = 0x99;
	scsi_sense_describe(&s, text, sizeof text);
	CHECK_STR(text, "ABORTED COMMAND: ASC 0x4b ASCQ 0x99");

	s.key = SCSI_SENSE_NOT_READY;
	s.asc = 0x04;
	s.ascq = 0x1b;
	scsi_sense_describe(&s, text, sizeof text);
	CHECK_STR(text, "NOT READY: LOGICAL UNIT NOT READY (0x04/0x1b)");

	/* Truncation keeps a terminated string. */
	s.info_valid = true;
	s.info = 0xffffffffffffffffull;
	s.deferred = true;
	for (size_t cap = 1; cap < 90; cap++) {
		char small[90];

		memset(small, 'x', sizeof small);
		scsi_sense_describe(&s, small, cap);
		CHECK(memchr(small, '\0', cap) != NULL);
	}
	scsi_sense_describe(&s, text, 0);

	struct scsi_sense invalid = { 0 };
	scsi_sense_describe(&invalid, text, sizeof text);
	CHECK_STR(text, "no sense data");
}

/* ---- INQUIRY ---- */

static const uint8_t tgtd_inquiry[36] = {
	0x00, 0x00, 0x05, 0x02, 0x1f, 0x00, 0x00, 0x02,
	'I', 'E', 'T', ' ', ' ', ' ', ' ', ' ',
	'V', 'I', 'R', 'T', 'U', 'A', 'L', '-', 'D', 'I', 'S', 'K', ' ', ' ', ' ', ' ',
	'0', '0', '0', '1',
};

static void test_inquiry(void)
{
	struct scsi_inquiry q;
	uint8_t *b;

	CHECK(inquiry(tgtd_inquiry, sizeof tgtd_inquiry, &q) == 0);
	CHECK_EQ_U64(q.qualifier, 0);
	CHECK_EQ_U64(q.device_type, SCSI_TYPE_DISK);
	CHECK(!q.removable);
	CHECK_EQ_U64(q.version, 5);
	CHECK(q.cmdque);
	CHECK(!q.protect);
	CHECK_EQ_U64(q.tpgs, 0);
	CHECK_STR(q.vendor, "IET");
	CHECK_STR(q.product, "VIRTUAL-DISK");
	CHECK_STR(q.revision, "0001");

	/* A controller LUN, removable, ALUA, protection, odd bytes. */
	b = exact(tgtd_inquiry, sizeof tgtd_inquiry);
	b[0] = 0x0c;
	b[1] = 0x80;
	b[5] = 0x31;
	b[8] = 0x01;
	b[9] = 0xc3;
	b[35] = 0x7f;
	CHECK(inquiry(b, 36, &q) == 0);
	CHECK_EQ_U64(q.device_type, 0x0c);
	CHECK(q.removable);
	CHECK_EQ_U64(q.tpgs, 3);
	CHECK(q.protect);
	CHECK_STR(q.vendor, "??T");
	CHECK_STR(q.revision, "000?");

	/* No LU here. */
	b[0] = 0x7f;
	CHECK(inquiry(b, 36, &q) == 0);
	CHECK_EQ_U64(q.qualifier, 3);
	CHECK_EQ_U64(q.device_type, SCSI_TYPE_NONE);

	/* ADDITIONAL LENGTH lies low: the strings are not used. */
	memcpy(b, tgtd_inquiry, 36);
	b[4] = 3;
	CHECK(inquiry(b, 36, &q) == 0);
	CHECK(q.cmdque);
	CHECK_STR(q.vendor, "");
	CHECK_STR(q.product, "");
	b[4] = 14; /* 19 bytes: "VIR" of the product */
	CHECK(inquiry(b, 36, &q) == 0);
	CHECK_STR(q.vendor, "IET");
	CHECK_STR(q.product, "VIR");
	CHECK_STR(q.revision, "");
	/* ... or high: only what arrived. */
	b[4] = 0xff;
	CHECK(inquiry(b, 36, &q) == 0);
	CHECK_STR(q.revision, "0001");
	free(b);

	/* Short data. */
	CHECK(inquiry(tgtd_inquiry, 20, &q) == 0);
	CHECK_STR(q.vendor, "IET");
	CHECK_STR(q.product, "VIRT");
	CHECK_STR(q.revision, "");
	CHECK(inquiry(tgtd_inquiry, 5, &q) == 0);
	CHECK(!q.cmdque);
	CHECK(inquiry(tgtd_inquiry, 4, &q) == -1);
	CHECK(err_errno() == EPROTO);
	CHECK(inquiry(tgtd_inquiry, 0, &q) == -1);
}

/* ---- VPD ---- */

static void test_vpd_supported(void)
{
	const uint8_t page[] = { 0x00, 0x00, 0x00, 0x05, 0x00, 0x80, 0x83, 0xb0, 0xb2 };
	bool present = true;

	CHECK(vpd_supported(page, sizeof page, 0xb0, &present) == 0 && present);
	CHECK(vpd_supported(page, sizeof page, 0xb2, &present) == 0 && present);
	CHECK(vpd_supported(page, sizeof page, 0xb1, &present) == 0 && !present);
	/* Cut by len, and by PAGE LENGTH. */
	CHECK(vpd_supported(page, 8, 0xb2, &present) == 0 && !present);
	uint8_t *b = exact(page, sizeof page);
	b[3] = 2;
	CHECK(vpd_supported(b, sizeof page, 0x83, &present) == 0 && !present);
	CHECK(vpd_supported(b, sizeof page, 0x80, &present) == 0 && present);
	b[3] = 0xff;
	b[2] = 0xff;
	CHECK(vpd_supported(b, sizeof page, 0xb2, &present) == 0 && present);
	/* Wrong page, short header. */
	b[1] = 0x80;
	CHECK(vpd_supported(b, sizeof page, 0xb2, &present) == -1 && !present);
	CHECK(err_errno() == EPROTO);
	CHECK(strstr(err_msg(), "returned page 0x80") != NULL);
	free(b);
	CHECK(vpd_supported(page, 3, 0x00, &present) == -1);
	CHECK(vpd_supported(page, 4, 0x00, &present) == 0 && !present);
}

static void test_vpd_serial(void)
{
	const uint8_t page[] = { 0x00, 0x80, 0x00, 0x0a, ' ', ' ', 'S', 'N', '1', '2', '3', ' ', ' ', 0 };
	char out[64];

	CHECK(vpd_serial(page, sizeof page, out, sizeof out) == 0);
	CHECK_STR(out, "SN123");
	CHECK(vpd_serial(page, sizeof page, out, 4) == 0);
	CHECK_STR(out, "SN1");
	CHECK(vpd_serial(page, 8, out, sizeof out) == 0);
	CHECK_STR(out, "SN");
	CHECK(vpd_serial(page, 4, out, sizeof out) == 0);
	CHECK_STR(out, "");

	const uint8_t liar[] = { 0x00, 0x80, 0xff, 0xff, 'a', 0x01, 'c' };
	CHECK(vpd_serial(liar, sizeof liar, out, sizeof out) == 0);
	CHECK_STR(out, "a?c");

	strcpy(out, "junk");
	CHECK(vpd_serial(page, 3, out, sizeof out) == -1);
	CHECK_STR(out, "");
	CHECK(vpd_serial(B(0x00, 0x83, 0x00, 0x01, 'x'), 5, out, sizeof out) == -1);
}

static void test_vpd_device_id(void)
{
	/* As tgtd answers: T10 vendor ID, NAA 6, then a target port NAA. */
	const uint8_t page[] = {
		0x00, 0x83, 0x00, 0x44,
		0x02, 0x01, 0x00, 0x20,
		'I', 'E', 'T', ' ', ' ', ' ', ' ', ' ',
		'V', 'I', 'R', 'T', 'U', 'A', 'L', '-', 'D', 'I', 'S', 'K', ' ', ' ', ' ', ' ',
		'1', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
		0x01, 0x03, 0x00, 0x10,
		0x60, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01,
		0x01, 0x13, 0x00, 0x08,
		0x50, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	};
	char out[80];
	uint8_t *b;

	CHECK(sizeof page == 4 + 0x44);
	CHECK(vpd_devid(page, sizeof page, out, sizeof out) == 0);
	CHECK_STR(out, "naa.60000000000000000e00000000010001");

	/* Cut by len before the NAA: the T10 vendor ID. */
	CHECK(vpd_devid(page, 40, out, sizeof out) == 0);
	CHECK_STR(out, "t10.IET     VIRTUAL-DISK    1");

	/* NAA of a length NAA cannot have: skipped. */
	b = exact(page, sizeof page);
	b[43] = 0x0c;
	CHECK(vpd_devid(b, sizeof page, out, sizeof out) == 0);
	CHECK(strncmp(out, "t10.", 4) == 0);

	/* Every designator about the target port, none about the LU. */
	b[43] = 0x10;
	b[41] = 0x13;
	b[5] = 0x11;
	CHECK(vpd_devid(b, sizeof page, out, sizeof out) == 0);
	CHECK_STR(out, "");

	/* Page length lies high: clamped, the walk still finds the NAA. */
	memcpy(b, page, sizeof page);
	b[2] = 0xff;
	CHECK(vpd_devid(b, sizeof page, out, sizeof out) == 0);
	CHECK_STR(out, "naa.60000000000000000e00000000010001");
	/* A descriptor that runs past the page stops the walk. */
	b[2] = 0x00;
	b[7] = 0xf0;
	CHECK(vpd_devid(b, sizeof page, out, sizeof out) == 0);
	CHECK_STR(out, "");
	free(b);

	/* EUI-64, and a SCSI name string. */
	const uint8_t eui[] = {
		0x00, 0x83, 0x00, 0x1c,
		0x53, 0x08, 0x00, 0x0c, 'i', 'q', 'n', '.', 'x', ':', 'y', 0, 0, 0, 0, 0,
		0x01, 0x02, 0x00, 0x08, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	};
	CHECK(vpd_devid(eui, sizeof eui, out, sizeof out) == 0);
	CHECK_STR(out, "eui.0123456789abcdef");
	CHECK(vpd_devid(eui, 20, out, sizeof out) == 0);
	CHECK_STR(out, "iqn.x:y");

	/* Small output buffers. */
	CHECK(vpd_devid(page, sizeof page, out, 8) == 0);
	CHECK_STR(out, "naa.60");
	CHECK(vpd_devid(page, 40, out, 6) == 0);
	CHECK_STR(out, "t10.I");
	CHECK(vpd_devid(page, 40, out, 4) == 0);
	CHECK_STR(out, "");

	CHECK(vpd_devid(page, 2, out, sizeof out) == -1);
	CHECK(vpd_devid(B(0x00, 0x80, 0x00, 0x00), 4, out, sizeof out) == -1);
	CHECK(vpd_devid(B(0x00, 0x83, 0x00, 0x00), 4, out, sizeof out) == 0);
	CHECK_STR(out, "");
}

static void test_vpd_block_limits(void)
{
	uint8_t page[64] = { 0x00, 0xb0, 0x00, 0x3c };
	struct scsi_block_limits bl;

	page[6] = 0x00, page[7] = 0x08;
	page[8] = 0x00, page[9] = 0x00, page[10] = 0x40, page[11] = 0x00;
	page[12] = 0x00, page[13] = 0x00, page[14] = 0x04, page[15] = 0x00;
	page[20] = 0xff, page[21] = 0xff, page[22] = 0xff, page[23] = 0xff;
	page[27] = 0x01;
	page[31] = 0x08;
	page[32] = 0x80, page[35] = 0x04;
	page[41] = 0x01, page[43] = 0x02;

	CHECK(vpd_bl(page, sizeof page, &bl) == 0);
	CHECK_EQ_U64(bl.opt_transfer_granularity, 8);
	CHECK_EQ_U64(bl.max_transfer_blocks, 0x4000);
	CHECK_EQ_U64(bl.opt_transfer_blocks, 0x400);
	CHECK_EQ_U64(bl.max_unmap_blocks, 0xffffffff);
	CHECK_EQ_U64(bl.max_unmap_descriptors, 1);
	CHECK_EQ_U64(bl.unmap_granularity, 8);
	CHECK(bl.unmap_alignment_valid);
	CHECK_EQ_U64(bl.unmap_alignment, 4);
	CHECK_EQ_U64(bl.max_write_same_blocks, 0x10002);

	/* The old short form (PAGE LENGTH 0x0c). */
	uint8_t *b = exact(page, sizeof page);
	b[3] = 0x0c;
	CHECK(vpd_bl(b, sizeof page, &bl) == 0);
	CHECK_EQ_U64(bl.max_transfer_blocks, 0x4000);
	CHECK_EQ_U64(bl.opt_transfer_blocks, 0x400);
	CHECK_EQ_U64(bl.max_unmap_blocks, 0);
	CHECK(!bl.unmap_alignment_valid);
	CHECK_EQ_U64(bl.max_write_same_blocks, 0);
	free(b);

	/* Cut by len in the middle of a field: that field reads 0. */
	CHECK(vpd_bl(page, 22, &bl) == 0);
	CHECK_EQ_U64(bl.opt_transfer_blocks, 0x400);
	CHECK_EQ_U64(bl.max_unmap_blocks, 0);
	CHECK(vpd_bl(page, 40, &bl) == 0);
	CHECK(bl.unmap_alignment_valid);
	CHECK_EQ_U64(bl.max_write_same_blocks, 0);
	CHECK(vpd_bl(page, 4, &bl) == 0);
	CHECK_EQ_U64(bl.max_transfer_blocks, 0);
	CHECK(vpd_bl(page, 3, &bl) == -1);
	CHECK(vpd_bl(B(0x00, 0xb2, 0x00, 0x00), 4, &bl) == -1);
}

static void test_vpd_lbp(void)
{
	struct scsi_lbp l;

	CHECK(vpd_lbp(B(0x00, 0xb2, 0x00, 0x04, 0x00, 0xe4, 0x02, 0x00), 8, &l) == 0);
	CHECK(l.unmap && l.write_same16 && l.write_same10 && l.lbprz);
	CHECK_EQ_U64(l.provisioning_type, 2);
	/* SBC-4 three-bit LBPRZ: xx1b alone says unmapped blocks read as
	 * zeros; 010b says they read as the provisioning initialization
	 * pattern, which need not be zeros. */
	CHECK(vpd_lbp(B(0x00, 0xb2, 0x00, 0x04, 0x00, 0x88, 0x00, 0x00), 8, &l) == 0);
	CHECK(l.unmap && !l.write_same16 && !l.write_same10 && !l.lbprz);
	CHECK_EQ_U64(l.provisioning_type, 0);
	CHECK(vpd_lbp(B(0x00, 0xb2, 0x00, 0x04, 0x00, 0x8c, 0x00, 0x00), 8, &l) == 0);
	CHECK(l.unmap && l.lbprz);        /* 011b */
	CHECK(vpd_lbp(B(0x00, 0xb2, 0x00, 0x04, 0x00, 0x84, 0x00, 0x00), 8, &l) == 0);
	CHECK(l.unmap && l.lbprz);        /* 001b, and SBC-3's one bit */
	CHECK(vpd_lbp(B(0x00, 0xb2, 0x00, 0x04, 0x00, 0x40, 0x01, 0x00), 8, &l) == 0);
	CHECK(!l.unmap && l.write_same16 && !l.lbprz);
	/* Short: flags there, type not. */
	CHECK(vpd_lbp(B(0x00, 0xb2, 0x00, 0x04, 0x00, 0x80, 0x02), 6, &l) == 0);
	CHECK(l.unmap);
	CHECK_EQ_U64(l.provisioning_type, 0);
	/* No flags. */
	CHECK(vpd_lbp(B(0x00, 0xb2, 0x00, 0x04, 0x00), 5, &l) == -1);
	CHECK(vpd_lbp(B(0x00, 0xb2, 0x00, 0x01, 0x00, 0x80, 0x02, 0x00), 8, &l) == -1);
	CHECK(!l.unmap);
	CHECK(vpd_lbp(B(0x00, 0xb0, 0x00, 0x04, 0x00, 0x80, 0x02, 0x00), 8, &l) == -1);
}

/* ---- capacity ---- */

static void test_capacity10(void)
{
	struct scsi_capacity c;

	CHECK(cap10(B(0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x02, 0x00), 8, &c) == 0);
	CHECK_EQ_U64(c.blocks, 0x10000);
	CHECK_EQ_U64(c.block_size, 512);
	CHECK(cap10(B(0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00), 8, &c) == 0);
	CHECK_EQ_U64(c.blocks, 1);
	CHECK_EQ_U64(c.block_size, 4096);
	CHECK(cap10(B(0xff, 0xff, 0xff, 0xfe, 0x00, 0x10, 0x00, 0x00), 8, &c) == 0);
	CHECK_EQ_U64(c.blocks, 0xffffffffull);
	CHECK_EQ_U64(c.block_size, 1024 * 1024);
	CHECK_EQ_U64(c.lbppbe, 0);
	CHECK(!c.lbpme);

	/* Too big for READ CAPACITY(10). */
	CHECK(cap10(B(0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x02, 0x00), 8, &c) == 1);
	CHECK_EQ_U64(c.blocks, 0);

	/* Bad block lengths. */
	static const uint32_t bad[] = { 0, 1, 256, 511, 513, 520, 3000, 4095, 2 * 1024 * 1024, 0x80000000u, 0xffffffffu };
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		uint8_t b[8] = { 0, 0, 0x10, 0 };

		b[4] = (uint8_t)(bad[i] >> 24);
		b[5] = (uint8_t)(bad[i] >> 16);
		b[6] = (uint8_t)(bad[i] >> 8);
		b[7] = (uint8_t)bad[i];
		err_set(0, "%s", "");
		CHECK(cap10(b, 8, &c) == -1);
		CHECK(err_errno() == EPROTO);
		CHECK(strstr(err_msg(), "logical block length") != NULL);
	}
	CHECK(cap10(B(0, 0, 0, 0, 0, 0, 2), 7, &c) == -1);
	CHECK(cap10(B(0), 0, &c) == -1);
}

static void test_capacity16(void)
{
	uint8_t d[32] = {
		0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0xff, 0xff,
		0x00, 0x00, 0x10, 0x00,
		0x00, 0x03, 0xc0, 0x05,
	};
	struct scsi_capacity c;

	CHECK(cap16(d, sizeof d, &c) == 0);
	CHECK_EQ_U64(c.blocks, 0x200000);
	CHECK_EQ_U64(c.block_size, 4096);
	CHECK_EQ_U64(c.lbppbe, 3);
	CHECK(c.lbpme && c.lbprz);
	CHECK_EQ_U64(c.lowest_aligned, 5);

	/* 12 bytes: no flags.  13: still none.  14: exponent only. */
	CHECK(cap16(d, 12, &c) == 0);
	CHECK_EQ_U64(c.blocks, 0x200000);
	CHECK_EQ_U64(c.lbppbe, 0);
	CHECK(!c.lbpme);
	CHECK(cap16(d, 14, &c) == 0);
	CHECK_EQ_U64(c.lbppbe, 3);
	CHECK(!c.lbpme && !c.lbprz);
	CHECK_EQ_U64(c.lowest_aligned, 0);
	CHECK(cap16(d, 11, &c) == -1);
	CHECK(err_errno() == EPROTO);

	/* Capacity 0: last LBA all ones. */
	memset(d, 0xff, 8);
	err_set(0, "%s", "");
	CHECK(cap16(d, sizeof d, &c) == -1);
	CHECK(strstr(err_msg(), "capacity of 0 blocks") != NULL);
	CHECK_EQ_U64(c.blocks, 0);

	/* More bytes than an off_t holds: 2^54 blocks of 512 = 2^63. */
	memset(d, 0, 8);
	d[1] = 0x40; /* last LBA 2^54 */
	d[10] = 0x02; /* 512 */
	d[11] = 0x00;
	CHECK(cap16(d, sizeof d, &c) == -1);
	CHECK(strstr(err_msg(), "more than a file can hold") != NULL);
	/* Largest that fits: 2^54 - 1 blocks. */
	memset(d, 0xff, 8);
	d[0] = 0x00;
	d[1] = 0x3f;
	d[7] = 0xfe;
	CHECK(cap16(d, sizeof d, &c) == 0);
	CHECK_EQ_U64(c.blocks, (1ull << 54) - 1);
	/* Large block length and LBA overflow together. */
	d[8] = 0, d[9] = 0x10, d[10] = 0, d[11] = 0; /* 1 MiB */
	CHECK(cap16(d, sizeof d, &c) == -1);

	/* Bad block lengths. */
	memset(d, 0, sizeof d);
	d[7] = 0x10;
	CHECK(cap16(d, sizeof d, &c) == -1); /* 0 */
	d[10] = 0x0b, d[11] = 0xb8; /* 3000 */
	CHECK(cap16(d, sizeof d, &c) == -1);
	d[10] = 0x02, d[11] = 0x00; /* 512 */
	CHECK(cap16(d, sizeof d, &c) == 0);
	CHECK_EQ_U64(c.blocks, 0x11);
}

/* ---- REPORT LUNS ---- */

static void test_report_luns(void)
{
	const uint8_t data[] = {
		0x00, 0x00, 0x00, 0x18, 0, 0, 0, 0,
		0x00, 0x00, 0, 0, 0, 0, 0, 0,
		0x00, 0x01, 0, 0, 0, 0, 0, 0,
		0x40, 0x00 | 0x01, 0x00, 0, 0, 0, 0, 0,
	};
	uint64_t out[8];
	size_t count = 99;

	CHECK(luns(data, sizeof data, out, 8, &count) == 0);
	CHECK_EQ_U64(count, 3);
	CHECK_EQ_U64(out[0], 0);
	CHECK_EQ_U64(out[1], 0x0001000000000000ull);
	CHECK_EQ_U64(out[2], 0x4001000000000000ull);
	CHECK_EQ_U64(scsi_report_luns_needed(data, sizeof data), 32);

	/* Cut by max. */
	CHECK(luns(data, sizeof data, out, 2, &count) == 1);
	CHECK_EQ_U64(count, 2);
	CHECK(luns(data, sizeof data, out, 0, &count) == 1);
	CHECK_EQ_U64(count, 0);
	/* Cut by len, mid-entry. */
	CHECK(luns(data, sizeof data - 4, out, 8, &count) == 1);
	CHECK_EQ_U64(count, 2);
	CHECK(luns(data, 8, out, 8, &count) == 1);
	CHECK_EQ_U64(count, 0);
	/* LUN LIST LENGTH smaller than what arrived: only what it claims. */
	uint8_t *b = exact(data, sizeof data);
	b[3] = 0x08;
	CHECK(luns(b, sizeof data, out, 8, &count) == 0);
	CHECK_EQ_U64(count, 1);
	/* Empty list. */
	b[3] = 0x00;
	CHECK(luns(b, sizeof data, out, 8, &count) == 0);
	CHECK_EQ_U64(count, 0);
	/* A huge claim. */
	b[0] = 0xff, b[1] = 0xff, b[2] = 0xff, b[3] = 0xf8;
	CHECK(luns(b, sizeof data, out, 8, &count) == 1);
	CHECK_EQ_U64(count, 3);
	CHECK_EQ_U64(scsi_report_luns_needed(b, sizeof data), 0x100000000ull);
	/* Not a multiple of 8. */
	b[0] = 0, b[1] = 0, b[2] = 0, b[3] = 0x17;
	count = 99;
	CHECK(luns(b, sizeof data, out, 8, &count) == -1);
	CHECK(err_errno() == EPROTO);
	CHECK_EQ_U64(count, 0);
	free(b);
	CHECK(luns(data, 7, out, 8, &count) == -1);
	CHECK_EQ_U64(scsi_report_luns_needed(data, 3), 0);
	CHECK_EQ_U64(scsi_report_luns_needed(data, 4), 32);
}

/* ---- MODE SENSE ---- */

static void test_mode_sense(void)
{
	bool wp = true;

	CHECK(mode_wp(B(0x03, 0x00, 0x80, 0x00), 4, false, &wp) == 0 && wp);
	CHECK(mode_wp(B(0x03, 0x00, 0x00, 0x00), 4, false, &wp) == 0 && !wp);
	CHECK(mode_wp(B(0x17, 0x00, 0x90, 0x08), 4, false, &wp) == 0 && wp);
	CHECK(mode_wp(B(0x03, 0x00, 0x80), 3, false, &wp) == 0 && wp);
	CHECK(mode_wp(B(0x03, 0x00), 2, false, &wp) == -1 && !wp);
	CHECK(err_errno() == EPROTO);
	/* MODE DATA LENGTH says the byte is not there. */
	CHECK(mode_wp(B(0x01, 0x00, 0x80, 0x00), 4, false, &wp) == -1);
	CHECK(mode_wp(B(0), 0, false, &wp) == -1);

	CHECK(mode_wp(B(0x00, 0x06, 0x00, 0x80, 0, 0, 0, 0), 8, true, &wp) == 0 && wp);
	CHECK(mode_wp(B(0x00, 0x06, 0x00, 0x00, 0, 0, 0, 0), 8, true, &wp) == 0 && !wp);
	CHECK(mode_wp(B(0xff, 0xff, 0x00, 0x80), 4, true, &wp) == 0 && wp);
	CHECK(mode_wp(B(0x00, 0x06, 0x00), 3, true, &wp) == -1);
	CHECK(mode_wp(B(0x00, 0x01, 0x00, 0x80), 4, true, &wp) == -1);
	CHECK(mode_wp(B(0x00), 1, true, &wp) == -1);

	/* DPOFUA: bit 4 of the same byte */
	bool fua = false;
	uint8_t six[] = { 0x03, 0x00, 0x10, 0x00 }, ten[] = { 0x00, 0x06, 0x00, 0x90, 0, 0, 0, 0 };
	CHECK(scsi_parse_mode_sense_wp(six, sizeof six, false, &wp, &fua) == 0 && !wp && fua);
	CHECK(scsi_parse_mode_sense_wp(ten, sizeof ten, true, &wp, &fua) == 0 && wp && fua);
	six[2] = 0x80;
	CHECK(scsi_parse_mode_sense_wp(six, sizeof six, false, &wp, &fua) == 0 && wp && !fua);
	CHECK(scsi_parse_mode_sense_wp(six, 2, false, &wp, &fua) == -1 && !wp && !fua);
}

/* ---- every parser on every prefix, and on random bytes ---- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

/* GET LBA STATUS data over an exact-size copy. */
static int lba_status(const uint8_t *b, size_t len, uint32_t alloc, uint64_t start,
		      uint64_t capacity, struct scsi_lba_status *out, size_t max, size_t *count)
{
	uint8_t *c = exact(b, len);
	int r = scsi_parse_lba_status(c, len, alloc, start, capacity, out, max, count);

	free(c);
	return r;
}

static void run_all_parsers(const uint8_t *buf, size_t len)
{
	struct scsi_sense s;
	struct scsi_inquiry q;
	struct scsi_block_limits bl;
	struct scsi_lbp l;
	struct scsi_capacity c;
	uint64_t out[4];
	size_t count;
	bool flag;
	char text[64];

	if (sense(buf, len, &s) == 0) {
		scsi_sense_describe(&s, text, sizeof text);
		CHECK(strlen(text) < sizeof text);
	}
	struct scsi_outcome o = check_condition(buf, len);
	CHECK(o.action != SCSI_ACT_DONE || o.err == 0);
	CHECK(memchr(o.text, '\0', sizeof o.text) != NULL);
	inquiry(buf, len, &q);
	vpd_supported(buf, len, 0xb0, &flag);
	vpd_serial(buf, len, text, sizeof text);
	CHECK(strlen(text) < sizeof text);
	vpd_devid(buf, len, text, sizeof text);
	CHECK(strlen(text) < sizeof text);
	vpd_bl(buf, len, &bl);
	vpd_lbp(buf, len, &l);
	if (cap10(buf, len, &c) == 0)
		CHECK(c.blocks > 0 && c.block_size >= 512);
	if (cap16(buf, len, &c) == 0)
		CHECK(c.blocks > 0 && c.blocks <= (uint64_t)INT64_MAX / c.block_size);
	if (luns(buf, len, out, 4, &count) >= 0)
		CHECK(count <= 4 && count * 8 + 8 <= len);
	mode_wp(buf, len, false, &flag);
	mode_wp(buf, len, true, &flag);
	struct scsi_lba_status d[4];
	if (lba_status(buf, len, 300, 0, 1u << 20, d, 4, &count) == 0) {
		CHECK(count >= 1 && count <= 4);
		for (size_t k = 0; k < count; k++)
			CHECK(d[k].blocks > 0 && d[k].lba + d[k].blocks <= (1u << 20) &&
			      (k == 0 ? d[k].lba == 0 : d[k].lba == d[k - 1].lba + d[k - 1].blocks));
	}
}

/* A GET LBA STATUS descriptor as 16 bytes. */
#define LBAD(lba, blocks, status)                                          \
	(uint8_t)((uint64_t)(lba) >> 56), (uint8_t)((uint64_t)(lba) >> 48),   \
	(uint8_t)((uint64_t)(lba) >> 40), (uint8_t)((uint64_t)(lba) >> 32),   \
	(uint8_t)((lba) >> 24), (uint8_t)((lba) >> 16), (uint8_t)((lba) >> 8), \
	(uint8_t)(lba), (uint8_t)((blocks) >> 24), (uint8_t)((blocks) >> 16), \
	(uint8_t)((blocks) >> 8), (uint8_t)(blocks), (status), 0, 0, 0
/* The header: PARAMETER DATA LENGTH for @n descriptors. */
#define LBAH(n) 0, 0, 0, (uint8_t)(4 + 16 * (n)), 0, 0, 0, 0

/* One GET LBA STATUS answer and what the parser makes of it. */
struct lba_case {
	const char *name;             /* what it shows */
	const uint8_t *data;          /* the parameter data */
	size_t len;                   /* its length */
	uint32_t alloc;               /* ALLOCATION LENGTH asked with */
	uint64_t start;               /* STARTING LBA asked for */
	int rc;                       /* expected return */
	size_t count;                 /* descriptors expected */
	uint64_t end;                 /* where the last one ends (rc 0) */
	unsigned holes;               /* deallocated or anchored ones */
	const char *err;              /* a word of the error message (rc -1) */
};

#define LBA_CASE(nm, alloc_, start_, rc_, count_, end_, holes_, err_, ...) \
	{ .name = nm, .data = B(__VA_ARGS__), .len = BLEN(__VA_ARGS__),   \
	  .alloc = alloc_, .start = start_, .rc = rc_, .count = count_,   \
	  .end = end_, .holes = holes_, .err = err_ }

static void test_lba_status(void)
{
	/* capacity 1000 blocks throughout */
	const struct lba_case cases[] = {
		LBA_CASE("one mapped extent to the end", 4096, 0, 0, 1, 1000, 0, NULL,
			 LBAH(1), LBAD(0, 1000, 0)),
		LBA_CASE("data, hole, anchored, data", 4096, 10, 0, 4, 1000, 2, NULL,
			 LBAH(4), LBAD(10, 5, 0), LBAD(15, 100, 1), LBAD(115, 5, 2),
			 LBAD(120, 880, 0)),
		LBA_CASE("status 3 and reserved ones count as data", 4096, 0, 0, 2, 20, 0, NULL,
			 LBAH(2), LBAD(0, 10, 3), LBAD(10, 10, 0x0e)),
		LBA_CASE("truncated by the allocation length: complete ones used", 40, 0, 0, 2, 20,
			 1, NULL, 0, 0, 0, 4 + 16 * 5, 0, 0, 0, 0, LBAD(0, 10, 1), LBAD(10, 10, 0)),
		LBA_CASE("a partial descriptor after a complete one is left out", 30, 0, 0, 1, 10,
			 1, NULL, 0, 0, 0, 4 + 16 * 2, 0, 0, 0, 0, LBAD(0, 10, 1), 0, 0, 0, 0, 0, 0),
		LBA_CASE("more than asked", 24, 0, -1, 0, 0, 0, "allocation length",
			 LBAH(2), LBAD(0, 10, 1), LBAD(10, 10, 0)),
		LBA_CASE("more than the header declares", 4096, 0, -1, 0, 0, 0, "declares",
			 LBAH(1), LBAD(0, 10, 1), LBAD(10, 10, 0)),
		LBA_CASE("header only", 4096, 0, -1, 0, 0, 0, "at least", LBAH(0)),
		LBA_CASE("length not 4 + 16n", 4096, 0, -1, 0, 0, 0, "multiple",
			 0, 0, 0, 21, 0, 0, 0, 0, LBAD(0, 10, 1)),
		LBA_CASE("length 4: no descriptor", 4096, 0, -1, 0, 0, 0, "multiple",
			 0, 0, 0, 4, 0, 0, 0, 0, LBAD(0, 10, 1)),
		LBA_CASE("first not at the asked LBA", 4096, 5, -1, 0, 0, 0, "starts at",
			 LBAH(1), LBAD(0, 10, 1)),
		LBA_CASE("first after the asked LBA", 4096, 5, -1, 0, 0, 0, "starts at",
			 LBAH(1), LBAD(6, 10, 1)),
		LBA_CASE("zero length", 4096, 0, -1, 0, 0, 0, "0 blocks",
			 LBAH(2), LBAD(0, 10, 0), LBAD(10, 0, 1)),
		LBA_CASE("overlapping", 4096, 0, -1, 0, 0, 0, "overlaps",
			 LBAH(2), LBAD(0, 10, 0), LBAD(5, 10, 1)),
		LBA_CASE("out of order", 4096, 100, -1, 0, 0, 0, "overlaps",
			 LBAH(2), LBAD(100, 10, 0), LBAD(0, 10, 1)),
		LBA_CASE("a gap", 4096, 0, -1, 0, 0, 0, "leaving out",
			 LBAH(2), LBAD(0, 10, 0), LBAD(11, 10, 1)),
		LBA_CASE("beyond the capacity", 4096, 0, -1, 0, 0, 0, "capacity",
			 LBAH(2), LBAD(0, 990, 0), LBAD(990, 11, 1)),
		LBA_CASE("starting past the capacity", 4096, 1000, -1, 0, 0, 0, "capacity",
			 LBAH(1), LBAD(1000, 1, 1)),
		LBA_CASE("LBA + blocks wrapping around", 4096, 0xfffffffffffffff0ull, -1, 0, 0, 0,
			 "capacity", LBAH(1), LBAD(0xfffffffffffffff0ull, 0x20, 1)),
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		const struct lba_case *c = &cases[i];
		struct scsi_lba_status d[8];
		size_t count = 99;
		int rc = lba_status(c->data, c->len, c->alloc, c->start, 1000, d, 8, &count);
		unsigned holes = 0;

		CHECK_EQ_U64(rc, c->rc);
		if (rc != c->rc) {
			fprintf(stderr, "  case \"%s\": %s\n", c->name, rc ? err_msg() : "accepted");
			continue;
		}
		if (rc < 0) {
			CHECK(count == 0);
			CHECK(err_errno() == EPROTO);
			CHECK(strstr(err_msg(), c->err) != NULL);
			if (!strstr(err_msg(), c->err))
				fprintf(stderr, "  case \"%s\": %s\n", c->name, err_msg());
			continue;
		}
		CHECK_EQ_U64(count, c->count);
		for (size_t k = 0; k < count; k++)
			holes += !d[k].mapped;
		CHECK_EQ_U64(holes, c->holes);
		CHECK_EQ_U64(d[count - 1].lba + d[count - 1].blocks, c->end);
	}

	/* What each descriptor says, and @max cutting the list. */
	static const uint8_t three[] = { LBAH(3), LBAD(7, 3, 0), LBAD(10, 2, 1), LBAD(12, 4, 2) };
	struct scsi_lba_status d[3];
	size_t count;
	CHECK(lba_status(three, sizeof three, 4096, 7, 1000, d, 3, &count) == 0);
	CHECK(count == 3);
	CHECK(d[0].lba == 7 && d[0].blocks == 3 && d[0].mapped && !d[0].anchored);
	CHECK(d[1].lba == 10 && d[1].blocks == 2 && !d[1].mapped && !d[1].anchored);
	CHECK(d[2].lba == 12 && d[2].blocks == 4 && !d[2].mapped && d[2].anchored);
	CHECK(lba_status(three, sizeof three, 4096, 7, 1000, d, 2, &count) == 0);
	CHECK(count == 2);
}

static void test_hostile(void)
{
	uint8_t buf[300];

	/* Every prefix of the samples above. */
	for (size_t n = 0; n <= sizeof tgtd_inquiry; n++)
		run_all_parsers(tgtd_inquiry, n);

	/* Random bytes, biased to look like the real thing. */
	for (int round = 0; round < 20000; round++) {
		size_t len = rng() % sizeof buf;
		static const uint8_t firsts[] = { 0x00, 0x70, 0x71, 0x72, 0x73, 0xf0 };
		static const uint8_t pages[] = { 0x00, 0x80, 0x83, 0xb0, 0xb2 };

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rng();
		if (len > 0)
			buf[0] = firsts[rng() % sizeof firsts];
		if (len > 1 && (rng() & 1))
			buf[1] = pages[rng() % sizeof pages];
		if (len > 3 && (rng() & 1)) {
			buf[2] = 0;
			buf[3] = (uint8_t)(rng() % 80);
		}
		if (len > 7 && (rng() & 1))
			buf[7] = (uint8_t)(rng() % 40);
		run_all_parsers(buf, len);
	}
}

int main(void)
{
	test_cdbs();
	test_sense_fixed();
	test_sense_descriptor();
	test_outcome_table();
	test_outcome_properties();
	test_sense_names();
	test_inquiry();
	test_vpd_supported();
	test_vpd_serial();
	test_vpd_device_id();
	test_vpd_block_limits();
	test_vpd_lbp();
	test_capacity10();
	test_capacity16();
	test_report_luns();
	test_mode_sense();
	test_lba_status();
	test_hostile();
	return test_done("test_scsi");
}
