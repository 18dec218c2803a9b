/* stats.c: the statistics file's text (see stats.h).
 *
 * Format, one counter per line, grouped by a header line per object:
 *
 *     lun lun1 target iqn...:disk
 *     reads 120
 *     ...
 *     lba_status_cmds 3
 *     extents_known 12
 *     latency_p50_us 256
 *     session 0 target iqn...:disk
 *     commands 4711
 *     ...
 *     loops 2
 *     helper_jobs 3
 *     loop_logins 8
 *     loop_logins_ok 8
 *     name_lookups 0
 *     read_waits 0
 *     loop 0
 *     requests 5120
 *     wakeups 812
 *     watching 1
 *     spills 0
 *     loop 1
 *     ...
 *
 * The loop lines (fuse_loop.h) come last: how many event loops serve the
 * mount, the jobs the helper threads ran, the logins the loops ran (the
 * sessions' first logins and reconnects: login_loop.h) and those that
 * logged in, the host names the resolver threads looked up, the reads that
 * waited for room in the budget of read buffers (lun_read.c), and per loop the FUSE requests
 * it handled, its wake-ups, whether it watches the FUSE device now and how
 * often it was asked to start (the spill: fuse_loop.c); they appear when the text is rendered on a
 * loop, as every read of the file is.
 * Counters are read one by one without a lock, so a snapshot taken under
 * I/O is not atomic as a whole; each value is exact.  Latency percentiles
 * come from a histogram with power-of-two buckets: each is the upper bound
 * of the bucket that holds that fraction of the requests, so it is
 * accurate within a factor of two.
 */
#include "stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fs.h"
#include "evloop.h"
#include "fuse_loop.h"
#include "login_loop.h"
#include "pool.h"
#include "resolve.h"

/* A growing text buffer. */
struct stats_text {
	char *data;                   /* the text, NUL-terminated */
	size_t len;                   /* bytes used, without the NUL */
	size_t cap;                   /* bytes allocated */
	bool failed;                  /* an allocation failed */
};

__attribute__((format(printf, 2, 3)))
static void add(struct stats_text *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n;
		char *d = realloc(b->data, cap);
		if (!d) {
			b->failed = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
}

/* The upper bound, in microseconds, of the bucket holding fraction
 * @num/@den of the requests counted in @hist (0 when none). */
static unsigned long long percentile_us(const uint64_t *hist, uint64_t total, unsigned num,
					unsigned den)
{
	uint64_t want = (total * num + den - 1) / den, seen = 0;

	if (total == 0)
		return 0;
	for (unsigned i = 0; i < LUN_LATENCY_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= want)
			return 2ull << i;
	}
	return 2ull << (LUN_LATENCY_BUCKETS - 1);
}

static void add_lun(struct stats_text *b, const struct fs_node *n)
{
	struct lun_counters *c = &n->lun->counters;
	uint64_t hist[LUN_LATENCY_BUCKETS], total = 0;

	add(b, "lun %s target %s\n", n->name, n->tgt->cfg.target_name);
#define COUNTER(field) add(b, #field " %llu\n", (unsigned long long)atomic_load(&c->field))
	COUNTER(reads);
	COUNTER(writes);
	COUNTER(bytes_read);
	COUNTER(bytes_written);
	COUNTER(fua_writes);
	COUNTER(holes);
	COUNTER(zeroings);
	COUNTER(flushes);
	COUNTER(errors);
	COUNTER(retries);
	COUNTER(unit_attentions);
	COUNTER(lba_status_cmds);
#undef COUNTER
	add(b, "extents_known %zu\n", lun_extents_known(n->lun));
	for (unsigned i = 0; i < LUN_LATENCY_BUCKETS; i++) {
		hist[i] = atomic_load(&c->latency[i]);
		total += hist[i];
	}
	add(b, "latency_p50_us %llu\n", percentile_us(hist, total, 50, 100));
	add(b, "latency_p90_us %llu\n", percentile_us(hist, total, 90, 100));
	add(b, "latency_p99_us %llu\n", percentile_us(hist, total, 99, 100));
	add(b, "latency_p999_us %llu\n", percentile_us(hist, total, 999, 1000));
}

static void add_pool(struct stats_text *b, struct pool *p, const char *target)
{
	for (unsigned i = 0; i < pool_size(p); i++) {
		struct session_stats st;
		pool_session_stats(p, i, &st);
		add(b, "session %u target %s\n", i, target);
		add(b, "commands %llu\n", (unsigned long long)st.commands);
		add(b, "r2ts %llu\n", (unsigned long long)st.r2ts);
		add(b, "data_out_pdus %llu\n", (unsigned long long)st.data_out_pdus);
		add(b, "bytes_read %llu\n", (unsigned long long)st.bytes_read);
		add(b, "bytes_written %llu\n", (unsigned long long)st.bytes_written);
		add(b, "reconnects %llu\n", (unsigned long long)st.reconnects);
		add(b, "timeouts %llu\n", (unsigned long long)st.timeouts);
		add(b, "aborts %llu\n", (unsigned long long)st.aborts);
		add(b, "lu_resets %llu\n", (unsigned long long)st.lu_resets);
		add(b, "abort_task_sets %llu\n", (unsigned long long)st.abort_sets);
		add(b, "verifications %llu\n", (unsigned long long)st.verifications);
		add(b, "luns_replaced %llu\n", (unsigned long long)st.luns_replaced);
	}
}

/* The event loops' block, when rendered on a loop. */
static void add_loops(struct stats_text *b)
{
	struct fuse_loop_counters c[EVLOOPS_MAX];
	unsigned long jobs;
	unsigned n = fuse_loop_counters(c, EVLOOPS_MAX, &jobs);

	if (n == 0)
		return;
	add(b, "loops %u\nhelper_jobs %lu\nloop_logins %lu\nloop_logins_ok %lu\nname_lookups %lu\n"
	    "read_waits %lu\n", n, jobs, login_loop_started(), login_loop_succeeded(),
	    resolve_lookups(), lun_read_waits());
	for (unsigned i = 0; i < n; i++)
		add(b, "loop %u\nrequests %lu\nwakeups %lu\nwatching %d\nspills %lu\n", i,
		    c[i].requests, c[i].wakeups, c[i].watching, c[i].spills);
}

char *stats_render(struct fs *fs, size_t *len)
{
	struct stats_text b = { .cap = 4096 };
	size_t count = atomic_load_explicit(&fs->nnodes, memory_order_acquire);

	b.data = malloc(b.cap);
	if (!b.data)
		return NULL;
	b.data[0] = '\0';
	for (size_t i = 0; i < count; i++)
		if (fs->nodes[i].lun && !atomic_load(&fs->nodes[i].gone))
			add_lun(&b, &fs->nodes[i]);   /* (a LUN gone from its target: no block) */
	for (size_t i = 0; i < fs->ntargets; i++) {
		/* (not t->lock: a helper may hold it for a whole login, and
		 * this runs on an event loop) */
		struct fs_target *t = fs->targets[i];
		struct pool *pool = atomic_load_explicit(&t->stats_pool, memory_order_acquire);
		if (pool)
			add_pool(&b, pool, t->cfg.target_name);
	}
	add_loops(&b);
	if (b.failed) {
		free(b.data);
		return NULL;
	}
	*len = b.len;
	return b.data;
}
