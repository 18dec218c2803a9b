/* test_resolve.c: host name lookups within a deadline (resolve.h).
 *
 * The test puts its own getaddrinfo() in front of the C library's (an
 * executable's definition wins over the shared library's): the name
 * "slow.test" takes SLOW_MS to fail, as with a DNS server that does not
 * answer, "nosuch.test" fails at once, and every other name goes to the
 * real one.  The cases:
 *   - a numeric address is answered without a resolver thread;
 *   - "localhost" is answered by a resolver thread;
 *   - "nosuch.test" fails with the resolver's words;
 *   - "slow.test" under a deadline of 300 ms fails at the deadline with
 *     ETIMEDOUT, not after SLOW_MS, and so does conn_connect() of it with
 *     a timeout of 500 ms (it used to wait for getaddrinfo() however long
 *     it took);
 *   - on a loop: a lookup answers through its callback, later, never
 *     within resolve_start(), a number too; a lookup given up
 *     (resolve_cancel()) never calls back; a login on the loop to
 *     "slow.test" ends at its deadline with the lookup's words.
 * A lookup given up before the resolver began it never runs; one given up
 * while it runs is freed by its resolver thread when getaddrinfo()
 * returns: the ASan build's leak check at exit sees to that, after the
 * test waited for the slow lookups to end.
 *
 * Thread model: the test thread waits; the loop runs the callbacks,
 * which write struct answer under its lock.
 */
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "deadline.h"
#include "evloop.h"
#include "log.h"
#include "login_on_loop.h"
#include "resolve.h"
#include "testlib.h"

/* How long "slow.test" takes to fail. */
#define SLOW_MS 1500

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
			      struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	bool numeric_only = hints && (hints->ai_flags & AI_NUMERICHOST);

	if (node && strcmp(node, "slow.test") == 0) {
		if (!numeric_only) {
			struct timespec ts = { SLOW_MS / 1000, (SLOW_MS % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
		return EAI_NONAME;
	}
	if (node && strcmp(node, "nosuch.test") == 0)
		return EAI_NONAME;
	getaddrinfo_fn real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
	return real ? real(node, service, hints, res) : EAI_SYSTEM;
}

/* A loop lookup's answer. */
struct answer {
	pthread_mutex_t lock;         /* protects the fields below */
	pthread_cond_t cond;          /* broadcast when it came */
	bool came;                    /* lock: the callback ran */
	int rc;                       /* lock: its result */
	bool had_res;                 /* lock: it brought addresses */
	struct resolve_job *job;      /* loop only: the lookup */
	bool within_start;            /* loop only: resolve_start() is running */
	bool early;                   /* lock: the callback ran within it */
	const char *host;             /* what to look up */
};

static void answer_done(void *arg, int rc, struct addrinfo *res)
{
	struct answer *a = arg;

	if (res)
		freeaddrinfo(res);
	pthread_mutex_lock(&a->lock);
	a->came = true;
	a->rc = rc;
	a->had_res = res != NULL;
	a->early = a->within_start;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

static struct evloop *loop;

static void start_here(void *arg)
{
	struct answer *a = arg;

	a->within_start = true;
	a->job = resolve_start(loop, a->host, 3260, answer_done, a);
	a->within_start = false;
}

static void cancel_here(void *arg)
{
	struct answer *a = arg;

	resolve_cancel(a->job);
	a->job = NULL;
}

static void answer_init(struct answer *a, const char *host)
{
	memset(a, 0, sizeof *a);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->host = host;
}

/* Whether the answer came within @ms. */
static bool answer_came(struct answer *a, int ms)
{
	struct timespec dl = deadline_in_ms(ms);
	int rc = 0;

	pthread_mutex_lock(&a->lock);
	while (!a->came && rc != ETIMEDOUT)
		rc = deadline_cond_wait(&a->cond, &a->lock, &dl);
	bool came = a->came;
	pthread_mutex_unlock(&a->lock);
	return came;
}

static void answer_fini(struct answer *a)
{
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
}

static void test_until(void)
{
	struct addrinfo *res = NULL;
	unsigned long before = resolve_lookups();

	/* a deadline already passed: no lookup at all */
	CHECK(resolve_until("localhost", 3260, mono_now_ns() - 1000000, &res) < 0);
	CHECK(err_errno() == ETIMEDOUT && strstr(err_msg(), "out of time") != NULL);
	CHECK(resolve_until("127.0.0.1", 3260, mono_now_ns() + 1000000000, &res) == 0 && res);
	if (res)
		freeaddrinfo(res);
	CHECK_EQ_U64(resolve_lookups() - before, 0);

	res = NULL;
	CHECK(resolve_until("localhost", 3260, mono_now_ns() + 5000000000, &res) == 0 && res);
	if (res)
		freeaddrinfo(res);
	CHECK_EQ_U64(resolve_lookups() - before, 1);

	CHECK(resolve_until("nosuch.test", 3260, mono_now_ns() + 5000000000, &res) < 0);
	CHECK(err_errno() == EHOSTUNREACH &&
	      strstr(err_msg(), "cannot resolve host nosuch.test: ") != NULL);

	int64_t t0 = mono_now_ms();
	CHECK(resolve_until("slow.test", 3260, mono_now_ns() + 300000000, &res) < 0);
	int64_t took = mono_now_ms() - t0;
	CHECK(err_errno() == ETIMEDOUT &&
	      strstr(err_msg(), "cannot resolve host slow.test: no answer within 0.3 s") != NULL);
	CHECK(took >= 250 && took < SLOW_MS - 300);

	/* conn_connect() looks up within its timeout */
	struct conn c;
	t0 = mono_now_ms();
	int rc = conn_connect(&c, "slow.test", 3260, 500);
	took = mono_now_ms() - t0;
	CHECK(rc < 0 && err_errno() == ETIMEDOUT &&
	      strstr(err_msg(), "cannot resolve host slow.test: no answer within") != NULL);
	test_checks++;
	if (took < 450 || took >= SLOW_MS - 300) {
		test_failures++;
		fprintf(stderr, "conn_connect() of slow.test with 500 ms took %lld ms\n",
			(long long)took);
	}
}

/* RESOLVER_THREADS + 1 lookups of "slow.test", each given up at 200 ms:
 * the first ones are under way on every resolver thread (which free them
 * when they end), the last still queued behind them, taken out at once:
 * it never runs. */
static void test_withdraw(void)
{
	struct addrinfo *res;

	/* a resolver thread is up and idle first, so that the first
	 * lookup below is under way well before its 200 ms are over */
	CHECK(resolve_until("localhost", 3260, mono_now_ns() + 5000000000, &res) == 0);
	freeaddrinfo(res);
	unsigned long before = resolve_lookups();
	/* (the first is still under way when the last is given up: SLOW_MS is
	 * well over (RESOLVER_THREADS + 1) * 200 ms) */
	for (int i = 0; i < RESOLVER_THREADS + 1; i++)
		CHECK(resolve_until("slow.test", 3260, mono_now_ns() + 200000000, &res) < 0);
	CHECK(err_errno() == ETIMEDOUT);
	struct timespec ts = { SLOW_MS / 1000 + 1, 0 };
	nanosleep(&ts, NULL);
	CHECK_EQ_U64(resolve_lookups() - before, RESOLVER_THREADS);
}

static void test_on_loop(void)
{
	struct answer num, name, gone;

	answer_init(&num, "127.0.0.1");
	evloop_run_sync(loop, start_here, &num);
	CHECK(answer_came(&num, 5000));
	CHECK(num.rc == 0 && num.had_res && !num.early);
	answer_fini(&num);

	answer_init(&name, "localhost");
	evloop_run_sync(loop, start_here, &name);
	CHECK(answer_came(&name, 5000));
	CHECK(name.rc == 0 && name.had_res && !name.early);
	answer_fini(&name);

	answer_init(&gone, "slow.test");
	evloop_run_sync(loop, start_here, &gone);
	CHECK(gone.job != NULL);
	evloop_run_sync(loop, cancel_here, &gone);
	CHECK(!answer_came(&gone, SLOW_MS + 500));
	answer_fini(&gone);

	/* a login to a name that does not answer ends at its deadline */
	struct text_config text = {
		.initiator_name = "iqn.2026-11.org.iscsifs:test",
		.target_name = "iqn.2026-11.org.iscsifs.test:resolve",
	};
	static const uint8_t isid[6] = { 0x80, 1, 2, 3, 4, 6 };
	struct login_result lr;
	struct conn c;
	int64_t t0 = mono_now_ms();
	int rc = login_on_loop(loop, &c, "slow.test", 3260, 500, &text, isid, &lr);
	int64_t took = mono_now_ms() - t0;
	CHECK(rc < 0 && err_errno() == ETIMEDOUT &&
	      strstr(err_msg(), "cannot resolve host slow.test: no answer within 0.5 s") != NULL);
	CHECK(took >= 450 && took < SLOW_MS - 300);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LEVEL_ERROR);
	loop = login_test_loop();
	test_withdraw();
	test_until();
	test_on_loop();
	/* the lookups given up end on the resolver, which frees them */
	struct timespec ts = { SLOW_MS / 1000 + 1, 0 };
	nanosleep(&ts, NULL);
	return test_done("test_resolve");
}
