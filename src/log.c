/* log.c: log lines to stderr or syslog, and the per-thread error record.
 *
 * Thread model: any thread may log.  Each line is formatted into a buffer on
 * the caller's stack and written with one write(2) (or one syslog(3) call,
 * which glibc serialises), so lines from different threads never
 * interleave; no shared buffer, no lock of ours.
 *
 * The sink: stderr until log_to_syslog(), syslog from then on.  daemon.c
 * switches once the mount is up and it goes to the background, when
 * session threads already log: hence an atomic flag.  Start-up errors,
 * which must reach the user's terminal, all happen before the switch.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"

enum log_level log_level_current = LOG_LEVEL_INFO;

/* Set once when daemonizing, while session threads may be logging. */
static atomic_bool use_syslog;

/* The calling thread's last error: errno and message. */
static _Thread_local int err_errnum;
static _Thread_local char err_text[512];

void log_set_level(enum log_level level)
{
	log_level_current = level;
}

void log_to_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	atomic_store_explicit(&use_syslog, true, memory_order_release);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	int saved_errno = errno;
	va_list ap;

	if (level > log_level_current)
		return;
	va_start(ap, fmt);
	if (atomic_load_explicit(&use_syslog, memory_order_acquire)) {
		vsnprintf(line, sizeof line, fmt, ap);
		syslog(prio[level], "%s", line);
	} else {
		int n = snprintf(line, sizeof line, "iscsifs: %s: ", names[level]);
		if (n < 0)
			n = 0;
		int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
		if (m < 0)
			m = 0;
		size_t len = (size_t)n + (size_t)m;
		if (len > sizeof line - 2)
			len = sizeof line - 2;
		line[len++] = '\n';
		if (write(STDERR_FILENO, line, len) < 0) {
			/* nowhere left to report it */
		}
	}
	va_end(ap);
	errno = saved_errno;
}

void err_set(int errnum, const char *fmt, ...)
{
	char tmp[sizeof err_text];
	va_list ap;

	/* The message may embed the previous one (err_msg()), so format into
	 * a temporary first. */
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	memcpy(err_text, tmp, sizeof err_text);
	err_errnum = errnum;
	errno = errnum;
}

const char *err_msg(void)
{
	return err_text;
}

int err_errno(void)
{
	return err_errnum;
}

bool log_budget_take(struct log_budget *b, unsigned lines, unsigned window_s,
		     unsigned *left_out)
{
	int64_t now = mono_now_ns();
	int64_t start = atomic_load(&b->window_ns);

	*left_out = 0;
	if ((!start || now - start >= (int64_t)window_s * 1000000000) &&
	    atomic_compare_exchange_strong(&b->window_ns, &start, now))
		atomic_store(&b->used, 0);
	if (atomic_fetch_add(&b->used, 1) >= lines) {
		atomic_fetch_add(&b->left_out, 1);
		return false;
	}
	*left_out = atomic_exchange(&b->left_out, 0);
	return true;
}
