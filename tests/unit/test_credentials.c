/* test_credentials.c: unit tests of credentials.c: where the CHAP user
 * and secrets come from, which combinations are refused, secret files
 * and their modes, the environment, and hiding a URL's password.
 *
 * Thread model: single-threaded test program; files live in a temporary
 * directory removed at the end.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "credentials.h"
#include "log.h"
#include "testlib.h"

static char dir[128];

/* Write @text to a new file @name in the temporary directory with @mode;
 * returns its path (static storage, one per name). */
static const char *make_file(const char *name, const char *text, mode_t mode)
{
	static char paths[16][160];
	static int next;
	char *path = paths[next++ % 16];
	FILE *f;

	snprintf(path, sizeof paths[0], "%s/%.16s", dir, name);
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(path);
		exit(99);
	}
	chmod(path, mode);
	return path;
}

/* The result of one credentials_load(); *out freed unless @keep. */
static int load(const struct credentials_options *o, struct chap_credentials **keep)
{
	struct chap_credentials *c = NULL;
	int rc = credentials_load(o, &c);

	if (keep)
		*keep = c;
	else
		credentials_free(c);
	return rc;
}

static bool secret_is(const struct chap_secret *s, const char *text)
{
	return s->len == strlen(text) && memcmp(s->bytes, text, s->len) == 0;
}

static void test_none(void)
{
	struct credentials_options o = { 0 };
	struct chap_credentials *c = (void *)1;

	CHECK(credentials_load(&o, &c) == 0 && c == NULL);
	/* a secret in the environment alone asks for nothing */
	setenv(CREDENTIALS_ENV_SECRET, "environment-secret", 1);
	CHECK(load(&o, NULL) == 0);
	unsetenv(CREDENTIALS_ENV_SECRET);
}

static void test_secret_file(void)
{
	struct credentials_options o = { .chap_user = "alice" };
	struct chap_credentials *c;

	o.chap_secret_file = make_file("ok", "alice-secret-1\nsecond line\n", 0600);
	CHECK(load(&o, &c) == 1);
	CHECK(c && secret_is(&c->secret, "alice-secret-1") && !c->mutual);
	CHECK(c && strcmp(c->user, "alice") == 0);
	credentials_free(c);

	o.chap_secret_file = make_file("crlf", "alice-secret-2\r\n", 0400);
	CHECK(load(&o, &c) == 1 && secret_is(&c->secret, "alice-secret-2"));
	credentials_free(c);

	o.chap_secret_file = make_file("nonl", "alice-secret-3", 0600);
	CHECK(load(&o, &c) == 1 && secret_is(&c->secret, "alice-secret-3"));
	credentials_free(c);

	o.chap_secret_file = make_file("open", "alice-secret-4\n", 0644);
	CHECK(load(&o, NULL) == -1 && err_errno() == EACCES);
	CHECK(strstr(err_msg(), "chmod 600") && strstr(err_msg(), o.chap_secret_file));
	CHECK(!strstr(err_msg(), "alice-secret-4"));
	o.chap_secret_file = make_file("group", "alice-secret-4\n", 0620);
	CHECK(load(&o, NULL) == -1 && err_errno() == EACCES);

	/* not a regular file: refused as such, at once (before, a FIFO waited
	 * for a writer for ever, and /dev/null was told to chmod 600) */
	o.chap_secret_file = "/dev/null";
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "not a regular file"));
	char fifo_path[160];
	snprintf(fifo_path, sizeof fifo_path, "%s/fifo", dir);
	CHECK(mkfifo(fifo_path, 0600) == 0);
	o.chap_secret_file = fifo_path;
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "not a regular file"));

	o.chap_secret_file = make_file("empty", "\nsecret\n", 0600);
	CHECK(load(&o, NULL) == -1 && err_errno() == EINVAL);
	o.chap_secret_file = make_file("nothing", "", 0600);
	CHECK(load(&o, NULL) == -1 && err_errno() == EINVAL);
	char longer[CHAP_MAX_SECRET + 3];
	memset(longer, 'L', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	o.chap_secret_file = make_file("long", longer, 0600);
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "longer"));
	CHECK(!strstr(err_msg(), "LLLL"));

	o.chap_secret_file = "/nonexistent/secret";
	CHECK(load(&o, NULL) == -1 && err_errno() == ENOENT);
	CHECK(strstr(err_msg(), "/nonexistent/secret") != NULL);
}

static void test_sources(void)
{
	struct credentials_options o = { 0 };
	struct chap_credentials *c;

	/* user without secret, secret without user */
	o.chap_user = "alice";
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "no secret"));
	o.chap_user = NULL;
	o.chap_secret_file = make_file("s1", "alice-secret-1\n", 0600);
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "needs a user"));

	/* the URL's user and password */
	o = (struct credentials_options){ .url_user = "bob", .url_password = "bob-secret-12",
					  .url_has_password = true };
	CHECK(load(&o, &c) == 1 && strcmp(c->user, "bob") == 0 &&
	      secret_is(&c->secret, "bob-secret-12"));
	credentials_free(c);
	o.chap_user = "carol";
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "two CHAP users"));
	o.chap_user = "bob";
	o.chap_secret_file = make_file("s2", "bob-secret-file\n", 0600);
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "two CHAP secrets"));

	/* the environment, wiped once taken */
	o = (struct credentials_options){ .url_user = "bob" };
	setenv(CREDENTIALS_ENV_SECRET, "environment-secret", 1);
	CHECK(load(&o, &c) == 1 && secret_is(&c->secret, "environment-secret"));
	CHECK(getenv(CREDENTIALS_ENV_SECRET) == NULL);
	credentials_free(c);
	/* the file wins over the environment */
	setenv(CREDENTIALS_ENV_SECRET, "environment-secret", 1);
	o.chap_secret_file = make_file("s3", "file-secret-123\n", 0600);
	CHECK(load(&o, &c) == 1 && secret_is(&c->secret, "file-secret-123"));
	credentials_free(c);
	unsetenv(CREDENTIALS_ENV_SECRET);
}

static void test_mutual(void)
{
	struct credentials_options o = { .chap_user = "alice" };
	struct chap_credentials *c;

	o.chap_secret_file = make_file("m1", "alice-secret-1\n", 0600);
	o.target_user = "target";
	o.target_secret_file = make_file("m2", "target-secret-1\n", 0600);
	CHECK(load(&o, &c) == 1 && c->mutual && strcmp(c->target_user, "target") == 0 &&
	      secret_is(&c->target_secret, "target-secret-1"));
	credentials_free(c);

	o.target_secret_file = make_file("m3", "alice-secret-1\n", 0600);
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "same"));

	o.target_secret_file = NULL;
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "no secret"));
	setenv(CREDENTIALS_ENV_TARGET_SECRET, "target-env-secret", 1);
	CHECK(load(&o, &c) == 1 && secret_is(&c->target_secret, "target-env-secret"));
	CHECK(getenv(CREDENTIALS_ENV_TARGET_SECRET) == NULL);
	credentials_free(c);

	o.target_user = NULL;
	o.target_secret_file = make_file("m4", "target-secret-1\n", 0600);
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "needs -o target_user"));

	o = (struct credentials_options){ .target_user = "target",
					  .target_secret_file = o.target_secret_file };
	CHECK(load(&o, NULL) == -1 && strstr(err_msg(), "our own CHAP user"));
}

static void test_hide_password(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "iscsi://alice%secret@host/iqn.x", "iscsi://alice%xxxxxx@host/iqn.x" },
		{ "iscsi://alice:pw@[::1]:3260/iqn.x/1", "iscsi://alice:xx@[::1]:3260/iqn.x/1" },
		{ "iscsi://a%b@c@host", "iscsi://a%xxx@host" },
		{ "iscsi://alice@host/iqn.x", "iscsi://alice@host/iqn.x" },
		{ "iscsi://host:3260/iqn.x", "iscsi://host:3260/iqn.x" },
		{ "/mnt/alice%secret@x", "/mnt/alice%secret@x" },
	};
	char buf[128];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(buf, sizeof buf, "%s", cases[i].in);
		credentials_hide_url_password(buf);
		CHECK_STR(buf, cases[i].out);
	}
}

int main(void)
{
	snprintf(dir, sizeof dir, "%.96s/test_credentials.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 99;
	}
	log_set_level(LOG_LEVEL_ERROR);
	test_none();
	test_secret_file();
	test_sources();
	test_mutual();
	test_hide_password();

	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return test_done("test_credentials");
}
