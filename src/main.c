/* main.c: command line, start-up order, daemonizing after the mount.
 *
 * Start-up is synchronous and happens before the parent exits: connect,
 * log in every session, read the LUNs, mount.  Unless -f, the process
 * forks first (threads do not survive a fork) and the parent waits on a
 * pipe for the child's verdict, so every failure is printed on the user's
 * terminal as one line and the exit status says whether the mount exists.
 * After a failure the parent returns only once the child has ended.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "credentials.h"
#include "fs.h"
#include "fuse_channel.h"
#include "fuse_loop.h"
#include "log.h"
#include "discovery.h"
#include "list.h"
#include "lun.h"
#include "pool.h"
#include "portal.h"
#include "target.h"
#include "url.h"

#define MAX_LUNS 1024
/* LUN files per target of a discovery mount at most. */
#define MAX_LUNS_DISCOVERED 256
/* Threads reading /dev/fuse.  No handler waits on the network (reads,
 * writes and fsync complete on session threads), so a few serve any load. */
#define FUSE_WORKERS 8

/* The command line. */
struct options {
	char *url;                  /* the iscsi:// URL */
	char *mountpoint;           /* where to mount */
	int foreground;             /* -f */
	int debug;                  /* -d */
	int read_only;              /* -o ro */
	int cache;                  /* -o cache */
	int show_help;              /* --help / -h */
	int show_version;           /* --version / -V */
	int list;                   /* --list: print what the URL offers, mount nothing */
	unsigned sessions;          /* -o sessions= */
	unsigned queue_depth;       /* -o queue_depth= */
	char *initiator;            /* -o initiator= */
	char *chap_user;            /* -o chap_user= */
	char *chap_secret_file;     /* -o chap_secret_file= */
	char *target_user;          /* -o target_user= */
	char *target_secret_file;   /* -o target_secret_file= */
	char *header_digest;        /* -o header_digest= */
	char *data_digest;          /* -o data_digest= */
	unsigned timeout;           /* -o timeout= */
	unsigned noop_interval;     /* -o noop_interval= */
	unsigned noop_timeout;      /* -o noop_timeout= */
	unsigned cmd_timeout;       /* -o cmd_timeout= */
	int extra_positional;       /* arguments after MOUNTPOINT */
};

enum { KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_RO, KEY_LIST };

#define OPT(t, f) { t, offsetof(struct options, f), 1 }
static const struct fuse_opt option_spec[] = {
	OPT("sessions=%u", sessions),
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
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("--list", KEY_LIST),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_END
};

/* Free what fuse_opt_parse() and option_proc() allocated. */
static void free_options(struct options *o, struct fuse_args *args)
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

static void usage(FILE *f)
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

static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;

	switch (key) {
	case KEY_HELP:
		o->show_help = 1;
		return 0;
	case KEY_LIST:
		o->list = 1;
		return 0;
	case KEY_VERSION:
		o->show_version = 1;
		return 0;
	case KEY_FOREGROUND:
		o->foreground = 1;
		return 0;
	case KEY_DEBUG:
		o->debug = 1;
		o->foreground = 1;
		return 0;
	case KEY_RO:
		o->read_only = 1;
		return 1;               /* FUSE mounts read-only too */
	case FUSE_OPT_KEY_NONOPT:
		if (!o->url)
			o->url = strdup(arg);
		else if (!o->mountpoint)
			o->mountpoint = strdup(arg);
		else
			o->extra_positional++;
		return 0;
	default:
		return 1;               /* a FUSE option: pass it on */
	}
}

static int parse_digest(const char *text, const char *name, enum digest_pref *out)
{
	if (!text || strcmp(text, "auto") == 0)
		*out = DIGEST_PREF_AUTO;
	else if (strcmp(text, "none") == 0)
		*out = DIGEST_PREF_NONE;
	else if (strcmp(text, "crc32c") == 0)
		*out = DIGEST_PREF_CRC32C;
	else {
		err_set(EINVAL, "invalid %s=%s: use none, crc32c or auto", name, text);
		return -1;
	}
	return 0;
}

/* A session ID stable for this initiator, target and mountpoint (so a
 * reconnect reinstates the same session, and two mounts never collide);
 * RFC 7143 §10.12.5 "random" format: T=10b, B and C from the hash, the
 * qualifier D is the session slot. */
static void make_isid(uint8_t isid[6], const char *initiator, const char *target,
		      const char *mountpoint)
{
	uint32_t h = 2166136261u;
	const char *parts[] = { initiator, target, mountpoint };

	for (size_t i = 0; i < 3; i++)
		for (const char *p = parts[i]; *p; p++)
			h = (h ^ (uint8_t)*p) * 16777619u;
	isid[0] = 0x80;
	isid[1] = (uint8_t)(h >> 24);
	isid[2] = (uint8_t)(h >> 16);
	isid[3] = (uint8_t)(h >> 8);
	isid[4] = (uint8_t)h;
	isid[5] = 0;
}

/* Whether @path is a mount point already (in /proc/self/mountinfo). */
static bool is_mount_point(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof line, f)) {
		char mnt[4096];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 && strcmp(mnt, path) == 0)
			found = true;
	}
	fclose(f);
	return found;
}

/* The pipe to the waiting parent; -1 in the foreground. */
static int report_fd = -1;

/* Tell the waiting parent that the mount is up (@status 0).  A failure
 * (@status non-zero) is not written: the parent then waits for this
 * process to end and exits with its exit status, so that when the
 * command returns nothing of it is left (no session, no process). */
static void report_to_parent(char status)
{
	if (report_fd < 0 || status != 0)
		return;
	if (write(report_fd, &status, 1) < 0) {
		/* the parent is gone; nothing to tell */
	}
	close(report_fd);
	report_fd = -1;
}

/* Fork; the parent waits for the child's verdict and exits with it: 0
 * once the child says the mount is up, else the child's own exit status
 * once it has ended (the pipe closes when it exits). */
static int daemonize_early(void)
{
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0) {
		err_set(errno, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		err_set(errno, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		char status = 1;
		ssize_t n;
		int ws;

		close(fds[1]);
		while ((n = read(fds[0], &status, 1)) < 0 && errno == EINTR)
			;
		if (n == 1 && status == 0)
			_exit(0);
		while (waitpid(pid, &ws, 0) < 0)
			if (errno != EINTR)
				_exit(1);
		_exit(WIFEXITED(ws) && WEXITSTATUS(ws) ? WEXITSTATUS(ws) : 1);
	}
	close(fds[0]);
	report_fd = fds[1];
	setsid();
	return 0;
}

/* Detach from the terminal once the mount is up. */
static void finish_daemonize(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (chdir("/") < 0) {
		/* "/" always exists */
	}
	log_to_syslog("iscsifs");
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	report_to_parent(0);
}

static void default_initiator(char *out, size_t cap)
{
	char host[HOST_NAME_MAX + 1] = "localhost";

	gethostname(host, sizeof host - 1);
	for (char *p = host; *p; p++)
		*p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') :
		     ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '.') ? *p : '-';
	snprintf(out, cap, "iqn.2026-11.org.iscsifs:%s", host);
}

/* LUN files in the mount. */
static size_t count_luns(struct fs *fs)
{
	size_t n = 0;

	for (size_t i = 0; i < fs->nnodes; i++)
		n += fs->nodes[i].lun != NULL;
	return n;
}

/* Add @t to the mount's list of targets.  0, or -1 (ENOMEM). */
static int remember_target(struct fs *fs, struct fs_target *t)
{
	struct fs_target **list = realloc(fs->targets, (fs->ntargets + 1) * sizeof *list);

	if (!list)
		return -1;
	fs->targets = list;
	fs->targets[fs->ntargets++] = t;
	return 0;
}

/* The target form: log in, list and probe the LUNs, add their files to the
 * root.  Prints the reason and returns -1 on failure. */
static int mount_target(struct fs *fs, const struct session_config *cfg, const char *portal,
			long long only_lun)
{
	struct fs_target *t;
	int err;

	if (fs_reserve(fs, 3 + MAX_LUNS) < 0 || !fs_add_node(fs, 0, "", true, NULL, NULL) ||
	    !(t = target_new(cfg, portal, 1, only_lun)) || remember_target(fs, t) < 0) {
		fprintf(stderr, "iscsifs: out of memory\n");
		return -1;
	}
	fs->nodes[0].tgt = t;    /* nothing reads the tree yet */
	err = target_open(fs, t);
	if (err) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		return -1;
	}
	if (count_luns(fs) == 0)
		log_warn("target %s has no disk LUNs; the mount will be empty", cfg->target_name);
	return 0;
}

/* The portal form: SendTargets discovery, then a directory per target
 * whose login waits for its first use.  Prints the reason and returns -1
 * on failure. */
static int mount_discovered(struct fs *fs, const struct session_config *cfg,
			    const char *mountpoint)
{
	struct discovery d;

	if (discovery_run(cfg, &d) < 0) {
		fprintf(stderr, "iscsifs: discovery on %s:%u failed: %s\n", cfg->host, cfg->port,
			err_msg());
		return -1;
	}
	if (fs_reserve(fs, 3 + d.ntargets * (1 + MAX_LUNS_DISCOVERED)) < 0 ||
	    !fs_add_node(fs, 0, "", true, NULL, NULL)) {
		fprintf(stderr, "iscsifs: out of memory\n");
		discovery_free(&d);
		return -1;
	}
	for (size_t i = 0; i < d.ntargets; i++) {
		const struct discovery_target *dt = &d.targets[i];
		struct session_config tc = *cfg;
		char portal[PORTAL_TEXT_MAX];
		struct fs_target *t;
		fuse_ino_t dir;

		snprintf(tc.target_name, sizeof tc.target_name, "%s", dt->name);
		if (dt->nportals > 0) {
			snprintf(tc.host, sizeof tc.host, "%s", dt->portals[0].host);
			tc.port = dt->portals[0].port;
		}
		/* every portal it has, for the sessions to spread over and
		 * fail over between */
		tc.nportals = 0;
		for (unsigned k = 0; k < dt->nportals && k < SESSION_MAX_PORTALS; k++) {
			snprintf(tc.portals[k].host, sizeof tc.portals[k].host, "%s",
				 dt->portals[k].host);
			tc.portals[k].port = dt->portals[k].port;
			tc.nportals = k + 1;
		}
		portal_format(portal, sizeof portal, tc.host, tc.port);
		/* each target its own ISIDs, stable per mount */
		make_isid(tc.isid_base, tc.initiator_name, tc.target_name, mountpoint);
		dir = fs_add_node(fs, 1, dt->name, true, NULL, NULL);
		t = dir ? target_new(&tc, portal, dir, -1) : NULL;
		if (!t || remember_target(fs, t) < 0) {
			fprintf(stderr, "iscsifs: out of memory\n");
			free(t);
			discovery_free(&d);
			return -1;
		}
		fs->nodes[dir - 1].tgt = t;    /* nothing reads the tree yet */
		log_info("target %s at %s", dt->name, portal);
	}
	if (d.ntargets == 0)
		log_warn("discovery on %s:%u found no targets; the mount will be empty", cfg->host,
			 cfg->port);
	discovery_free(&d);
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options o = { .sessions = 4, .queue_depth = 32, .timeout = 120,
			     .noop_interval = 5, .noop_timeout = 5, .cmd_timeout = 30 };
	struct iscsi_url url;
	struct session_config cfg;
	struct fs fs = { 0 };
	struct fuse_session *se = NULL;
	struct chap_credentials *creds = NULL;  /* wiped and freed at exit */
	char mountpoint[PATH_MAX];
	int status = 1;

	if (fuse_opt_parse(&args, &o, option_spec, option_proc) < 0)
		goto out_options;
	if (o.show_help) {
		usage(stdout);
		status = 0;
		goto out_options;
	}
	if (o.show_version) {
		printf("iscsifs %s (libfuse %d.%d)\n", PACKAGE_VERSION, FUSE_MAJOR_VERSION,
		       FUSE_MINOR_VERSION);
		status = 0;
		goto out_options;
	}
	log_set_level(o.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	if (o.list && (!o.url || o.mountpoint)) {
		fprintf(stderr, "iscsifs: %s\n", !o.url ? "--list needs a URL" :
			"--list takes a URL and no MOUNTPOINT");
		status = 2;
		goto out_options;
	}
	if (!o.list && (!o.url || !o.mountpoint || o.extra_positional)) {
		fprintf(stderr, "iscsifs: %s\n", !o.url ? "missing URL and MOUNTPOINT" :
			!o.mountpoint ? "missing MOUNTPOINT" : "too many arguments");
		usage(stderr);
		status = 2;
		goto out_options;
	}
	if (url_parse(o.url, &url) < 0) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		status = 2;
		goto out_options;
	}
	if (url.has_password)
		for (int i = 1; i < argc; i++)
			credentials_hide_url_password(argv[i]);
	struct credentials_options creds_opt = {
		.chap_user = o.chap_user, .chap_secret_file = o.chap_secret_file,
		.target_user = o.target_user, .target_secret_file = o.target_secret_file,
		.url_user = url.user, .url_password = url.password,
		.url_has_password = url.has_password,
	};
	int creds_rc = credentials_load(&creds_opt, &creds);
	OPENSSL_cleanse(url.password, sizeof url.password);
	if (creds_rc < 0) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		status = 2;
		goto out_options;
	}
	if (o.sessions == 0 || o.sessions > 64 || o.queue_depth == 0 || o.queue_depth > 1024) {
		fprintf(stderr, "iscsifs: sessions must be 1..64 and queue_depth 1..1024\n");
		status = 2;
		goto out_options;
	}
	if (o.list)
		snprintf(mountpoint, sizeof mountpoint, "--list");
	else if (!realpath(o.mountpoint, mountpoint)) {
		fprintf(stderr, "iscsifs: mountpoint %s: %s\n", o.mountpoint, strerror(errno));
		status = 1;
		goto out_options;
	}
	struct stat st;
	if (!o.list && (stat(mountpoint, &st) < 0 || !S_ISDIR(st.st_mode))) {
		fprintf(stderr, "iscsifs: mountpoint %s: Not a directory\n", o.mountpoint);
		status = 1;
		goto out_options;
	}
	if (!o.list && is_mount_point(mountpoint)) {
		fprintf(stderr, "iscsifs: mountpoint %s is busy: something is already mounted there\n",
			o.mountpoint);
		status = 1;
		goto out_options;
	}

	memset(&cfg, 0, sizeof cfg);
	snprintf(cfg.host, sizeof cfg.host, "%s", url.host);
	cfg.port = url.port;
	snprintf(cfg.target_name, sizeof cfg.target_name, "%s", url.target);
	if (o.initiator)
		snprintf(cfg.initiator_name, sizeof cfg.initiator_name, "%s", o.initiator);
	else
		default_initiator(cfg.initiator_name, sizeof cfg.initiator_name);
	cfg.text.initiator_name = cfg.initiator_name;
	cfg.text.target_name = cfg.target_name;
	cfg.text.discovery = false;
	if (parse_digest(o.header_digest, "header_digest", &cfg.text.header_digest) < 0 ||
	    parse_digest(o.data_digest, "data_digest", &cfg.text.data_digest) < 0) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		status = 2;
		goto out_options;
	}
	cfg.text.max_recv_dsl = 256 * 1024;
	cfg.text.max_burst_length = 16 * 1024 * 1024 - 1;
	cfg.text.first_burst_length = 256 * 1024;
	cfg.text.max_outstanding_r2t = 16;
	cfg.text.immediate_data = true;
	cfg.text.initial_r2t = false;
	cfg.text.chap = creds;    /* every login, reconnects too, reads it until exit */
	cfg.queue_depth = o.queue_depth;
	cfg.noop_interval_s = o.noop_interval;
	cfg.noop_timeout_s = o.noop_timeout;
	cfg.cmd_timeout_s = o.cmd_timeout;
	cfg.connect_timeout_ms = (int)(o.timeout < 15 ? o.timeout : 15) * 1000;
	if (cfg.connect_timeout_ms <= 0)
		cfg.connect_timeout_ms = 1000;
	make_isid(cfg.isid_base, cfg.initiator_name, cfg.target_name, mountpoint);

	if (o.list) {
		signal(SIGPIPE, SIG_IGN);
		if (list_portal(&cfg, stdout) < 0) {
			fprintf(stderr, "iscsifs: %s\n", err_msg());
			status = 1;
		} else {
			status = 0;
		}
		goto out_options;
	}
	if (!o.foreground && daemonize_early() < 0) {
		fprintf(stderr, "iscsifs: %s\n", err_msg());
		status = 1;
		goto out_options;
	}
	signal(SIGPIPE, SIG_IGN);

	clock_gettime(CLOCK_REALTIME, &fs.mount_time);
	fs.uid = getuid();
	fs.gid = getgid();
	fs.read_only = o.read_only;
	fs.cache = o.cache;
	fs.sessions = o.sessions;
	fs.timeout_s = o.timeout;
	fs.discovery = !url.target[0];
	char portal[PORTAL_TEXT_MAX];
	portal_format(portal, sizeof portal, url.host, url.port);
	if (fs.discovery ? mount_discovered(&fs, &cfg, mountpoint) < 0 :
	    mount_target(&fs, &cfg, portal, url.lun) < 0)
		goto out;
	if (fs_add_stats(&fs) < 0) {
		fprintf(stderr, "iscsifs: out of memory\n");
		goto out;
	}

	/* FUSE: subtype and fsname for mount listings (never the password). */
	char fsname[600];
	snprintf(fsname, sizeof fsname, "-ofsname=iscsi://%s/%s,subtype=iscsifs,default_permissions",
		 portal, url.target);    /* url.target is "" for a discovery mount */
	fuse_opt_add_arg(&args, fsname);
	if (o.debug && getenv("ISCSIFS_FUSE_DEBUG"))
		fuse_opt_add_arg(&args, "-d");
	se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, &fs);
	if (!se) {
		fprintf(stderr, "iscsifs: cannot create the FUSE session (bad -o option?)\n");
		goto out;
	}
	if (fuse_set_signal_handlers(se) < 0) {
		fprintf(stderr, "iscsifs: cannot set signal handlers\n");
		goto out;
	}
	if (fuse_session_mount(se, mountpoint) < 0) {
		fprintf(stderr, "iscsifs: cannot mount on %s\n", o.mountpoint);
		fuse_remove_signal_handlers(se);
		goto out;
	}
	if (fuse_channel_install(se) < 0)
		log_warn("cannot install the FUSE channel hooks; direct writes to one file will be serialised");
	fs_set_session(&fs, se);    /* from now on the kernel hears of changed LUNs */
	/* From here on a daemon logs to syslog: a successful mount says
	 * nothing on the terminal, the journal records it. */
	if (!o.foreground)
		finish_daemonize();
	if (fs.discovery)
		log_info("mounted %zu targets of %s on %s", fs.ntargets, portal, mountpoint);
	else
		log_info("mounted %s (%zu LUN files) on %s with %u sessions", url.target,
			 count_luns(&fs), mountpoint, o.sessions);

	int loop_rc = fuse_loop_run(se, FUSE_WORKERS);
	fs_set_session(&fs, NULL);
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	log_info("unmounted %s; logging out", mountpoint);
	for (size_t i = 0; i < fs.ntargets; i++)
		if (fs.targets[i]->pool)
			pool_log_stats(fs.targets[i]->pool);
	status = loop_rc < 0 ? 1 : 0;
out:
	report_to_parent((char)status);
	/* Drain and log out before the FUSE session goes: late replies need it. */
	for (size_t i = 0; i < fs.ntargets; i++)
		target_free(fs.targets[i]);
	free(fs.targets);
	if (se)
		fuse_session_destroy(se);
	for (size_t i = 0; i < fs.nnodes; i++)
		lun_free(fs.nodes[i].lun);
	free(fs.nodes);
	OPENSSL_cleanse(url.password, sizeof url.password);
out_options:
	credentials_free(creds);
	free_options(&o, &args);
	return status;
}
