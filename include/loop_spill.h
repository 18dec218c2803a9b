/* loop_spill.h: how many event loops watch the FUSE device (fuse_loop.c).
 *
 * Loop 0 always watches the device; loops 1..spilled watch it too.  Every
 * window, loop 0 measures the CPU time the watching loops used over it and
 * asks this function for the next count.  A loop watching the device under
 * a load the others keep up with costs a wake-up per request or two and,
 * on CPUs shared with the application and the target, preemptions: it
 * joins only when the watching loops each used more than LOOP_SPILL_HIGH of
 * a CPU, and leaves when the watching loops' work, spread over one loop
 * fewer, would be less than LOOP_SPILL_LOW of a CPU each (doc/bench.md
 * has the figures behind the two).
 */
#ifndef ISCSIFS_LOOP_SPILL_H
#define ISCSIFS_LOOP_SPILL_H

/* Share of a CPU per watching loop above which one more loop watches. */
#define LOOP_SPILL_HIGH 0.8
/* Share of a CPU per loop, counted over one loop fewer, below which the
 * last watching loop stops.  Not far below LOOP_SPILL_HIGH: the same work
 * costs more CPU spread over more loops (more wake-ups), so a load that
 * one loop carried at 0.45 of a CPU took 0.59 over two (4k reads, 8
 * readers, tgtd), and with 0.5 here a burst that made a loop join left
 * it watching for good. */
#define LOOP_SPILL_LOW 0.7
/* How often loop 0 measures at most, in milliseconds. */
#define LOOP_SPILL_WINDOW_MS 20
/* A window longer than this many spans an idle spell (loop 0 measures
 * only when it handles requests): a fresh one starts, nothing is decided. */
#define LOOP_SPILL_STALE_WINDOWS 4

/* The next count of loops that watch beside loop 0, from @spilled now,
 * @busy (the CPUs' worth of work loops 0..@spilled did over the window:
 * their CPU time divided by its length) and @nloops (the loops of the
 * mount, at least 1).  It moves by one at most per window. */
static inline unsigned loop_spill_next(unsigned spilled, double busy, unsigned nloops)
{
	unsigned watching = spilled + 1;

	if (busy > LOOP_SPILL_HIGH * watching && watching < nloops)
		return spilled + 1;
	if (spilled > 0 && busy < LOOP_SPILL_LOW * (watching - 1))
		return spilled - 1;
	return spilled;
}

#endif /* ISCSIFS_LOOP_SPILL_H */
