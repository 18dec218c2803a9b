/* pdu.c: what every PDU needs beyond its layout: initialisation, names,
 * the first sanity check of a received header, and LUN encoding.
 *
 * No state, no locks: safe from any thread.
 */
#include "pdu.h"

#include <errno.h>
#include <string.h>

#include "log.h"

void pdu_init(union iscsi_bhs *bhs, enum iscsi_opcode op, bool immediate)
{
	memset(bhs, 0, sizeof *bhs);
	bhs->common.opcode = (uint8_t)(op | (immediate ? ISCSI_FLAG_IMMEDIATE : 0));
}

const char *pdu_opcode_name(uint8_t opcode)
{
	switch (opcode & ISCSI_OPCODE_MASK) {
	case ISCSI_OP_NOP_OUT: return "NOP-Out";
	case ISCSI_OP_SCSI_CMD: return "SCSI Command";
	case ISCSI_OP_TMF_REQ: return "Task Management Request";
	case ISCSI_OP_LOGIN_REQ: return "Login Request";
	case ISCSI_OP_TEXT_REQ: return "Text Request";
	case ISCSI_OP_DATA_OUT: return "Data-Out";
	case ISCSI_OP_LOGOUT_REQ: return "Logout Request";
	case ISCSI_OP_SNACK_REQ: return "SNACK";
	case ISCSI_OP_NOP_IN: return "NOP-In";
	case ISCSI_OP_SCSI_RSP: return "SCSI Response";
	case ISCSI_OP_TMF_RSP: return "Task Management Response";
	case ISCSI_OP_LOGIN_RSP: return "Login Response";
	case ISCSI_OP_TEXT_RSP: return "Text Response";
	case ISCSI_OP_DATA_IN: return "Data-In";
	case ISCSI_OP_LOGOUT_RSP: return "Logout Response";
	case ISCSI_OP_R2T: return "R2T";
	case ISCSI_OP_ASYNC_MSG: return "Asynchronous Message";
	case ISCSI_OP_REJECT: return "Reject";
	default: return "unknown";
	}
}

bool pdu_is_target_opcode(uint8_t opcode)
{
	switch (opcode & ISCSI_OPCODE_MASK) {
	case ISCSI_OP_NOP_IN:
	case ISCSI_OP_SCSI_RSP:
	case ISCSI_OP_TMF_RSP:
	case ISCSI_OP_LOGIN_RSP:
	case ISCSI_OP_TEXT_RSP:
	case ISCSI_OP_DATA_IN:
	case ISCSI_OP_LOGOUT_RSP:
	case ISCSI_OP_R2T:
	case ISCSI_OP_ASYNC_MSG:
	case ISCSI_OP_REJECT:
		return true;
	default:
		return false;
	}
}

int pdu_check_received(const union iscsi_bhs *bhs, uint32_t max_data)
{
	uint8_t op = bhs->common.opcode & ISCSI_OPCODE_MASK;
	uint32_t len = pdu_data_len(bhs);

	if (!pdu_is_target_opcode(op)) {
		err_set(EPROTO, "protocol error: target sent opcode 0x%02x, not a target PDU", op);
		return -1;
	}
	/* RFC 7143 11.2.2: the AHS types (extended CDB, bidirectional read
	 * length) belong to the SCSI Command; a target PDU carries none. */
	if (bhs->common.ahs_len) {
		err_set(EPROTO, "protocol error: %s with a %u-byte AHS; target PDUs carry none",
			pdu_opcode_name(op), bhs->common.ahs_len * 4u);
		return -1;
	}
	if (len > max_data) {
		err_set(EPROTO, "protocol error: %s with a %u-byte data segment, over the %u we accept",
			pdu_opcode_name(op), len, max_data);
		return -1;
	}
	return 0;
}

uint64_t pdu_lun_encode(uint32_t lun)
{
	if (lun < 256)
		return (uint64_t)lun << 48;
	/* flat space addressing: 01b in the top two bits */
	return (uint64_t)(0x4000 | (lun & 0x3fff)) << 48;
}

int64_t pdu_lun_decode(uint64_t wire)
{
	uint16_t first = (uint16_t)(wire >> 48);

	if ((wire & 0x0000ffffffffffffULL) != 0)
		return -1;          /* multi-level LUNs: not addressable here */
	switch (first >> 14) {
	case 0:                     /* peripheral device addressing, bus 0 */
		if (first >> 8)
			return -1;
		return first & 0xff;
	case 1:                     /* flat space addressing */
		return first & 0x3fff;
	default:
		return -1;
	}
}
