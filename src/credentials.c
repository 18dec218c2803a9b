/* credentials.c: gathering the CHAP credentials of a mount (see
 * credentials.h) from options, secret files, the environment and the URL.
 *
 * Secrets pass through a stack buffer (a file's first line) that is wiped
 * before returning, and end in one heap struct chap_credentials that
 * main() wipes at exit.  No message here contains a secret.
 *
 * Thread model: start-up only, single-threaded.
 */
#include "credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* Bytes of a secret file we read, enough for its first line. */
#define SECRET_FILE_READ (CHAP_MAX_SECRET + 2)

/* Refuse a secret file that is not a regular file (a FIFO would wait for
 * a writer for ever, a device be read), or that group or others may read
 * or write. */
static int check_secret_file_mode(int fd, const char *path)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		err_set(errno, "secret file %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(EINVAL, "secret file %s: not a regular file", path);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		err_set(EACCES, "secret file %s is accessible by group or others (mode %04o): "
			"run chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
		return -1;
	}
	return 0;
}

/* Read up to @cap bytes of @fd into @buf, stopping early at a newline.
 * Returns the byte count, or -1 with errno set. */
static ssize_t read_first_line(int fd, char *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap && !memchr(buf, '\n', got)) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The first line of @path (without "\n" or "\r\n") as the secret. */
static int load_secret_file(const char *path, struct chap_secret *out)
{
	char buf[SECRET_FILE_READ];
	/* (O_NONBLOCK: a FIFO opens at once, to be refused as not a regular
	 * file; a regular file reads the same) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	ssize_t got;
	size_t len;
	int rc = -1;

	if (fd < 0) {
		err_set(errno, "secret file %s: %s", path, strerror(errno));
		return -1;
	}
	if (check_secret_file_mode(fd, path) < 0)
		goto out;
	got = read_first_line(fd, buf, sizeof buf);
	if (got < 0) {
		err_set(errno, "secret file %s: %s", path, strerror(errno));
		goto out;
	}
	len = (size_t)got;
	if (memchr(buf, '\n', len))
		len = (size_t)((char *)memchr(buf, '\n', len) - buf);
	else if (len == sizeof buf) {
		err_set(EINVAL, "secret file %s: the secret is longer than %d bytes", path,
			CHAP_MAX_SECRET);
		goto out;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (chap_secret_set(out, buf, len) < 0) {
		err_set(EINVAL, "secret file %s: %s", path, err_msg());
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof buf);
	close(fd);
	return rc;
}

/* The secret in environment variable @name, wiped there once taken.
 * Returns 1 when set, 0 when not, -1 with err_set() when unusable. */
static int take_env_secret(const char *name, struct chap_secret *out)
{
	char *value = getenv(name);
	int rc;

	if (!value)
		return 0;
	rc = chap_secret_set(out, value, strlen(value));
	if (rc < 0)
		err_set(EINVAL, "%s: %s", name, err_msg());
	OPENSSL_cleanse(value, strlen(value));
	unsetenv(name);
	return rc < 0 ? -1 : 1;
}

/* Copy a CHAP name, refusing an empty or overlong one. */
static int set_name(char *dst, const char *name, const char *what)
{
	size_t len = strlen(name);

	if (len == 0 || len > CHAP_MAX_NAME) {
		err_set(EINVAL, "%s must be 1 to %d bytes long", what, CHAP_MAX_NAME);
		return -1;
	}
	memcpy(dst, name, len + 1);
	return 0;
}

/* Our user: -o chap_user= or the URL's, which must agree if both exist.
 * Leaves "" when neither is given. */
static int resolve_user(const struct credentials_options *o, struct chap_credentials *c)
{
	const char *url_user = o->url_user && o->url_user[0] ? o->url_user : NULL;

	if (o->chap_user && url_user && strcmp(o->chap_user, url_user) != 0) {
		err_set(EINVAL, "two CHAP users given: -o chap_user=%s and %s@ in the URL",
			o->chap_user, url_user);
		return -1;
	}
	if (o->chap_user)
		return set_name(c->user, o->chap_user, "chap_user");
	if (url_user)
		return set_name(c->user, url_user, "the URL's user");
	return 0;
}

/* Our secret: the file, else the URL's password, else the environment.
 * Returns 1 when one was found, 0 when none, -1 on error. */
static int resolve_secret(const struct credentials_options *o, struct chap_credentials *c)
{
	if (o->chap_secret_file && o->url_has_password) {
		err_set(EINVAL, "two CHAP secrets given: in the URL and in -o chap_secret_file");
		return -1;
	}
	if (o->chap_secret_file)
		return load_secret_file(o->chap_secret_file, &c->secret) < 0 ? -1 : 1;
	if (o->url_has_password) {
		log_warn("the CHAP secret in the URL is visible to other users in the process list; "
			 "use -o chap_secret_file=FILE or %s", CREDENTIALS_ENV_SECRET);
		if (chap_secret_set(&c->secret, o->url_password, strlen(o->url_password)) < 0) {
			err_set(EINVAL, "the URL's password: %s", err_msg());
			return -1;
		}
		return 1;
	}
	return take_env_secret(CREDENTIALS_ENV_SECRET, &c->secret);
}

/* Mutual CHAP: the target's user and secret. */
static int resolve_target(const struct credentials_options *o, struct chap_credentials *c)
{
	int found;

	if (!o->target_user) {
		err_set(EINVAL, "-o target_secret_file needs -o target_user=NAME");
		return -1;
	}
	if (!c->user[0]) {
		err_set(EINVAL, "mutual CHAP (-o target_user) needs our own CHAP user too: "
			"-o chap_user=NAME");
		return -1;
	}
	if (set_name(c->target_user, o->target_user, "target_user") < 0)
		return -1;
	if (o->target_secret_file)
		found = load_secret_file(o->target_secret_file, &c->target_secret) < 0 ? -1 : 1;
	else
		found = take_env_secret(CREDENTIALS_ENV_TARGET_SECRET, &c->target_secret);
	if (found < 0)
		return -1;
	if (found == 0) {
		err_set(EINVAL, "target user %s has no secret: give -o target_secret_file=FILE "
			"or set %s", c->target_user, CREDENTIALS_ENV_TARGET_SECRET);
		return -1;
	}
	if (chap_secret_equal(&c->secret, &c->target_secret)) {
		err_set(EINVAL, "the CHAP secret and the target secret are the same; "
			"mutual CHAP needs two different secrets");
		return -1;
	}
	c->mutual = true;
	return 0;
}

/* Warn about a secret shorter than RFC 7143 advises. */
static void warn_if_short(const struct chap_secret *s, const char *what)
{
	if (s->len < CHAP_MIN_SECRET_ADVISED)
		log_warn("the %s is only %zu bytes; RFC 7143 advises at least %d random bytes",
			 what, s->len, CHAP_MIN_SECRET_ADVISED);
}

/* Fill @c from @o.  Returns 1, 0 (no CHAP), or -1. */
static int resolve(const struct credentials_options *o, struct chap_credentials *c)
{
	bool want_mutual = o->target_user || o->target_secret_file;
	int found;

	if (resolve_user(o, c) < 0)
		return -1;
	if (!c->user[0] && !o->chap_secret_file && !o->url_has_password && !want_mutual) {
		if (getenv(CREDENTIALS_ENV_SECRET))
			log_warn("%s is set but no CHAP user is given (-o chap_user=NAME): "
				 "logging in without CHAP", CREDENTIALS_ENV_SECRET);
		return 0;
	}
	found = resolve_secret(o, c);
	if (found < 0)
		return -1;
	if (!c->user[0] && found) {
		err_set(EINVAL, "a CHAP secret needs a user: -o chap_user=NAME or "
			"iscsi://NAME@HOST/...");
		return -1;
	}
	if (c->user[0] && !found) {
		err_set(EINVAL, "CHAP user %s has no secret: give -o chap_secret_file=FILE or set %s",
			c->user, CREDENTIALS_ENV_SECRET);
		return -1;
	}
	if (want_mutual && resolve_target(o, c) < 0)
		return -1;
	warn_if_short(&c->secret, "CHAP secret");
	if (c->mutual)
		warn_if_short(&c->target_secret, "target secret");
	return 1;
}

int credentials_load(const struct credentials_options *o, struct chap_credentials **out)
{
	struct chap_credentials *c = calloc(1, sizeof *c);
	int rc;

	*out = NULL;
	if (!c) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	rc = resolve(o, c);
	if (rc <= 0) {
		credentials_free(c);
		return rc;
	}
	*out = c;
	return 1;
}

void credentials_free(struct chap_credentials *c)
{
	if (!c)
		return;
	chap_credentials_wipe(c);
	free(c);
}

void credentials_hide_url_password(char *arg)
{
	char *info, *at, *sep;

	if (strncasecmp(arg, "iscsi://", 8) != 0)
		return;
	info = arg + 8;
	at = strrchr(info, '@');
	if (!at)
		return;
	sep = memchr(info, '%', (size_t)(at - info));
	if (!sep)
		sep = memchr(info, ':', (size_t)(at - info));
	if (sep)
		memset(sep + 1, 'x', (size_t)(at - sep - 1));
}
