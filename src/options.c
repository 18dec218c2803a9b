/* options.c: the command line of iscsifs (see options.h): the fuse_opt
 * table (every option and flag of ours), the handler of positional
 * arguments, the --help text.
 */
#include "options.h"

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

/* A value or flag of struct options: "name=%u" or "name=%s" stores the
 * value in @f, a bare name sets @f to 1; either way the argument is ours
 * and FUSE does not see it. */
#define OPT(t, f) { t, offsetof(struct options, f), 1 }
static const struct fuse_opt option_spec[] = {
	OPT("sessions=%u", sessions),
	OPT("loops=%u", loops),
	OPT("queue_depth=%u", queue_depth),
	OPT("initiator=%s", initiator),
	OPT("chap_user=%s", chap_user),
	OPT("chap_secret_file=%s", chap_secret_file),
	OPT("target_user=%s", target_user),
	OPT("target_secret_file=%s", target_secret_file),
	OPT("header_digest=%s", header_digest),
	OPT("data_digest=%s", data_digest),
	OPT("timeout=%u", timeout),
	OPT("noop_interval=%u", noop_interval),
	OPT("noop_timeout=%u", noop_timeout),
	OPT("cmd_timeout=%u", cmd_timeout),
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

/* fuse_opt_proc_t for what option_spec does not take: URL and
 * MOUNTPOINT (the first two arguments that are not options) are ours,
 * anything else goes to FUSE.  Returns 0 to drop the argument, 1 to keep
 * it for FUSE. */
static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
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
	return fuse_opt_parse(args, o, option_spec, option_proc) < 0 ? -1 : 0;
}

void options_free(struct options *o, struct fuse_args *args)
{
	char **strings[] = { &o->url, &o->mountpoint, &o->initiator, &o->chap_user,
			     &o->chap_secret_file, &o->target_user, &o->target_secret_file,
			     &o->header_digest, &o->data_digest };

	for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
		free(*strings[i]);
		*strings[i] = NULL;
	}
	fuse_opt_free_args(args);
}
