/* test_pdu.c: unit tests of pdu.h and pdu.c, and the serial number
 * helpers of wire.h.
 *
 * Every field of every BHS struct is checked against the byte offset and
 * size RFC 7143 section 11 gives it; every initiator PDU is built and
 * compared with the bytes the RFC prescribes, then read back; every
 * target PDU is read from hand-written bytes.
 *
 * Thread model: single-threaded test program.
 */
#include <errno.h>
#include <stddef.h>

#include "log.h"
#include "pdu.h"
#include "testlib.h"
#include "wire.h"

/* ---- layouts ---- */

/* One field of one BHS: where the struct puts it, where RFC 7143 puts it. */
struct field_case {
	const char *name;  /* "struct.field" */
	size_t off;        /* offsetof() in the struct */
	size_t size;       /* sizeof the member */
	size_t want_off;   /* RFC 7143 section 11 byte offset */
	size_t want_size;  /* its size in bytes */
};

#define FLD(type, field, o, s)                                          \
	{ #type "." #field, offsetof(struct iscsi_bhs_##type, field),   \
	  sizeof(((struct iscsi_bhs_##type *)0)->field), (o), (s) }

static const struct field_case fields[] = {
	/* 11.2 common BHS */
	FLD(common, opcode, 0, 1), FLD(common, flags, 1, 1),
	FLD(common, ahs_len, 4, 1), FLD(common, data_len, 5, 3),
	FLD(common, lun, 8, 8), FLD(common, itt, 16, 4),
	FLD(common, spec20, 20, 28),
	/* 11.3 SCSI Command */
	FLD(scsi_cmd, opcode, 0, 1), FLD(scsi_cmd, flags, 1, 1),
	FLD(scsi_cmd, ahs_len, 4, 1), FLD(scsi_cmd, data_len, 5, 3),
	FLD(scsi_cmd, lun, 8, 8), FLD(scsi_cmd, itt, 16, 4),
	FLD(scsi_cmd, exp_xfer_len, 20, 4), FLD(scsi_cmd, cmdsn, 24, 4),
	FLD(scsi_cmd, exp_statsn, 28, 4), FLD(scsi_cmd, cdb, 32, 16),
	/* 11.4 SCSI Response */
	FLD(scsi_rsp, flags, 1, 1), FLD(scsi_rsp, response, 2, 1),
	FLD(scsi_rsp, status, 3, 1), FLD(scsi_rsp, ahs_len, 4, 1),
	FLD(scsi_rsp, data_len, 5, 3), FLD(scsi_rsp, itt, 16, 4),
	FLD(scsi_rsp, snack_tag, 20, 4), FLD(scsi_rsp, statsn, 24, 4),
	FLD(scsi_rsp, exp_cmdsn, 28, 4), FLD(scsi_rsp, max_cmdsn, 32, 4),
	FLD(scsi_rsp, exp_datasn, 36, 4), FLD(scsi_rsp, bidi_residual, 40, 4),
	FLD(scsi_rsp, residual, 44, 4),
	/* 11.5 Task Management Function Request */
	FLD(tmf_req, flags, 1, 1), FLD(tmf_req, lun, 8, 8),
	FLD(tmf_req, itt, 16, 4), FLD(tmf_req, ref_itt, 20, 4),
	FLD(tmf_req, cmdsn, 24, 4), FLD(tmf_req, exp_statsn, 28, 4),
	FLD(tmf_req, ref_cmdsn, 32, 4), FLD(tmf_req, exp_datasn, 36, 4),
	/* 11.6 Task Management Function Response */
	FLD(tmf_rsp, response, 2, 1), FLD(tmf_rsp, itt, 16, 4),
	FLD(tmf_rsp, statsn, 24, 4), FLD(tmf_rsp, exp_cmdsn, 28, 4),
	FLD(tmf_rsp, max_cmdsn, 32, 4),
	/* 11.7 SCSI Data-Out */
	FLD(data_out, data_len, 5, 3), FLD(data_out, lun, 8, 8),
	FLD(data_out, itt, 16, 4), FLD(data_out, ttt, 20, 4),
	FLD(data_out, exp_statsn, 28, 4), FLD(data_out, datasn, 36, 4),
	FLD(data_out, buffer_offset, 40, 4),
	/* 11.7 SCSI Data-In */
	FLD(data_in, flags, 1, 1), FLD(data_in, status, 3, 1),
	FLD(data_in, data_len, 5, 3), FLD(data_in, lun, 8, 8),
	FLD(data_in, itt, 16, 4), FLD(data_in, ttt, 20, 4),
	FLD(data_in, statsn, 24, 4), FLD(data_in, exp_cmdsn, 28, 4),
	FLD(data_in, max_cmdsn, 32, 4), FLD(data_in, datasn, 36, 4),
	FLD(data_in, buffer_offset, 40, 4), FLD(data_in, residual, 44, 4),
	/* 11.8 R2T */
	FLD(r2t, lun, 8, 8), FLD(r2t, itt, 16, 4), FLD(r2t, ttt, 20, 4),
	FLD(r2t, statsn, 24, 4), FLD(r2t, exp_cmdsn, 28, 4),
	FLD(r2t, max_cmdsn, 32, 4), FLD(r2t, r2tsn, 36, 4),
	FLD(r2t, buffer_offset, 40, 4), FLD(r2t, desired_len, 44, 4),
	/* 11.9 Asynchronous Message */
	FLD(async, lun, 8, 8), FLD(async, itt, 16, 4),
	FLD(async, statsn, 24, 4), FLD(async, exp_cmdsn, 28, 4),
	FLD(async, max_cmdsn, 32, 4), FLD(async, event, 36, 1),
	FLD(async, vcode, 37, 1), FLD(async, param1, 38, 2),
	FLD(async, param2, 40, 2), FLD(async, param3, 42, 2),
	/* 11.10 Text Request */
	FLD(text_req, flags, 1, 1), FLD(text_req, data_len, 5, 3),
	FLD(text_req, lun, 8, 8), FLD(text_req, itt, 16, 4),
	FLD(text_req, ttt, 20, 4), FLD(text_req, cmdsn, 24, 4),
	FLD(text_req, exp_statsn, 28, 4),
	/* 11.11 Text Response */
	FLD(text_rsp, lun, 8, 8), FLD(text_rsp, itt, 16, 4),
	FLD(text_rsp, ttt, 20, 4), FLD(text_rsp, statsn, 24, 4),
	FLD(text_rsp, exp_cmdsn, 28, 4), FLD(text_rsp, max_cmdsn, 32, 4),
	/* 11.12 Login Request */
	FLD(login_req, flags, 1, 1), FLD(login_req, version_max, 2, 1),
	FLD(login_req, version_min, 3, 1), FLD(login_req, data_len, 5, 3),
	FLD(login_req, isid, 8, 6), FLD(login_req, tsih, 14, 2),
	FLD(login_req, itt, 16, 4), FLD(login_req, cid, 20, 2),
	FLD(login_req, cmdsn, 24, 4), FLD(login_req, exp_statsn, 28, 4),
	/* 11.13 Login Response */
	FLD(login_rsp, flags, 1, 1), FLD(login_rsp, version_max, 2, 1),
	FLD(login_rsp, version_active, 3, 1), FLD(login_rsp, data_len, 5, 3),
	FLD(login_rsp, isid, 8, 6), FLD(login_rsp, tsih, 14, 2),
	FLD(login_rsp, itt, 16, 4), FLD(login_rsp, statsn, 24, 4),
	FLD(login_rsp, exp_cmdsn, 28, 4), FLD(login_rsp, max_cmdsn, 32, 4),
	FLD(login_rsp, status_class, 36, 1), FLD(login_rsp, status_detail, 37, 1),
	/* 11.14 Logout Request */
	FLD(logout_req, flags, 1, 1), FLD(logout_req, itt, 16, 4),
	FLD(logout_req, cid, 20, 2), FLD(logout_req, cmdsn, 24, 4),
	FLD(logout_req, exp_statsn, 28, 4),
	/* 11.15 Logout Response */
	FLD(logout_rsp, response, 2, 1), FLD(logout_rsp, itt, 16, 4),
	FLD(logout_rsp, statsn, 24, 4), FLD(logout_rsp, exp_cmdsn, 28, 4),
	FLD(logout_rsp, max_cmdsn, 32, 4), FLD(logout_rsp, time2wait, 40, 2),
	FLD(logout_rsp, time2retain, 42, 2),
	/* 11.17 Reject */
	FLD(reject, reason, 2, 1), FLD(reject, data_len, 5, 3),
	FLD(reject, itt, 16, 4), FLD(reject, statsn, 24, 4),
	FLD(reject, exp_cmdsn, 28, 4), FLD(reject, max_cmdsn, 32, 4),
	FLD(reject, datasn, 36, 4),
	/* 11.18 NOP-Out */
	FLD(nop_out, lun, 8, 8), FLD(nop_out, itt, 16, 4),
	FLD(nop_out, ttt, 20, 4), FLD(nop_out, cmdsn, 24, 4),
	FLD(nop_out, exp_statsn, 28, 4),
	/* 11.19 NOP-In */
	FLD(nop_in, lun, 8, 8), FLD(nop_in, itt, 16, 4),
	FLD(nop_in, ttt, 20, 4), FLD(nop_in, statsn, 24, 4),
	FLD(nop_in, exp_cmdsn, 28, 4), FLD(nop_in, max_cmdsn, 32, 4),
};

static void test_layouts(void)
{
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		const struct field_case *f = &fields[i];

		CHECK(f->off == f->want_off && f->size == f->want_size);
		if (f->off != f->want_off || f->size != f->want_size)
			fprintf(stderr, "  %s at %zu (%zu bytes), RFC 7143: %zu (%zu bytes)\n",
				f->name, f->off, f->size, f->want_off, f->want_size);
	}
	CHECK_EQ_U64(sizeof(union iscsi_bhs), ISCSI_BHS_SIZE);
}

/* ---- initiator PDUs: build, compare with the RFC bytes, read back ---- */

static void check_bytes(const char *what, const union iscsi_bhs *bhs,
			const uint8_t want[ISCSI_BHS_SIZE])
{
	CHECK(memcmp(bhs->bytes, want, ISCSI_BHS_SIZE) == 0);
	for (int i = 0; i < ISCSI_BHS_SIZE; i++)
		if (bhs->bytes[i] != want[i])
			fprintf(stderr, "  %s byte %d: 0x%02x, expected 0x%02x\n",
				what, i, bhs->bytes[i], want[i]);
}

static void test_scsi_cmd(void)
{
	static const uint8_t cdb[16] = { 0x28, 0, 0, 0, 0, 0x10, 0, 0, 8, 0 };
	static const uint8_t want[ISCSI_BHS_SIZE] = {
		0x01, 0xc1, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x01, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,  /* LUN 1 */
		0x11, 0x22, 0x33, 0x44,  0x00, 0x00, 0x10, 0x00,  /* ITT, EDTL */
		0x01, 0x02, 0x03, 0x04,  0x0a, 0x0b, 0x0c, 0x0d,  /* CmdSN, ExpStatSN */
		0x28, 0x00, 0x00, 0x00,  0x00, 0x10, 0x00, 0x00,  /* CDB */
		0x08, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
	};
	union iscsi_bhs bhs;

	memset(&bhs, 0xee, sizeof bhs);
	pdu_init(&bhs, ISCSI_OP_SCSI_CMD, false);
	bhs.scsi_cmd.flags = ISCSI_FLAG_FINAL | ISCSI_CMD_READ | ISCSI_CMD_ATTR_SIMPLE;
	put_be64(bhs.scsi_cmd.lun, pdu_lun_encode(1));
	put_be32(bhs.scsi_cmd.itt, 0x11223344);
	put_be32(bhs.scsi_cmd.exp_xfer_len, 4096);
	put_be32(bhs.scsi_cmd.cmdsn, 0x01020304);
	put_be32(bhs.scsi_cmd.exp_statsn, 0x0a0b0c0d);
	memcpy(bhs.scsi_cmd.cdb, cdb, sizeof cdb);
	check_bytes("SCSI Command", &bhs, want);

	CHECK(pdu_opcode(&bhs) == ISCSI_OP_SCSI_CMD);
	CHECK_EQ_U64(pdu_data_len(&bhs), 0);
	CHECK_EQ_U64(pdu_itt(&bhs), 0x11223344);
	CHECK_EQ_U64(pdu_lun_decode(get_be64(bhs.scsi_cmd.lun)), 1);
	CHECK_EQ_U64(get_be32(bhs.scsi_cmd.exp_xfer_len), 4096);
	CHECK_EQ_U64(get_be32(bhs.scsi_cmd.cmdsn), 0x01020304);
	CHECK_EQ_U64(get_be32(bhs.scsi_cmd.exp_statsn), 0x0a0b0c0d);
	CHECK(bhs.scsi_cmd.flags & ISCSI_CMD_READ);
	CHECK(!(bhs.scsi_cmd.flags & ISCSI_CMD_WRITE));

	/* a write with immediate data */
	pdu_init(&bhs, ISCSI_OP_SCSI_CMD, false);
	bhs.scsi_cmd.flags = ISCSI_FLAG_FINAL | ISCSI_CMD_WRITE | ISCSI_CMD_ATTR_SIMPLE;
	pdu_set_data_len(&bhs, 8192);
	CHECK_EQ_U64(bhs.bytes[1], 0xa1);
	CHECK(bhs.bytes[5] == 0x00 && bhs.bytes[6] == 0x20 && bhs.bytes[7] == 0x00);
	CHECK_EQ_U64(pdu_data_len(&bhs), 8192);
}

static void test_data_out(void)
{
	static const uint8_t want[ISCSI_BHS_SIZE] = {
		0x05, 0x80, 0x00, 0x00,  0x00, 0x00, 0x20, 0x00,  /* 8192 bytes */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x11, 0x22, 0x33, 0x44,  0xde, 0xad, 0xbe, 0xef,  /* ITT, TTT */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x07,  /* -, ExpStatSN */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x02,  /* -, DataSN */
		0x00, 0x00, 0x40, 0x00,  0x00, 0x00, 0x00, 0x00,  /* offset */
	};
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_DATA_OUT, false);
	bhs.data_out.flags = ISCSI_FLAG_FINAL;
	pdu_set_data_len(&bhs, 8192);
	put_be32(bhs.data_out.itt, 0x11223344);
	put_be32(bhs.data_out.ttt, 0xdeadbeef);
	put_be32(bhs.data_out.exp_statsn, 7);
	put_be32(bhs.data_out.datasn, 2);
	put_be32(bhs.data_out.buffer_offset, 16384);
	check_bytes("Data-Out", &bhs, want);

	CHECK(pdu_opcode(&bhs) == ISCSI_OP_DATA_OUT);
	CHECK_EQ_U64(pdu_data_len(&bhs), 8192);
	CHECK_EQ_U64(get_be32(bhs.data_out.ttt), 0xdeadbeef);
	CHECK_EQ_U64(get_be32(bhs.data_out.datasn), 2);
	CHECK_EQ_U64(get_be32(bhs.data_out.buffer_offset), 16384);
}

static void test_nop_out(void)
{
	static const uint8_t want[ISCSI_BHS_SIZE] = {
		0x40, 0x80, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,  /* immediate */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x05,  0xff, 0xff, 0xff, 0xff,  /* ITT, TTT */
		0x00, 0x00, 0x00, 0x09,  0x00, 0x00, 0x00, 0x0a,  /* CmdSN, ExpStatSN */
		0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
	};
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_NOP_OUT, true);
	bhs.nop_out.flags = ISCSI_FLAG_FINAL;
	put_be32(bhs.nop_out.itt, 5);
	put_be32(bhs.nop_out.ttt, ISCSI_RESERVED_TAG);
	put_be32(bhs.nop_out.cmdsn, 9);
	put_be32(bhs.nop_out.exp_statsn, 10);
	check_bytes("NOP-Out", &bhs, want);

	CHECK(pdu_opcode(&bhs) == ISCSI_OP_NOP_OUT);
	CHECK(bhs.common.opcode & ISCSI_FLAG_IMMEDIATE);
	CHECK_EQ_U64(pdu_itt(&bhs), 5);
	CHECK_EQ_U64(get_be32(bhs.nop_out.ttt), ISCSI_RESERVED_TAG);
}

static void test_login_req(void)
{
	static const uint8_t isid[6] = { 0x80, 0x12, 0x34, 0x56, 0x00, 0x01 };
	static const uint8_t want[ISCSI_BHS_SIZE] = {
		0x43, 0x87, 0x00, 0x00,  0x00, 0x00, 0x01, 0x2c,  /* T, CSG 1, NSG 3; 300 */
		0x80, 0x12, 0x34, 0x56,  0x00, 0x01, 0x00, 0x00,  /* ISID, TSIH */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x01, 0x00, 0x00,  /* ITT, CID */
		0x00, 0x00, 0x00, 0x01,  0x00, 0x00, 0x00, 0x00,  /* CmdSN, ExpStatSN */
		0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
	};
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_LOGIN_REQ, true);
	bhs.login_req.flags = ISCSI_LOGIN_TRANSIT |
		ISCSI_STAGE_OPERATIONAL << ISCSI_LOGIN_CSG_SHIFT | ISCSI_STAGE_FULL_FEATURE;
	pdu_set_data_len(&bhs, 300);
	memcpy(bhs.login_req.isid, isid, sizeof isid);
	put_be16(bhs.login_req.cid, 1);
	put_be32(bhs.login_req.cmdsn, 1);
	check_bytes("Login Request", &bhs, want);

	CHECK(pdu_opcode(&bhs) == ISCSI_OP_LOGIN_REQ);
	CHECK_EQ_U64((bhs.login_req.flags >> ISCSI_LOGIN_CSG_SHIFT) & ISCSI_LOGIN_STAGE_MASK,
		     ISCSI_STAGE_OPERATIONAL);
	CHECK_EQ_U64(bhs.login_req.flags & ISCSI_LOGIN_STAGE_MASK, ISCSI_STAGE_FULL_FEATURE);
	CHECK(!(bhs.login_req.flags & ISCSI_LOGIN_CONTINUE));
	CHECK_EQ_U64(pdu_data_len(&bhs), 300);
	CHECK_EQ_U64(get_be16(bhs.login_req.cid), 1);
	CHECK_EQ_U64(get_be16(bhs.login_req.tsih), 0);

	/* security stage, continuing */
	pdu_init(&bhs, ISCSI_OP_LOGIN_REQ, true);
	bhs.login_req.flags = ISCSI_LOGIN_CONTINUE |
		ISCSI_STAGE_SECURITY << ISCSI_LOGIN_CSG_SHIFT | ISCSI_STAGE_OPERATIONAL;
	CHECK_EQ_U64(bhs.bytes[1], 0x41);
}

static void test_text_req(void)
{
	static const uint8_t want[ISCSI_BHS_SIZE] = {
		0x44, 0x80, 0x00, 0x00,  0x00, 0x00, 0x00, 0x10,
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x03,  0xff, 0xff, 0xff, 0xff,  /* ITT, TTT */
		0x00, 0x00, 0x00, 0x02,  0x00, 0x00, 0x00, 0x03,  /* CmdSN, ExpStatSN */
		0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
	};
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_TEXT_REQ, true);
	bhs.text_req.flags = ISCSI_FLAG_FINAL;
	pdu_set_data_len(&bhs, 16);
	put_be32(bhs.text_req.itt, 3);
	put_be32(bhs.text_req.ttt, ISCSI_RESERVED_TAG);
	put_be32(bhs.text_req.cmdsn, 2);
	put_be32(bhs.text_req.exp_statsn, 3);
	check_bytes("Text Request", &bhs, want);

	CHECK(pdu_opcode(&bhs) == ISCSI_OP_TEXT_REQ);
	CHECK_EQ_U64(pdu_data_len(&bhs), 16);
	CHECK(!(bhs.text_req.flags & ISCSI_TEXT_CONTINUE));
}

static void test_logout_req(void)
{
	static const uint8_t want[ISCSI_BHS_SIZE] = {
		0x46, 0x81, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,  /* close connection */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x04,  0x00, 0x02, 0x00, 0x00,  /* ITT, CID */
		0x00, 0x00, 0x00, 0x05,  0x00, 0x00, 0x00, 0x06,
		0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
	};
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_LOGOUT_REQ, true);
	bhs.logout_req.flags = ISCSI_FLAG_FINAL | ISCSI_LOGOUT_CLOSE_CONNECTION;
	put_be32(bhs.logout_req.itt, 4);
	put_be16(bhs.logout_req.cid, 2);
	put_be32(bhs.logout_req.cmdsn, 5);
	put_be32(bhs.logout_req.exp_statsn, 6);
	check_bytes("Logout Request", &bhs, want);

	CHECK(pdu_opcode(&bhs) == ISCSI_OP_LOGOUT_REQ);
	CHECK_EQ_U64(bhs.logout_req.flags & 0x7f, ISCSI_LOGOUT_CLOSE_CONNECTION);
	CHECK_EQ_U64(get_be16(bhs.logout_req.cid), 2);
}

static void test_tmf_req(void)
{
	static const uint8_t want[ISCSI_BHS_SIZE] = {
		0x42, 0x81, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,  /* ABORT TASK */
		0x00, 0x02, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,  /* LUN 2 */
		0x00, 0x00, 0x00, 0x07,  0x11, 0x22, 0x33, 0x44,  /* ITT, RTT */
		0x00, 0x00, 0x00, 0x08,  0x00, 0x00, 0x00, 0x09,  /* CmdSN, ExpStatSN */
		0x01, 0x02, 0x03, 0x04,  0x00, 0x00, 0x00, 0x00,  /* RefCmdSN, ExpDataSN */
		0, 0, 0, 0, 0, 0, 0, 0,
	};
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_TMF_REQ, true);
	bhs.tmf_req.flags = ISCSI_FLAG_FINAL | ISCSI_TMF_ABORT_TASK;
	put_be64(bhs.tmf_req.lun, pdu_lun_encode(2));
	put_be32(bhs.tmf_req.itt, 7);
	put_be32(bhs.tmf_req.ref_itt, 0x11223344);
	put_be32(bhs.tmf_req.cmdsn, 8);
	put_be32(bhs.tmf_req.exp_statsn, 9);
	put_be32(bhs.tmf_req.ref_cmdsn, 0x01020304);
	check_bytes("Task Management Request", &bhs, want);

	CHECK(pdu_opcode(&bhs) == ISCSI_OP_TMF_REQ);
	CHECK_EQ_U64(bhs.tmf_req.flags & 0x7f, ISCSI_TMF_ABORT_TASK);
	CHECK_EQ_U64(get_be32(bhs.tmf_req.ref_itt), 0x11223344);
	CHECK_EQ_U64(get_be32(bhs.tmf_req.ref_cmdsn), 0x01020304);
	CHECK_EQ_U64(pdu_lun_decode(get_be64(bhs.tmf_req.lun)), 2);
}

/* ---- target PDUs: read from the bytes a target sends ---- */

static void load(union iscsi_bhs *bhs, const uint8_t bytes[ISCSI_BHS_SIZE])
{
	memcpy(bhs->bytes, bytes, ISCSI_BHS_SIZE);
	CHECK(pdu_check_received(bhs, 65536) == 0);
}

static void test_target_pdus(void)
{
	union iscsi_bhs bhs;

	static const uint8_t nop_in[ISCSI_BHS_SIZE] = {
		0x20, 0x80, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0xff, 0xff, 0xff, 0xff,  0x00, 0x00, 0x00, 0x10,  /* ITT, TTT */
		0x00, 0x00, 0x01, 0x00,  0x00, 0x00, 0x02, 0x00,  /* StatSN, ExpCmdSN */
		0x00, 0x00, 0x02, 0x1f,  0, 0, 0, 0,              /* MaxCmdSN */
		0, 0, 0, 0, 0, 0, 0, 0,
	};
	load(&bhs, nop_in);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_NOP_IN);
	CHECK_EQ_U64(pdu_itt(&bhs), ISCSI_RESERVED_TAG);
	CHECK_EQ_U64(get_be32(bhs.nop_in.ttt), 0x10);
	CHECK_EQ_U64(get_be32(bhs.nop_in.statsn), 0x100);
	CHECK_EQ_U64(get_be32(bhs.nop_in.exp_cmdsn), 0x200);
	CHECK_EQ_U64(get_be32(bhs.nop_in.max_cmdsn), 0x21f);

	static const uint8_t scsi_rsp[ISCSI_BHS_SIZE] = {
		0x21, 0x82, 0x00, 0x02,  0x00, 0x00, 0x00, 0x12,  /* U; CHECK CONDITION */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x11, 0x22, 0x33, 0x44,  0x00, 0x00, 0x00, 0x00,  /* ITT, SNACK tag */
		0x00, 0x00, 0x00, 0x05,  0x00, 0x00, 0x00, 0x06,  /* StatSN, ExpCmdSN */
		0x00, 0x00, 0x00, 0x25,  0x00, 0x00, 0x00, 0x01,  /* MaxCmdSN, ExpDataSN */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x02, 0x00,  /* residuals */
	};
	load(&bhs, scsi_rsp);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_SCSI_RSP);
	CHECK(bhs.scsi_rsp.flags & ISCSI_RSP_UNDERFLOW);
	CHECK(!(bhs.scsi_rsp.flags & ISCSI_RSP_OVERFLOW));
	CHECK_EQ_U64(bhs.scsi_rsp.response, 0);
	CHECK_EQ_U64(bhs.scsi_rsp.status, 0x02);
	CHECK_EQ_U64(pdu_data_len(&bhs), 18);
	CHECK_EQ_U64(pdu_itt(&bhs), 0x11223344);
	CHECK_EQ_U64(get_be32(bhs.scsi_rsp.statsn), 5);
	CHECK_EQ_U64(get_be32(bhs.scsi_rsp.exp_cmdsn), 6);
	CHECK_EQ_U64(get_be32(bhs.scsi_rsp.max_cmdsn), 0x25);
	CHECK_EQ_U64(get_be32(bhs.scsi_rsp.exp_datasn), 1);
	CHECK_EQ_U64(get_be32(bhs.scsi_rsp.residual), 512);

	static const uint8_t data_in[ISCSI_BHS_SIZE] = {
		0x25, 0x81, 0x00, 0x00,  0x00, 0x00, 0x10, 0x00,  /* F, S; 4096 */
		0x00, 0x01, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,  /* LUN 1 */
		0x11, 0x22, 0x33, 0x44,  0xff, 0xff, 0xff, 0xff,
		0x00, 0x00, 0x00, 0x09,  0x00, 0x00, 0x00, 0x0a,
		0x00, 0x00, 0x00, 0x29,  0x00, 0x00, 0x00, 0x03,  /* MaxCmdSN, DataSN */
		0x00, 0x00, 0x30, 0x00,  0x00, 0x00, 0x00, 0x00,  /* offset, residual */
	};
	load(&bhs, data_in);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_DATA_IN);
	CHECK(bhs.data_in.flags & ISCSI_DATAIN_STATUS);
	CHECK(bhs.data_in.flags & ISCSI_FLAG_FINAL);
	CHECK(!(bhs.data_in.flags & ISCSI_DATAIN_ACK));
	CHECK_EQ_U64(bhs.data_in.status, 0);
	CHECK_EQ_U64(pdu_data_len(&bhs), 4096);
	CHECK_EQ_U64(pdu_lun_decode(get_be64(bhs.data_in.lun)), 1);
	CHECK_EQ_U64(get_be32(bhs.data_in.ttt), ISCSI_RESERVED_TAG);
	CHECK_EQ_U64(get_be32(bhs.data_in.statsn), 9);
	CHECK_EQ_U64(get_be32(bhs.data_in.datasn), 3);
	CHECK_EQ_U64(get_be32(bhs.data_in.buffer_offset), 0x3000);

	static const uint8_t tmf_rsp[ISCSI_BHS_SIZE] = {
		0x22, 0x80, 0x05, 0x00,  0x00, 0x00, 0x00, 0x00,  /* not supported */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x07,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x0b,  0x00, 0x00, 0x00, 0x0c,
		0x00, 0x00, 0x00, 0x2b,  0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0,
	};
	load(&bhs, tmf_rsp);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_TMF_RSP);
	CHECK_EQ_U64(bhs.tmf_rsp.response, 5);
	CHECK_EQ_U64(pdu_itt(&bhs), 7);
	CHECK_EQ_U64(get_be32(bhs.tmf_rsp.statsn), 0x0b);
	CHECK_EQ_U64(get_be32(bhs.tmf_rsp.max_cmdsn), 0x2b);

	static const uint8_t login_rsp[ISCSI_BHS_SIZE] = {
		0x23, 0x87, 0x00, 0x00,  0x00, 0x00, 0x00, 0xc8,  /* T, CSG 1, NSG 3 */
		0x80, 0x12, 0x34, 0x56,  0x00, 0x01, 0x01, 0x02,  /* ISID, TSIH */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x12, 0x34,  0x00, 0x00, 0x00, 0x02,  /* StatSN, ExpCmdSN */
		0x00, 0x00, 0x00, 0x02,  0x00, 0x00, 0x00, 0x00,  /* MaxCmdSN, status */
		0, 0, 0, 0, 0, 0, 0, 0,
	};
	load(&bhs, login_rsp);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_LOGIN_RSP);
	CHECK(bhs.login_rsp.flags & ISCSI_LOGIN_TRANSIT);
	CHECK_EQ_U64((bhs.login_rsp.flags >> ISCSI_LOGIN_CSG_SHIFT) & ISCSI_LOGIN_STAGE_MASK,
		     ISCSI_STAGE_OPERATIONAL);
	CHECK_EQ_U64(bhs.login_rsp.flags & ISCSI_LOGIN_STAGE_MASK, ISCSI_STAGE_FULL_FEATURE);
	CHECK_EQ_U64(pdu_data_len(&bhs), 200);
	CHECK_EQ_U64(bhs.login_rsp.isid[0], 0x80);
	CHECK_EQ_U64(get_be16(bhs.login_rsp.tsih), 0x0102);
	CHECK_EQ_U64(get_be32(bhs.login_rsp.statsn), 0x1234);
	CHECK_EQ_U64(get_be32(bhs.login_rsp.exp_cmdsn), 2);
	CHECK_EQ_U64(get_be32(bhs.login_rsp.max_cmdsn), 2);
	CHECK_EQ_U64(bhs.login_rsp.status_class, ISCSI_LOGIN_SUCCESS);
	CHECK_EQ_U64(bhs.login_rsp.status_detail, 0);
	/* a refusal: initiator error, target not found */
	bhs.bytes[36] = 0x02;
	bhs.bytes[37] = 0x03;
	CHECK_EQ_U64(bhs.login_rsp.status_class, ISCSI_LOGIN_INITIATOR_ERROR);
	CHECK_EQ_U64(bhs.login_rsp.status_detail, 3);

	static const uint8_t text_rsp[ISCSI_BHS_SIZE] = {
		0x24, 0x40, 0x00, 0x00,  0x00, 0x00, 0x00, 0x40,  /* C: more follows */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x03,  0x00, 0x00, 0x00, 0x99,  /* ITT, TTT */
		0x00, 0x00, 0x00, 0x04,  0x00, 0x00, 0x00, 0x03,
		0x00, 0x00, 0x00, 0x22,  0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0,
	};
	load(&bhs, text_rsp);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_TEXT_RSP);
	CHECK(bhs.text_rsp.flags & ISCSI_TEXT_CONTINUE);
	CHECK(!(bhs.text_rsp.flags & ISCSI_FLAG_FINAL));
	CHECK_EQ_U64(pdu_data_len(&bhs), 64);
	CHECK_EQ_U64(get_be32(bhs.text_rsp.ttt), 0x99);
	CHECK_EQ_U64(get_be32(bhs.text_rsp.statsn), 4);

	static const uint8_t logout_rsp[ISCSI_BHS_SIZE] = {
		0x26, 0x80, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x04,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x0d,  0x00, 0x00, 0x00, 0x0e,
		0x00, 0x00, 0x00, 0x2e,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x02, 0x00, 0x14,  0x00, 0x00, 0x00, 0x00,  /* Time2Wait 2, Time2Retain 20 */
	};
	load(&bhs, logout_rsp);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_LOGOUT_RSP);
	CHECK_EQ_U64(bhs.logout_rsp.response, 0);
	CHECK_EQ_U64(pdu_itt(&bhs), 4);
	CHECK_EQ_U64(get_be16(bhs.logout_rsp.time2wait), 2);
	CHECK_EQ_U64(get_be16(bhs.logout_rsp.time2retain), 20);

	static const uint8_t r2t[ISCSI_BHS_SIZE] = {
		0x31, 0x80, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x01, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x11, 0x22, 0x33, 0x44,  0x00, 0x00, 0xab, 0xcd,  /* ITT, TTT */
		0x00, 0x00, 0x00, 0x07,  0x00, 0x00, 0x00, 0x08,
		0x00, 0x00, 0x00, 0x27,  0x00, 0x00, 0x00, 0x00,  /* MaxCmdSN, R2TSN */
		0x00, 0x01, 0x00, 0x00,  0x00, 0x04, 0x00, 0x00,  /* offset, desired */
	};
	load(&bhs, r2t);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_R2T);
	CHECK_EQ_U64(pdu_data_len(&bhs), 0);
	CHECK_EQ_U64(get_be32(bhs.r2t.ttt), 0xabcd);
	CHECK_EQ_U64(get_be32(bhs.r2t.r2tsn), 0);
	CHECK_EQ_U64(get_be32(bhs.r2t.buffer_offset), 0x10000);
	CHECK_EQ_U64(get_be32(bhs.r2t.desired_len), 0x40000);
	CHECK_EQ_U64(get_be32(bhs.r2t.max_cmdsn), 0x27);

	static const uint8_t async[ISCSI_BHS_SIZE] = {
		0x32, 0x80, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0xff, 0xff, 0xff, 0xff,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x0f,  0x00, 0x00, 0x00, 0x10,
		0x00, 0x00, 0x00, 0x30,  0x01, 0x00, 0x00, 0x05,  /* logout request in 5 s */
		0x00, 0x02, 0x00, 0x14,  0x00, 0x00, 0x00, 0x00,
	};
	load(&bhs, async);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_ASYNC_MSG);
	CHECK_EQ_U64(pdu_itt(&bhs), ISCSI_RESERVED_TAG);
	CHECK_EQ_U64(bhs.async.event, ISCSI_ASYNC_LOGOUT_REQUEST);
	CHECK_EQ_U64(bhs.async.vcode, 0);
	CHECK_EQ_U64(get_be16(bhs.async.param1), 5);
	CHECK_EQ_U64(get_be16(bhs.async.param2), 2);
	CHECK_EQ_U64(get_be16(bhs.async.param3), 20);
	CHECK_EQ_U64(get_be32(bhs.async.statsn), 0x0f);

	static const uint8_t reject[ISCSI_BHS_SIZE] = {
		0x3f, 0x80, 0x09, 0x00,  0x00, 0x00, 0x00, 0x30,  /* invalid PDU field */
		0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x00, 0x00,
		0xff, 0xff, 0xff, 0xff,  0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x11,  0x00, 0x00, 0x00, 0x12,
		0x00, 0x00, 0x00, 0x31,  0x00, 0x00, 0x00, 0x00,
		0, 0, 0, 0, 0, 0, 0, 0,
	};
	load(&bhs, reject);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_REJECT);
	CHECK_EQ_U64(bhs.reject.reason, 0x09);
	CHECK_EQ_U64(pdu_data_len(&bhs), ISCSI_BHS_SIZE);
	CHECK_EQ_U64(get_be32(bhs.reject.statsn), 0x11);
}

/* ---- pdu_init, names, opcode classes ---- */

static const struct {
	uint8_t op;        /* opcode */
	bool target;       /* a target may send it */
	const char *name;  /* pdu_opcode_name() */
} opcodes[] = {
	{ ISCSI_OP_NOP_OUT, false, "NOP-Out" },
	{ ISCSI_OP_SCSI_CMD, false, "SCSI Command" },
	{ ISCSI_OP_TMF_REQ, false, "Task Management Request" },
	{ ISCSI_OP_LOGIN_REQ, false, "Login Request" },
	{ ISCSI_OP_TEXT_REQ, false, "Text Request" },
	{ ISCSI_OP_DATA_OUT, false, "Data-Out" },
	{ ISCSI_OP_LOGOUT_REQ, false, "Logout Request" },
	{ ISCSI_OP_SNACK_REQ, false, "SNACK" },
	{ ISCSI_OP_NOP_IN, true, "NOP-In" },
	{ ISCSI_OP_SCSI_RSP, true, "SCSI Response" },
	{ ISCSI_OP_TMF_RSP, true, "Task Management Response" },
	{ ISCSI_OP_LOGIN_RSP, true, "Login Response" },
	{ ISCSI_OP_TEXT_RSP, true, "Text Response" },
	{ ISCSI_OP_DATA_IN, true, "Data-In" },
	{ ISCSI_OP_LOGOUT_RSP, true, "Logout Response" },
	{ ISCSI_OP_R2T, true, "R2T" },
	{ ISCSI_OP_ASYNC_MSG, true, "Asynchronous Message" },
	{ ISCSI_OP_REJECT, true, "Reject" },
	{ 0x1c, false, "unknown" },   /* vendor-specific initiator opcode */
	{ 0x3c, false, "unknown" },   /* vendor-specific target opcode */
	{ 0x27, false, "unknown" },   /* reserved */
	{ 0x07, false, "unknown" },
};

static void test_opcodes(void)
{
	union iscsi_bhs bhs;

	for (size_t i = 0; i < sizeof opcodes / sizeof opcodes[0]; i++) {
		CHECK_STR(pdu_opcode_name(opcodes[i].op), opcodes[i].name);
		CHECK(pdu_is_target_opcode(opcodes[i].op) == opcodes[i].target);
		/* the upper two bits do not change the opcode */
		CHECK(pdu_is_target_opcode(opcodes[i].op | 0xc0) == opcodes[i].target);
	}

	memset(&bhs, 0xff, sizeof bhs);
	pdu_init(&bhs, ISCSI_OP_SCSI_CMD, true);
	CHECK_EQ_U64(bhs.bytes[0], 0x41);
	for (int i = 1; i < ISCSI_BHS_SIZE; i++)
		CHECK_EQ_U64(bhs.bytes[i], 0);
	pdu_init(&bhs, ISCSI_OP_DATA_OUT, false);
	CHECK_EQ_U64(bhs.bytes[0], 0x05);
	CHECK(pdu_opcode(&bhs) == ISCSI_OP_DATA_OUT);
}

/* ---- pdu_check_received ---- */

static const struct {
	const char *what;  /* the case */
	uint8_t opcode;    /* byte 0 */
	uint32_t data_len; /* DataSegmentLength */
	uint32_t max;      /* what we accept */
	int ret;           /* expected */
} received[] = {
	{ "NOP-In, empty", ISCSI_OP_NOP_IN, 0, 8192, 0 },
	{ "Data-In at the limit", ISCSI_OP_DATA_IN, 8192, 8192, 0 },
	{ "Data-In one byte over", ISCSI_OP_DATA_IN, 8193, 8192, -1 },
	{ "Login Response, largest segment", ISCSI_OP_LOGIN_RSP, ISCSI_MAX_DATA_SEGMENT,
	  ISCSI_MAX_DATA_SEGMENT, 0 },
	{ "Text Response over the text limit", ISCSI_OP_TEXT_RSP, ISCSI_MAX_TEXT + 1,
	  ISCSI_MAX_TEXT, -1 },
	{ "Reject with 0 allowed", ISCSI_OP_REJECT, 48, 0, -1 },
	{ "SCSI Command from a target", ISCSI_OP_SCSI_CMD, 0, 8192, -1 },
	{ "NOP-Out from a target", ISCSI_OP_NOP_OUT, 0, 8192, -1 },
	{ "Data-Out from a target", ISCSI_OP_DATA_OUT, 0, 8192, -1 },
	{ "SNACK from a target", ISCSI_OP_SNACK_REQ, 0, 8192, -1 },
	{ "reserved opcode 0x27", 0x27, 0, 8192, -1 },
	{ "vendor opcode 0x3c", 0x3c, 0, 8192, -1 },
	{ "vendor opcode 0x1e", 0x1e, 0, 8192, -1 },
};

static void test_check_received(void)
{
	for (size_t i = 0; i < sizeof received / sizeof received[0]; i++) {
		union iscsi_bhs bhs;
		int r;

		memset(&bhs, 0, sizeof bhs);
		bhs.common.opcode = received[i].opcode;
		pdu_set_data_len(&bhs, received[i].data_len);
		r = pdu_check_received(&bhs, received[i].max);
		CHECK(r == received[i].ret);
		if (r != received[i].ret)
			fprintf(stderr, "  check_received case: %s\n", received[i].what);
		if (r < 0) {
			CHECK_EQ_U64(err_errno(), EPROTO);
			CHECK(strstr(err_msg(), "protocol error") != NULL);
		}
	}

	/* An AHS on a target PDU: none is defined, garbage is refused. */
	union iscsi_bhs bhs;
	memset(&bhs, 0, sizeof bhs);
	bhs.common.opcode = ISCSI_OP_DATA_IN;
	bhs.common.ahs_len = 4;
	CHECK(pdu_check_received(&bhs, 8192) < 0);
	CHECK(strstr(err_msg(), "16-byte AHS") != NULL);
}

/* ---- padding and LUNs ---- */

static void test_pad(void)
{
	static const struct {
		uint32_t len, pad; /* segment length, padding after it */
	} cases[] = {
		{ 0, 0 }, { 1, 3 }, { 2, 2 }, { 3, 1 }, { 4, 0 }, { 5, 3 },
		{ 47, 1 }, { 48, 0 }, { 8191, 1 }, { 8192, 0 },
		{ ISCSI_MAX_DATA_SEGMENT, 1 }, { 0xfffffffc, 0 }, { 0xffffffff, 1 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK_EQ_U64(pdu_pad(cases[i].len), cases[i].pad);
		CHECK_EQ_U64((cases[i].len + pdu_pad(cases[i].len)) % 4, 0);
	}
}

static void test_lun(void)
{
	static const struct {
		uint32_t lun;  /* LUN number */
		uint64_t wire; /* its 8-byte field */
	} round[] = {
		{ 0, 0 },
		{ 1, 0x0001000000000000ULL },
		{ 255, 0x00ff000000000000ULL },           /* peripheral, bus 0 */
		{ 256, 0x4100000000000000ULL },           /* flat space */
		{ 4095, 0x4fff000000000000ULL },
		{ 16383, 0x7fff000000000000ULL },
	};
	static const struct {
		uint64_t wire; /* as a target might report it */
		int64_t lun;   /* decoded; -1 when not addressable */
	} decode[] = {
		{ 0x4005000000000000ULL, 5 },             /* flat form of a small LUN */
		{ 0x4000000000000000ULL, 0 },
		{ 0x0001000000000001ULL, -1 },            /* second level present */
		{ 0x0000000100000000ULL, -1 },
		{ 0x0100000000000000ULL, -1 },            /* peripheral, bus 1 */
		{ 0x3f05000000000000ULL, -1 },            /* peripheral, bus 63 */
		{ 0x8001000000000000ULL, -1 },            /* logical unit addressing */
		{ 0xc000000000000000ULL, -1 },            /* extended addressing */
		{ 0xe2ffffffffffffffULL, -1 },            /* well-known LUN form */
		{ 0xffffffffffffffffULL, -1 },
	};

	for (size_t i = 0; i < sizeof round / sizeof round[0]; i++) {
		CHECK_EQ_U64(pdu_lun_encode(round[i].lun), round[i].wire);
		CHECK_EQ_U64(pdu_lun_decode(round[i].wire), round[i].lun);
	}
	for (uint32_t lun = 0; lun <= 16383; lun++)
		if (pdu_lun_decode(pdu_lun_encode(lun)) != (int64_t)lun) {
			CHECK(!"LUN round trip");
			fprintf(stderr, "  LUN %u\n", lun);
			break;
		}
	for (size_t i = 0; i < sizeof decode / sizeof decode[0]; i++) {
		CHECK_EQ_U64(pdu_lun_decode(decode[i].wire), decode[i].lun);
	}

	/* the 8 bytes as they travel */
	uint8_t field[8];
	put_be64(field, pdu_lun_encode(300));
	CHECK(field[0] == 0x41 && field[1] == 0x2c);
	for (int i = 2; i < 8; i++)
		CHECK_EQ_U64(field[i], 0);
}

/* ---- serial numbers (wire.h) ---- */

static void test_serial(void)
{
	static const struct {
		uint32_t a, b;  /* compared */
		int lt, le;     /* sn_lt(a, b), sn_le(a, b) */
	} cases[] = {
		{ 0, 0, 0, 1 },
		{ 0, 1, 1, 1 },
		{ 1, 0, 0, 0 },
		{ 5, 7, 1, 1 },
		{ 0xffffffff, 0, 1, 1 },            /* across the wrap */
		{ 0, 0xffffffff, 0, 0 },
		{ 0xfffffff0, 0x10, 1, 1 },
		{ 0x10, 0xfffffff0, 0, 0 },
		{ 0x7ffffffe, 0x7fffffff, 1, 1 },
		{ 0x7fffffff, 0x80000000, 1, 1 },   /* across the sign bit */
		{ 0x80000000, 0x7fffffff, 0, 0 },
		{ 0, 0x7fffffff, 1, 1 },            /* 2^31 - 1 ahead: still after */
		{ 0x7fffffff, 0, 0, 0 },
		{ 0xffffffff, 0xffffffff, 0, 1 },
		{ 0x80000001, 0, 1, 1 },            /* 2^31 - 1 behind, wrapped */
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK_EQ_U64(sn_lt(cases[i].a, cases[i].b), cases[i].lt);
		CHECK_EQ_U64(sn_le(cases[i].a, cases[i].b), cases[i].le);
	}
	/* a window of 32 commands that straddles the wrap */
	uint32_t exp = 0xfffffff0, max = exp + 31;
	for (uint32_t k = 0; k < 32; k++) {
		CHECK(sn_le(exp, exp + k) && sn_le(exp + k, max));
	}
	CHECK(sn_lt(max, max + 1));
	CHECK(!sn_le(max + 1, max));
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	test_layouts();
	test_scsi_cmd();
	test_data_out();
	test_nop_out();
	test_login_req();
	test_text_req();
	test_logout_req();
	test_tmf_req();
	test_target_pdus();
	test_opcodes();
	test_check_received();
	test_pad();
	test_lun();
	test_serial();
	return test_done("test_pdu");
}
