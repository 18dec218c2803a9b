/* discard_plan.h: which commands make a range of blocks read as zeros.
 *
 * Pure arithmetic on block numbers: no I/O, no LUN, no session.  Given
 * the whole blocks [first, end) of a hole or zero range, whether its
 * first and last blocks are partial (the caller reads them, merges zeros
 * and writes them back whole: "edges"), how the LUN deallocates and the
 * limits its Block Limits VPD page reports, discard_plan_make() cuts the
 * range into commands:
 *
 *   edge         WRITE of one merged partial block;
 *   UNMAP        only whole granules: every command starts on a granule
 *                boundary (lba % granularity == alignment % granularity)
 *                and covers a whole number of granules;
 *   WRITE SAME   (16) of a zero block with UNMAP set, over the interior;
 *   zeros        plain WRITEs of zeros: the interior when the LUN has no
 *                better way, and around the UNMAPped granules.
 *
 * The commands cover [first, end) exactly, in ascending LBA order, with
 * no overlap, and each stays within its limit.  Every input is legal
 * (any granularity, any alignment, valid or not, limits smaller than a
 * granule, ranges up to 2^64 - 1 blocks): the arithmetic is 64-bit and
 * never wraps, so a strange Block Limits page can only cost UNMAPs, never
 * write outside the range.
 *
 * A plan is at most five segments (head edge, zeros, UNMAP, zeros, tail
 * edge), each a run of equal-sized commands but its last; its commands
 * are numbered 0 .. pieces - 1 and discard_plan_piece() returns one in
 * constant time, so a caller can send a plan of any length a few
 * commands at a time.
 *
 * Thread model: none; the functions read their arguments only.
 */
#ifndef ISCSIFS_DISCARD_PLAN_H
#define ISCSIFS_DISCARD_PLAN_H

#include <stdbool.h>
#include <stdint.h>

/* Longest UNMAP or WRITE SAME, in blocks, when the LUN sets no smaller
 * limit (an UNMAP may still cover one granule that is longer). */
#define DISCARD_MAX_BLOCKS (1u << 22)

/* How the LUN makes the interior (whole blocks) of a range read as zeros. */
enum discard_method {
	DISCARD_UNMAP,            /* UNMAP: the LUN reads unmapped blocks as zeros */
	DISCARD_WRITE_SAME,       /* WRITE SAME(16) of a zero block with UNMAP set */
	DISCARD_WRITE_ZEROS,      /* plain WRITEs of zeros */
};

/* The command of one piece of a plan. */
enum discard_op {
	DISCARD_OP_EDGE,          /* WRITE of one merged partial block */
	DISCARD_OP_ZEROS,         /* WRITE of zeros */
	DISCARD_OP_UNMAP,         /* UNMAP of whole aligned granules */
	DISCARD_OP_WRITE_SAME,    /* WRITE SAME(16) of a zero block, UNMAP set */
};

/* What the LUN offers, as its VPD pages report it (all counts in blocks). */
struct discard_limits {
	enum discard_method method;      /* how the interior goes */
	uint32_t granularity;            /* OPTIMAL UNMAP GRANULARITY (0: 1) */
	uint32_t alignment;              /* UNMAP GRANULARITY ALIGNMENT (any value) */
	bool alignment_valid;            /* UGAVALID: @alignment holds; else 0 */
	uint32_t max_unmap_blocks;       /* MAXIMUM UNMAP LBA COUNT (0 or
	                                  * 0xffffffff: no limit) */
	uint64_t max_write_same_blocks;  /* MAXIMUM WRITE SAME LENGTH (0: no limit) */
	uint32_t zero_blocks;            /* longest WRITE of zeros (0 taken as 1) */
};

/* A run of commands of one kind over consecutive blocks. */
struct discard_segment {
	enum discard_op op;       /* the command of every piece */
	uint64_t lba;             /* its first block */
	uint64_t blocks;          /* blocks it covers (> 0) */
	uint32_t chunk;           /* blocks per piece; the last may be fewer (> 0) */
	uint64_t pieces;          /* pieces: blocks / chunk rounded up */
};

/* Most segments a plan has. */
#define DISCARD_PLAN_SEGMENTS 5

/* The commands of one range. */
struct discard_plan {
	struct discard_segment seg[DISCARD_PLAN_SEGMENTS]; /* in LBA order */
	unsigned nseg;            /* segments used */
	uint64_t pieces;          /* commands in all (never more than the blocks) */
};

/* One command of a plan. */
struct discard_span {
	enum discard_op op;       /* which command */
	uint64_t lba;             /* its first block */
	uint32_t blocks;          /* its length in blocks (> 0) */
};

/* Plan the blocks [@first, @end) (empty when @end <= @first) by @lim;
 * @head_edge: block @first is a partial edge; @tail_edge: block @end - 1
 * is (ignored when that is the head edge's block too). */
void discard_plan_make(struct discard_plan *plan, uint64_t first, uint64_t end, bool head_edge,
		       bool tail_edge, const struct discard_limits *lim);

/* Piece @k (0 .. plan->pieces - 1) of @plan into @out.  Returns false,
 * leaving @out alone, when there is no such piece. */
bool discard_plan_piece(const struct discard_plan *plan, uint64_t k, struct discard_span *out);

#endif /* ISCSIFS_DISCARD_PLAN_H */
