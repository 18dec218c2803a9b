/* test_loop_spill.c: how many event loops watch the FUSE device
 * (include/loop_spill.h).
 *
 * The cases, one table: with one loop nothing spills whatever the load;
 * loop 0 alone is joined by loop 1 only above LOOP_SPILL_HIGH of a CPU; the
 * count moves by one per window at most, up and down; it never passes the
 * loops there are; a loop leaves only when one loop fewer would each be
 * below LOOP_SPILL_LOW (0.7: a load two loops carry at 0.59 goes back to
 * one); and a load that made a loop join does not make it
 * leave at the next window (no flapping between the two thresholds).
 */
#include "loop_spill.h"
#include "testlib.h"

/* One decision: loop_spill_next(spilled, busy, nloops) == want. */
struct spill_case {
	unsigned spilled;             /* loops watching beside loop 0 now */
	double busy;                  /* CPUs' worth of work over the window */
	unsigned nloops;              /* loops of the mount */
	unsigned want;                /* the next count */
};

static const struct spill_case cases[] = {
	/* one loop: nothing to decide */
	{ 0, 0.0, 1, 0 },
	{ 0, 0.99, 1, 0 },
	{ 0, 5.0, 1, 0 },
	/* loop 0 alone under a load it keeps up with (the 4k QD8 bench: 0.5) */
	{ 0, 0.0, 2, 0 },
	{ 0, 0.5, 2, 0 },
	{ 0, 0.79, 2, 0 },
	{ 0, 0.8, 2, 0 },
	/* busy above the threshold: loop 1 joins, one loop per window */
	{ 0, 0.81, 2, 1 },
	{ 0, 0.99, 8, 1 },
	{ 0, 7.5, 8, 1 },
	/* two watching: a third joins above 1.6, never past the last loop */
	{ 1, 1.6, 3, 1 },
	{ 1, 1.61, 3, 2 },
	{ 1, 1.99, 2, 1 },
	{ 7, 8.0, 8, 7 },
	/* the load that made loop 1 join keeps it (0.81 > 0.7 x 1) */
	{ 1, 0.81, 2, 1 },
	{ 1, 0.7, 2, 1 },
	/* one loop fewer would each be below 0.7: the last leaves (the load
	 * of 8 readers of 4k blocks: 0.45 on one loop, 0.59 over two) */
	{ 1, 0.69, 2, 0 },
	{ 1, 0.59, 2, 0 },
	{ 1, 0.0, 8, 0 },
	{ 3, 2.1, 8, 3 },
	{ 3, 2.09, 8, 2 },
	/* down by one per window at most, whatever the drop */
	{ 5, 0.0, 8, 4 },
};

int main(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct spill_case *c = &cases[i];
		unsigned got = loop_spill_next(c->spilled, c->busy, c->nloops);
		CHECK(got == c->want);
		if (got != c->want)
			fprintf(stderr, "  case %zu: spilled %u, busy %.2f, %u loops: %u, want %u\n",
				i, c->spilled, c->busy, c->nloops, got, c->want);
	}
	return test_done("test_loop_spill");
}
