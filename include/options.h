/* options.h: the command line of iscsifs (DESIGN section 1).
 *
 *	iscsifs [OPTIONS] URL MOUNTPOINT
 *	iscsifs --list URL
 *
 * options_parse() reads argv with fuse_opt into struct options: our -o
 * options by the table in options.c, -f, -d, --list, --help and
 * --version by key, URL and MOUNTPOINT as the first two other arguments.
 * Every -o option that is not ours (allow_other, ...) stays in the
 * fuse_args for fuse_session_new(), and so does ro, which we also note.
 * What the values mean and which are allowed is checked by main.c and
 * mount_config.c, in the order start-up needs them.
 *
 * Thread model: main() only, at start-up.
 */
#ifndef ISCSIFS_OPTIONS_H
#define ISCSIFS_OPTIONS_H

#include <stdio.h>

#define FUSE_USE_VERSION 314
#include <fuse_opt.h>

/* The command line as given. */
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
	unsigned loops;             /* -o loops= (default: online CPUs, at most 8) */
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
	char bad_option[160];       /* why a numeric -o option was refused, "" */
};

/* Fill @o from @args (FUSE_ARGS_INIT of main()'s argc and argv): the
 * defaults first, then what the command line says; what FUSE is to see
 * stays in @args.  Returns 0, or -1 when fuse_opt_parse() failed (it, or
 * for a numeric option we refused this function, has printed why in one
 * line).  Free with options_free() either way. */
int options_parse(struct fuse_args *args, struct options *o);

/* Whether FUSE takes the options left for it in @args (fuse_session_new()
 * of a copy, never mounted), so that a bad one fails before any login,
 * in one line.  Returns 0, or -1 with what FUSE said in @why (@cap
 * bytes). */
int options_check_fuse(const struct fuse_args *args, char *why, size_t cap);

/* The --help text, to @f. */
void options_usage(FILE *f);

/* Free the strings of @o and @args. */
void options_free(struct options *o, struct fuse_args *args);

#endif /* ISCSIFS_OPTIONS_H */
