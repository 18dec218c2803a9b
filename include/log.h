/* log.h: logging and the per-thread error record.
 *
 * Convention (as libnbd): an internal function that fails returns -1 (or
 * NULL) after calling err_set(), which records an errno and a one-line
 * message in thread-local storage.  The caller either handles it, adds
 * context with err_set() again, or passes it up.  Only fs.c turns errno
 * into a FUSE reply and only main.c prints err_msg() to the user.
 *
 * The log goes to stderr, or to syslog (facility daemon) once
 * log_to_syslog() was called: daemon.c calls it when it goes to the
 * background after mounting, so start-up errors and everything in the
 * foreground (-f, -d) stay on stderr.  log_set_level() is called once at
 * start-up before any thread is created; the level is read-only afterwards.
 */
#ifndef ISCSIFS_LOG_H
#define ISCSIFS_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level {
	LOG_LEVEL_ERROR = 0, /* something failed that a user must know about */
	LOG_LEVEL_WARN = 1,  /* degraded, recovered, or insecure usage */
	LOG_LEVEL_INFO = 2,  /* start-up, login, logout, reconnect */
	LOG_LEVEL_DEBUG = 3, /* per-PDU and per-command detail (-d) */
};

/* Set once at start-up, before threads exist; read-only afterwards. */
extern enum log_level log_level_current;

void log_set_level(enum log_level level);
/* Send every later line to syslog as @ident (a string that must outlive
 * the process's logging), with the pid; callable while other threads log. */
void log_to_syslog(const char *ident);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
/* Costs one comparison when debug is off. */
#define log_debug(...)                                          \
	do {                                                    \
		if (log_level_current >= LOG_LEVEL_DEBUG)       \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);  \
	} while (0)

/* The budget of lines about one thing that a target can make happen
 * without end (the outcomes of a LUN's commands, a session's Asynchronous
 * Messages), so that it cannot fill the log: so many lines per window of
 * so many seconds, each user its own.  All zero is a fresh one.  Any
 * thread (atomics; the count is approximate when many log at once). */
struct log_budget {
	_Atomic int64_t window_ns;    /* when the current window began (monotonic), 0: none */
	atomic_uint used;             /* lines taken in it */
	atomic_uint left_out;         /* lines left out since the last one logged */
};

/* Whether one more line may be logged now, at most @lines per window of
 * @window_s seconds; *@left_out: how many were left out before it (the
 * line should say so), 0 mostly. */
bool log_budget_take(struct log_budget *b, unsigned lines, unsigned window_s,
		     unsigned *left_out);

/* Record errno @errnum and a message for the calling thread; sets errno. */
void err_set(int errnum, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The calling thread's last recorded message ("" if none). */
const char *err_msg(void);
/* The calling thread's last recorded errno (0 if none). */
int err_errno(void);

#endif /* ISCSIFS_LOG_H */
