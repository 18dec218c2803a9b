/* pdu_rx.h: the resumable receiver of iSCSI PDUs.
 *
 * A pdu_rx turns a byte stream into PDUs, whatever pieces the stream comes
 * in: a socket may return one byte or a hundred PDUs, or nothing yet
 * (EAGAIN), and the receiver resumes where the last piece ended.  It owns
 * a receive buffer that pdu_rx_recv() fills with one recv() of as much as
 * it has room for; pdu_rx_next() then parses what is buffered, one PDU
 * per call, until it needs more input, so many small PDUs cost one system
 * call.
 *
 * Where a data segment goes is the owner's choice, made once the header is
 * known and checked: the place callback returns the destination (a Data-In
 * lands straight in its task's buffer at its offset: copied there from the
 * receive buffer, or received there by recv() itself when a large part of
 * the segment is still to come), or NULL to drop the segment.  Without a
 * callback pdu_rx_next() stops at the header (PDU_RX_HEADER) and waits for
 * pdu_rx_place() (the blocking two-step receive of conn.h).
 *
 * Thread model: none of its own; one thread at a time uses a pdu_rx (the
 * session's event loop, or login and discovery before it exists).
 */
#ifndef ISCSIFS_PDU_RX_H
#define ISCSIFS_PDU_RX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pdu.h"

/* Where the receiver is in the PDU under way; rx_offset of rx_len bytes of
 * that part have arrived. */
enum pdu_rx_state {
	PDU_RX_BHS,      /* the 48-byte Basic Header Segment, into bhs */
	PDU_RX_AHS,      /* TotalAHSLength*4 bytes of Additional Header
	                  * Segments: skipped, but covered by the header digest */
	PDU_RX_HDIGEST,  /* the 4-byte CRC32C of BHS and AHS (HeaderDigest) */
	PDU_RX_PLACE,    /* header checked, waiting for pdu_rx_place() to say
	                  * where the data goes (only without a place callback) */
	PDU_RX_DATA,     /* DataSegmentLength bytes, into dst (NULL: dropped) */
	PDU_RX_PAD,      /* 0-3 bytes to the next multiple of 4, digested */
	PDU_RX_DDIGEST,  /* the 4-byte CRC32C of data and padding (DataDigest) */
	PDU_RX_DONE,     /* a PDU is complete (bhs, dst); the next call to
	                  * pdu_rx_next() starts the next one */
};

/* What pdu_rx_next() returns besides -1. */
enum pdu_rx_event {
	PDU_RX_MORE = 0,     /* every buffered byte is used: pdu_rx_recv() next */
	PDU_RX_COMPLETE = 1, /* a PDU is complete: rx->bhs, its data at rx->dst */
	PDU_RX_HEADER = 2,   /* (no place callback) header known: pdu_rx_place() */
};

/* Where the data segment of the PDU whose header is @bhs goes: set *@dst to
 * pdu_data_len(@bhs) writable bytes, or NULL to drop them.  Called once per
 * PDU, after the header digest and the limits are checked, before any data
 * is read; also for a PDU without data.  Returns 0, or -1 with err_set()
 * (the PDU is refused: the receiver stops with that error). */
typedef int (*pdu_rx_place_fn)(void *arg, const union iscsi_bhs *bhs, uint8_t **dst);

struct pdu_rx {
	/* Configuration, set by the owner between PDUs. */
	bool header_digest;     /* a CRC32C follows each header */
	bool data_digest;       /* a CRC32C follows each data segment */
	uint32_t max_data;      /* with check_target: the longest data segment
	                         * accepted (our MaxRecvDataSegmentLength) */
	bool check_target;      /* refuse what pdu_check_received() refuses
	                         * (full feature phase); else the owner checks */
	pdu_rx_place_fn place;  /* where data goes; NULL: stop at PDU_RX_HEADER */
	void *place_arg;        /* for place */

	/* The PDU under way. */
	enum pdu_rx_state state;
	uint32_t rx_offset;     /* bytes of the current part received */
	uint32_t rx_len;        /* length of the current part */
	union iscsi_bhs bhs;    /* its header, valid from PDU_RX_AHS on */
	uint8_t *dst;           /* where its data goes (NULL: dropped), from
	                         * PDU_RX_DATA on */
	uint32_t data_len;      /* its DataSegmentLength */
	uint32_t crc;           /* running CRC32C of the digest under way */
	uint8_t tail[4];        /* a digest (or padding) as it arrives */

	/* The receive buffer: buf[start..end) received, not yet parsed. */
	uint8_t *buf;           /* cap bytes: our own (malloc()ed), or lent
	                         * (pdu_rx_lend()), or NULL (neither: between
	                         * two loans) */
	bool lent;              /* buf is lent: not ours to free */
	size_t start;           /* first unparsed byte */
	size_t end;             /* one past the last received byte */
	size_t cap;             /* size of buf */
	uint64_t recvs;         /* recv() calls that brought bytes (statistics) */
};

/* A data segment with at least this much left to come, none of it
 * buffered, is received by recv() straight into its destination. */
#define PDU_RX_DIRECT_MIN (16 * 1024)

/* Set up @rx in its first state with a receive buffer of @cap bytes (at
 * least a BHS).  Returns 0, or -1 with err_set(ENOMEM). */
int pdu_rx_init(struct pdu_rx *rx, size_t cap);

/* Free the buffer; @rx may be freed again or set up anew. */
void pdu_rx_free(struct pdu_rx *rx);

/* A receiver may do without a buffer of its own between receives and
 * borrow one (a loop's, shared by its sockets) for each.
 * pdu_rx_drop_buffer(): free our own buffer if it holds nothing unparsed;
 * returns whether @rx has no buffer now (then pdu_rx_lend() may follow).
 * pdu_rx_lend(): receive into @buf (@cap bytes, at least a BHS) until
 * pdu_rx_unlend(), which hands it back; what it still holds unparsed
 * (nothing, after pdu_rx_next() returned PDU_RX_MORE) moves to a buffer of
 * our own of @own_cap bytes.  pdu_rx_unlend() returns 0, or -1 with
 * err_set(ENOMEM) (the unparsed bytes are lost: the stream is broken). */
bool pdu_rx_drop_buffer(struct pdu_rx *rx);
/* Give @rx a buffer of its own of @cap bytes if it has none (a loan
 * refused).  Returns 0, or -1 with err_set(ENOMEM). */
int pdu_rx_own_buffer(struct pdu_rx *rx, size_t cap);
void pdu_rx_lend(struct pdu_rx *rx, uint8_t *buf, size_t cap);
int pdu_rx_unlend(struct pdu_rx *rx, size_t own_cap);

/* One recv() on @fd with @flags (MSG_DONTWAIT for a non-blocking one):
 * into the data destination when the rest of a large segment is to come
 * and nothing is buffered, else into the room of the buffer.  Returns the
 * bytes received (> 0), 0 at end of stream, or -1 with errno (EAGAIN,
 * EINTR, ...) and nothing changed.  Call it only after pdu_rx_next()
 * returned PDU_RX_MORE. */
ssize_t pdu_rx_recv(struct pdu_rx *rx, int fd, int flags);

/* Bytes for the receiver from elsewhere (tests, fuzzing, a buffer of the
 * caller's): copied into the buffer's room, as pdu_rx_recv() would
 * receive them.  Returns how many were taken (less than @len when the
 * room is short: parse with pdu_rx_next() and give the rest again). */
size_t pdu_rx_feed(struct pdu_rx *rx, const void *in, size_t len);

/* Parse buffered bytes: returns PDU_RX_COMPLETE once a PDU is whole,
 * PDU_RX_HEADER (no place callback) once its header is checked,
 * PDU_RX_MORE when the buffer is used up, or -1 with err_set(EPROTO, ...)
 * for a PDU that breaks the protocol (digest mismatch, a limit of
 * check_target, or the place callback's refusal), naming @peer. */
int pdu_rx_next(struct pdu_rx *rx, const char *peer);

/* After PDU_RX_HEADER: the data segment goes to @dst (NULL: dropped). */
void pdu_rx_place(struct pdu_rx *rx, uint8_t *dst);

/* Whether @rx is between PDUs (nothing of the next one received yet). */
bool pdu_rx_idle(const struct pdu_rx *rx);

#endif /* ISCSIFS_PDU_RX_H */
