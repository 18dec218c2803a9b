/* pdu.h: RFC 7143 Basic Header Segment layouts for every PDU an initiator
 * sends or receives.
 *
 * Each BHS is a struct of byte arrays, so it has no padding, no alignment
 * and no byte order of its own: multi-byte fields are read and written with
 * the get_be*()/put_be*() helpers of wire.h.  The union iscsi_bhs overlays
 * them on the 48 bytes as they travel.  Sizes are checked at compile time.
 */
#ifndef ISCSIFS_PDU_H
#define ISCSIFS_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define ISCSI_BHS_SIZE 48
#define ISCSI_DIGEST_SIZE 4
/* DataSegmentLength is 24 bits. */
#define ISCSI_MAX_DATA_SEGMENT 0xffffff
/* Largest key=value text we accept in one login or text exchange. */
#define ISCSI_MAX_TEXT 65536

/* Opcodes (byte 0, low six bits). */
enum iscsi_opcode {
	/* initiator to target */
	ISCSI_OP_NOP_OUT = 0x00,
	ISCSI_OP_SCSI_CMD = 0x01,
	ISCSI_OP_TMF_REQ = 0x02,
	ISCSI_OP_LOGIN_REQ = 0x03,
	ISCSI_OP_TEXT_REQ = 0x04,
	ISCSI_OP_DATA_OUT = 0x05,
	ISCSI_OP_LOGOUT_REQ = 0x06,
	ISCSI_OP_SNACK_REQ = 0x10,
	/* target to initiator */
	ISCSI_OP_NOP_IN = 0x20,
	ISCSI_OP_SCSI_RSP = 0x21,
	ISCSI_OP_TMF_RSP = 0x22,
	ISCSI_OP_LOGIN_RSP = 0x23,
	ISCSI_OP_TEXT_RSP = 0x24,
	ISCSI_OP_DATA_IN = 0x25,
	ISCSI_OP_LOGOUT_RSP = 0x26,
	ISCSI_OP_R2T = 0x31,
	ISCSI_OP_ASYNC_MSG = 0x32,
	ISCSI_OP_REJECT = 0x3f,
};

#define ISCSI_OPCODE_MASK 0x3f
#define ISCSI_FLAG_IMMEDIATE 0x40 /* byte 0: I bit */
#define ISCSI_FLAG_FINAL 0x80     /* byte 1: F bit */
#define ISCSI_RESERVED_TAG 0xffffffffu

/* SCSI Command byte 1 */
#define ISCSI_CMD_READ 0x40
#define ISCSI_CMD_WRITE 0x20
#define ISCSI_CMD_ATTR_SIMPLE 0x01

/* SCSI Response and Data-In byte 1 */
#define ISCSI_RSP_BIDI_OVERFLOW 0x10
#define ISCSI_RSP_BIDI_UNDERFLOW 0x08
#define ISCSI_RSP_OVERFLOW 0x04
#define ISCSI_RSP_UNDERFLOW 0x02
#define ISCSI_DATAIN_ACK 0x40
#define ISCSI_DATAIN_STATUS 0x01

/* Login byte 1 */
#define ISCSI_LOGIN_TRANSIT 0x80
#define ISCSI_LOGIN_CONTINUE 0x40
#define ISCSI_LOGIN_CSG_SHIFT 2
#define ISCSI_LOGIN_STAGE_MASK 0x03

/* Text byte 1 */
#define ISCSI_TEXT_CONTINUE 0x40

/* Login stages (CSG / NSG). */
enum iscsi_login_stage {
	ISCSI_STAGE_SECURITY = 0,
	ISCSI_STAGE_OPERATIONAL = 1,
	ISCSI_STAGE_FULL_FEATURE = 3,
};

/* Login response status classes (byte 36). */
enum iscsi_login_class {
	ISCSI_LOGIN_SUCCESS = 0,
	ISCSI_LOGIN_REDIRECT = 1,
	ISCSI_LOGIN_INITIATOR_ERROR = 2,
	ISCSI_LOGIN_TARGET_ERROR = 3,
};

/* Logout reason codes (byte 1, low seven bits). */
enum iscsi_logout_reason {
	ISCSI_LOGOUT_CLOSE_SESSION = 0,
	ISCSI_LOGOUT_CLOSE_CONNECTION = 1,
	ISCSI_LOGOUT_REMOVE_FOR_RECOVERY = 2,
};

/* Task management functions (byte 1, low seven bits). */
enum iscsi_tmf_function {
	ISCSI_TMF_ABORT_TASK = 1,
	ISCSI_TMF_ABORT_TASK_SET = 2,
	ISCSI_TMF_LUN_RESET = 5,
	ISCSI_TMF_TARGET_WARM_RESET = 6,
};

/* Asynchronous message events (byte 36). */
enum iscsi_async_event {
	ISCSI_ASYNC_SCSI_EVENT = 0,
	ISCSI_ASYNC_LOGOUT_REQUEST = 1,
	ISCSI_ASYNC_DROP_CONNECTION = 2,
	ISCSI_ASYNC_DROP_SESSION = 3,
	ISCSI_ASYNC_RENEGOTIATE = 4,
	ISCSI_ASYNC_VENDOR = 255,
};

/* The part every BHS shares. */
struct iscsi_bhs_common {
	uint8_t opcode;       /* I bit and opcode */
	uint8_t flags;        /* F bit and opcode-specific flags */
	uint8_t spec2[2];     /* opcode-specific */
	uint8_t ahs_len;      /* TotalAHSLength, in 4-byte words */
	uint8_t data_len[3];  /* DataSegmentLength, without padding */
	uint8_t lun[8];       /* LUN or opcode-specific */
	uint8_t itt[4];       /* Initiator Task Tag */
	uint8_t spec20[28];   /* opcode-specific */
};

/* 0x01 SCSI Command */
struct iscsi_bhs_scsi_cmd {
	uint8_t opcode, flags, rsvd2[2], ahs_len, data_len[3];
	uint8_t lun[8];
	uint8_t itt[4];
	uint8_t exp_xfer_len[4]; /* Expected Data Transfer Length */
	uint8_t cmdsn[4];
	uint8_t exp_statsn[4];
	uint8_t cdb[16];
};

/* 0x21 SCSI Response */
struct iscsi_bhs_scsi_rsp {
	uint8_t opcode, flags;
	uint8_t response;   /* iSCSI service response: 0 = command completed */
	uint8_t status;     /* SCSI status, valid when response is 0 */
	uint8_t ahs_len, data_len[3];
	uint8_t rsvd8[8];
	uint8_t itt[4];
	uint8_t snack_tag[4];
	uint8_t statsn[4];
	uint8_t exp_cmdsn[4];
	uint8_t max_cmdsn[4];
	uint8_t exp_datasn[4];
	uint8_t bidi_residual[4];
	uint8_t residual[4];
};

/* 0x25 SCSI Data-In */
struct iscsi_bhs_data_in {
	uint8_t opcode, flags, rsvd2;
	uint8_t status;     /* valid when ISCSI_DATAIN_STATUS is set */
	uint8_t ahs_len, data_len[3];
	uint8_t lun[8];
	uint8_t itt[4];
	uint8_t ttt[4];
	uint8_t statsn[4];  /* valid when ISCSI_DATAIN_STATUS is set */
	uint8_t exp_cmdsn[4];
	uint8_t max_cmdsn[4];
	uint8_t datasn[4];
	uint8_t buffer_offset[4];
	uint8_t residual[4];
};

/* 0x05 SCSI Data-Out */
struct iscsi_bhs_data_out {
	uint8_t opcode, flags, rsvd2[2], ahs_len, data_len[3];
	uint8_t lun[8];
	uint8_t itt[4];
	uint8_t ttt[4];
	uint8_t rsvd24[4];
	uint8_t exp_statsn[4];
	uint8_t rsvd32[4];
	uint8_t datasn[4];
	uint8_t buffer_offset[4];
	uint8_t rsvd44[4];
};

/* 0x31 Ready To Transfer */
struct iscsi_bhs_r2t {
	uint8_t opcode, flags, rsvd2[2], ahs_len, data_len[3];
	uint8_t lun[8];
	uint8_t itt[4];
	uint8_t ttt[4];
	uint8_t statsn[4];
	uint8_t exp_cmdsn[4];
	uint8_t max_cmdsn[4];
	uint8_t r2tsn[4];
	uint8_t buffer_offset[4];
	uint8_t desired_len[4]; /* Desired Data Transfer Length */
};

/* 0x00 NOP-Out */
struct iscsi_bhs_nop_out {
	uint8_t opcode, flags, rsvd2[2], ahs_len, data_len[3];
	uint8_t lun[8];
	uint8_t itt[4];       /* 0xffffffff: no NOP-In wanted */
	uint8_t ttt[4];       /* echoes a NOP-In's TTT, else 0xffffffff */
	uint8_t cmdsn[4];
	uint8_t exp_statsn[4];
	uint8_t rsvd32[16];
};

/* 0x20 NOP-In */
struct iscsi_bhs_nop_in {
	uint8_t opcode, flags, rsvd2[2], ahs_len, data_len[3];
	uint8_t lun[8];
	uint8_t itt[4];
	uint8_t ttt[4];       /* not 0xffffffff: the target wants a NOP-Out */
	uint8_t statsn[4];
	uint8_t exp_cmdsn[4];
	uint8_t max_cmdsn[4];
	uint8_t rsvd36[12];
};

/* 0x03 Login Request */
struct iscsi_bhs_login_req {
	uint8_t opcode, flags;
	uint8_t version_max, version_min;
	uint8_t ahs_len, data_len[3];
	uint8_t isid[6];
	uint8_t tsih[2];
	uint8_t itt[4];
	uint8_t cid[2];
	uint8_t rsvd22[2];
	uint8_t cmdsn[4];
	uint8_t exp_statsn[4];
	uint8_t rsvd32[16];
};

/* 0x23 Login Response */
struct iscsi_bhs_login_rsp {
	uint8_t opcode, flags;
	uint8_t version_max, version_active;
	uint8_t ahs_len, data_len[3];
	uint8_t isid[6];
	uint8_t tsih[2];
	uint8_t itt[4];
	uint8_t rsvd20[4];
	uint8_t statsn[4];
	uint8_t exp_cmdsn[4];
	uint8_t max_cmdsn[4];
	uint8_t status_class;
	uint8_t status_detail;
	uint8_t rsvd38[10];
};

/* 0x04 Text Request */
struct iscsi_bhs_text_req {
	uint8_t opcode, flags, rsvd2[2], ahs_len, data_len[3];
	uint8_t lun[8];
	uint8_t itt[4];
	uint8_t ttt[4];
	uint8_t cmdsn[4];
	uint8_t exp_statsn[4];
	uint8_t rsvd32[16];
};

/* 0x24 Text Response */
struct iscsi_bhs_text_rsp {
	uint8_t opcode, flags, rsvd2[2], ahs_len, data_len[3];
	uint8_t lun[8];
	uint8_t itt[4];
	uint8_t ttt[4];
	uint8_t statsn[4];
	uint8_t exp_cmdsn[4];
	uint8_t max_cmdsn[4];
	uint8_t rsvd36[12];
};

/* 0x06 Logout Request */
struct iscsi_bhs_logout_req {
	uint8_t opcode;
	uint8_t flags;        /* F bit and the reason code */
	uint8_t rsvd2[2], ahs_len, data_len[3];
	uint8_t rsvd8[8];
	uint8_t itt[4];
	uint8_t cid[2];
	uint8_t rsvd22[2];
	uint8_t cmdsn[4];
	uint8_t exp_statsn[4];
	uint8_t rsvd32[16];
};

/* 0x26 Logout Response */
struct iscsi_bhs_logout_rsp {
	uint8_t opcode, flags;
	uint8_t response;
	uint8_t rsvd3;
	uint8_t ahs_len, data_len[3];
	uint8_t rsvd8[8];
	uint8_t itt[4];
	uint8_t rsvd20[4];
	uint8_t statsn[4];
	uint8_t exp_cmdsn[4];
	uint8_t max_cmdsn[4];
	uint8_t rsvd36[4];
	uint8_t time2wait[2];
	uint8_t time2retain[2];
	uint8_t rsvd44[4];
};

/* 0x02 Task Management Function Request */
struct iscsi_bhs_tmf_req {
	uint8_t opcode;
	uint8_t flags;        /* F bit and the function */
	uint8_t rsvd2[2], ahs_len, data_len[3];
	uint8_t lun[8];
	uint8_t itt[4];
	uint8_t ref_itt[4];   /* Referenced Task Tag (ABORT TASK) */
	uint8_t cmdsn[4];
	uint8_t exp_statsn[4];
	uint8_t ref_cmdsn[4];
	uint8_t exp_datasn[4];
	uint8_t rsvd40[8];
};

/* 0x22 Task Management Function Response */
struct iscsi_bhs_tmf_rsp {
	uint8_t opcode, flags;
	uint8_t response;     /* 0 = function complete */
	uint8_t rsvd3;
	uint8_t ahs_len, data_len[3];
	uint8_t rsvd8[8];
	uint8_t itt[4];
	uint8_t rsvd20[4];
	uint8_t statsn[4];
	uint8_t exp_cmdsn[4];
	uint8_t max_cmdsn[4];
	uint8_t rsvd36[12];
};

/* 0x32 Asynchronous Message */
struct iscsi_bhs_async {
	uint8_t opcode, flags, rsvd2[2], ahs_len, data_len[3];
	uint8_t lun[8];
	uint8_t itt[4];       /* always 0xffffffff */
	uint8_t rsvd20[4];
	uint8_t statsn[4];
	uint8_t exp_cmdsn[4];
	uint8_t max_cmdsn[4];
	uint8_t event;        /* enum iscsi_async_event */
	uint8_t vcode;
	uint8_t param1[2];
	uint8_t param2[2];
	uint8_t param3[2];
	uint8_t rsvd44[4];
};

/* 0x3f Reject: the data segment holds the rejected header. */
struct iscsi_bhs_reject {
	uint8_t opcode, flags;
	uint8_t reason;
	uint8_t rsvd3;
	uint8_t ahs_len, data_len[3];
	uint8_t rsvd8[8];
	uint8_t itt[4];       /* always 0xffffffff */
	uint8_t rsvd20[4];
	uint8_t statsn[4];
	uint8_t exp_cmdsn[4];
	uint8_t max_cmdsn[4];
	uint8_t datasn[4];
	uint8_t rsvd40[8];
};

/* The 48 bytes of a BHS, seen as each PDU type. */
union iscsi_bhs {
	uint8_t bytes[ISCSI_BHS_SIZE];
	struct iscsi_bhs_common common;
	struct iscsi_bhs_scsi_cmd scsi_cmd;
	struct iscsi_bhs_scsi_rsp scsi_rsp;
	struct iscsi_bhs_data_in data_in;
	struct iscsi_bhs_data_out data_out;
	struct iscsi_bhs_r2t r2t;
	struct iscsi_bhs_nop_out nop_out;
	struct iscsi_bhs_nop_in nop_in;
	struct iscsi_bhs_login_req login_req;
	struct iscsi_bhs_login_rsp login_rsp;
	struct iscsi_bhs_text_req text_req;
	struct iscsi_bhs_text_rsp text_rsp;
	struct iscsi_bhs_logout_req logout_req;
	struct iscsi_bhs_logout_rsp logout_rsp;
	struct iscsi_bhs_tmf_req tmf_req;
	struct iscsi_bhs_tmf_rsp tmf_rsp;
	struct iscsi_bhs_async async;
	struct iscsi_bhs_reject reject;
};

_Static_assert(sizeof(struct iscsi_bhs_common) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_scsi_cmd) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_scsi_rsp) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_data_in) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_data_out) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_r2t) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_nop_out) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_nop_in) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_login_req) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_login_rsp) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_text_req) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_text_rsp) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_logout_req) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_logout_rsp) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_tmf_req) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_tmf_rsp) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_async) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(struct iscsi_bhs_reject) == ISCSI_BHS_SIZE, "BHS size");
_Static_assert(sizeof(union iscsi_bhs) == ISCSI_BHS_SIZE, "BHS size");

/* Zero @bhs and set its opcode, with the I bit when @immediate. */
void pdu_init(union iscsi_bhs *bhs, enum iscsi_opcode op, bool immediate);

static inline enum iscsi_opcode pdu_opcode(const union iscsi_bhs *bhs)
{
	return (enum iscsi_opcode)(bhs->common.opcode & ISCSI_OPCODE_MASK);
}

static inline uint32_t pdu_data_len(const union iscsi_bhs *bhs)
{
	return get_be24(bhs->common.data_len);
}

static inline void pdu_set_data_len(union iscsi_bhs *bhs, uint32_t len)
{
	put_be24(bhs->common.data_len, len);
}

static inline uint32_t pdu_itt(const union iscsi_bhs *bhs)
{
	return get_be32(bhs->common.itt);
}

/* Bytes of padding after a data segment of @len bytes. */
static inline uint32_t pdu_pad(uint32_t len)
{
	return (4 - (len & 3)) & 3;
}

/* A short name for logs ("SCSI Response"); "unknown" for others. */
const char *pdu_opcode_name(uint8_t opcode);

/* True for opcodes a target may send. */
bool pdu_is_target_opcode(uint8_t opcode);

/* Check a BHS received from a target before anything else looks at it:
 * the opcode is one a target sends, there is no AHS (TotalAHSLength 0: no
 * AHS type is defined for target PDUs), and the data segment is no longer
 * than @max_data (what we declared as MaxRecvDataSegmentLength, or the
 * login limit).  Returns 0, or -1 with err_set() naming the violation. */
int pdu_check_received(const union iscsi_bhs *bhs, uint32_t max_data);

/* SAM LUN encoding for the 8-byte LUN field: single-level peripheral
 * addressing below 256, flat addressing up to 16383.  @lun must be at
 * most 16383: every LUN number comes from pdu_lun_decode() or url_parse(),
 * which never give more. */
uint64_t pdu_lun_encode(uint32_t lun);
/* Inverse of pdu_lun_encode(); -1 when the form is not one we can address. */
int64_t pdu_lun_decode(uint64_t wire);

#endif /* ISCSIFS_PDU_H */
