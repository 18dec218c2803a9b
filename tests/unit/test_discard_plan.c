/* test_discard_plan.c: the commands of a hole or zero range
 * (discard_plan.c), without a LUN or root.
 *
 * Table cases with the plan written out (among them issue 12's target:
 * UNMAP GRANULARITY 8, ALIGNMENT 7, a hole over blocks 1..4), then a
 * property test over random granularities, alignments, limits and
 * ranges up to the end of the 64-bit block space, from a fixed seed.
 * Every plan must
 *   - cover [first, end) exactly, in LBA order, with no overlap;
 *   - UNMAP only whole granules, each command starting on a boundary;
 *   - write zeros only inside the range, and never over a whole aligned
 *     granule it could have unmapped;
 *   - keep every command within its limit, with as few commands as
 *     those limits allow (so the count is bounded).
 *
 * Single-threaded.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "discard_plan.h"
#include "testlib.h"

/* ---- what the plan must be, worked out independently ---- */

/* The limit a command of @op must respect under @lim (granule size @g). */
static uint64_t op_limit(const struct discard_limits *lim, enum discard_op op, uint64_t g)
{
	uint64_t limit;

	switch (op) {
	case DISCARD_OP_EDGE:
		return 1;
	case DISCARD_OP_ZEROS:
		return lim->zero_blocks ? lim->zero_blocks : 1;
	case DISCARD_OP_WRITE_SAME:
		limit = DISCARD_MAX_BLOCKS;
		if (lim->max_write_same_blocks && lim->max_write_same_blocks < limit)
			limit = lim->max_write_same_blocks;
		return limit;
	case DISCARD_OP_UNMAP:
		/* the LUN's limit, our cap (at least a granule), whole granules */
		limit = lim->max_unmap_blocks ? lim->max_unmap_blocks : UINT32_MAX;
		if (limit > DISCARD_MAX_BLOCKS && limit > g)
			limit = g > DISCARD_MAX_BLOCKS ? g : DISCARD_MAX_BLOCKS;
		return limit / g * g;
	}
	return 0;
}

/* First block at or after @x with block % g == @align, or UINT64_MAX
 * when there is none below 2^64 - 1; by a loop-free but separate
 * formula from the one under test. */
static uint64_t next_boundary(uint64_t x, uint64_t g, uint64_t align)
{
	uint64_t base = x - x % g;            /* <= x */
	uint64_t cand = base + align;         /* may be below x */

	if (cand < base)                      /* wrapped */
		return UINT64_MAX;
	if (cand >= x)
		return cand;
	if (cand > UINT64_MAX - g)
		return UINT64_MAX;
	return cand + g;
}

/* Whether [@lo, @hi) holds a whole granule starting on a boundary. */
static bool holds_granule(uint64_t lo, uint64_t hi, uint64_t g, uint64_t align)
{
	uint64_t u = next_boundary(lo, g, align);
	return u != UINT64_MAX && u < hi && hi - u >= g;
}

static const char *const op_names[] = {
	[DISCARD_OP_EDGE] = "edge", [DISCARD_OP_ZEROS] = "zeros",
	[DISCARD_OP_UNMAP] = "UNMAP", [DISCARD_OP_WRITE_SAME] = "WRITE SAME",
};

/* Describe the inputs of a failed case once. */
static void describe(const char *what, uint64_t first, uint64_t end, bool head, bool tail,
		     const struct discard_limits *lim)
{
	fprintf(stderr,
		"  in %s: [%" PRIu64 ", %" PRIu64 ") head %d tail %d method %d g %" PRIu32
		" align %" PRIu32 " valid %d max_unmap %" PRIu32 " max_ws %" PRIu64 " zero %" PRIu32 "\n",
		what, first, end, head, tail, (int)lim->method, lim->granularity, lim->alignment,
		lim->alignment_valid, lim->max_unmap_blocks, lim->max_write_same_blocks,
		lim->zero_blocks);
}

/* Check one piece @s against the rules; @a and @b bound the interior. */
static void check_piece(const struct discard_span *s, uint64_t first, uint64_t end, bool head,
			bool tail, uint64_t a, uint64_t b, const struct discard_limits *lim, uint64_t g,
			uint64_t align)
{
	CHECK(s->blocks > 0);
	CHECK(s->lba >= first && s->lba < end && s->blocks <= end - s->lba);
	CHECK(s->blocks <= op_limit(lim, s->op, g));
	switch (s->op) {
	case DISCARD_OP_EDGE:
		CHECK((head && s->lba == first) || (tail && s->lba == end - 1));
		break;
	case DISCARD_OP_UNMAP:
		CHECK(lim->method == DISCARD_UNMAP);
		CHECK(s->lba % g == align);
		CHECK(s->blocks % g == 0);
		CHECK(s->lba >= a && s->blocks <= b - s->lba);
		break;
	case DISCARD_OP_WRITE_SAME:
		CHECK(lim->method == DISCARD_WRITE_SAME);
		CHECK(s->lba >= a && s->blocks <= b - s->lba);
		break;
	case DISCARD_OP_ZEROS:
		CHECK(lim->method != DISCARD_WRITE_SAME);
		CHECK(s->lba >= a && s->blocks <= b - s->lba);
		break;
	}
}

/* Plan [@first, @end) and check every rule; returns the plan in @out
 * when not NULL.  Pieces are all walked when there are at most
 * walk_max, else sampled at both ends and the middle of each segment. */
static void check_plan(const char *what, uint64_t first, uint64_t end, bool head, bool tail,
		       const struct discard_limits *lim, struct discard_plan *out)
{
	struct discard_plan plan;
	uint64_t g = lim->granularity ? lim->granularity : 1;
	uint64_t align = lim->alignment_valid ? lim->alignment % g : 0;
	uint64_t a = first, b = end, at, sum = 0, zero_blocks = 0, unmapped = 0, unmap_pieces = 0;
	bool unmap_possible = lim->method == DISCARD_UNMAP && op_limit(lim, DISCARD_OP_UNMAP, g) >= g;
	int failures = test_failures;
	struct discard_span s, prev = { .blocks = 0 };
	const uint64_t walk_max = 4096;

	discard_plan_make(&plan, first, end, head, tail, lim);
	if (out)
		*out = plan;
	if (end <= first) {
		CHECK_EQ_U64(plan.pieces, 0);
		CHECK_EQ_U64(plan.nseg, 0);
		CHECK(!discard_plan_piece(&plan, 0, &s));
		goto done;
	}
	if (head)
		a++;
	if (tail && a < b)
		b--;

	/* segments: contiguous from first to end, each as few pieces as its limit allows */
	CHECK(plan.nseg >= 1 && plan.nseg <= DISCARD_PLAN_SEGMENTS);
	at = first;
	for (unsigned i = 0; i < plan.nseg && i < DISCARD_PLAN_SEGMENTS; i++) {
		const struct discard_segment *sg = &plan.seg[i];
		CHECK_EQ_U64(sg->lba, at);
		CHECK(sg->blocks > 0 && sg->blocks <= end - at);
		CHECK_EQ_U64(sg->chunk, op_limit(lim, sg->op, g));
		if (sg->chunk)
			CHECK_EQ_U64(sg->pieces, sg->blocks / sg->chunk + (sg->blocks % sg->chunk != 0));
		if (sg->op == DISCARD_OP_ZEROS) {
			zero_blocks += sg->blocks;
			/* a whole aligned granule written as zeros is an UNMAP lost */
			if (unmap_possible)
				CHECK(!holds_granule(sg->lba, sg->lba + sg->blocks, g, align));
		}
		if (sg->op == DISCARD_OP_UNMAP) {
			unmapped += sg->blocks;
			unmap_pieces += sg->pieces;
		}
		sum += sg->pieces;
		at = sg->lba + sg->blocks;     /* <= end checked above */
	}
	CHECK_EQ_U64(at, end);
	CHECK_EQ_U64(sum, plan.pieces);
	CHECK(plan.pieces <= end - first);

	/* the count is bounded: the edges, the UNMAPs, and zeros only
	 * beside them (under a granule on either side) */
	if (unmapped) {
		uint64_t uc = op_limit(lim, DISCARD_OP_UNMAP, g);
		uint64_t zc = op_limit(lim, DISCARD_OP_ZEROS, g);
		CHECK(zero_blocks <= 2 * (g - 1));
		CHECK(unmap_pieces - 1 <= unmapped / uc);
		CHECK(plan.pieces - unmap_pieces <= 2 + 2 * ((g - 1) / zc + 1));
	}

	/* pieces */
	if (plan.pieces <= walk_max) {
		for (uint64_t k = 0; k < plan.pieces; k++) {
			CHECK(discard_plan_piece(&plan, k, &s));
			check_piece(&s, first, end, head, tail, a, b, lim, g, align);
			if (k == 0)
				CHECK_EQ_U64(s.lba, first);
			else
				CHECK_EQ_U64(s.lba, prev.lba + prev.blocks);   /* no gap, no overlap */
			prev = s;
		}
		CHECK_EQ_U64(prev.lba + prev.blocks, end);
	} else {
		/* both ends of every segment, and their neighbours */
		uint64_t base = 0;
		for (unsigned i = 0; i < plan.nseg; i++) {
			uint64_t n = plan.seg[i].pieces;
			uint64_t ks[] = { base, base + 1, base + n / 2, base + n - 2, base + n - 1 };
			for (unsigned j = 0; j < sizeof ks / sizeof ks[0]; j++) {
				uint64_t k = ks[j];
				struct discard_span next;
				if (k < base || k >= base + n)
					continue;
				CHECK(discard_plan_piece(&plan, k, &s));
				check_piece(&s, first, end, head, tail, a, b, lim, g, align);
				CHECK(s.op == plan.seg[i].op);
				if (k + 1 < plan.pieces) {
					CHECK(discard_plan_piece(&plan, k + 1, &next));
					CHECK_EQ_U64(next.lba, s.lba + s.blocks);
				} else {
					CHECK_EQ_U64(s.lba + s.blocks, end);
				}
			}
			base += n;
		}
	}
	CHECK(!discard_plan_piece(&plan, plan.pieces, &s));
done:
	if (test_failures != failures)
		describe(what, first, end, head, tail, lim);
}

/* ---- table cases ---- */

/* One expected piece. */
struct want {
	enum discard_op op;
	uint64_t lba;
	uint32_t blocks;
};

/* Plan, check the rules, then compare piece by piece with @want. */
static void table_case(const char *what, uint64_t first, uint64_t end, bool head, bool tail,
		       const struct discard_limits *lim, const struct want *want, unsigned nwant)
{
	struct discard_plan plan;
	struct discard_span s;
	int failures = test_failures;

	check_plan(what, first, end, head, tail, lim, &plan);
	CHECK_EQ_U64(plan.pieces, nwant);
	for (unsigned i = 0; i < nwant && i < plan.pieces; i++) {
		CHECK(discard_plan_piece(&plan, i, &s));
		CHECK_STR(op_names[s.op], op_names[want[i].op]);
		CHECK_EQ_U64(s.lba, want[i].lba);
		CHECK_EQ_U64(s.blocks, want[i].blocks);
	}
	if (test_failures != failures)
		fprintf(stderr, "  (table case %s)\n", what);
}

#define TABLE(what, first, end, head, tail, lim, ...)                                  \
	do {                                                                            \
		static const struct want w_[] = { __VA_ARGS__ };                        \
		table_case(what, first, end, head, tail, lim, w_, sizeof w_ / sizeof w_[0]); \
	} while (0)

static void test_table(void)
{
	struct discard_limits g8a7 = {
		.method = DISCARD_UNMAP, .granularity = 8, .alignment = 7, .alignment_valid = true,
		.zero_blocks = 512,
	};
	struct discard_limits lim;
	struct discard_plan plan;
	struct discard_span s;

	/* issue 12: fallocate --punch-hole --offset 512 --length 2048 is
	 * blocks 1..4, below the first boundary (7): zeros, nothing else */
	TABLE("issue 12", 1, 5, false, false, &g8a7, { DISCARD_OP_ZEROS, 1, 4 });
	/* the same, unaligned at both ends: two merged edge blocks around zeros */
	TABLE("issue 12 with edges", 1, 5, true, true, &g8a7,
	      { DISCARD_OP_EDGE, 1, 1 }, { DISCARD_OP_ZEROS, 2, 2 }, { DISCARD_OP_EDGE, 4, 1 });
	/* reaching the first boundary but not a whole granule past it */
	TABLE("one short of a granule", 0, 14, false, false, &g8a7, { DISCARD_OP_ZEROS, 0, 14 });
	/* granules 7..14, 15..22, 23..30 unmapped, the rest zeros */
	TABLE("three granules", 0, 32, false, false, &g8a7, { DISCARD_OP_ZEROS, 0, 7 },
	      { DISCARD_OP_UNMAP, 7, 24 }, { DISCARD_OP_ZEROS, 31, 1 });
	TABLE("exactly one granule", 7, 15, false, false, &g8a7, { DISCARD_OP_UNMAP, 7, 8 });
	TABLE("one block", 3, 4, true, true, &g8a7, { DISCARD_OP_EDGE, 3, 1 });
	TABLE("two edge blocks", 3, 5, true, true, &g8a7, { DISCARD_OP_EDGE, 3, 1 },
	      { DISCARD_OP_EDGE, 4, 1 });

	/* UGAVALID clear: the alignment field means nothing */
	lim = g8a7;
	lim.alignment_valid = false;
	TABLE("alignment not valid", 1, 20, false, false, &lim, { DISCARD_OP_ZEROS, 1, 7 },
	      { DISCARD_OP_UNMAP, 8, 8 }, { DISCARD_OP_ZEROS, 16, 4 });
	/* an alignment beyond the granule counts modulo the granule */
	lim = g8a7;
	lim.alignment = 8 * 1000 + 3;
	TABLE("alignment past the granule", 0, 20, false, false, &lim, { DISCARD_OP_ZEROS, 0, 3 },
	      { DISCARD_OP_UNMAP, 3, 16 }, { DISCARD_OP_ZEROS, 19, 1 });

	/* the LUN's UNMAP limit: whole granules per command, or none at all */
	lim = g8a7;
	lim.alignment = 0;
	lim.max_unmap_blocks = 20;
	TABLE("limit of 2.5 granules", 0, 64, false, false, &lim, { DISCARD_OP_UNMAP, 0, 16 },
	      { DISCARD_OP_UNMAP, 16, 16 }, { DISCARD_OP_UNMAP, 32, 16 }, { DISCARD_OP_UNMAP, 48, 16 });
	lim.max_unmap_blocks = 5;
	TABLE("limit under a granule", 0, 20, false, false, &lim, { DISCARD_OP_ZEROS, 0, 20 });
	lim.max_unmap_blocks = 0xffffffffu;
	lim.granularity = 0;
	lim.zero_blocks = 4;
	TABLE("no granularity, no limit", 0, 10, true, true, &lim, { DISCARD_OP_EDGE, 0, 1 },
	      { DISCARD_OP_UNMAP, 1, 8 }, { DISCARD_OP_EDGE, 9, 1 });

	/* zeros: a chunk of 0 blocks is taken as 1 (never a loop without end) */
	lim = (struct discard_limits){ .method = DISCARD_WRITE_ZEROS, .zero_blocks = 0 };
	TABLE("zero chunk of 0", 10, 13, false, false, &lim, { DISCARD_OP_ZEROS, 10, 1 },
	      { DISCARD_OP_ZEROS, 11, 1 }, { DISCARD_OP_ZEROS, 12, 1 });
	lim.zero_blocks = 512;
	TABLE("zeros in two", 0, 600, false, true, &lim, { DISCARD_OP_ZEROS, 0, 512 },
	      { DISCARD_OP_ZEROS, 512, 87 }, { DISCARD_OP_EDGE, 599, 1 });

	/* WRITE SAME: its limit, or ours */
	lim = (struct discard_limits){ .method = DISCARD_WRITE_SAME, .max_write_same_blocks = 3 };
	TABLE("WRITE SAME limit 3", 0, 7, false, false, &lim, { DISCARD_OP_WRITE_SAME, 0, 3 },
	      { DISCARD_OP_WRITE_SAME, 3, 3 }, { DISCARD_OP_WRITE_SAME, 6, 1 });
	lim.max_write_same_blocks = UINT64_MAX;
	TABLE("WRITE SAME no limit", 0, DISCARD_MAX_BLOCKS + 1ull, false, false, &lim,
	      { DISCARD_OP_WRITE_SAME, 0, DISCARD_MAX_BLOCKS },
	      { DISCARD_OP_WRITE_SAME, DISCARD_MAX_BLOCKS, 1 });

	/* empty and reversed ranges plan nothing */
	check_plan("empty", 5, 5, true, true, &g8a7, &plan);
	CHECK_EQ_U64(plan.pieces, 0);
	check_plan("reversed", 9, 5, true, true, &g8a7, &plan);
	CHECK_EQ_U64(plan.pieces, 0);

	/* the whole 64-bit block space: 2^42 UNMAPs, the last one short */
	lim = (struct discard_limits){ .method = DISCARD_UNMAP, .granularity = 1, .zero_blocks = 512 };
	check_plan("whole space", 0, UINT64_MAX, false, false, &lim, &plan);
	CHECK_EQ_U64(plan.pieces, 1ull << 42);
	CHECK(discard_plan_piece(&plan, (1ull << 42) - 1, &s));
	CHECK_EQ_U64(s.lba, ((1ull << 42) - 1) << 22);
	CHECK_EQ_U64(s.blocks, (1u << 22) - 1);
	/* granules at the top of the block space: the boundary arithmetic must not wrap */
	check_plan("top of the space", UINT64_MAX - 40, UINT64_MAX, true, true, &g8a7, &plan);
	CHECK_EQ_U64(plan.nseg, 5);
	lim = g8a7;
	lim.granularity = 0xffffffffu;
	lim.alignment = 0x7ffffffeu;
	check_plan("huge granule at the top", UINT64_MAX - 0x1ffffffffull, UINT64_MAX, false, false,
		   &lim, &plan);
	CHECK_EQ_U64(plan.nseg, 3);
	/* a granule longer than our own cap still goes whole */
	lim = g8a7;
	lim.granularity = DISCARD_MAX_BLOCKS * 2;
	lim.alignment = 0;
	TABLE("granule over our cap", 0, DISCARD_MAX_BLOCKS * 4ull + 5, false, false, &lim,
	      { DISCARD_OP_UNMAP, 0, DISCARD_MAX_BLOCKS * 2 },
	      { DISCARD_OP_UNMAP, DISCARD_MAX_BLOCKS * 2ull, DISCARD_MAX_BLOCKS * 2 },
	      { DISCARD_OP_ZEROS, DISCARD_MAX_BLOCKS * 4ull, 5 });
	/* a LUN limit between our cap and a granule: never above the LUN's */
	lim.max_unmap_blocks = DISCARD_MAX_BLOCKS + 1;
	check_plan("LUN limit under a big granule", 0, DISCARD_MAX_BLOCKS * 2ull, false, false, &lim,
		   &plan);
	CHECK_EQ_U64(plan.nseg, 1);
	CHECK(plan.seg[0].op == DISCARD_OP_ZEROS);
	CHECK_EQ_U64(plan.pieces, DISCARD_MAX_BLOCKS * 2ull / 512);
}

/* ---- the property test ---- */

static uint64_t rng_state = 0x1d15ca7d0c0ffee5ull;   /* fixed seed: reproducible */

/* xorshift64* */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* A number below @n (n > 0). */
static uint64_t below(uint64_t n)
{
	return rnd() % n;
}

static uint32_t pick_u32(const uint32_t *v, unsigned n, uint32_t g)
{
	unsigned i = (unsigned)below(n + 4);
	if (i < n)
		return v[i];
	switch (i - n) {
	case 0: return g ? g - 1 : 0;
	case 1: return g;
	case 2: return (uint32_t)below(64);
	default: return (uint32_t)rnd();
	}
}

static void test_random(unsigned rounds)
{
	static const uint32_t grans[] = { 0, 1, 2, 3, 7, 8, 16, 4096, DISCARD_MAX_BLOCKS,
					  DISCARD_MAX_BLOCKS + 1, 0x80000000u, 0xffffffffu };
	static const uint32_t aligns[] = { 0, 1, 7, 0x7fffffffu };
	static const uint32_t unmap_max[] = { 0, 0xffffffffu, 1, 20, DISCARD_MAX_BLOCKS - 1,
					      DISCARD_MAX_BLOCKS };
	static const uint32_t zeros[] = { 0, 1, 7, 512, 2048 };

	for (unsigned r = 0; r < rounds; r++) {
		struct discard_limits lim;
		uint64_t first, len, end;
		char what[48];

		lim.method = (enum discard_method)below(3);
		lim.granularity = pick_u32(grans, sizeof grans / sizeof grans[0], 0);
		if (below(3) == 0)
			lim.granularity = (uint32_t)below(64);
		lim.alignment = pick_u32(aligns, sizeof aligns / sizeof aligns[0], lim.granularity);
		lim.alignment_valid = below(4) != 0;
		lim.max_unmap_blocks = pick_u32(unmap_max, sizeof unmap_max / sizeof unmap_max[0],
						lim.granularity);
		switch (below(4)) {
		case 0: lim.max_write_same_blocks = 0; break;
		case 1: lim.max_write_same_blocks = 1 + below(100); break;
		case 2: lim.max_write_same_blocks = UINT64_MAX; break;
		default: lim.max_write_same_blocks = rnd(); break;
		}
		lim.zero_blocks = pick_u32(zeros, sizeof zeros / sizeof zeros[0], 0);

		switch (below(4)) {
		case 0: first = below(64); break;
		case 1: first = below(1ull << 32); break;
		case 2: first = UINT64_MAX - below(1ull << 33); break;
		default: first = rnd(); break;
		}
		switch (below(5)) {
		case 0: len = below(4); break;
		case 1: len = below(200); break;
		case 2: len = below(1ull << 24); break;
		case 3: len = rnd() >> below(64); break;
		default: len = UINT64_MAX; break;
		}
		end = len > UINT64_MAX - first ? UINT64_MAX : first + len;
		snprintf(what, sizeof what, "random round %u", r);
		check_plan(what, first, end, below(2), below(2), &lim, NULL);
		if (test_failures > 20)
			break;          /* enough to go on */
	}
}

int main(void)
{
	test_table();
	test_random(200000);
	return test_done("test_discard_plan");
}
