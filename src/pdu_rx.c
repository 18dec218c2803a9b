/* pdu_rx.c: the resumable receiver of iSCSI PDUs (see pdu_rx.h).
 *
 * One loop in pdu_rx_next() moves through the states of enum
 * pdu_rx_state: each part of a PDU (BHS, AHS, header digest, data,
 * padding, data digest) is taken from the receive buffer as far as it is
 * there, rx_offset counting what of its rx_len bytes has arrived; a part
 * that is short ends the call with PDU_RX_MORE, and the next call goes on
 * from the same byte.  pdu_rx_next() returns PDU_RX_MORE only once the
 * buffer is used up, so pdu_rx_recv() always finds it empty and receives
 * into the whole of it.
 *
 * The header is checked (digest, then pdu_check_received()'s limits)
 * before the owner is asked where the data goes, so no buffer of the
 * owner's is touched by a PDU whose header is refused.
 *
 * No locks, no threads: the owner's (pdu_rx.h).
 */
#include "pdu_rx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "crc32c.h"
#include "log.h"

int pdu_rx_init(struct pdu_rx *rx, size_t cap)
{
	memset(rx, 0, sizeof *rx);
	rx->state = PDU_RX_DONE;
	return pdu_rx_own_buffer(rx, cap);
}

void pdu_rx_free(struct pdu_rx *rx)
{
	if (!rx->lent)
		free(rx->buf);
	rx->buf = NULL;
	rx->lent = false;
	rx->start = rx->end = rx->cap = 0;
}

bool pdu_rx_drop_buffer(struct pdu_rx *rx)
{
	if (rx->buf && (rx->lent || rx->start != rx->end))
		return false;
	pdu_rx_free(rx);
	return true;
}

int pdu_rx_own_buffer(struct pdu_rx *rx, size_t cap)
{
	if (rx->buf)
		return 0;
	if (cap < ISCSI_BHS_SIZE)
		cap = ISCSI_BHS_SIZE;
	rx->buf = malloc(cap);
	if (!rx->buf) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	rx->cap = cap;
	rx->start = rx->end = 0;
	return 0;
}

void pdu_rx_lend(struct pdu_rx *rx, uint8_t *buf, size_t cap)
{
	rx->buf = buf;
	rx->cap = cap;
	rx->lent = true;
	rx->start = rx->end = 0;
}

int pdu_rx_unlend(struct pdu_rx *rx, size_t own_cap)
{
	size_t left = rx->end - rx->start;
	uint8_t *own = NULL;

	if (!rx->lent)
		return 0;
	if (left) {
		if (own_cap < left)
			own_cap = left;
		own = malloc(own_cap);
		if (!own) {
			pdu_rx_free(rx);
			err_set(ENOMEM, "out of memory");
			return -1;
		}
		memcpy(own, rx->buf + rx->start, left);
	}
	rx->buf = own;
	rx->cap = own ? own_cap : 0;
	rx->lent = false;
	rx->start = 0;
	rx->end = left;
	return 0;
}

bool pdu_rx_idle(const struct pdu_rx *rx)
{
	bool between = rx->state == PDU_RX_DONE ||
		       (rx->state == PDU_RX_BHS && rx->rx_offset == 0);
	return between && rx->start == rx->end;
}

/* Make the room of the buffer as large as it can be: what is still to be
 * parsed goes to its front. */
static void compact(struct pdu_rx *rx)
{
	if (rx->start == rx->end) {
		rx->start = rx->end = 0;
	} else if (rx->start > 0) {
		memmove(rx->buf, rx->buf + rx->start, rx->end - rx->start);
		rx->end -= rx->start;
		rx->start = 0;
	}
}

ssize_t pdu_rx_recv(struct pdu_rx *rx, int fd, int flags)
{
	ssize_t n;

	if (rx->state == PDU_RX_DATA && rx->dst && rx->start == rx->end &&
	    rx->rx_len - rx->rx_offset >= PDU_RX_DIRECT_MIN) {
		/* straight into the destination, digested there */
		uint8_t *to = rx->dst + rx->rx_offset;
		n = recv(fd, to, rx->rx_len - rx->rx_offset, flags);
		if (n > 0) {
			if (rx->data_digest)
				rx->crc = crc32c_update(rx->crc, to, (size_t)n);
			rx->rx_offset += (uint32_t)n;
			rx->recvs++;
		}
		return n;
	}
	compact(rx);
	n = recv(fd, rx->buf + rx->end, rx->cap - rx->end, flags);
	if (n > 0) {
		rx->end += (size_t)n;
		rx->recvs++;
	}
	return n;
}

size_t pdu_rx_feed(struct pdu_rx *rx, const void *in, size_t len)
{
	compact(rx);
	size_t take = rx->cap - rx->end < len ? rx->cap - rx->end : len;
	memcpy(rx->buf + rx->end, in, take);
	rx->end += take;
	return take;
}

/* Enter @state, whose part is @len bytes long. */
static void enter(struct pdu_rx *rx, enum pdu_rx_state state, uint32_t len)
{
	rx->state = state;
	rx->rx_offset = 0;
	rx->rx_len = len;
}

/* Take what the buffer has of the current part: into @to at rx_offset
 * (NULL: dropped), into the running digest when @digest.  Returns whether
 * the part is complete. */
static bool take(struct pdu_rx *rx, uint8_t *to, bool digest)
{
	size_t have = rx->end - rx->start;
	size_t want = rx->rx_len - rx->rx_offset;
	size_t n = have < want ? have : want;
	const uint8_t *from = rx->buf + rx->start;

	if (n) {
		if (to)
			memcpy(to + rx->rx_offset, from, n);
		if (digest)
			rx->crc = crc32c_update(rx->crc, from, n);
		rx->start += n;
		rx->rx_offset += (uint32_t)n;
	}
	return rx->rx_offset == rx->rx_len;
}

void pdu_rx_place(struct pdu_rx *rx, uint8_t *dst)
{
	rx->dst = dst;
	rx->crc = crc32c_begin();
	enter(rx, PDU_RX_DATA, rx->data_len);
}

/* The header (BHS, AHS, digest) is whole: check it and learn where its
 * data goes.  Returns PDU_RX_MORE to go on parsing, PDU_RX_HEADER to stop
 * for pdu_rx_place(), or -1. */
static int header_done(struct pdu_rx *rx)
{
	if (rx->check_target && pdu_check_received(&rx->bhs, rx->max_data) < 0)
		return -1;
	rx->data_len = pdu_data_len(&rx->bhs);
	if (!rx->place) {
		enter(rx, PDU_RX_PLACE, 0);
		return PDU_RX_HEADER;
	}
	uint8_t *dst = NULL;
	if (rx->place(rx->place_arg, &rx->bhs, &dst) < 0)
		return -1;
	pdu_rx_place(rx, dst);
	return PDU_RX_MORE;
}

/* The data segment and its padding are whole: its digest next, or the
 * PDU is complete. */
static int data_done(struct pdu_rx *rx)
{
	if (rx->data_digest && rx->data_len) {
		enter(rx, PDU_RX_DDIGEST, 4);
		return PDU_RX_MORE;
	}
	enter(rx, PDU_RX_DONE, 0);
	return PDU_RX_COMPLETE;
}

int pdu_rx_next(struct pdu_rx *rx, const char *peer)
{
	int rc;

	for (;;) {
		switch (rx->state) {
		case PDU_RX_DONE:
			rx->dst = NULL;
			rx->data_len = 0;
			enter(rx, PDU_RX_BHS, ISCSI_BHS_SIZE);
			break;
		case PDU_RX_BHS:
			if (!take(rx, rx->bhs.bytes, false))
				return PDU_RX_MORE;
			rx->crc = crc32c_begin();
			if (rx->header_digest)
				rx->crc = crc32c_update(rx->crc, rx->bhs.bytes, ISCSI_BHS_SIZE);
			enter(rx, PDU_RX_AHS, rx->bhs.common.ahs_len * 4u);
			break;
		case PDU_RX_AHS:
			if (!take(rx, NULL, rx->header_digest))
				return PDU_RX_MORE;
			if (rx->header_digest) {
				enter(rx, PDU_RX_HDIGEST, 4);
				break;
			}
			rc = header_done(rx);
			if (rc != PDU_RX_MORE)
				return rc;
			break;
		case PDU_RX_HDIGEST:
			if (!take(rx, rx->tail, false))
				return PDU_RX_MORE;
			if (get_le32(rx->tail) != crc32c_end(rx->crc)) {
				err_set(EPROTO, "header digest error on %s from %s",
					pdu_opcode_name(rx->bhs.common.opcode), peer);
				return -1;
			}
			rc = header_done(rx);
			if (rc != PDU_RX_MORE)
				return rc;
			break;
		case PDU_RX_PLACE:
			return PDU_RX_HEADER;
		case PDU_RX_DATA:
			if (!take(rx, rx->dst, rx->data_digest))
				return PDU_RX_MORE;
			enter(rx, PDU_RX_PAD, pdu_pad(rx->data_len));
			break;
		case PDU_RX_PAD:
			if (!take(rx, rx->tail, rx->data_digest))
				return PDU_RX_MORE;
			rc = data_done(rx);
			if (rc != PDU_RX_MORE)
				return rc;
			break;
		case PDU_RX_DDIGEST:
			if (!take(rx, rx->tail, false))
				return PDU_RX_MORE;
			if (get_le32(rx->tail) != crc32c_end(rx->crc)) {
				err_set(EPROTO, "data digest error from %s", peer);
				return -1;
			}
			enter(rx, PDU_RX_DONE, 0);
			return PDU_RX_COMPLETE;
		}
	}
}
