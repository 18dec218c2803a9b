/* lun_map.h: what is known of a LUN's provisioning, block by block.
 *
 * A map of extents, each a run of blocks known to hold data or known to
 * be a hole (deallocated or anchored on a LUN that reads such blocks as
 * zeros); blocks in no extent are unknown.  lun_sparse.c fills it from
 * GET LBA STATUS answers and lun_write.c keeps it right across our own
 * writes and discards; a Unit Attention, a reconnect or a capacity change
 * drops what the target said.  The map only stores: it sends no command.
 *
 * Blocks we wrote are data whatever the target says later: a target whose
 * GET LBA STATUS lags behind the writes it acknowledged may still call
 * them deallocated, and a copy that skips holes would lose them.  They
 * are kept as LUN_MAP_WRITTEN, which no answer changes and no drop
 * forgets, until a discard or a failed write of ours makes them unknown
 * (or the map is full and our write cannot be kept).  The room all maps
 * hold is bounded together (LUN_MAP_EXTENTS_BUDGET).
 *
 * Stale answers: an answer to a GET LBA STATUS sent before one of our
 * writes or discards finished may describe the blocks before it.  Every
 * change we make bumps the map's generation at its start and at its end;
 * lun_map_ticket() gives the generation to send a command with (none
 * while a change is in flight) and lun_map_learn() takes the answer only
 * when the generation is still that one.
 *
 * Thread model: every function may be called from any thread; one mutex
 * per map (a leaf: nothing else is locked while it is held) protects all
 * of it; the budget is one atomic counter.
 */
#ifndef ISCSIFS_LUN_MAP_H
#define ISCSIFS_LUN_MAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What is known of a block. */
enum lun_map_state {
	LUN_MAP_UNKNOWN,  /* nothing: ask the target */
	LUN_MAP_DATA,     /* mapped, or written by us: its content is data */
	LUN_MAP_HOLE,     /* deallocated or anchored, and reads as zeros */
	LUN_MAP_WRITTEN,  /* written by us: data, and no answer of the target
	                   * makes it a hole; lun_map_lookup() reports it as
	                   * LUN_MAP_DATA */
};

/* A run of blocks [@start, @end) in one known state. */
struct lun_map_extent {
	uint64_t start;              /* first block */
	uint64_t end;                /* one past the last block */
	enum lun_map_state state;    /* LUN_MAP_DATA or LUN_MAP_HOLE (in the
	                              * map, LUN_MAP_WRITTEN too) */
};

struct lun_map {
	pthread_mutex_t lock;        /* protects every field below */
	uint64_t blocks;             /* lock: the capacity the map covers */
	struct lun_map_extent *ext;  /* lock: sorted by start, disjoint,
	                              * neighbours in the same state merged */
	size_t n;                    /* lock: extents in ext */
	size_t cap;                  /* lock: room in ext */
	size_t max;                  /* most extents kept (read-only) */
	uint64_t gen;                /* lock: bumped by every change not learnt
	                              * from the target */
	unsigned changing;           /* lock: our writes and discards in flight */
	uint64_t data_blocks;        /* lock: blocks in LUN_MAP_DATA and
	                              * LUN_MAP_WRITTEN extents */
	uint64_t known_blocks;       /* lock: blocks in any extent */
	bool full;                   /* lock: an answer did not fit in @max
	                              * extents; cleared when the map is
	                              * emptied (drop, resize) */
	bool scan_gave_up;           /* lock: a scan stopped, the target's answers
	                              * too small for it; cleared likewise */
};

/* The most extents all maps of the process hold room for together (24
 * bytes each: 6 MiB).  A target answers GET LBA STATUS as it likes: one
 * that makes every LUN's map full would hold @max_extents per LUN, for
 * up to 1024 LUNs per target.  A map that would need more room than is
 * left is full (its scan gives up, its LUN reads as all data); a map
 * dropped or freed gives its room back. */
#define LUN_MAP_EXTENTS_BUDGET ((size_t)1 << 18)

/* Room for extents all maps of the process hold now (tests). */
size_t lun_map_extents_reserved(void);

/* A map of a LUN of @blocks blocks, all unknown, keeping at most
 * @max_extents extents.  NULL on ENOMEM. */
struct lun_map *lun_map_new(uint64_t blocks, size_t max_extents);
void lun_map_free(struct lun_map *m);

/* The state of block @block, and in *@run_end where that state ends (the
 * next known extent for LUN_MAP_UNKNOWN; the capacity at most).  A block
 * at or past the capacity is LUN_MAP_UNKNOWN with *@run_end = @block.
 * Never LUN_MAP_WRITTEN: such a block is LUN_MAP_DATA (*@run_end is then
 * where the written run ends, which may be followed by more data). */
enum lun_map_state lun_map_lookup(struct lun_map *m, uint64_t block, uint64_t *run_end);

/* The first unknown block at or after @from; the capacity when none. */
uint64_t lun_map_next_unknown(struct lun_map *m, uint64_t from);

/* A write or discard of ours starts: answers in flight become stale. */
void lun_map_change_begin(struct lun_map *m);
/* It ended: blocks [@start, @end) are now in @state (LUN_MAP_WRITTEN after
 * a write; LUN_MAP_UNKNOWN after a discard or a failure, when what the
 * target did is not known).  When the map cannot hold that, what was
 * learnt goes, and if that is not enough, everything: then it returns
 * false (the runs we wrote are forgotten, and a target that lags behind
 * them could make them holes again: the caller trusts no hole after). */
bool lun_map_change_end(struct lun_map *m, uint64_t start, uint64_t end,
			enum lun_map_state state);

/* The generation to send a GET LBA STATUS with into *@gen; false when a
 * change of ours is in flight (its answer could not be kept). */
bool lun_map_ticket(struct lun_map *m, uint64_t *gen);

/* The target's answer, taken with ticket @gen: @n extents (each inside
 * the capacity), LUN_MAP_DATA or LUN_MAP_HOLE; blocks the map holds as
 * LUN_MAP_WRITTEN stay so.  Returns 1 when kept, 0 when stale (the map
 * changed since the ticket) and -1 when the map is full (then it keeps
 * what fitted and lun_map_full() says so). */
int lun_map_learn(struct lun_map *m, uint64_t gen, const struct lun_map_extent *ext, size_t n);

/* Forget what the target said (another initiator may have changed the
 * LUN, or the target restarted); the runs we wrote stay data. */
void lun_map_drop(struct lun_map *m);

/* The capacity is now @blocks: forget what the target said; the runs we
 * wrote stay data inside the new capacity. */
void lun_map_resize(struct lun_map *m, uint64_t blocks);

/* Whether every block is known; then *@data_blocks holds how many hold
 * data. */
bool lun_map_allocated(struct lun_map *m, uint64_t *data_blocks);

/* Whether an answer did not fit since the map was last emptied: reading
 * the whole map again would be in vain. */
bool lun_map_full(struct lun_map *m);

/* A scan of the whole map stopped: the target's answers made too little
 * progress.  Until the map is emptied, lun_map_scannable() says no. */
void lun_map_give_up_scans(struct lun_map *m);

/* Whether a scan of the whole map may start: it is not full, and no scan
 * gave up since it was last emptied. */
bool lun_map_scannable(struct lun_map *m);

/* How many extents are known. */
size_t lun_map_extents(struct lun_map *m);

#endif /* ISCSIFS_LUN_MAP_H */
