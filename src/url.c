/* url.c: parse iscsi://[USER[%PASSWORD]@]HOST[:PORT][/TARGET-IQN[/LUN]].
 *
 * Owns nothing but the parser.  The URL is read left to right: scheme,
 * user info (everything before the last '@', which no other part may
 * contain), host, port, target, LUN.  Each part has its own check and its
 * own error message; the first failure wins.  Error messages quote the URL
 * with the password replaced by "***".
 *
 * Thread model: pure functions, no state; safe from any thread.
 */
#include "url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "wire.h"

#define URL_SCHEME "iscsi://"
#define URL_SCHEME_LEN (sizeof URL_SCHEME - 1)
/* How much of the URL an error message quotes. */
#define URL_DISPLAY_MAX 160

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_control(char c)
{
	return (unsigned char)c < 0x20 || c == 0x7f;
}

/* Where the password of @text starts and ends, if it has one: between the
 * first '%' (else ':') of the user info and the last '@'. */
static bool find_password(const char *text, const char **begin, const char **end)
{
	const char *info = strstr(text, "://");
	const char *at = strrchr(text, '@');
	const char *sep;

	info = info ? info + 3 : text;
	if (!at || at < info)
		return false;
	sep = memchr(info, '%', (size_t)(at - info));
	if (!sep)
		sep = memchr(info, ':', (size_t)(at - info));
	if (!sep || sep + 1 == at)
		return false;
	*begin = sep + 1;
	*end = at;
	return true;
}

/* The URL as an error message may show it: password replaced by "***",
 * control characters by '?', cut to URL_DISPLAY_MAX with "...". */
static void url_display(const char *text, char *buf, size_t cap)
{
	const char *pw_begin = NULL, *pw_end = NULL;
	size_t n = 0;
	bool cut = false;

	find_password(text, &pw_begin, &pw_end);
	for (const char *p = text; *p; p++) {
		const char *piece;
		char one[2] = { *p, '\0' };

		if (p == pw_begin) {
			piece = "***";
			p = pw_end - 1;
		} else {
			if (is_control(*p))
				one[0] = '?';
			piece = one;
		}
		size_t len = strlen(piece);
		if (n + len > URL_DISPLAY_MAX || n + len + 4 > cap) {
			cut = true;
			break;
		}
		memcpy(buf + n, piece, len);
		n += len;
	}
	if (cut) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
}

static int url_fail(const char *text, struct iscsi_url *out,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int url_fail(const char *text, struct iscsi_url *out, const char *fmt, ...)
{
	char shown[URL_DISPLAY_MAX + 4];
	char cause[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cause, sizeof cause, fmt, ap);
	va_end(ap);
	url_display(text, shown, sizeof shown);
	/* Wipe what was parsed so far: it may hold the password. */
	memset(out, 0, sizeof *out);
	out->lun = -1;
	err_set(EINVAL, "invalid URL \"%s\": %s", shown, cause);
	return -1;
}

/* A character for a message: 'c' when printable, else \xNN. */
static const char *show_char(char c, char buf[5])
{
	if (is_control(c) || (unsigned char)c >= 0x80)
		snprintf(buf, 5, "\\x%02x", (unsigned char)c);
	else
		snprintf(buf, 5, "'%c'", c);
	return buf;
}

enum decode_result {
	DECODE_OK,
	DECODE_BAD_ESCAPE, /* '%' not followed by two hex digits, or %00 */
	DECODE_TOO_LONG,   /* more than cap - 1 bytes once decoded */
};

/* Copy @len bytes at @src into @dst (room for @cap bytes with the NUL),
 * decoding %XX escapes. */
static enum decode_result decode(const char *src, size_t len, char *dst, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char c = src[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return DECODE_BAD_ESCAPE;
			hi = hex_digit_value(src[i + 1]);
			lo = hex_digit_value(src[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return DECODE_BAD_ESCAPE;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (n + 1 >= cap)
			return DECODE_TOO_LONG;
		dst[n++] = c;
	}
	dst[n] = '\0';
	return DECODE_OK;
}

/* USER[%PASSWORD] or USER[:PASSWORD], the @len bytes at @p (before '@'). */
static int parse_userinfo(const char *text, struct iscsi_url *out,
			  const char *p, size_t len)
{
	const char *sep = memchr(p, '%', len);
	size_t user_len;

	if (!sep)
		sep = memchr(p, ':', len);
	user_len = sep ? (size_t)(sep - p) : len;

	for (size_t i = 0; i < len; i++) {
		if (is_control(p[i]))
			return url_fail(text, out, "control character in the user name or password");
	}
	for (size_t i = 0; i < user_len; i++) {
		if (p[i] == '/')
			return url_fail(text, out, "bad character '/' in the user name");
	}
	if (user_len == 0)
		return url_fail(text, out, "empty user name before '@'");
	switch (decode(p, user_len, out->user, sizeof out->user)) {
	case DECODE_OK:
		break;
	case DECODE_BAD_ESCAPE:
		return url_fail(text, out, "bad %%-escape in the user name");
	case DECODE_TOO_LONG:
		return url_fail(text, out, "user name too long (at most %zu bytes)",
				sizeof out->user - 1);
	}
	if (!sep)
		return 0;

	const char *pw = sep + 1;
	size_t pw_len = len - user_len - 1;

	if (pw_len == 0)
		return url_fail(text, out, "empty password after '%c'", *sep);
	switch (decode(pw, pw_len, out->password, sizeof out->password)) {
	case DECODE_OK:
		break;
	case DECODE_BAD_ESCAPE:
		return url_fail(text, out, "bad %%-escape in the password (write '%%' as %%25)");
	case DECODE_TOO_LONG:
		return url_fail(text, out, "password too long (at most %zu bytes)",
				sizeof out->password - 1);
	}
	out->has_password = true;
	return 0;
}

/* "[IPv6]" at @p, @len bytes with the brackets; zone as "%25zone" or
 * "%zone". */
static int parse_ipv6(const char *text, struct iscsi_url *out, const char *p, size_t len)
{
	const char *addr = p + 1;
	size_t addr_len = len - 2;
	const char *zone = memchr(addr, '%', addr_len);
	size_t zone_len = 0;
	char buf[64];
	struct in6_addr a6;

	if (zone) {
		zone_len = addr_len - (size_t)(zone - addr) - 1;
		addr_len = (size_t)(zone - addr);
		zone++;
		if (zone_len >= 2 && zone[0] == '2' && zone[1] == '5') {
			zone += 2;
			zone_len -= 2;
		}
		if (zone_len == 0)
			return url_fail(text, out, "empty IPv6 zone after '%%'");
		for (size_t i = 0; i < zone_len; i++) {
			char c = zone[i];

			if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_' && c != '.')
				return url_fail(text, out, "bad character %s in the IPv6 zone",
						show_char(c, buf));
		}
	}
	if (addr_len == 0)
		return url_fail(text, out, "empty host \"[]\"");
	if (addr_len >= INET6_ADDRSTRLEN)
		return url_fail(text, out, "bad IPv6 address: too long");
	memcpy(buf, addr, addr_len);
	buf[addr_len] = '\0';
	if (inet_pton(AF_INET6, buf, &a6) != 1)
		return url_fail(text, out, "bad IPv6 address \"%s\"", buf);
	if (zone)
		snprintf(out->host, sizeof out->host, "%s%%%.*s", buf, (int)zone_len, zone);
	else
		snprintf(out->host, sizeof out->host, "%s", buf);
	out->ipv6 = true;
	return 0;
}

/* A host name or IPv4 address: the @len bytes at @p. */
static int parse_hostname(const char *text, struct iscsi_url *out, const char *p, size_t len)
{
	bool numeric = true;
	char ch[5];

	if (len == 0)
		return url_fail(text, out, "empty host");
	if (len >= sizeof out->host)
		return url_fail(text, out, "host name too long (at most %zu bytes)",
				sizeof out->host - 1);
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_')
			return url_fail(text, out, "bad character %s in the host name",
					show_char(c, ch));
		if (!is_digit(c) && c != '.')
			numeric = false;
	}
	memcpy(out->host, p, len);
	out->host[len] = '\0';
	if (numeric) {
		struct in_addr a4;

		if (inet_pton(AF_INET, out->host, &a4) != 1)
			return url_fail(text, out, "bad IPv4 address \"%s\"", out->host);
	}
	return 0;
}

/* PORT: the @len bytes at @p (after ':'). */
static int parse_port(const char *text, struct iscsi_url *out, const char *p, size_t len)
{
	unsigned long port = 0;

	if (len == 0 || len > 5)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(p[i]))
			goto bad;
		port = port * 10 + (unsigned long)(p[i] - '0');
	}
	if (port < 1 || port > 65535)
		goto bad;
	out->port = (uint16_t)port;
	return 0;
bad:
	return url_fail(text, out, "bad port \"%.*s\": must be a number 1..65535",
			(int)(len > 16 ? 16 : len), p);
}

/* TARGET-IQN: the @len bytes at @p, %XX decoded, then checked against the
 * characters RFC 3722 leaves in an iSCSI name (upper case accepted). */
static int parse_target(const char *text, struct iscsi_url *out, const char *p, size_t len)
{
	char ch[5];

	switch (decode(p, len, out->target, sizeof out->target)) {
	case DECODE_OK:
		break;
	case DECODE_BAD_ESCAPE:
		return url_fail(text, out, "bad %%-escape in the target name");
	case DECODE_TOO_LONG:
		return url_fail(text, out, "target name too long (at most %zu bytes)",
				sizeof out->target - 1);
	}
	for (const char *t = out->target; *t; t++) {
		char c = *t;

		if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != ':')
			return url_fail(text, out, "bad character %s in the target name",
					show_char(c, ch));
	}
	if (strstr(out->target, ".."))
		return url_fail(text, out, "\"..\" in the target name");
	return 0;
}

/* LUN: the rest of the URL at @p (after the target's '/'). */
static int parse_lun(const char *text, struct iscsi_url *out, const char *p)
{
	size_t len = strcspn(p, "/");
	long lun = 0;

	if (len == 0 || len > 8)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(p[i]))
			goto bad;
		lun = lun * 10 + (p[i] - '0');
	}
	if (lun > ISCSI_URL_MAX_LUN)
		goto bad;
	if (p[len] != '\0')
		return url_fail(text, out, "trailing \"%.16s\" after the LUN", p + len);
	out->lun = lun;
	return 0;
bad:
	return url_fail(text, out, "bad LUN \"%.*s\": must be a number 0..%d",
			(int)(len > 16 ? 16 : len), p, ISCSI_URL_MAX_LUN);
}

int url_parse(const char *text, struct iscsi_url *out)
{
	const char *p, *at;
	size_t len;

	memset(out, 0, sizeof *out);
	out->port = ISCSI_DEFAULT_PORT;
	out->lun = -1;
	if (!text)
		return url_fail("", out, "no URL given");
	if (strncasecmp(text, URL_SCHEME, URL_SCHEME_LEN) != 0)
		return url_fail(text, out, "must start with " URL_SCHEME);
	p = text + URL_SCHEME_LEN;

	/* Nothing after the user info may contain '@', so the last one ends
	 * it and a password may contain any other character. */
	at = strrchr(p, '@');
	if (at) {
		if (parse_userinfo(text, out, p, (size_t)(at - p)) < 0)
			return -1;
		p = at + 1;
	}

	if (*p == '[') {
		const char *close = memchr(p, ']', strcspn(p, "/"));

		if (!close)
			return url_fail(text, out, "unterminated '[' in the host");
		len = (size_t)(close - p) + 1;
		if (parse_ipv6(text, out, p, len) < 0)
			return -1;
		p += len;
		if (*p != '\0' && *p != ':' && *p != '/')
			return url_fail(text, out, "unexpected \"%.16s\" after ']'", p);
	} else {
		size_t authority = strcspn(p, "/");
		const char *colon = memchr(p, ':', authority);

		if (colon && memchr(colon + 1, ':', authority - (size_t)(colon - p) - 1))
			return url_fail(text, out, "an IPv6 address must be in brackets, as [::1]");
		len = strcspn(p, ":/");
		if (parse_hostname(text, out, p, len) < 0)
			return -1;
		p += len;
	}

	if (*p == ':') {
		p++;
		len = strcspn(p, "/");
		if (parse_port(text, out, p, len) < 0)
			return -1;
		p += len;
	}

	/* Portal form: nothing, or just "/", after the host. */
	if (*p == '\0' || (p[0] == '/' && p[1] == '\0'))
		return 0;
	p++;

	len = strcspn(p, "/");
	if (len == 0)
		return url_fail(text, out, "empty target name");
	if (parse_target(text, out, p, len) < 0)
		return -1;
	p += len;

	/* Target form: nothing, or just "/", after the target. */
	if (*p == '\0' || (p[0] == '/' && p[1] == '\0'))
		return 0;
	return parse_lun(text, out, p + 1);
}
