/* options.c: the command line of iscsifs (see options.h): the fuse_opt
 * table (every option and flag of ours), the handler of positional
 * arguments, the --help text.
 */
#include "options.h"

#include <fuse_log.h>
#include <fuse_lowlevel.h>
#include <stdarg.h>
#include <stdbool.h>

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Defaults of the numeric -o options (DESIGN section 1). */
#define DEFAULT_SESSIONS 4
#define DEFAULT_QUEUE_DEPTH 32
#define DEFAULT_TIMEOUT_S 120
#define DEFAULT_NOOP_INTERVAL_S 5
#define DEFAULT_NOOP_TIMEOUT_S 5
#define DEFAULT_CMD_TIMEOUT_S 30
/* -o loops: one per online CPU, at most this many. */
#define DEFAULT_LOOPS_MAX 8

/* The most seconds a time option takes (a day): beyond, the products
 * made of them (TCP_USER_TIMEOUT in milliseconds) would not fit. */
#define SECONDS_MAX 86400u

/* The numeric -o options, read by option_proc() (fuse_opt's "%u" takes
 * "4x" for 4 and wraps "-1" and 2^32 + 1 without a word): the field each
 * sets and the largest value it takes; what main.c checks besides (1..64
 * sessions, ...) it checks there.  Their keys are KEY_NUMBER + the index,
 * in the order of option_spec. */
static const struct number_option {
	const char *name;           /* before the '=' */
	size_t offset;              /* of its unsigned in struct options */
	unsigned max;               /* the largest value taken */
} number_options[] = {
	{ "sessions", offsetof(struct options, sessions), UINT_MAX },
	{ "loops", offsetof(struct options, loops), UINT_MAX },
	{ "queue_depth", offsetof(struct options, queue_depth), UINT_MAX },
	{ "timeout", offsetof(struct options, timeout), SECONDS_MAX },
	{ "noop_interval", offsetof(struct options, noop_interval), SECONDS_MAX },
	{ "noop_timeout", offsetof(struct options, noop_timeout), SECONDS_MAX },
	{ "cmd_timeout", offsetof(struct options, cmd_timeout), SECONDS_MAX },
};
/* The key of number_options[0] (fuse_opt's own keys are negative). */
#define KEY_NUMBER 100
#define NUMBER(t, i) FUSE_OPT_KEY(t, KEY_NUMBER + (i))

/* A value or flag of struct options: "name=%s" stores the value in @f, a
 * bare name sets @f to 1; either way the argument is ours and FUSE does
 * not see it. */
#define OPT(t, f) { t, offsetof(struct options, f), 1 }
static const struct fuse_opt option_spec[] = {
	NUMBER("sessions=", 0),
	NUMBER("loops=", 1),
	NUMBER("queue_depth=", 2),
	NUMBER("timeout=", 3),
	NUMBER("noop_interval=", 4),
	NUMBER("noop_timeout=", 5),
	NUMBER("cmd_timeout=", 6),
	OPT("initiator=%s", initiator),
	OPT("chap_user=%s", chap_user),
	OPT("chap_secret_file=%s", chap_secret_file),
	OPT("target_user=%s", target_user),
	OPT("target_secret_file=%s", target_secret_file),
	OPT("header_digest=%s", header_digest),
	OPT("data_digest=%s", data_digest),
	OPT("cache", cache),
	OPT("ro", read_only),
	FUSE_OPT_KEY("ro", FUSE_OPT_KEY_KEEP),   /* FUSE mounts read-only too */
	OPT("-h", show_help),
	OPT("--help", show_help),
	OPT("-V", show_version),
	OPT("--version", show_version),
	OPT("--list", list),
	OPT("-f", foreground),
	OPT("-d", debug),
	OPT("-d", foreground),                   /* -d implies -f */
	FUSE_OPT_END
};

void options_usage(FILE *f)
{
	fprintf(f,
"usage: iscsifs [OPTIONS] iscsi://[USER@]HOST[:PORT][/TARGET-IQN[/LUN]] MOUNTPOINT\n"
"       iscsifs --list iscsi://[USER@]HOST[:PORT][/TARGET-IQN]\n"
"\n"
"Mount the disk LUNs of an iSCSI target as files lun0, lun1, ...; with only a\n"
"portal, a directory per target found by SendTargets discovery.\n"
"\n"
"  -f                        stay in the foreground\n"
"  -d                        debug log to stderr (implies -f)\n"
"  -o ro                     read-only; every file mode 0444\n"
"  -o sessions=N             iSCSI sessions per target (default 4)\n"
"  -o loops=K               event-loop threads serving the mount (default: CPUs, at most 8)\n"
"  -o queue_depth=N          outstanding commands per session (default 32)\n"
"  -o initiator=IQN          initiator name (default iqn.2026-11.org.iscsifs:HOSTNAME)\n"
"  -o chap_user=NAME         CHAP user (or iscsi://NAME@HOST/...)\n"
"  -o chap_secret_file=PATH  CHAP secret: first line of PATH (mode 600), else $ISCSIFS_CHAP_SECRET\n"
"  -o target_user=NAME       mutual CHAP: the name the target must answer with\n"
"  -o target_secret_file=PATH  mutual CHAP secret, else $ISCSIFS_TARGET_SECRET\n"
"  -o header_digest=MODE     none, crc32c or auto (default auto)\n"
"  -o data_digest=MODE       none, crc32c or auto (default auto)\n"
"  -o cache                  use the page cache instead of direct I/O\n"
"  -o timeout=SEC            how long I/O waits for a lost connection to come back (default 120)\n"
"  -o noop_interval=SEC      keepalive NOP-Out after this much silence (default 5, 0 = off)\n"
"  -o noop_timeout=SEC       connection failed when the NOP-In is this late (default 5)\n"
"  -o cmd_timeout=SEC        connection dropped when a command is this late (default 30, 0 = off)\n"
"  --list                    print the targets, portals and LUNs of the URL, mount nothing\n"
"  -h, --help                this text\n"
"  -V, --version             the version\n"
"  -o OPTION                 any other option goes to FUSE (allow_other, default_permissions, ...)\n"
"\n"
"Options may be combined: -o ro,sessions=2.  Once in the background, iscsifs\n"
"logs to syslog.  Unmount with: fusermount3 -u MOUNTPOINT.  See iscsifs(1).\n");
}

/* "NAME=VALUE" @arg of numeric option @n into its field of @o: decimal
 * digits only, at most n->max.  Returns 0, or -1 with the reason in
 * o->bad_option. */
static int parse_number(struct options *o, const struct number_option *n, const char *arg)
{
	const char *value = arg + strlen(n->name) + 1;
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(value, &end, 10);
	if (value[0] < '0' || value[0] > '9' || *end) {
		snprintf(o->bad_option, sizeof o->bad_option, "-o %.80s: not a number", arg);
		return -1;
	}
	if (errno == ERANGE || v > n->max) {
		snprintf(o->bad_option, sizeof o->bad_option, "-o %.80s: more than %u%s", arg,
			 n->max, n->max == SECONDS_MAX ? " seconds" : "");
		return -1;
	}
	*(unsigned *)((char *)o + n->offset) = (unsigned)v;
	return 0;
}

/* fuse_opt_proc_t for what option_spec does not take as it stands: the
 * numeric options (parse_number()); URL and MOUNTPOINT (the first two
 * arguments that are not options) are ours; anything else goes to FUSE.
 * Returns 0 to drop the argument, 1 to keep it for FUSE, -1 for a bad
 * one (o->bad_option says why). */
static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;
	const size_t nnumbers = sizeof number_options / sizeof number_options[0];

	(void)outargs;
	if (key >= KEY_NUMBER && key < KEY_NUMBER + (int)nnumbers)
		return parse_number(o, &number_options[key - KEY_NUMBER], arg);
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;               /* a FUSE option: pass it on */
	if (!o->url)
		o->url = strdup(arg);
	else if (!o->mountpoint)
		o->mountpoint = strdup(arg);
	else
		o->extra_positional++;
	return 0;
}

/* The default of -o loops: the online CPUs, 1..DEFAULT_LOOPS_MAX. */
static unsigned default_loops(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return cpus < 1 ? 1 : cpus > DEFAULT_LOOPS_MAX ? DEFAULT_LOOPS_MAX : (unsigned)cpus;
}

int options_parse(struct fuse_args *args, struct options *o)
{
	*o = (struct options){
		.sessions = DEFAULT_SESSIONS,
		.loops = default_loops(),
		.queue_depth = DEFAULT_QUEUE_DEPTH,
		.timeout = DEFAULT_TIMEOUT_S,
		.noop_interval = DEFAULT_NOOP_INTERVAL_S,
		.noop_timeout = DEFAULT_NOOP_TIMEOUT_S,
		.cmd_timeout = DEFAULT_CMD_TIMEOUT_S,
	};
	if (fuse_opt_parse(args, o, option_spec, option_proc) < 0) {
		if (o->bad_option[0])
			fprintf(stderr, "iscsifs: %s\n", o->bad_option);
		return -1;
	}
	return 0;
}

void options_free(struct options *o, struct fuse_args *args)
{
	char **strings[] = { &o->url, &o->mountpoint, &o->initiator, &o->chap_user,
			     &o->chap_secret_file, &o->target_user, &o->target_secret_file,
			     &o->header_digest, &o->data_digest };

	/* (the URL may hold a password) */
	if (o->url)
		explicit_bzero(o->url, strlen(o->url));
	for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
		free(*strings[i]);
		*strings[i] = NULL;
	}
	fuse_opt_free_args(args);
}

/* What libfuse said while options_check_fuse() tried its options: the
 * first line of it.  main() only, at start-up. */
static char fuse_said[200];

/* Whether fuse_said holds a whole line (its newline, taken off). */
static bool fuse_line_done;

/* fuse_log_func_t while options_check_fuse() runs: keep the first line,
 * which libfuse may write in pieces. */
static void keep_fuse_line(enum fuse_log_level level, const char *fmt, va_list ap)
{
	size_t len = strlen(fuse_said);

	(void)level;
	if (fuse_line_done || len + 1 >= sizeof fuse_said)
		return;
	vsnprintf(fuse_said + len, sizeof fuse_said - len, fmt, ap);
	if (strchr(fuse_said, '\n')) {
		fuse_said[strcspn(fuse_said, "\n")] = '\0';
		fuse_line_done = true;
	}
}

int options_check_fuse(const struct fuse_args *args, char *why, size_t cap)
{
	static const struct fuse_lowlevel_ops no_ops;
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	int rc = 0;

	fuse_said[0] = '\0';
	fuse_line_done = false;
	for (int i = 0; i < args->argc; i++)
		if (fuse_opt_add_arg(&copy, args->argv[i]) < 0) {
			snprintf(why, cap, "out of memory");
			rc = -1;
			goto out;
		}
	/* (a session that is never mounted: it only parses) */
	fuse_set_log_func(keep_fuse_line);
	se = fuse_session_new(&copy, &no_ops, sizeof no_ops, NULL);
	fuse_set_log_func(NULL);
	if (!se) {
		snprintf(why, cap, "%s", fuse_said[0] ? fuse_said : "FUSE refuses the options");
		rc = -1;
	}
out:
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&copy);
	return rc;
}
