/* discard_plan.c: cutting a hole or zero range into commands (see
 * discard_plan.h).
 *
 * Every quantity is a block number or a count of blocks below 2^64.  The
 * code never adds to a block number without first comparing the amount
 * with the room left before @end, and multiplies only where the product
 * is known to stay inside a segment, so no sum or product wraps.
 *
 * Thread model: none.
 */
#include "discard_plan.h"

#include <string.h>

/* Append a segment of @op over [@lba, @lba + @blocks) in pieces of at
 * most @chunk blocks; nothing when @blocks is 0. */
static void add_segment(struct discard_plan *plan, enum discard_op op, uint64_t lba,
			uint64_t blocks, uint32_t chunk)
{
	struct discard_segment *s;

	if (blocks == 0)
		return;
	s = &plan->seg[plan->nseg++];
	s->op = op;
	s->lba = lba;
	s->blocks = blocks;
	s->chunk = chunk;
	s->pieces = blocks / chunk + (blocks % chunk != 0);
	plan->pieces += s->pieces;
}

/* The longest UNMAP: a whole number of granules of @g blocks within the
 * LUN's limit; 0 when not even one granule fits in it. */
static uint32_t unmap_chunk(const struct discard_limits *lim, uint32_t g)
{
	uint32_t limit = lim->max_unmap_blocks ? lim->max_unmap_blocks : UINT32_MAX;
	uint32_t cap = g > DISCARD_MAX_BLOCKS ? g : DISCARD_MAX_BLOCKS;

	/* our own cap, never below one granule nor above the LUN's limit */
	if (limit > cap)
		limit = cap;
	return limit / g * g;
}

/* The interior [@a, @b) (non-empty) by UNMAP: whole granules from the
 * first boundary at or after @a, zeros on either side of them. */
static void plan_unmap(struct discard_plan *plan, uint64_t a, uint64_t b,
		       const struct discard_limits *lim, uint32_t zero_chunk)
{
	uint32_t g = lim->granularity ? lim->granularity : 1;
	uint32_t align = lim->alignment_valid ? lim->alignment % g : 0;
	uint32_t chunk = unmap_chunk(lim, g);
	uint32_t r = (uint32_t)(a % g);
	uint64_t lead, granules, ua, ub;

	/* blocks from a to the first boundary (lba % g == align) at or after it */
	lead = align >= r ? align - r : (uint64_t)g - (r - align);
	if (chunk == 0 || lead >= b - a) {
		add_segment(plan, DISCARD_OP_ZEROS, a, b - a, zero_chunk);
		return;
	}
	ua = a + lead;                     /* < b: no wrap */
	granules = (b - ua) / g;
	if (granules == 0) {
		add_segment(plan, DISCARD_OP_ZEROS, a, b - a, zero_chunk);
		return;
	}
	ub = ua + granules * g;            /* <= b: no wrap */
	add_segment(plan, DISCARD_OP_ZEROS, a, ua - a, zero_chunk);
	add_segment(plan, DISCARD_OP_UNMAP, ua, ub - ua, chunk);
	add_segment(plan, DISCARD_OP_ZEROS, ub, b - ub, zero_chunk);
}

void discard_plan_make(struct discard_plan *plan, uint64_t first, uint64_t end, bool head_edge,
		       bool tail_edge, const struct discard_limits *lim)
{
	uint32_t zero_chunk = lim->zero_blocks ? lim->zero_blocks : 1;
	uint64_t a = first, b = end;
	bool tail = false;

	memset(plan, 0, sizeof *plan);
	if (end <= first)
		return;
	if (head_edge) {
		add_segment(plan, DISCARD_OP_EDGE, a, 1, 1);
		a++;
	}
	if (tail_edge && a < b) {
		b--;
		tail = true;
	}
	if (a < b) {
		switch (lim->method) {
		case DISCARD_UNMAP:
			plan_unmap(plan, a, b, lim, zero_chunk);
			break;
		case DISCARD_WRITE_SAME: {
			uint64_t max = lim->max_write_same_blocks;
			uint32_t chunk = max && max < DISCARD_MAX_BLOCKS ? (uint32_t)max : DISCARD_MAX_BLOCKS;
			add_segment(plan, DISCARD_OP_WRITE_SAME, a, b - a, chunk);
			break;
		}
		case DISCARD_WRITE_ZEROS:
			add_segment(plan, DISCARD_OP_ZEROS, a, b - a, zero_chunk);
			break;
		}
	}
	if (tail)
		add_segment(plan, DISCARD_OP_EDGE, b, 1, 1);
}

bool discard_plan_piece(const struct discard_plan *plan, uint64_t k, struct discard_span *out)
{
	for (unsigned i = 0; i < plan->nseg; i++) {
		const struct discard_segment *s = &plan->seg[i];
		if (k < s->pieces) {
			uint64_t at = k * s->chunk;        /* < s->blocks: no wrap */
			uint64_t left = s->blocks - at;
			out->op = s->op;
			out->lba = s->lba + at;
			out->blocks = left < s->chunk ? (uint32_t)left : s->chunk;
			return true;
		}
		k -= s->pieces;
	}
	return false;
}
