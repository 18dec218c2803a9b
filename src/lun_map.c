/* lun_map.c: the known provisioning of a LUN (see lun_map.h).
 *
 * The extents live in one sorted array.  Setting a range finds the
 * extents it touches by binary search, replaces them with at most three
 * (what is left of the first on the left, the range itself unless it
 * becomes unknown, what is left of the last on the right) and merges
 * equal neighbours, so a change costs one memmove of the array's tail.
 * What the target says is put only into the gaps between the runs we
 * wrote (LUN_MAP_WRITTEN), which it never changes.
 *
 * Thread model: m->lock around every public function; the static helpers
 * run with it held.
 */
#include "lun_map.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Room for extents all maps hold (their cap), within
 * LUN_MAP_EXTENTS_BUDGET. */
static _Atomic size_t extents_reserved;

size_t lun_map_extents_reserved(void)
{
	return atomic_load(&extents_reserved);
}

/* Take room for @more extents from the budget; false when it has not
 * that much left. */
static bool reserve(size_t more)
{
	size_t now = atomic_load(&extents_reserved);

	do {
		if (more > LUN_MAP_EXTENTS_BUDGET - now)
			return false;
	} while (!atomic_compare_exchange_weak(&extents_reserved, &now, now + more));
	return true;
}

/* Give the room of @m's extents back, and the array. */
static void release_room(struct lun_map *m)
{
	free(m->ext);
	m->ext = NULL;
	atomic_fetch_sub(&extents_reserved, m->cap);
	m->cap = 0;
}

struct lun_map *lun_map_new(uint64_t blocks, size_t max_extents)
{
	struct lun_map *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	m->blocks = blocks;
	m->max = max_extents ? max_extents : 1;
	return m;
}

void lun_map_free(struct lun_map *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	release_room(m);
	free(m);
}

/* Index of the first extent that ends after @block (m->n when none). */
static size_t first_ending_after(const struct lun_map *m, uint64_t block)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->ext[mid].end > block)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Index of the first extent that starts at or after @block. */
static size_t first_starting_from(const struct lun_map *m, uint64_t block)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->ext[mid].start >= block)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Count @e into (@sign 1) or out of (-1) the totals. */
static void account(struct lun_map *m, const struct lun_map_extent *e, int sign)
{
	uint64_t len = e->end - e->start;
	bool data = e->state == LUN_MAP_DATA || e->state == LUN_MAP_WRITTEN;

	if (sign > 0) {
		m->known_blocks += len;
		if (data)
			m->data_blocks += len;
	} else {
		m->known_blocks -= len;
		if (data)
			m->data_blocks -= len;
	}
}

/* Empty @m, giving its room back. */
static void forget_all(struct lun_map *m)
{
	release_room(m);
	m->full = false;
	m->scan_gave_up = false;
	m->n = 0;
	m->data_blocks = 0;
	m->known_blocks = 0;
}

/* Forget what the target said, keeping the runs we wrote inside the
 * first @blocks blocks: those are data whatever happened since (another
 * initiator's unmapping them costs a copy some sparseness, never data). */
static void forget_learnt(struct lun_map *m, uint64_t blocks)
{
	size_t k = 0;

	m->full = false;
	m->scan_gave_up = false;
	m->data_blocks = 0;
	m->known_blocks = 0;
	for (size_t i = 0; i < m->n; i++) {
		struct lun_map_extent e = m->ext[i];
		if (e.state != LUN_MAP_WRITTEN || e.start >= blocks)
			continue;
		if (e.end > blocks)
			e.end = blocks;
		m->ext[k++] = e;
		account(m, &e, 1);
	}
	m->n = k;
	if (k == 0) {
		release_room(m);
		return;
	}
	/* the room beyond what is kept goes back too (to 16 or the next
	 * power of two); a failed realloc keeps the larger array */
	size_t cap = 16;
	while (cap < k)
		cap *= 2;
	if (cap < m->cap) {
		struct lun_map_extent *ext = realloc(m->ext, cap * sizeof *ext);
		if (ext) {
			m->ext = ext;
			atomic_fetch_sub(&extents_reserved, m->cap - cap);
			m->cap = cap;
		}
	}
}

/* Merge extent @i with its right neighbour while they touch and agree. */
static void merge_right(struct lun_map *m, size_t i)
{
	while (i + 1 < m->n && m->ext[i].end == m->ext[i + 1].start &&
	       m->ext[i].state == m->ext[i + 1].state) {
		m->ext[i].end = m->ext[i + 1].end;
		memmove(&m->ext[i + 1], &m->ext[i + 2], (m->n - i - 2) * sizeof m->ext[0]);
		m->n--;
	}
}

/* Put blocks [@start, @end) (inside the capacity, start < end) into
 * @state.  Returns 0, or -1 when that needs more than m->max extents or
 * memory (the map is unchanged then). */
static int assign(struct lun_map *m, uint64_t start, uint64_t end, enum lun_map_state state)
{
	size_t i = first_ending_after(m, start);
	size_t j = first_starting_from(m, end);
	struct lun_map_extent repl[3];
	size_t k = 0;

	if (j < i)
		j = i;
	if (i < j && m->ext[i].start < start)
		repl[k++] = (struct lun_map_extent){ m->ext[i].start, start, m->ext[i].state };
	if (state != LUN_MAP_UNKNOWN)
		repl[k++] = (struct lun_map_extent){ start, end, state };
	if (i < j && m->ext[j - 1].end > end)
		repl[k++] = (struct lun_map_extent){ end, m->ext[j - 1].end, m->ext[j - 1].state };

	size_t n = m->n - (j - i) + k;
	if (n > m->max)
		return -1;
	if (n > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		while (cap < n)
			cap *= 2;
		if (cap > m->max)
			cap = m->max;
		/* doubled if the budget has room, else just enough */
		if (!reserve(cap - m->cap)) {
			cap = n;
			if (!reserve(cap - m->cap))
				return -1;
		}
		struct lun_map_extent *ext = realloc(m->ext, cap * sizeof *ext);
		if (!ext) {
			atomic_fetch_sub(&extents_reserved, cap - m->cap);
			return -1;
		}
		m->ext = ext;
		m->cap = cap;
	}
	for (size_t x = i; x < j; x++)
		account(m, &m->ext[x], -1);
	if (m->n > j)
		memmove(&m->ext[i + k], &m->ext[j], (m->n - j) * sizeof m->ext[0]);
	if (k)
		memcpy(&m->ext[i], repl, k * sizeof repl[0]);
	m->n = n;
	for (size_t x = 0; x < k; x++)
		account(m, &repl[x], 1);
	/* Merge equal neighbours from the one on the left of what was put
	 * in to the one on its right, right to left so that merging never
	 * moves an extent still to be looked at. */
	size_t last = i + k < m->n ? i + k : m->n;
	for (size_t x = last + 1; x-- > (i > 0 ? i - 1 : 0);)
		if (x < m->n)
			merge_right(m, x);
	return 0;
}

enum lun_map_state lun_map_lookup(struct lun_map *m, uint64_t block, uint64_t *run_end)
{
	enum lun_map_state state = LUN_MAP_UNKNOWN;

	pthread_mutex_lock(&m->lock);
	*run_end = block;
	if (block < m->blocks) {
		size_t i = first_ending_after(m, block);
		if (i < m->n && m->ext[i].start <= block) {
			state = m->ext[i].state == LUN_MAP_WRITTEN ? LUN_MAP_DATA : m->ext[i].state;
			*run_end = m->ext[i].end;
		} else {
			*run_end = i < m->n ? m->ext[i].start : m->blocks;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return state;
}

uint64_t lun_map_next_unknown(struct lun_map *m, uint64_t from)
{
	pthread_mutex_lock(&m->lock);
	size_t i = first_ending_after(m, from);
	/* extents that touch each other are in different states: walk them */
	while (from < m->blocks && i < m->n && m->ext[i].start <= from) {
		from = m->ext[i].end;
		i++;
	}
	if (from > m->blocks)
		from = m->blocks;
	pthread_mutex_unlock(&m->lock);
	return from;
}

void lun_map_change_begin(struct lun_map *m)
{
	pthread_mutex_lock(&m->lock);
	m->changing++;
	m->gen++;
	pthread_mutex_unlock(&m->lock);
}

bool lun_map_change_end(struct lun_map *m, uint64_t start, uint64_t end,
			enum lun_map_state state)
{
	bool kept = true;

	pthread_mutex_lock(&m->lock);
	if (m->changing)
		m->changing--;
	m->gen++;
	if (end > m->blocks)
		end = m->blocks;
	/* no room: what the target said goes first, then, if our own runs
	 * are what fills the map, everything */
	if (start < end && assign(m, start, end, state) < 0) {
		forget_learnt(m, m->blocks);
		if (assign(m, start, end, state) < 0) {
			forget_all(m);
			kept = false;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return kept;
}

bool lun_map_ticket(struct lun_map *m, uint64_t *gen)
{
	pthread_mutex_lock(&m->lock);
	bool ok = m->changing == 0;
	*gen = m->gen;
	pthread_mutex_unlock(&m->lock);
	return ok;
}

/* Put the blocks of [@start, @end) (inside the capacity) that are not
 * LUN_MAP_WRITTEN into @state, as the target says they are.  Returns 0,
 * or -1 as assign() does (what was put in before stays). */
static int assign_unwritten(struct lun_map *m, uint64_t start, uint64_t end,
			    enum lun_map_state state)
{
	while (start < end) {
		uint64_t gap_end = end, next = end;
		size_t i = first_ending_after(m, start);

		while (i < m->n && m->ext[i].start < end && m->ext[i].state != LUN_MAP_WRITTEN)
			i++;
		if (i < m->n && m->ext[i].start < end) {
			/* a written run ends after start and begins before end */
			gap_end = m->ext[i].start > start ? m->ext[i].start : start;
			next = m->ext[i].end;
		}
		if (start < gap_end && assign(m, start, gap_end, state) < 0)
			return -1;
		start = next;
	}
	return 0;
}

int lun_map_learn(struct lun_map *m, uint64_t gen, const struct lun_map_extent *ext, size_t n)
{
	int rc = 1;

	pthread_mutex_lock(&m->lock);
	if (gen != m->gen || m->changing) {
		rc = 0;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t end = ext[i].end < m->blocks ? ext[i].end : m->blocks;
		if (ext[i].start >= end)
			continue;
		if (assign_unwritten(m, ext[i].start, end, ext[i].state) < 0) {
			m->full = true;
			rc = -1;
			break;
		}
	}
out:
	pthread_mutex_unlock(&m->lock);
	return rc;
}

void lun_map_drop(struct lun_map *m)
{
	pthread_mutex_lock(&m->lock);
	forget_learnt(m, m->blocks);
	m->gen++;
	pthread_mutex_unlock(&m->lock);
}

void lun_map_resize(struct lun_map *m, uint64_t blocks)
{
	pthread_mutex_lock(&m->lock);
	forget_learnt(m, blocks);
	m->blocks = blocks;
	m->gen++;
	pthread_mutex_unlock(&m->lock);
}

bool lun_map_allocated(struct lun_map *m, uint64_t *data_blocks)
{
	pthread_mutex_lock(&m->lock);
	bool known = m->known_blocks == m->blocks;
	*data_blocks = m->data_blocks;
	pthread_mutex_unlock(&m->lock);
	return known;
}

bool lun_map_full(struct lun_map *m)
{
	pthread_mutex_lock(&m->lock);
	bool full = m->full;
	pthread_mutex_unlock(&m->lock);
	return full;
}

void lun_map_give_up_scans(struct lun_map *m)
{
	pthread_mutex_lock(&m->lock);
	m->scan_gave_up = true;
	pthread_mutex_unlock(&m->lock);
}

bool lun_map_scannable(struct lun_map *m)
{
	pthread_mutex_lock(&m->lock);
	bool ok = !m->full && !m->scan_gave_up;
	pthread_mutex_unlock(&m->lock);
	return ok;
}

size_t lun_map_extents(struct lun_map *m)
{
	pthread_mutex_lock(&m->lock);
	size_t n = m->n;
	pthread_mutex_unlock(&m->lock);
	return n;
}
