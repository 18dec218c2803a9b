/* test_lun_map.c: the map of a LUN's provisioning (lun_map.c) against a
 * model that keeps one state per block.
 *
 * A table of small scenarios first (learning, our writes and discards,
 * stale answers, a full map), then thousands of random operations, after
 * each of which every lookup, the next unknown block, the totals and the
 * array's own invariants (sorted, disjoint, neighbours in different
 * states) must agree with the model.  Blocks we wrote (LUN_MAP_WRITTEN)
 * are data to every lookup, and no answer of the target changes them.
 * Last, the budget all maps share: maps that each stay under their own
 * limit cannot together hold more than LUN_MAP_EXTENTS_BUDGET extents.
 * Single-threaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lun_map.h"
#include "testlib.h"

#define BLOCKS 200u

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* One state per block: what the map should say. */
static enum lun_map_state model[BLOCKS];

static void model_set(uint64_t start, uint64_t end, enum lun_map_state s)
{
	for (uint64_t b = start; b < end && b < BLOCKS; b++)
		model[b] = s;
}

/* The model learns that the target says [@start, @end) is in @s: every
 * block but those we wrote. */
static void model_learn(uint64_t start, uint64_t end, enum lun_map_state s)
{
	for (uint64_t b = start; b < end && b < BLOCKS; b++)
		if (model[b] != LUN_MAP_WRITTEN)
			model[b] = s;
}

/* The model forgets what the target said: blocks we wrote stay. */
static void model_drop(void)
{
	for (uint64_t b = 0; b < BLOCKS; b++)
		if (model[b] != LUN_MAP_WRITTEN)
			model[b] = LUN_MAP_UNKNOWN;
}

/* What a lookup reports of a block in model state @s. */
static enum lun_map_state reported(enum lun_map_state s)
{
	return s == LUN_MAP_WRITTEN ? LUN_MAP_DATA : s;
}

/* Everything the map says agrees with the model. */
static void check_against_model(struct lun_map *m, const char *when)
{
	uint64_t data = 0, known = 0, data_blocks;
	int before = test_failures;

	for (size_t i = 0; i < m->n; i++) {
		CHECK(m->ext[i].start < m->ext[i].end && m->ext[i].end <= BLOCKS);
		CHECK(m->ext[i].state == LUN_MAP_DATA || m->ext[i].state == LUN_MAP_HOLE ||
		      m->ext[i].state == LUN_MAP_WRITTEN);
		if (i > 0) {
			CHECK(m->ext[i - 1].end <= m->ext[i].start);
			CHECK(m->ext[i - 1].end < m->ext[i].start ||
			      m->ext[i - 1].state != m->ext[i].state);
		}
	}
	for (uint64_t b = 0; b < BLOCKS; b++) {
		uint64_t end;
		enum lun_map_state s = lun_map_lookup(m, b, &end);
		CHECK(s == reported(model[b]));
		CHECK(end > b && end <= BLOCKS);
		for (uint64_t x = b; x < end; x++)
			CHECK(model[x] == model[b]);
		CHECK(end == BLOCKS || model[end] != model[b]);
		uint64_t u = lun_map_next_unknown(m, b);
		uint64_t want = b;
		while (want < BLOCKS && model[want] != LUN_MAP_UNKNOWN)
			want++;
		CHECK_EQ_U64(u, want);
		known += model[b] != LUN_MAP_UNKNOWN;
		data += reported(model[b]) == LUN_MAP_DATA;
	}
	CHECK(lun_map_allocated(m, &data_blocks) == (known == BLOCKS));
	CHECK_EQ_U64(data_blocks, data);
	uint64_t end;
	CHECK(lun_map_lookup(m, BLOCKS, &end) == LUN_MAP_UNKNOWN && end == BLOCKS);
	if (test_failures != before)
		fprintf(stderr, "  after %s\n", when);
}

/* The target says [@start, @end) is in @s. */
static int learn(struct lun_map *m, uint64_t start, uint64_t end, enum lun_map_state s)
{
	struct lun_map_extent e = { start, end, s };
	uint64_t gen;

	CHECK(lun_map_ticket(m, &gen));
	return lun_map_learn(m, gen, &e, 1);
}

static void test_scenarios(void)
{
	struct lun_map *m = lun_map_new(BLOCKS, 64);
	uint64_t gen, data;
	struct lun_map_extent e[3] = {
		{ 0, 10, LUN_MAP_DATA }, { 10, 50, LUN_MAP_HOLE }, { 50, 60, LUN_MAP_DATA },
	};

	memset(model, 0, sizeof model);
	check_against_model(m, "new");
	CHECK(!lun_map_allocated(m, &data));

	/* an answer is kept */
	CHECK(lun_map_ticket(m, &gen));
	CHECK(lun_map_learn(m, gen, e, 3) == 1);
	model_set(0, 10, LUN_MAP_DATA);
	model_set(10, 50, LUN_MAP_HOLE);
	model_set(50, 60, LUN_MAP_DATA);
	check_against_model(m, "learning three extents");
	CHECK(lun_map_extents(m) == 3);

	/* a write into the hole splits it; the map reads it as data */
	lun_map_change_begin(m);
	CHECK(!lun_map_ticket(m, &gen));             /* no ticket while it runs */
	lun_map_change_end(m, 20, 30, LUN_MAP_DATA);
	model_set(20, 30, LUN_MAP_DATA);
	check_against_model(m, "a write into a hole");
	CHECK(lun_map_extents(m) == 5);

	/* an answer sent before a change is stale */
	CHECK(lun_map_ticket(m, &gen));
	lun_map_change_begin(m);
	lun_map_change_end(m, 30, 40, LUN_MAP_UNKNOWN);   /* a discard */
	model_set(30, 40, LUN_MAP_UNKNOWN);
	struct lun_map_extent stale = { 30, 40, LUN_MAP_HOLE };
	CHECK(lun_map_learn(m, gen, &stale, 1) == 0);
	check_against_model(m, "a stale answer");

	/* and one asked while a change runs is too */
	lun_map_change_begin(m);
	CHECK(lun_map_learn(m, gen + 2, &stale, 1) == 0);
	lun_map_change_end(m, 30, 31, LUN_MAP_UNKNOWN);
	check_against_model(m, "an answer while a change runs");

	/* a fresh one fills what the discard left unknown and merges */
	CHECK(learn(m, 30, 40, LUN_MAP_HOLE) == 1);
	model_set(30, 40, LUN_MAP_HOLE);
	check_against_model(m, "learning after the discard");

	/* a write over several extents joins them */
	lun_map_change_begin(m);
	lun_map_change_end(m, 5, 55, LUN_MAP_DATA);
	model_set(5, 55, LUN_MAP_DATA);
	check_against_model(m, "a write over several extents");
	CHECK(lun_map_extents(m) == 1);

	/* the rest learnt: all known */
	CHECK(learn(m, 60, BLOCKS, LUN_MAP_HOLE) == 1);
	model_set(60, BLOCKS, LUN_MAP_HOLE);
	check_against_model(m, "the whole LUN known");
	CHECK(lun_map_allocated(m, &data) && data == 60);

	/* extents past the capacity are cut */
	CHECK(learn(m, BLOCKS - 5, BLOCKS + 5, LUN_MAP_DATA) == 1);
	model_set(BLOCKS - 5, BLOCKS, LUN_MAP_DATA);
	check_against_model(m, "an extent cut at the capacity");

	/* a Unit Attention drops everything and stales answers */
	CHECK(lun_map_ticket(m, &gen));
	lun_map_drop(m);
	model_drop();
	CHECK(lun_map_learn(m, gen, e, 1) == 0);
	check_against_model(m, "a drop");

	/* a capacity change too */
	CHECK(learn(m, 0, 10, LUN_MAP_DATA) == 1);
	lun_map_resize(m, BLOCKS);
	check_against_model(m, "a resize");
	lun_map_free(m);

	/* a full map refuses to learn, and forgets rather than lie */
	m = lun_map_new(BLOCKS, 2);
	memset(model, 0, sizeof model);
	CHECK(learn(m, 0, 10, LUN_MAP_DATA) == 1);
	CHECK(learn(m, 20, 30, LUN_MAP_HOLE) == 1);
	CHECK(!lun_map_full(m));
	CHECK(learn(m, 40, 50, LUN_MAP_DATA) == -1);
	CHECK(lun_map_full(m));
	model_set(0, 10, LUN_MAP_DATA);
	model_set(20, 30, LUN_MAP_HOLE);
	check_against_model(m, "a full map refusing an answer");
	lun_map_change_begin(m);
	lun_map_change_end(m, 24, 26, LUN_MAP_DATA);  /* needs 4 extents */
	memset(model, 0, sizeof model);               /* what was learnt goes */
	model_set(24, 26, LUN_MAP_DATA);
	check_against_model(m, "a full map forgetting what it learnt for a write");
	CHECK(!lun_map_full(m));
	CHECK(learn(m, 0, 10, LUN_MAP_DATA) == 1);
	CHECK(learn(m, 20, 30, LUN_MAP_HOLE) == 1);
	CHECK(learn(m, 40, 50, LUN_MAP_DATA) == -1);
	lun_map_drop(m);
	CHECK(!lun_map_full(m));
	lun_map_free(m);

	/* scans: not on a full map, nor once one gave up, until emptied */
	m = lun_map_new(BLOCKS, 2);
	CHECK(lun_map_scannable(m));
	lun_map_give_up_scans(m);
	CHECK(!lun_map_scannable(m));
	CHECK(learn(m, 0, 10, LUN_MAP_DATA) == 1);
	CHECK(!lun_map_scannable(m));
	lun_map_drop(m);
	CHECK(lun_map_scannable(m));
	CHECK(learn(m, 0, 10, LUN_MAP_DATA) == 1);
	CHECK(learn(m, 20, 30, LUN_MAP_HOLE) == 1);
	CHECK(learn(m, 40, 50, LUN_MAP_DATA) == -1);
	CHECK(!lun_map_scannable(m));
	lun_map_give_up_scans(m);
	lun_map_resize(m, BLOCKS);
	CHECK(lun_map_scannable(m));
	lun_map_free(m);
}

/* Blocks we wrote stay data though the target, lagging behind our writes,
 * calls them deallocated; a discard of ours, or a drop, lets the target's
 * word count again. */
static void test_written(void)
{
	struct lun_map *m = lun_map_new(BLOCKS, 64);
	uint64_t data, end;

	memset(model, 0, sizeof model);
	lun_map_change_begin(m);
	lun_map_change_end(m, 40, 48, LUN_MAP_WRITTEN);
	model_set(40, 48, LUN_MAP_WRITTEN);
	check_against_model(m, "a write");

	/* a lagging answer: all deallocated */
	CHECK(learn(m, 0, BLOCKS, LUN_MAP_HOLE) == 1);
	model_learn(0, BLOCKS, LUN_MAP_HOLE);
	check_against_model(m, "a lagging answer over the write");
	CHECK(lun_map_lookup(m, 40, &end) == LUN_MAP_DATA && end == 48);
	CHECK(lun_map_lookup(m, 47, &end) == LUN_MAP_DATA);
	CHECK(lun_map_lookup(m, 48, &end) == LUN_MAP_HOLE && end == BLOCKS);
	CHECK(lun_map_allocated(m, &data) && data == 8);
	CHECK(lun_map_extents(m) == 3);

	/* the target catches up: data next to the write, which stays ours */
	CHECK(learn(m, 30, 60, LUN_MAP_DATA) == 1);
	model_learn(30, 60, LUN_MAP_DATA);
	check_against_model(m, "an answer that caught up");
	CHECK(learn(m, 0, BLOCKS, LUN_MAP_HOLE) == 1);
	model_learn(0, BLOCKS, LUN_MAP_HOLE);
	check_against_model(m, "lagging again");
	CHECK(lun_map_lookup(m, 44, &end) == LUN_MAP_DATA);

	/* two writes, an answer across both and the gap between */
	lun_map_change_begin(m);
	lun_map_change_end(m, 100, 101, LUN_MAP_WRITTEN);
	model_set(100, 101, LUN_MAP_WRITTEN);
	lun_map_change_begin(m);
	lun_map_change_end(m, 103, 110, LUN_MAP_WRITTEN);
	model_set(103, 110, LUN_MAP_WRITTEN);
	CHECK(learn(m, 90, 120, LUN_MAP_DATA) == 1);
	model_learn(90, 120, LUN_MAP_DATA);
	check_against_model(m, "an answer across two writes");
	CHECK(learn(m, 95, 105, LUN_MAP_HOLE) == 1);
	model_learn(95, 105, LUN_MAP_HOLE);
	check_against_model(m, "a hole across two writes");

	/* a discard of ours: unknown, and the target's answer holds again */
	lun_map_change_begin(m);
	lun_map_change_end(m, 40, 44, LUN_MAP_UNKNOWN);
	model_set(40, 44, LUN_MAP_UNKNOWN);
	CHECK(learn(m, 40, 48, LUN_MAP_HOLE) == 1);
	model_learn(40, 48, LUN_MAP_HOLE);
	check_against_model(m, "a discard over part of a write");
	CHECK(lun_map_lookup(m, 40, &end) == LUN_MAP_HOLE && end == 44);
	CHECK(lun_map_lookup(m, 44, &end) == LUN_MAP_DATA && end == 48);

	/* a drop (another initiator's changes, a reconnect) forgets what the
	 * target said, not our writes: a target that still lags after it
	 * must not make them holes either */
	lun_map_drop(m);
	model_drop();
	check_against_model(m, "a drop");
	CHECK(lun_map_lookup(m, 100, &end) == LUN_MAP_DATA && end == 101);
	CHECK(learn(m, 0, BLOCKS, LUN_MAP_HOLE) == 1);
	model_learn(0, BLOCKS, LUN_MAP_HOLE);
	check_against_model(m, "learning after a drop");
	CHECK(lun_map_lookup(m, 105, &end) == LUN_MAP_DATA && end == 110);
	/* a capacity change keeps those inside the new capacity */
	lun_map_resize(m, 105);
	model_drop();
	for (uint64_t b = 105; b < BLOCKS; b++)
		model[b] = LUN_MAP_UNKNOWN;
	CHECK(lun_map_lookup(m, 104, &end) == LUN_MAP_DATA && end == 105);
	CHECK(lun_map_lookup(m, 105, &end) == LUN_MAP_UNKNOWN);
	lun_map_free(m);

	/* a map too small for the gaps keeps what fitted */
	m = lun_map_new(BLOCKS, 3);
	memset(model, 0, sizeof model);
	lun_map_change_begin(m);
	lun_map_change_end(m, 10, 20, LUN_MAP_WRITTEN);
	lun_map_change_begin(m);
	lun_map_change_end(m, 30, 40, LUN_MAP_WRITTEN);
	model_set(10, 20, LUN_MAP_WRITTEN);
	model_set(30, 40, LUN_MAP_WRITTEN);
	CHECK(learn(m, 0, 50, LUN_MAP_HOLE) == -1);
	CHECK(lun_map_full(m));
	model_learn(0, 10, LUN_MAP_HOLE);
	check_against_model(m, "a full map learning around writes");
	lun_map_free(m);
}

static void test_random(void)
{
	struct lun_map *m = lun_map_new(BLOCKS, 1000);

	memset(model, 0, sizeof model);
	for (int round = 0; round < 20000; round++) {
		uint64_t a = rng() % BLOCKS, b = rng() % BLOCKS;
		uint64_t start = a < b ? a : b, end = (a < b ? b : a) + 1;
		enum lun_map_state s = (enum lun_map_state)(rng() % 4);
		char what[64];

		switch (rng() % 8) {
		case 0:
		case 1:
		case 2:
			if (s == LUN_MAP_DATA || s == LUN_MAP_HOLE) {
				CHECK(learn(m, start, end, s) == 1);
				model_learn(start, end, s);
			}
			break;
		case 3:
		case 4:
		case 5:
			lun_map_change_begin(m);
			lun_map_change_end(m, start, end, s);
			model_set(start, end, s);
			break;
		case 6:
			if (rng() % 16 == 0) {
				lun_map_drop(m);
				model_drop();
			}
			break;
		default:
			break;
		}
		if (round % 7 == 0) {
			snprintf(what, sizeof what, "round %d", round);
			check_against_model(m, what);
		}
	}
	lun_map_free(m);
}

/* Fill @m with @n extents (data and holes in turn, one block each, from
 * block 0): returns what the last answer said (1 kept, -1 full). */
static int fill_alternating(struct lun_map *m, size_t n)
{
	struct lun_map_extent *e = calloc(n, sizeof *e);
	uint64_t gen;
	int rc;

	for (size_t i = 0; i < n; i++)
		e[i] = (struct lun_map_extent){ i, i + 1, i % 2 ? LUN_MAP_HOLE : LUN_MAP_DATA };
	CHECK(lun_map_ticket(m, &gen));
	rc = lun_map_learn(m, gen, e, n);
	free(e);
	return rc;
}

/* A hostile target makes the map of every LUN as fragmented as a map
 * may be: together they stop at the budget, the map that finds none
 * left is full, and a dropped or freed map gives its room back.  (Before
 * the budget, every map took its own limit: 1.5 MiB per LUN, for up to
 * 1024 LUNs per target.) */
static void test_budget(void)
{
	const size_t per_map = 1u << 16;      /* lun_sparse.c's MAP_MAX_EXTENTS */
	const size_t nmaps = LUN_MAP_EXTENTS_BUDGET / per_map + 2;
	struct lun_map **maps = calloc(nmaps, sizeof *maps);
	size_t full = 0, kept = 0;
	uint64_t data;

	CHECK_EQ_U64(lun_map_extents_reserved(), 0);
	for (size_t i = 0; i < nmaps; i++) {
		maps[i] = lun_map_new(per_map * 2, per_map);
		int rc = fill_alternating(maps[i], per_map);
		if (rc == 1)
			kept++;
		else if (rc == -1 && lun_map_full(maps[i]))
			full++;
		CHECK(lun_map_extents_reserved() <= LUN_MAP_EXTENTS_BUDGET);
	}
	CHECK_EQ_U64(kept, LUN_MAP_EXTENTS_BUDGET / per_map);
	CHECK_EQ_U64(full, nmaps - kept);
	/* a full map is no answer: the LUN reads as all data */
	CHECK(!lun_map_allocated(maps[nmaps - 1], &data));

	/* a drop gives the room back: the last map fits now */
	lun_map_drop(maps[0]);
	lun_map_drop(maps[nmaps - 1]);
	CHECK_EQ_U64(fill_alternating(maps[nmaps - 1], per_map), 1);
	for (size_t i = 0; i < nmaps; i++)
		lun_map_free(maps[i]);
	CHECK_EQ_U64(lun_map_extents_reserved(), 0);
	free(maps);

	/* a drop keeps our runs and gives back the room beyond them (before,
	 * a map that once grew kept its room for good) */
	struct lun_map *m = lun_map_new(per_map * 2, per_map);
	uint64_t end;
	CHECK_EQ_U64(fill_alternating(m, 1000), 1);
	lun_map_change_begin(m);
	CHECK(lun_map_change_end(m, 1500, 1501, LUN_MAP_WRITTEN));
	CHECK(lun_map_extents_reserved() >= 1001);
	lun_map_drop(m);
	CHECK_EQ_U64(lun_map_extents_reserved(), 16);
	CHECK(lun_map_lookup(m, 1500, &end) == LUN_MAP_DATA && end == 1501);
	lun_map_free(m);

	/* a map our own runs fill forgets them to take a change, and says so */
	m = lun_map_new(100, 2);
	lun_map_change_begin(m);
	CHECK(lun_map_change_end(m, 10, 11, LUN_MAP_WRITTEN));
	lun_map_change_begin(m);
	CHECK(lun_map_change_end(m, 20, 21, LUN_MAP_WRITTEN));
	lun_map_change_begin(m);
	CHECK(!lun_map_change_end(m, 30, 31, LUN_MAP_WRITTEN));
	CHECK(lun_map_lookup(m, 10, &end) == LUN_MAP_UNKNOWN);
	lun_map_free(m);
	CHECK_EQ_U64(lun_map_extents_reserved(), 0);
}

int main(void)
{
	test_scenarios();
	test_written();
	test_random();
	test_budget();
	return test_done("test_lun_map");
}
