/* pool.c: N sessions to one target and the queue in front of them.
 *
 * NOTES ON THE THREAD MODEL
 *
 * pool_submit() is called by the event loops (FUSE requests, and
 * completions that submit again) and by the helpers.  It picks the logged-in session with the fewest
 * outstanding bytes (ties: the one after the last chosen, so that equal
 * sessions share the work) and calls session_submit().  When every
 * session's window or queue depth is full the task waits in a FIFO queue;
 * pool_kick(), the sessions' kick callback when a task ends or a window
 * opens, drains the queue in order, so nothing starves.
 *
 * When a session loses its connection, its tasks come back through
 * pool_requeue() (the requeue callback) to the head of the queue, in CmdSN
 * order, and go out again on whichever session is up first; writes that
 * had reached the wire come back only once their own session has logged
 * in again (or after the replacement timeout), so that no stale copy of
 * theirs on the old connection can land after a newer write
 * (session_stop() in session_recover.c).
 * While no session is up, tasks wait; once none has been up for the
 * replacement timeout, the queue fails with EIO and new tasks fail at once
 * until a session is back.
 *
 * Each LUN the mount exposes is registered with what it was at the probe
 * (pool_expect_lun()); a session that logs in again checks every one of
 * them before it takes commands (SESSION_VERIFYING, session_verify.c; it
 * asks for them through expected_luns).  A LUN found to be another is
 * marked replaced (lun_replaced, or pool_lun_unusable() when a rescan
 * finds another logical block size): its queued tasks fail with EIO,
 * and dispatch() fails every later one, so nothing reaches that disk.
 *
 * A LUN whose commands met a Unit Attention saying it may be another unit
 * now (a power on or reset, its inquiry data or the LUN list changed) is
 * held (pool_hold_lun(), by the LUN layer): its tasks, new ones and those
 * sent again, wait on the held list, in order, while the owner checks it
 * with commands marked past_hold; then pool_release_lun() puts them at the
 * head of the queue, or mark_replaced() (pool_lun_unusable()) or
 * pool_forget_lun() fails them.  pool_destroy() fails what is still held.
 * While no session is up past the replacement timeout (failfast), and
 * once its check could not be done (pool_hold_failing_all()), a held LUN's
 * tasks fail at once instead of waiting.
 *
 * A task of the data path carries its LUN object's incarnation (lun.h);
 * once a LUN's record was forgotten (its file removed) or taken by another
 * object (probed anew), p->retired says so, and a task whose LUN number
 * has no record of its incarnation fails (task_retired()): one of the old
 * file's that went again later (after BUSY, a lost connection) must not
 * reach the unit now under that number.
 *
 * Each session ticks once a second on a timer of its own loop (keepalive,
 * command timeout: session_tick_start()).  A watchdog per pool, a timer
 * on one event loop (evloop.h), applies the replacement timeout (no session up, none alive: session_is_up(),
 * session_is_alive()); its second is measured on CLOCK_MONOTONIC, so that
 * a step of the wall clock neither stalls the keepalives nor hurries a
 * timeout.
 *
 * The sessions report to the pool only through the callbacks of
 * session_ops (struct session_owner_ops, session.h), with the pool as
 * their opaque argument: room again (kick), tasks to send again
 * (requeue), a LUN reset (lun_reset), what an identity check found
 * (lun_replaced, lun_grew, unit_attention, writes_lost, expected_luns).
 * Each is called on a session thread with no session lock held, and may
 * take the pool lock.
 *
 * p->lock protects the queue, the cursor, the count of tasks in flight,
 * the LUN identities and the watchdog's state.  Lock order: pool ->
 * session (session_submit() takes the session lock).  No pool lock is
 * held while task->done() runs.
 */
#include "pool.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "completion.h"
#include "deadline.h"
#include "evloop.h"
#include "log.h"

/* How long pool_destroy() waits, after the logout, for the retries that
 * still hold the pool (each fires within a second: retry.h). */
#define POOL_DRAIN_MS 5000

/* How long pool_destroy() waits for the answers to its sessions'
 * Logouts, all sent at once. */
#define POOL_LOGOUT_MS 5000

/* dispatch(): a command goes to a session of another loop than the one
 * that submits it only when each of this loop's sessions carries this
 * many commands of its size more than that one.  Handing it over costs a
 * post and a wake-up of that loop, about what the FUSE request itself
 * cost (doc/bench.md: with one such task as the margin, half the 4k
 * requests of 8 readers crossed over, at 1.1 context switches per I/O
 * against 0.5 with four).  Above that load every session takes its
 * share (pool.sh: 8 sessions over 2 loops all carry commands). */
#define AWAY_TASKS 4

/* dispatch(): what a session whose target port cannot reach a LUN now
 * (pool_avoid_session()) counts on top of its load: it carries commands
 * only when no other session is up. */
#define AVOIDED_COST (UINT64_MAX / 4)

/* A list of tasks linked by ->next, with its tail. */
struct task_list {
	struct iscsi_task *head;
	struct iscsi_task *tail;
};

struct pool {
	struct session_config cfg;        /* read-only after create */
	unsigned n;                       /* number of sessions; read-only */
	struct session **sessions;        /* read-only after create */
	pthread_mutex_t lock;             /* protects the fields below */
	pthread_cond_t idle_cond;         /* signalled when in_flight drops to 0 */
	int64_t avoiding_until_ns;        /* lock: the latest end of a LUN's avoidance of
	                                   * a session (pool_lun's avoid_until_ns), 0:
	                                   * none avoided (dispatch() looks no further) */
	struct task_list queue;           /* lock: tasks waiting for room */
	unsigned cursor;                  /* lock: where the next search starts */
	uint64_t in_flight;               /* lock: submitted, done() not yet called */
	unsigned replacement_timeout_s;   /* read-only: how long I/O waits for a session */
	struct evloop *loop;              /* read-only: the loop the watchdog runs on */
	struct ev_timer watchdog;         /* that loop's: ticks sessions each second,
	                                   * applies the timeout */
	bool watchdog_run;                /* lock: the watchdog keeps going (and the
	                                   * sessions are there: pool_lun_reset()) */
	bool closing;                     /* lock: pool_destroy() is freeing the
	                                   * sessions: nothing is dispatched any more
	                                   * (a task handed back fails with EIO) */
	int64_t none_up_since_ns;         /* lock: since when no session is up, 0 if one is */
	bool failfast;                    /* lock: no session up for too long: fail, do not queue */
	struct pool_lun *luns;            /* lock: the LUNs of the mount (pool_expect_lun()) */
	unsigned nluns;                   /* lock: entries used in luns */
	unsigned luns_cap;                /* lock: entries allocated in luns */
	unsigned nreplaced;               /* lock: entries of luns marked replaced */
	unsigned nheld;                   /* lock: entries of luns marked held */
	unsigned retired;                 /* lock: LUN records forgotten, or taken by
	                                   * another LUN object, so far: while 0 no
	                                   * task can be an old object's (task_retired()) */
	bool holds_ended;                 /* lock: pool_destroy() began: no LUN is held
	                                   * any more (nothing would check it) */
	struct task_list held;            /* lock: tasks of held LUNs, in the order they
	                                   * came (pool_hold_lun()) */
	pool_change_fn changed;           /* lock: the owner's hook, or NULL */
	void *changed_opaque;             /* lock: its argument */
};

/* A LUN of the mount on this target. */
struct pool_lun {
	struct lun_identity id;           /* what it must be after a reconnect */
	bool replaced;                    /* found to be another LUN: its commands fail */
	bool held_failing;                /* held, and the check could not be done: its
	                                   * tasks fail at once instead of waiting,
	                                   * until it passes (pool_hold_failing_all()) */
	bool held;                        /* a Unit Attention said it may be another
	                                   * unit: its commands wait on the held list
	                                   * until the owner checks it
	                                   * (pool_hold_lun()) */
	int64_t *avoid_until_ns;          /* NULL, or per session (p->n entries): until when
	                                   * that session's target port is avoided for this
	                                   * LUN, which it cannot reach (ALUA standby or
	                                   * unavailable: pool_avoid_session()) */
	bool writes_lost;                 /* an identity check met a deferred error saying
					   * an earlier write was lost: the LUN's next
					   * fsync fails (pool_take_writes_lost()) */
};

static void fail_list(struct iscsi_task *list)
{
	while (list) {
		struct iscsi_task *t = list;
		list = t->next;
		t->result = EIO;
		t->done(t);
	}
}

/* Append @t to @l. */
static void list_append(struct task_list *l, struct iscsi_task *t)
{
	t->next = NULL;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
}

/* Take the tasks of LUN @lun out of @from, keeping the order of both
 * parts, and append them to @out. */
static void take_lun_tasks(struct task_list *from, uint32_t lun, struct task_list *out)
{
	struct iscsi_task **pp = &from->head, *last = NULL;

	while (*pp) {
		struct iscsi_task *t = *pp;
		if (t->lun == lun) {
			*pp = t->next;
			list_append(out, t);
			continue;
		}
		last = t;
		pp = &t->next;
	}
	from->tail = last;
}


/* The watchdog's second, on its loop: apply the replacement timeout, and
 * arm the next.  (Each session ticks on its own loop: session_tick_start().) */
static void watchdog_fire(struct ev_timer *timer)
{
	struct pool *p = (struct pool *)((char *)timer - offsetof(struct pool, watchdog));

	pthread_mutex_lock(&p->lock);
	bool run = p->watchdog_run;
	pthread_mutex_unlock(&p->lock);
	if (!run)
		return;
	bool any_up = false;
	for (unsigned i = 0; i < p->n; i++)
		any_up |= session_is_up(p->sessions[i]);
	struct iscsi_task *failed = NULL;
	struct task_list held = { NULL, NULL };
	bool recheck = false;
	int64_t now = mono_now_ns();
	pthread_mutex_lock(&p->lock);
	if (any_up) {
		if (p->failfast)
			log_info("target %s: a session is back; I/O resumes", p->cfg.target_name);
		/* held LUNs whose check could not be done: now it can */
		recheck = p->failfast && p->nheld;
		p->none_up_since_ns = 0;
		p->failfast = false;
	} else if (!p->none_up_since_ns) {
		p->none_up_since_ns = now;
	} else if (!p->failfast &&
		   now - p->none_up_since_ns > (int64_t)p->replacement_timeout_s * 1000000000) {
		p->failfast = true;
		log_error("target %s: no session for %u s; failing I/O with EIO until one is back",
			  p->cfg.target_name, p->replacement_timeout_s);
		failed = p->queue.head;
		p->queue.head = p->queue.tail = NULL;
		/* and what waits for a check (its LUNs stay held) */
		held.head = p->held.head;
		p->held.head = p->held.tail = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	fail_list(failed);
	fail_list(held.head);
	if (recheck)
		pool_tell_change(p, 0, SCSI_CHANGE_IDENTITY);
	evloop_timer_arm(p->loop, &p->watchdog, mono_now_ns() + 1000000000);
}

/* Arm the first second (evloop_run_sync()). */
static void watchdog_start(void *arg)
{
	struct pool *p = arg;

	p->watchdog.fire = watchdog_fire;
	evloop_timer_arm(p->loop, &p->watchdog, mono_now_ns() + 1000000000);
}

/* Disarm it (evloop_run_sync()): no tick runs after. */
static void watchdog_stop(void *arg)
{
	struct pool *p = arg;

	evloop_timer_cancel(p->loop, &p->watchdog);
}

unsigned pool_size(const struct pool *p)
{
	return p->n;
}

void pool_session_stats(struct pool *p, unsigned i, struct session_stats *out)
{
	session_get_stats(p->sessions[i], out);
}

void pool_log_stats(struct pool *p)
{
	for (unsigned i = 0; i < p->n; i++) {
		struct session_stats st;
		session_get_stats(p->sessions[i], &st);
		log_info("session %u: %llu commands, %llu R2Ts, %llu bytes read, %llu bytes written, "
			 "%llu reconnects, %llu timeouts, %llu aborts, %llu LU resets, "
			 "%llu task set aborts", i,
			 (unsigned long long)st.commands,
			 (unsigned long long)st.r2ts, (unsigned long long)st.bytes_read,
			 (unsigned long long)st.bytes_written, (unsigned long long)st.reconnects,
			 (unsigned long long)st.timeouts, (unsigned long long)st.aborts,
			 (unsigned long long)st.lu_resets, (unsigned long long)st.abort_sets);
	}
}

/* Session @from reset LUN @lun (LOGICAL UNIT RESET, function complete),
 * which ended the commands of every other session there too: each of
 * them with commands on it aborts its task set of that LUN and sends
 * again what that ends (session_lun_reset_elsewhere()).  The
 * session_owner_ops lun_reset callback: a session's loop, no lock
 * held. */
static void pool_lun_reset(void *owner, const struct session *from, uint32_t lun)
{
	struct pool *p = owner;

	/* under the pool lock, so that pool_destroy() frees no session
	 * meanwhile (lock order: pool -> session) */
	pthread_mutex_lock(&p->lock);
	if (p->watchdog_run)
		for (unsigned i = 0; i < p->n; i++)
			if (p->sessions[i] != from)
				session_lun_reset_elsewhere(p->sessions[i], lun);
	pthread_mutex_unlock(&p->lock);
}

void pool_params(const struct pool *p, struct iscsi_params *out)
{
	session_params_copy(p->sessions[0], out);
}

static const struct session_owner_ops session_ops;

struct pool *pool_create(const struct session_config *cfg, unsigned nsessions,
			 unsigned replacement_timeout_s)
{
	struct pool *p = calloc(1, sizeof *p);

	if (!p || nsessions == 0) {
		free(p);
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	p->cfg = *cfg;
	p->sessions = calloc(nsessions, sizeof *p->sessions);
	if (!p->sessions) {
		free(p);
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->idle_cond, NULL);
	p->replacement_timeout_s = replacement_timeout_s;
	p->cfg.replacement_timeout_s = replacement_timeout_s;
	/* every session logs in at once, each on its loop */
	if (session_login_all(&session_ops, p, &p->cfg, nsessions, p->sessions) < 0) {
		/* (its err_set() stands: nothing below sets another) */
		free(p->sessions);
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->idle_cond);
		free(p);
		return NULL;
	}
	p->n = nsessions;
	for (unsigned i = 0; i < nsessions; i++)
		session_tick_start(p->sessions[i]);
	/* (the loops run: the sessions started them) */
	p->loop = evloop_assign();
	pthread_mutex_lock(&p->lock);
	p->watchdog_run = true;
	pthread_mutex_unlock(&p->lock);
	evloop_run_sync(p->loop, watchdog_start, p);
	return p;
}

/* The entry of LUN @lun, or NULL.  Lock held. */
static struct pool_lun *find_lun(struct pool *p, uint32_t lun)
{
	for (unsigned i = 0; i < p->nluns; i++)
		if (p->luns[i].id.lun == lun)
			return &p->luns[i];
	return NULL;
}

/* Whether the commands of LUN @lun are to fail (it was replaced).  Lock
 * held. */
static bool lun_is_replaced(struct pool *p, uint32_t lun)
{
	struct pool_lun *pl = p->nreplaced ? find_lun(p, lun) : NULL;

	return pl && pl->replaced;
}

/* What becomes of a task the pool is to dispatch (task_fate()). */
enum task_fate {
	TASK_GOES,        /* to a session, or the queue behind a full window */
	TASK_WAITS,       /* on the held list: its LUN is held until checked */
	TASK_FAILS,       /* with EIO at once */
};

/* What becomes of @t (one lookup, none while no LUN is replaced, held or
 * retired).  It fails when its LUN was found replaced; when it is a task
 * of a LUN object whose number is no file's any more, or another
 * object's (its file was removed or replaced: the unit under that number
 * now, another perhaps, must not get it); or when its LUN is held and
 * cannot be checked now (the check was given up, or no session is up past
 * the replacement timeout).  It waits while its LUN is held, unless it is
 * one of the commands that check it (past_hold).  Lock held. */
static enum task_fate task_fate(struct pool *p, const struct iscsi_task *t)
{
	bool check_incarnation = p->retired && t->incarnation;

	if (!p->nreplaced && !p->nheld && !check_incarnation)
		return TASK_GOES;
	const struct pool_lun *pl = find_lun(p, t->lun);
	if (!pl)      /* its record was forgotten, or never held */
		return check_incarnation ? TASK_FAILS : TASK_GOES;
	if (pl->replaced || (check_incarnation && pl->id.incarnation != t->incarnation))
		return TASK_FAILS;
	if (!pl->held || t->past_hold)
		return TASK_GOES;
	return pl->held_failing || p->failfast ? TASK_FAILS : TASK_WAITS;
}

/* End the hold of @pl, if it is held: its tasks go to @out.  Lock held. */
static void unhold_locked(struct pool *p, struct pool_lun *pl, struct task_list *out)
{
	if (!pl->held)
		return;
	pl->held = false;
	pl->held_failing = false;
	p->nheld--;
	take_lun_tasks(&p->held, pl->id.lun, out);
}

int pool_expect_lun(struct pool *p, const struct lun_identity *id)
{
	struct task_list failed = { NULL, NULL };

	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, id->lun);
	if (!pl && p->nluns == p->luns_cap) {
		unsigned cap = p->luns_cap ? 2 * p->luns_cap : 8;
		void *n = realloc(p->luns, cap * sizeof *p->luns);
		if (!n) {
			pthread_mutex_unlock(&p->lock);
			err_set(ENOMEM, "out of memory registering LUN %u", id->lun);
			return -1;
		}
		p->luns = n;
		p->luns_cap = cap;
	}
	if (!pl) {
		pl = &p->luns[p->nluns++];
		pl->held = pl->held_failing = false;
		pl->avoid_until_ns = NULL;
	} else {
		if (pl->replaced)
			p->nreplaced--;   /* probed afresh (its file was gone and is back) */
		unhold_locked(p, pl, &failed);   /* (the old unit's tasks, if any) */
		if (pl->id.incarnation != id->incarnation)
			p->retired++;     /* the old object's tasks fail from now on */
	}
	pl->replaced = false;
	pl->writes_lost = false;  /* a unit probed afresh: not the old one's loss
				   * (capacity updates go through
				   * pool_lun_resized(), which keeps it) */
	pl->id = *id;
	pthread_mutex_unlock(&p->lock);
	fail_list(failed.head);
	return 0;
}

void pool_forget_lun(struct pool *p, uint32_t lun)
{
	struct task_list failed = { NULL, NULL };

	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	if (pl) {
		if (pl->replaced)
			p->nreplaced--;
		/* what waited for its check: the unit is no longer there */
		unhold_locked(p, pl, &failed);
		p->retired++;     /* its object's tasks fail from now on */
		free(pl->avoid_until_ns);
		*pl = p->luns[--p->nluns];   /* order does not matter */
	}
	pthread_mutex_unlock(&p->lock);
	fail_list(failed.head);
}

bool pool_hold_lun(struct pool *p, uint32_t lun)
{
	bool marked = false;

	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	if (pl && !pl->replaced && !pl->held && !p->holds_ended) {
		pl->held = true;
		p->nheld++;
		marked = true;
	}
	pthread_mutex_unlock(&p->lock);
	if (marked)
		log_debug("target %s, lun%u: its commands wait until it is checked to be the same "
			  "unit", p->cfg.target_name, lun);
	return marked;
}

bool pool_lun_is_held(struct pool *p, uint32_t lun)
{
	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	bool held = pl && pl->held;
	pthread_mutex_unlock(&p->lock);
	return held;
}

static void pool_kick(void *owner);

unsigned pool_hold_failing_all(struct pool *p)
{
	struct task_list failed = { NULL, NULL };
	unsigned marked = 0;

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nluns; i++) {
		struct pool_lun *pl = &p->luns[i];
		if (pl->held && !pl->held_failing) {
			pl->held_failing = true;
			marked++;
			take_lun_tasks(&p->held, pl->id.lun, &failed);
			log_error("target %s, lun%u: it could not be checked to be the same unit "
				  "after a Unit Attention; its I/O fails with EIO until it is "
				  "(checked again later)", p->cfg.target_name, pl->id.lun);
		}
	}
	pthread_mutex_unlock(&p->lock);
	fail_list(failed.head);
	return marked;
}

bool pool_lun_is_held_failing(struct pool *p, uint32_t lun)
{
	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	bool failing = pl && pl->held && pl->held_failing;
	pthread_mutex_unlock(&p->lock);
	return failing;
}

void pool_release_lun(struct pool *p, uint32_t lun)
{
	struct task_list back = { NULL, NULL };

	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	if (pl)
		unhold_locked(p, pl, &back);
	if (back.head) {
		/* at the head of the queue, in their order: they came before
		 * what is queued behind a full window */
		back.tail->next = p->queue.head;
		p->queue.head = back.head;
		if (!p->queue.tail)
			p->queue.tail = back.tail;
	}
	pthread_mutex_unlock(&p->lock);
	if (back.head)
		pool_kick(p);
}

void pool_set_change_hook(struct pool *p, pool_change_fn fn, void *opaque)
{
	pthread_mutex_lock(&p->lock);
	p->changed = fn;
	p->changed_opaque = opaque;
	pthread_mutex_unlock(&p->lock);
}

void pool_tell_change(struct pool *p, uint32_t lun, enum scsi_change what)
{
	pthread_mutex_lock(&p->lock);
	pool_change_fn fn = p->changed;
	void *opaque = p->changed_opaque;
	pthread_mutex_unlock(&p->lock);
	if (fn)
		fn(lun, what, opaque);
}

/* A session found LUN @lun grown to @blocks: unless the pool knows that
 * capacity already (another session said so, or it was read again), take
 * it as the LUN's, tell the pool's owner (pool_tell_change()) and
 * return true, so that only the first session says it in the log.  The
 * lun_grew callback. */
static bool pool_lun_grew(void *owner, uint32_t lun, uint64_t blocks)
{
	struct pool *p = owner;

	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	bool news = pl && blocks > pl->id.blocks;
	if (news)
		pl->id.blocks = blocks;   /* what the next reconnect checks, too */
	pthread_mutex_unlock(&p->lock);
	if (news)
		pool_tell_change(p, lun, SCSI_CHANGE_CAPACITY);
	return news;
}

/* A Unit Attention the identity check of a session met on LUN @lun,
 * saying @change: passed on to the pool's owner.  The unit_attention
 * callback. */
static void pool_unit_attention(void *owner, uint32_t lun, enum scsi_change change)
{
	if (change == SCSI_CHANGE_CAPACITY || change == SCSI_CHANGE_LUNS)
		pool_tell_change(owner, lun, change);
}

/* An identity check met a deferred error saying a write to LUN @lun was
 * lost: kept for the LUN's next fsync.  The writes_lost callback. */
static void pool_writes_lost(void *owner, uint32_t lun)
{
	struct pool *p = owner;

	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	if (pl)
		pl->writes_lost = true;
	pthread_mutex_unlock(&p->lock);
}

bool pool_avoid_session(struct pool *p, const struct session *s, uint32_t lun, unsigned ms)
{
	int64_t now = mono_now_ns(), until = now + (int64_t)ms * 1000000;
	bool elsewhere = false, began = false;
	unsigned which = 0;

	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	if (pl && !pl->avoid_until_ns)
		pl->avoid_until_ns = calloc(p->n, sizeof *pl->avoid_until_ns);
	/* (no record, or no memory: nothing avoided, retried as NOT READY) */
	for (unsigned k = 0; pl && pl->avoid_until_ns && k < p->n; k++) {
		if (p->sessions[k] == s) {
			began = pl->avoid_until_ns[k] <= now;
			which = k;
			pl->avoid_until_ns[k] = until;
			if (until > p->avoiding_until_ns)
				p->avoiding_until_ns = until;
		} else if (session_is_up(p->sessions[k]) && pl->avoid_until_ns[k] <= now) {
			elsewhere = true;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (began)
		log_warn("target %s, LUN %u: session %u's target port cannot reach it now (ALUA: "
			 "target port in standby or unavailable state); %s for %u s",
			 p->cfg.target_name, lun, which,
			 elsewhere ? "its commands go to the other sessions" :
				     "no other session is up: retried there", ms / 1000);
	return elsewhere;
}

bool pool_take_writes_lost(struct pool *p, uint32_t lun)
{
	bool lost = false;

	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	if (pl) {
		lost = pl->writes_lost;
		pl->writes_lost = false;
	}
	pthread_mutex_unlock(&p->lock);
	return lost;
}

/* A copy of the identities to check, leaving out LUNs already replaced:
 * their number, and a malloc()ed array in *@out (NULL when 0).  Returns
 * -1 with err_set() on ENOMEM.  The expected_luns callback. */
static int pool_expected_luns(void *owner, struct lun_identity **out)
{
	struct pool *p = owner;
	int n = 0;

	*out = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->nluns > p->nreplaced) {
		*out = malloc((p->nluns - p->nreplaced) * sizeof **out);
		if (!*out) {
			pthread_mutex_unlock(&p->lock);
			err_set(ENOMEM, "out of memory");
			return -1;
		}
		for (unsigned i = 0; i < p->nluns; i++)
			if (!p->luns[i].replaced)
				(*out)[n++] = p->luns[i].id;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Whether record @now still says of a LUN what the verdict of an identity
 * check that compared with the copy @then was about: its capacity and
 * block size (@by_capacity), or what names the unit. */
static bool verdict_current(const struct lun_identity *now, const struct lun_identity *then,
			    bool by_capacity)
{
	if (by_capacity)
		return now->block_size == then->block_size && now->blocks == then->blocks;
	return strcmp(now->serial, then->serial) == 0 &&
	       strcmp(now->device_id, then->device_id) == 0;
}

/* LUN @lun is not the one probed (a session found another serial, block
 * size, a smaller capacity, or no LUN; when @checked is not NULL, it
 * compared with that copy of the record, and @by_capacity says what it
 * found different): from now on every command for it fails with EIO,
 * those waiting in the queue at once.  Returns true when this call marked
 * it (the caller logs it), false when it already was or the record
 * changed since the copy in what the verdict is about. */
static bool mark_replaced(struct pool *p, uint32_t lun, const struct lun_identity *checked,
			  bool by_capacity)
{
	struct task_list failed = { NULL, NULL };
	bool marked = false;

	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	/* a rescan took a new capacity (or a probe a new record) while the
	 * check ran: its verdict is about the old one */
	bool stale = pl && checked && !verdict_current(&pl->id, checked, by_capacity);
	if (stale)
		log_debug("target %s, lun%u: changed while an identity check compared it; "
			  "that check's verdict is dropped", p->cfg.target_name, lun);
	if (pl && !pl->replaced && !stale) {
		pl->replaced = true;
		p->nreplaced++;
		marked = true;
		/* its queued tasks fail now, and those that waited for its
		 * check; the others keep their order */
		take_lun_tasks(&p->queue, lun, &failed);
		unhold_locked(p, pl, &failed);
	}
	pthread_mutex_unlock(&p->lock);
	fail_list(failed.head);
	return marked;
}

/* The lun_replaced callback: mark_replaced() of @checked's LUN, unless its
 * record changed since the check copied it, in what the verdict is
 * about. */
static bool pool_lun_replaced(void *owner, const struct lun_identity *checked,
			      bool by_capacity)
{
	return mark_replaced(owner, checked->lun, checked, by_capacity);
}

void pool_lun_resized(struct pool *p, uint32_t lun, uint64_t blocks)
{
	pthread_mutex_lock(&p->lock);
	struct pool_lun *pl = find_lun(p, lun);
	if (pl && !pl->replaced)
		pl->id.blocks = blocks;
	pthread_mutex_unlock(&p->lock);
}

bool pool_lun_is_replaced(struct pool *p, uint32_t lun)
{
	pthread_mutex_lock(&p->lock);
	bool replaced = lun_is_replaced(p, lun);
	pthread_mutex_unlock(&p->lock);
	return replaced;
}

void pool_lun_unusable(struct pool *p, uint32_t lun)
{
	mark_replaced(p, lun, NULL, false);
}

unsigned pool_replaced_count(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	unsigned n = p->nreplaced;
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Try each session, least loaded first.  Lock held; task_fate() said the
 * task goes.  Returns 0 when a session took the task, -1 with errno
 * EAGAIN (all full) or EIO (none up). */
static int dispatch(struct pool *p, struct iscsi_task *t)
{
	bool any_up = false, any_alive = false;

	for (unsigned k = 0; k < p->n; k++)
		any_alive |= session_is_alive(p->sessions[k]);
	/* A session of the loop that submits is preferred while its load is
	 * within AWAY_TASKS such tasks of the least loaded: its socket is
	 * this loop's, so the command goes out and its answer is handled
	 * without waking another loop. */
	struct evloop *here = evloop_current();
	uint64_t away_cost = AWAY_TASKS * (uint64_t)(t->xfer_len ? t->xfer_len : 1);
	/* sessions whose target port cannot reach the task's LUN now come
	 * last (one lookup, none while no session is avoided) */
	const int64_t *avoid = NULL;
	int64_t now = 0;
	if (p->avoiding_until_ns) {
		now = mono_now_ns();
		if (now >= p->avoiding_until_ns) {
			p->avoiding_until_ns = 0;
		} else {
			const struct pool_lun *pl = find_lun(p, t->lun);
			avoid = pl ? pl->avoid_until_ns : NULL;
		}
	}
	for (unsigned tries = 0; tries < p->n; tries++) {
		struct session *best = NULL;
		uint64_t best_load = UINT64_MAX;
		unsigned best_i = 0;
		for (unsigned k = 0; k < p->n; k++) {
			unsigned i = (p->cursor + k) % p->n;
			struct session *s = p->sessions[i];
			if (!session_is_up(s))
				continue;
			any_up = true;
			uint64_t load = session_load(s);
			if (here && session_loop(s) != here)
				load += away_cost;
			if (avoid && avoid[i] > now)
				load += AVOIDED_COST;
			if (load < best_load) {
				best = s;
				best_load = load;
				best_i = i;
			}
		}
		if (!best)
			break;
		if (session_submit(best, t) == 0) {
			p->cursor = (best_i + 1) % p->n;
			return 0;
		}
		if (errno != EAGAIN)
			continue;
		/* The least loaded one is full: try the others in turn (an
		 * avoided one only if that was one: else the task waits). */
		for (unsigned k = 1; k < p->n; k++) {
			unsigned i = (best_i + k) % p->n;
			if (best_load < AVOIDED_COST && avoid && avoid[i] > now)
				continue;
			if (session_is_up(p->sessions[i]) &&
			    session_submit(p->sessions[i], t) == 0) {
				p->cursor = (i + 1) % p->n;
				return 0;
			}
		}
		errno = EAGAIN;
		return -1;
	}
	/* Nobody up: wait for a recovering session, unless none is recovering
	 * or none has been up for the replacement timeout. */
	errno = any_up || (any_alive && !p->failfast) ? EAGAIN : EIO;
	return -1;
}

/* A session lost its connection: put its tasks (a list linked by ->next,
 * in CmdSN order) back at the head of the queue and dispatch them again.
 * Also for the writes a session that is back held meanwhile, and for
 * tasks the target aborted.  The requeue callback. */
static void pool_requeue(void *owner, struct iscsi_task *list)
{
	struct pool *p = owner;

	if (!list)
		return;
	struct iscsi_task *last = list;
	while (last->next)
		last = last->next;
	pthread_mutex_lock(&p->lock);
	last->next = p->queue.head;
	p->queue.head = list;
	if (!p->queue.tail)
		p->queue.tail = last;
	pthread_mutex_unlock(&p->lock);
	pool_kick(p);
}

static void task_finished(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	if (--p->in_flight == 0)
		pthread_cond_broadcast(&p->idle_cond);
	pthread_mutex_unlock(&p->lock);
}

/* Every pooled task ends here: the owner's callback is restored and
 * called (it may submit the task again), then the task is counted out. */
static void pool_task_done(struct iscsi_task *t)
{
	struct pool *p = t->pool;
	task_done_fn owner = t->owner_done;

	t->done = owner;
	owner(t);
	task_finished(p);
}

void pool_submit(struct pool *p, struct iscsi_task *t)
{
	t->pool = p;
	t->owner_done = t->done;
	t->done = pool_task_done;
	pthread_mutex_lock(&p->lock);
	p->in_flight++;
	if (p->closing) {
		/* (a retry whose pause ended while pool_destroy() frees the
		 * sessions: dispatch() would look at them) */
		pthread_mutex_unlock(&p->lock);
		t->result = EIO;
		t->done(t);
		return;
	}
	enum task_fate fate = task_fate(p, t);
	if (fate == TASK_WAITS) {
		list_append(&p->held, t);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	bool fails = fate == TASK_FAILS;
	if (fails || (p->queue.head || dispatch(p, t) < 0)) {
		if (fails || (!p->queue.head && errno == EIO)) {
			pthread_mutex_unlock(&p->lock);
			t->result = EIO;
			t->done(t);
			return;
		}
		list_append(&p->queue, t);
	}
	pthread_mutex_unlock(&p->lock);
	session_send_pending();
}

/* A session has room again (a task finished, the window opened, it is
 * back): move queued tasks onto sessions.  The kick callback; no lock
 * held. */
static void pool_kick(void *owner)
{
	struct pool *p = owner;
	struct iscsi_task *failed = NULL;

	pthread_mutex_lock(&p->lock);
	struct iscsi_task *closed = NULL;
	if (p->closing) {
		/* the sessions are being freed (their ticks and loops may
		 * still hand tasks back): no dispatch, which would look at
		 * them; what is queued fails */
		closed = p->queue.head;
		p->queue.head = p->queue.tail = NULL;
	}
	while (p->queue.head) {
		struct iscsi_task *t = p->queue.head;
		/* Taken first: a session that accepts t links it into its
		 * own command queue through the same t->next. */
		struct iscsi_task *next = t->next;
		enum task_fate fate = task_fate(p, t);
		bool fails = fate == TASK_FAILS;
		if (fate == TASK_WAITS) {
			/* (sent again after a lost connection, say): it waits
			 * with the others of its LUN */
			p->queue.head = next;
			if (!p->queue.head)
				p->queue.tail = NULL;
			list_append(&p->held, t);
			continue;
		}
		if (fails || dispatch(p, t) < 0) {
			if (!fails && errno == EAGAIN)
				break;
			/* no session is up (everything queued fails), or
			 * that task fails (task_fate()) */
			p->queue.head = next;
			if (!p->queue.head)
				p->queue.tail = NULL;
			t->next = failed;
			failed = t;
			continue;
		}
		p->queue.head = next;
		if (!p->queue.head)
			p->queue.tail = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	session_send_pending();
	fail_list(closed);
	fail_list(failed);
}

/* The identity check of a session could not check LUN @lun (its command
 * failed on the target): its commands wait for the owner's check, as
 * after a Unit Attention that says it may be another unit.  The
 * lun_unchecked callback. */
static bool pool_lun_unchecked(void *owner, uint32_t lun)
{
	struct pool *p = owner;

	if (!pool_hold_lun(p, lun))
		return false;
	pool_tell_change(p, lun, SCSI_CHANGE_IDENTITY);
	return true;
}

/* How the sessions of a pool report to it (session.h). */
static const struct session_owner_ops session_ops = {
	.kick = pool_kick,
	.requeue = pool_requeue,
	.lun_reset = pool_lun_reset,
	.lun_replaced = pool_lun_replaced,
	.lun_grew = pool_lun_grew,
	.lun_unchecked = pool_lun_unchecked,
	.unit_attention = pool_unit_attention,
	.writes_lost = pool_writes_lost,
	.expected_luns = pool_expected_luns,
};

void pool_hold(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->in_flight++;
	pthread_mutex_unlock(&p->lock);
}

void pool_release(struct pool *p)
{
	task_finished(p);
}

/* The done() of a task pool_exec() waits for: t->opaque is its
 * completion; the task's own result is read after the wait. */
static void exec_done(struct iscsi_task *t)
{
	completion_post(t->opaque, 0);
}

int pool_exec(struct pool *p, struct iscsi_task *t)
{
	struct completion done;

	completion_init(&done);
	t->done = exec_done;
	t->opaque = &done;
	pool_submit(p, t);
	completion_wait(&done);
	if (t->result) {
		errno = t->result;
		return -1;
	}
	return 0;
}

/* Wait up to @timeout_ms for no task to be in flight.  Returns whether
 * none is.  Lock held. */
static bool wait_idle_locked(struct pool *p, int timeout_ms)
{
	struct timespec deadline = deadline_in_ms(timeout_ms);

	while (p->in_flight > 0)
		if (deadline_cond_wait(&p->idle_cond, &p->lock, &deadline) == ETIMEDOUT)
			return false;
	return true;
}

void pool_destroy(struct pool *p, int timeout_ms)
{
	struct task_list failed = { NULL, NULL };

	/* nothing checks a held LUN any more (the owner's rescans ended):
	 * what waits for that fails now, not after the timeout */
	pthread_mutex_lock(&p->lock);
	p->holds_ended = true;
	for (unsigned i = 0; i < p->nluns; i++)
		unhold_locked(p, &p->luns[i], &failed);
	pthread_mutex_unlock(&p->lock);
	fail_list(failed.head);
	pthread_mutex_lock(&p->lock);
	if (!wait_idle_locked(p, timeout_ms))
		log_warn("unmount: %llu commands still outstanding; logging out anyway",
			 (unsigned long long)p->in_flight);
	p->watchdog_run = false;
	p->closing = true;
	pthread_mutex_unlock(&p->lock);
	evloop_run_sync(p->loop, watchdog_stop, p);
	/* No log line here (see pool.h): pool_log_stats() at unmount. */
	/* every Logout goes at once: a target that answers none costs the
	 * wait once, not once per session */
	struct timespec logout_deadline = deadline_in_ms(POOL_LOGOUT_MS);
	for (unsigned i = 0; i < p->n; i++)
		session_logout_start(p->sessions[i]);
	for (unsigned i = 0; i < p->n; i++)
		session_logout_finish(p->sessions[i], &logout_deadline);
	/* Retries still waiting for their pause (retry.c holds the pool for
	 * each, a LU in a transition for up to a minute) fire within
	 * RETRY_PAUSE_MAX_MS and fail at once (closing): p must outlive them. */
	pthread_mutex_lock(&p->lock);
	if (!wait_idle_locked(p, POOL_DRAIN_MS)) {
		log_error("unmount: %llu commands of %s still held after the logout; "
			  "their pool is left allocated", (unsigned long long)p->in_flight,
			  p->cfg.target_name);
		/* whoever holds it may still touch it: leaked, never freed
		 * under them (the process is ending) */
		pthread_mutex_unlock(&p->lock);
		return;
	}
	pthread_mutex_unlock(&p->lock);
	free(p->sessions);
	for (unsigned i = 0; i < p->nluns; i++)
		free(p->luns[i].avoid_until_ns);
	free(p->luns);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->idle_cond);
	free(p);
}
