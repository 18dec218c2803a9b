/* main.c: start-up in four steps, then the FUSE loop until unmount.
 *
 *   parse      the command line: options, URL, MOUNTPOINT (options.c)
 *   configure  the credentials, the mountpoint, the configuration every
 *              session starts from (mount_config.c)
 *   mount_fs   connect, log in, read the LUNs (or discover the targets:
 *              mount_tree.c), the FUSE session, the mount, daemonizing
 *              (daemon.c); with --list, list_only() prints what the URL
 *              offers instead (list.c)
 *   serve      the FUSE loop until unmount, then the unmount
 *   teardown   logging out and freeing, whatever step was reached
 *
 * Start-up is synchronous and happens before the parent exits: connect,
 * log in every session, read the LUNs, mount.  Unless -f, the process
 * forks first (threads do not survive a fork) and the parent waits on a
 * pipe for the child's verdict, so every failure is printed on the user's
 * terminal as one line and the exit status says whether the mount exists.
 * After a failure the parent returns only once the child has ended.
 * Each step prints its own failure here (log.h: only main.c prints
 * err_msg() to the user) and returns the exit status: 2 for a bad
 * command line or configuration, 1 for anything else.
 */

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "credentials.h"
#include "daemon.h"
#include "discovery.h"
#include "fs.h"
#include "fuse_channel.h"
#include "evloop.h"
#include "fuse_loop.h"
#include "list.h"
#include "log.h"
#include "lun.h"
#include "mount_config.h"
#include "mount_tree.h"
#include "mountinfo.h"
#include "options.h"
#include "pool.h"
#include "portal.h"
#include "target.h"
#include "url.h"

/* What a step returns to have start-up go on (else an exit status). */
#define GO_ON (-1)

/* Everything start-up decides and builds, filled in step by step; what
 * holds resources is released by teardown(), whatever step was reached. */
struct startup {
	struct fuse_args args;          /* parse: argv, then what FUSE is to see */
	struct options opt;             /* parse: the command line */
	struct iscsi_url url;           /* parse: the URL; its password wiped by configure */
	struct chap_credentials *creds; /* configure: NULL when no CHAP; wiped and freed
	                                 * at exit (every login reads it until then) */
	char mountpoint[PATH_MAX];      /* configure: MOUNTPOINT made absolute;
	                                 * "--list" for --list (it seeds the ISIDs) */
	struct session_config cfg;      /* configure: what every session starts from */
	char portal[PORTAL_TEXT_MAX];   /* mount: the URL's portal as text */
	struct fs fs;                   /* mount: the file system (empty before) */
	struct fuse_session *se;        /* mount: the FUSE session, NULL before */
};

/* The command line into s->opt and s->url; --help and --version are
 * answered here.  @argv's password, if the URL has one, is hidden. */
static int parse(struct startup *s, int argc, char *argv[])
{
	const struct options *o = &s->opt;

	if (options_parse(&s->args, &s->opt) < 0)
		return 2;
	if (o->show_help) {
		options_usage(stdout);
		return 0;
	}
	if (o->show_version) {
		printf("iscsifs %s (libfuse %d.%d)\n", PACKAGE_VERSION, FUSE_MAJOR_VERSION,
		       FUSE_MINOR_VERSION);
		return 0;
	}
	log_set_level(o->debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	if (o->list && (!o->url || o->mountpoint)) {
		fprintf(stderr, "iscsifs: %s\n", !o->url ? "--list needs a URL" :
			"--list takes a URL and no MOUNTPOINT");
		return 2;
	}
	if (!o->list && (!o->url || !o->mountpoint || o->extra_positional)) {
		fprintf(stderr, "iscsifs: %s (see iscsifs --help)\n", !o->url ?
			"missing URL and MOUNTPOINT" : !o->mountpoint ? "missing MOUNTPOINT" :
			"too many arguments");
		return 2;
	}
	if (url_parse(o->url, &s->url) < 0) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		return 2;
	}
	if (o->list && s->url.lun >= 0) {
		/* (it would list every LUN of the target, the one named or not) */
		fprintf(stderr, "iscsifs: --list takes a portal or a target, not a LUN (drop /%lld)\n",
			(long long)s->url.lun);
		return 2;
	}
	if (s->url.has_password)
		for (int i = 1; i < argc; i++)
			credentials_hide_url_password(argv[i]);
	return GO_ON;
}

/* The credentials (the URL's password is wiped once they hold it), the
 * limits, the mountpoint (a directory, nothing mounted there yet), and
 * s->cfg. */
static int configure(struct startup *s)
{
	const struct options *o = &s->opt;
	struct credentials_options creds_opt = {
		.chap_user = o->chap_user, .chap_secret_file = o->chap_secret_file,
		.target_user = o->target_user, .target_secret_file = o->target_secret_file,
		.url_user = s->url.user, .url_password = s->url.password,
		.url_has_password = s->url.has_password,
	};
	int creds_rc = credentials_load(&creds_opt, &s->creds);
	struct stat st;

	OPENSSL_cleanse(s->url.password, sizeof s->url.password);
	if (creds_rc < 0) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		return 2;
	}
	if (o->sessions == 0 || o->sessions > 64 || o->queue_depth == 0 ||
	    o->queue_depth > 1024) {
		fprintf(stderr, "iscsifs: sessions must be 1..64 and queue_depth 1..1024\n");
		return 2;
	}
	if (o->loops == 0 || o->loops > EVLOOPS_MAX) {
		fprintf(stderr, "iscsifs: loops must be 1..%u\n", EVLOOPS_MAX);
		return 2;
	}
	/* (also for --list, which has no use for them: a mistyped option
	 * is said, not let pass) */
	char why[256];
	if (options_check_fuse(&s->args, why, sizeof why) < 0) {
		fprintf(stderr, "iscsifs: %s\n", why);
		return 2;
	}
	/* (they start with the first session, after a fork) */
	evloops_configure(o->loops);
	if (o->list) {
		snprintf(s->mountpoint, sizeof s->mountpoint, "--list");
	} else if (!realpath(o->mountpoint, s->mountpoint)) {
		fprintf(stderr, "iscsifs: mountpoint %s: %s\n", o->mountpoint, strerror(errno));
		return 1;
	}
	if (!o->list && (stat(s->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode))) {
		fprintf(stderr, "iscsifs: mountpoint %s: Not a directory\n", o->mountpoint);
		return 1;
	}
	if (!o->list && mountinfo_find(s->mountpoint, NULL)) {
		fprintf(stderr, "iscsifs: mountpoint %s is busy: something is already mounted there\n",
			o->mountpoint);
		return 1;
	}
	if (mount_config_sessions(&s->cfg, o, &s->url, s->creds, s->mountpoint) < 0) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		return 2;
	}
	return GO_ON;
}

/* --list: print what the URL offers instead of mounting. */
static int list_only(struct startup *s)
{
	signal(SIGPIPE, SIG_IGN);
	if (list_portal(&s->cfg, stdout) < 0) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		return 1;
	}
	return 0;
}

/* The file system's settings, and its tree: the target's LUN files, or a
 * directory per target that discovery finds. */
static int build_tree(struct startup *s)
{
	struct fs *fs = &s->fs;
	int rc;

	clock_gettime(CLOCK_REALTIME, &fs->mount_time);
	fs->uid = getuid();
	fs->gid = getgid();
	fs->read_only = s->opt.read_only;
	fs->cache = s->opt.cache;
	fs->sessions = s->opt.sessions;
	fs->timeout_s = s->opt.timeout;
	fs->discovery = !s->url.target[0];
	if (fs->discovery) {
		struct discovery d;

		if (discovery_run(&s->cfg, &d) < 0) {
			char portal[PORTAL_TEXT_MAX];

			portal_format(portal, sizeof portal, s->cfg.host, s->cfg.port);
			fprintf(stderr, "iscsifs: discovery on %s failed: %s\n", portal, err_msg());
			return 1;
		}
		rc = mount_tree_portal(fs, &s->cfg, &d, s->mountpoint);
		discovery_free(&d);
	} else {
		rc = mount_tree_target(fs, &s->cfg, s->portal, s->url.lun);
	}
	if (rc < 0) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		return 1;
	}
	if (fs_add_stats(fs) < 0) {
		fprintf(stderr, "iscsifs: out of memory\n");
		return 1;
	}
	return GO_ON;
}

/* The FUSE session over s->fs, mounted on s->mountpoint. */
static int start_fuse(struct startup *s)
{
	char fsname[600];

	/* subtype and fsname for mount listings (never the password); the
	 * target is "" for a discovery mount */
	snprintf(fsname, sizeof fsname, "-ofsname=iscsi://%s/%s,subtype=iscsifs,default_permissions",
		 s->portal, s->url.target);
	fuse_opt_add_arg(&s->args, fsname);
	if (s->opt.debug && getenv("ISCSIFS_FUSE_DEBUG"))
		fuse_opt_add_arg(&s->args, "-d");
	s->se = fuse_session_new(&s->args, &fs_ops, sizeof fs_ops, &s->fs);
	if (!s->se) {
		fprintf(stderr, "iscsifs: cannot create the FUSE session (bad -o option?)\n");
		return 1;
	}
	if (fuse_loop_catch_signals() < 0) {
		fprintf(stderr, "iscsifs: cannot set signal handlers: %s\n", strerror(errno));
		return 1;
	}
	/* (signals held while mounting: fusermount3, when libfuse runs it,
	 * inherits the mask, and a mount half made would stay behind) */
	sigset_t stop, before;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, &before);
	int mounted = fuse_session_mount(s->se, s->mountpoint);
	pthread_sigmask(SIG_SETMASK, &before, NULL);
	if (mounted < 0) {
		fprintf(stderr, "iscsifs: cannot mount on %s\n", s->opt.mountpoint);
		return 1;
	}
	if (fuse_channel_install(s->se) < 0)
		log_warn("cannot install the FUSE channel hooks; direct writes to one file will be serialised");
	fs_set_session(&s->fs, s->se);    /* from now on the kernel hears of changed LUNs */
	return GO_ON;
}

/* Fork (unless -f), build the tree, mount, and once mounted detach from
 * the terminal. */
static int mount_fs(struct startup *s)
{
	int status;

	if (!s->opt.foreground && daemon_fork() < 0) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	portal_format(s->portal, sizeof s->portal, s->url.host, s->url.port);
	if ((status = build_tree(s)) != GO_ON || (status = start_fuse(s)) != GO_ON)
		return status;
	/* A signal during the start: no mount left behind, the start failed */
	if (fuse_loop_stop_requested()) {
		fuse_session_unmount(s->se);
		fprintf(stderr, "iscsifs: interrupted while mounting %s\n", s->opt.mountpoint);
		return 1;
	}
	/* From here on a daemon logs to syslog: a successful mount says
	 * nothing on the terminal, the journal records it. */
	if (!s->opt.foreground)
		daemon_detach();
	if (s->fs.discovery)
		log_info("mounted %zu targets of %s on %s", s->fs.ntargets, s->portal, s->mountpoint);
	else
		log_info("mounted %s (%zu LUN files) on %s with %u sessions", s->url.target,
			 mount_tree_luns(&s->fs), s->mountpoint, s->opt.sessions);
	return GO_ON;
}

/* No more notifications to the kernel (fuse_loop_run()'s quiesce step:
 * one in flight may wait for a lookup's answer, which the loops still
 * give). */
static void stop_notifying(void *arg)
{
	fs_set_session(arg, NULL);
}

/* The FUSE loop until unmount (or a signal), then the unmount. */
static int serve(struct startup *s)
{
	int loop_rc = fuse_loop_run(s->se, s->mountpoint, stop_notifying, &s->fs);

	fs_set_session(&s->fs, NULL);     /* (if the loop could not start) */
	fuse_loop_unmount(s->se);
	log_info("unmounted %s; logging out", s->mountpoint);
	for (size_t i = 0; i < s->fs.ntargets; i++)
		if (s->fs.targets[i]->pool)
			pool_log_stats(s->fs.targets[i]->pool);
	return loop_rc < 0 ? 1 : 0;
}

/* Threads that free targets at the end, at most (the main thread one of
 * them): a target that does not answer costs its drain and logout waits
 * (up to 35 s, target_free()) once per TEARDOWN_THREADS targets, not
 * once per target. */
#define TEARDOWN_THREADS 16

/* The targets of a mount being freed, shared by the threads that free
 * them. */
struct freeing {
	struct fs *fs;                 /* the mount; its targets are not touched
	                                * by anyone else any more */
	atomic_size_t next;            /* the next target to take */
};

/* A thread that frees targets of @arg, a struct freeing, until none is
 * left. */
static void *free_targets(void *arg)
{
	struct freeing *f = arg;
	size_t i;

	while ((i = atomic_fetch_add(&f->next, 1)) < f->fs->ntargets)
		target_free(f->fs->targets[i]);
	return NULL;
}

/* Drain, log out and free every target of @fs, several at once. */
static void free_all_targets(struct fs *fs)
{
	struct freeing f = { .fs = fs };
	pthread_t helpers[TEARDOWN_THREADS - 1];
	size_t want = fs->ntargets < TEARDOWN_THREADS ? fs->ntargets : TEARDOWN_THREADS;
	size_t started = 0;

	atomic_init(&f.next, 0);
	/* (a thread that cannot start leaves its share to the others) */
	while (started + 1 < want && pthread_create(&helpers[started], NULL, free_targets, &f) == 0)
		started++;
	free_targets(&f);
	for (size_t i = 0; i < started; i++)
		pthread_join(helpers[i], NULL);
}

/* Release what the steps reached hold (all of it is empty or NULL where
 * a step was not reached). */
static void teardown(struct startup *s)
{
	/* Drain and log out before the FUSE session goes: late replies need it. */
	free_all_targets(&s->fs);
	free(s->fs.targets);
	/* every session is logged out; a timer still armed (a retry held
	 * past pool_destroy()'s wait, which leaves its pool allocated) must
	 * not fire into the LUNs and the FUSE session freed below */
	evloops_stop();
	if (s->se)
		fuse_session_destroy(s->se);
	fs_free_opens(&s->fs);
	for (size_t i = 0; i < s->fs.nnodes; i++)
		lun_free(s->fs.nodes[i].lun);
	free(s->fs.nodes);
	OPENSSL_cleanse(s->url.password, sizeof s->url.password);
	credentials_free(s->creds);
	options_free(&s->opt, &s->args);
}

int main(int argc, char *argv[])
{
	struct startup s = { .args = FUSE_ARGS_INIT(argc, argv) };
	int status;

	if ((status = parse(&s, argc, argv)) == GO_ON &&
	    (status = configure(&s)) == GO_ON) {
		if (s.opt.list)
			status = list_only(&s);
		else if ((status = mount_fs(&s)) == GO_ON)
			status = serve(&s);
	}
	teardown(&s);
	return status;
}
