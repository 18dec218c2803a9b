/* test_options.c: the command line into struct options (src/options.c),
 * table-driven: what is ours lands in the struct, what is FUSE's stays in
 * the arguments passed on, and the first two other arguments are URL and
 * MOUNTPOINT.  Each case names the fields that differ from the defaults,
 * as describe() writes them.  The default of loops depends on the
 * machine (its online CPUs, at most 8): default_loops() says it.
 */
#include <stdlib.h>
#include <unistd.h>

#include "options.h"
#include "testlib.h"

/* Up to this many arguments per case. */
#define MAX_ARGS 8

/* One command line and what it must give. */
struct options_case {
	const char *argv[MAX_ARGS];   /* after argv[0]; NULL-terminated */
	const char *want;             /* describe() of the result */
	const char *fuse;             /* what FUSE sees after argv[0], space-separated */
};

static const struct options_case cases[] = {
	{ { "iscsi://h/t", "/mnt" }, "url=iscsi://h/t mountpoint=/mnt", "" },
	{ { "-f", "iscsi://h/", "/mnt" }, "url=iscsi://h/ mountpoint=/mnt foreground", "" },
	{ { "-d", "iscsi://h/", "/mnt" }, "url=iscsi://h/ mountpoint=/mnt foreground debug", "" },
	{ { "-o", "ro", "u", "m" }, "url=u mountpoint=m ro", "-o ro" },
	{ { "-o", "ro,cache,sessions=2,allow_other", "u", "m" },
	  "url=u mountpoint=m ro cache sessions=2", "-o ro,allow_other" },
	{ { "-o", "queue_depth=7,timeout=9,noop_interval=0,noop_timeout=3,cmd_timeout=1", "u",
	    "m" },
	  "url=u mountpoint=m queue_depth=7 timeout=9 noop_interval=0 noop_timeout=3 "
	  "cmd_timeout=1", "" },
	{ { "-o", "initiator=iqn.x,chap_user=cu,chap_secret_file=/cs,target_user=tu", "u", "m" },
	  "url=u mountpoint=m initiator=iqn.x chap_user=cu chap_secret_file=/cs target_user=tu",
	  "" },
	{ { "-o", "target_secret_file=/ts,header_digest=none,data_digest=crc32c", "u", "m" },
	  "url=u mountpoint=m target_secret_file=/ts header_digest=none data_digest=crc32c", "" },
	{ { "-o", "loops=9,sessions=2", "u", "m" }, "url=u mountpoint=m sessions=2 loops=9", "" },
	{ { "-o", "loops=0", "u", "m" }, "url=u mountpoint=m loops=0", "" },   /* main() refuses it */
	{ { "-o", "default_permissions", "-o", "sessions=3", "u", "m" },
	  "url=u mountpoint=m sessions=3", "-o default_permissions" },
	{ { "--help" }, "help", "" },
	{ { "-h" }, "help", "" },
	{ { "--version" }, "version", "" },
	{ { "-V" }, "version", "" },
	{ { "--list", "iscsi://h/" }, "url=iscsi://h/ list", "" },
	{ { "a", "b", "c", "d" }, "url=a mountpoint=b extra=2", "" },
	{ { "a" }, "url=a", "" },
	{ { NULL }, "", "" },
};

/* The default of -o loops on this machine. */
static unsigned default_loops(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return cpus < 1 ? 1 : cpus > 8 ? 8 : (unsigned)cpus;
}

/* Append " name=value" (or " name" when @value is NULL) to @out. */
static void add(char *out, size_t cap, const char *name, const char *value)
{
	size_t len = strlen(out);

	snprintf(out + len, cap - len, "%s%s%s%s", len ? " " : "", name, value ? "=" : "",
		 value ? value : "");
}

/* The fields of @o that differ from the defaults, in a fixed order. */
static void describe(const struct options *o, char *out, size_t cap)
{
	const struct { const char *name; const char *value; } strings[] = {
		{ "url", o->url }, { "mountpoint", o->mountpoint },
	};
	const struct { const char *name; int set; } flags[] = {
		{ "foreground", o->foreground }, { "debug", o->debug }, { "ro", o->read_only },
		{ "cache", o->cache }, { "help", o->show_help }, { "version", o->show_version },
		{ "list", o->list },
	};
	const struct { const char *name; unsigned value, dflt; } numbers[] = {
		{ "sessions", o->sessions, 4 }, { "loops", o->loops, default_loops() },
		{ "queue_depth", o->queue_depth, 32 },
		{ "timeout", o->timeout, 120 }, { "noop_interval", o->noop_interval, 5 },
		{ "noop_timeout", o->noop_timeout, 5 }, { "cmd_timeout", o->cmd_timeout, 30 },
	};
	const struct { const char *name; const char *value; } more_strings[] = {
		{ "initiator", o->initiator }, { "chap_user", o->chap_user },
		{ "chap_secret_file", o->chap_secret_file }, { "target_user", o->target_user },
		{ "target_secret_file", o->target_secret_file },
		{ "header_digest", o->header_digest }, { "data_digest", o->data_digest },
	};
	char text[16];

	out[0] = '\0';
	for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
		if (strings[i].value)
			add(out, cap, strings[i].name, strings[i].value);
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
		if (flags[i].set)
			add(out, cap, flags[i].name, NULL);
	for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
		if (numbers[i].value == numbers[i].dflt)
			continue;
		snprintf(text, sizeof text, "%u", numbers[i].value);
		add(out, cap, numbers[i].name, text);
	}
	for (size_t i = 0; i < sizeof more_strings / sizeof more_strings[0]; i++)
		if (more_strings[i].value)
			add(out, cap, more_strings[i].name, more_strings[i].value);
	if (o->extra_positional) {
		snprintf(text, sizeof text, "%d", o->extra_positional);
		add(out, cap, "extra", text);
	}
}

/* @args after argv[0], space-separated, into @out. */
static void joined(const struct fuse_args *args, char *out, size_t cap)
{
	out[0] = '\0';
	for (int i = 1; i < args->argc; i++)
		add(out, cap, args->argv[i], NULL);
}

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct options_case *c = &cases[i];
		char *argv[MAX_ARGS + 1] = { "iscsifs" };
		int argc = 1;
		struct options o;
		char seen[512];

		while (argc <= MAX_ARGS && c->argv[argc - 1]) {
			argv[argc] = (char *)c->argv[argc - 1];
			argc++;
		}
		struct fuse_args args = FUSE_ARGS_INIT(argc, argv);

		CHECK(options_parse(&args, &o) == 0);
		describe(&o, seen, sizeof seen);
		CHECK_STR(seen, c->want);
		joined(&args, seen, sizeof seen);
		CHECK_STR(seen, c->fuse);
		options_free(&o, &args);
	}
}

int main(void)
{
	test_cases();
	return test_done("test_options");
}
