/* test_url.c: url_parse() against a table of good and bad URLs.
 *
 * Good URLs list every field they should produce; bad ones a fragment the
 * error message must contain.  Error messages must never show a password.
 * Single-threaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "testlib.h"
#include "url.h"

#define IQN "iqn.2026-11.org.iscsifs:disk1"

struct good {
	const char *url;      /* input */
	const char *host;     /* expected fields */
	uint16_t port;
	const char *target;
	int64_t lun;
	const char *user;
	const char *password;
	bool ipv6;
};

static const struct good goods[] = {
	/* portal forms */
	{ "iscsi://127.0.0.1", "127.0.0.1", 3260, "", -1, "", "", false },
	{ "iscsi://127.0.0.1/", "127.0.0.1", 3260, "", -1, "", "", false },
	{ "iscsi://127.0.0.1:3261/", "127.0.0.1", 3261, "", -1, "", "", false },
	{ "iscsi://storage.example.com", "storage.example.com", 3260, "", -1, "", "", false },
	{ "iscsi://my-host_1:1", "my-host_1", 1, "", -1, "", "", false },
	{ "iscsi://h:65535", "h", 65535, "", -1, "", "", false },
	{ "ISCSI://Host", "Host", 3260, "", -1, "", "", false },
	{ "iscsi://[::1]", "::1", 3260, "", -1, "", "", true },
	{ "iscsi://[::1]:3261", "::1", 3261, "", -1, "", "", true },
	{ "iscsi://[::1]:3261/", "::1", 3261, "", -1, "", "", true },
	{ "iscsi://[fe80::1]/", "fe80::1", 3260, "", -1, "", "", true },
	{ "iscsi://[fe80::1%25eth0]/", "fe80::1%eth0", 3260, "", -1, "", "", true },
	{ "iscsi://[fe80::1%eth0]:99", "fe80::1%eth0", 99, "", -1, "", "", true },
	{ "iscsi://[::ffff:10.0.0.1]", "::ffff:10.0.0.1", 3260, "", -1, "", "", true },
	/* target forms */
	{ "iscsi://10.1.2.3/" IQN, "10.1.2.3", 3260, IQN, -1, "", "", false },
	{ "iscsi://10.1.2.3/" IQN "/", "10.1.2.3", 3260, IQN, -1, "", "", false },
	{ "iscsi://10.1.2.3:3262/" IQN "/0", "10.1.2.3", 3262, IQN, 0, "", "", false },
	{ "iscsi://[::1]:3261/" IQN "/1", "::1", 3261, IQN, 1, "", "", true },
	{ "iscsi://h/" IQN "/16383", "h", 3260, IQN, 16383, "", "", false },
	{ "iscsi://h/" IQN "/007", "h", 3260, IQN, 7, "", "", false },
	{ "iscsi://h/IQN.2001-04.COM.EXAMPLE:DISK", "h", 3260,
	  "IQN.2001-04.COM.EXAMPLE:DISK", -1, "", "", false },
	{ "iscsi://h/eui.02004567A425678D", "h", 3260, "eui.02004567A425678D", -1, "", "", false },
	{ "iscsi://h/iqn.2001-04.com.example%3Adisk", "h", 3260,
	  "iqn.2001-04.com.example:disk", -1, "", "", false },
	/* user and password */
	{ "iscsi://alice@h/" IQN, "h", 3260, IQN, -1, "alice", "", false },
	{ "iscsi://alice%secret@h/" IQN "/2", "h", 3260, IQN, 2, "alice", "secret", false },
	{ "iscsi://alice:secret@h", "h", 3260, "", -1, "alice", "secret", false },
	{ "iscsi://alice%se%25cr%40et@h", "h", 3260, "", -1, "alice", "se%cr@et", false },
	{ "iscsi://alice%p/ss:w@rd@[::1]:5/" IQN, "::1", 5, IQN, -1, "alice", "p/ss:w@rd", true },
	{ "iscsi://alice%a%3Ab@h", "h", 3260, "", -1, "alice", "a:b", false },
	{ "iscsi://iqn.1994-05.com.redhat:client@h", "h", 3260, "", -1,
	  "iqn.1994-05.com.redhat", "client", false },
};

struct bad {
	const char *url;      /* input */
	const char *message;  /* must appear in err_msg() */
};

static char long_host[400], long_target[400], long_user[400], long_pw[400];

static const struct bad bads[] = {
	{ "", "must start with iscsi://" },
	{ "x", "invalid URL \"x\": must start with iscsi://" },
	{ "http://h/", "must start with iscsi://" },
	{ "iscsi:/h", "must start with iscsi://" },
	{ "iscsi://", "empty host" },
	{ "iscsi:///" IQN, "empty host" },
	{ "iscsi://:3260/", "empty host" },
	{ "alice@h", "must start with iscsi://" },
	{ "iscsi://h:", "bad port" },
	{ "iscsi://h:/", "bad port" },
	{ "iscsi://h:0", "bad port" },
	{ "iscsi://h:65536", "bad port" },
	{ "iscsi://h:99999999999999999999", "bad port" },
	{ "iscsi://h:-1", "bad port" },
	{ "iscsi://h:+1", "bad port" },
	{ "iscsi://h:32x0", "bad port" },
	{ "iscsi://h: 3260", "bad port" },
	{ "iscsi://[::1", "unterminated '['" },
	{ "iscsi://[::1/" IQN, "unterminated '['" },
	{ "iscsi://[]", "empty host" },
	{ "iscsi://[::1]x", "unexpected \"x\" after ']'" },
	{ "iscsi://[::1]]", "unexpected" },
	{ "iscsi://[not-an-address]", "bad IPv6 address" },
	{ "iscsi://[1.2.3.4]", "bad IPv6 address" },
	{ "iscsi://[fe80::1%]", "empty IPv6 zone" },
	{ "iscsi://[fe80::1%25]", "empty IPv6 zone" },
	{ "iscsi://[fe80::1%e/0]", "unterminated" },
	{ "iscsi://[fe80::1%e 0]", "bad character ' ' in the IPv6 zone" },
	{ "iscsi://::1/", "must be in brackets" },
	{ "iscsi://fe80::1:3260/", "must be in brackets" },
	{ "iscsi://ho st/", "bad character ' ' in the host name" },
	{ "iscsi://h\t/", "bad character \\x09 in the host name" },
	{ "iscsi://h?x=1", "bad character '?' in the host name" },
	{ "iscsi://h\xc3\xa9/", "bad character \\xc3 in the host name" },
	{ "iscsi://999.1.1.1/", "bad IPv4 address" },
	{ "iscsi://1.2.3/", "bad IPv4 address" },
	{ "iscsi://h//", "empty target name" },
	{ "iscsi://h//0", "empty target name" },
	{ "iscsi://h/iqn.x/y", "bad LUN \"y\"" },
	{ "iscsi://h/iqn.a b", "bad character ' ' in the target name" },
	{ "iscsi://h/iqn.a_b", "bad character '_' in the target name" },
	{ "iscsi://h/iqn.a\x01", "bad character \\x01 in the target name" },
	{ "iscsi://h/iqn.a%2Fb", "bad character '/' in the target name" },
	{ "iscsi://h/iqn.a%2", "bad %-escape in the target name" },
	{ "iscsi://h/iqn.a%zz", "bad %-escape in the target name" },
	{ "iscsi://h/iqn.a%00", "bad %-escape in the target name" },
	{ "iscsi://h/iqn..a", "\"..\" in the target name" },
	{ "iscsi://h/..", "\"..\" in the target name" },
	{ "iscsi://h/iqn.a?x", "bad character '?' in the target name" },
	{ "iscsi://h/" IQN "/-1", "bad LUN \"-1\"" },
	{ "iscsi://h/" IQN "/+1", "bad LUN" },
	{ "iscsi://h/" IQN "/16384", "bad LUN \"16384\": must be a number 0..16383" },
	{ "iscsi://h/" IQN "/99999999999999999999", "bad LUN" },
	{ "iscsi://h/" IQN "/0x1", "bad LUN \"0x1\"" },
	{ "iscsi://h/" IQN "/ 1", "bad LUN" },
	{ "iscsi://h/" IQN "/1 ", "bad LUN" },
	{ "iscsi://h/" IQN "//", "bad LUN \"\"" },
	{ "iscsi://h/" IQN "/1/", "trailing \"/\" after the LUN" },
	{ "iscsi://h/" IQN "/1/2", "trailing \"/2\" after the LUN" },
	{ "iscsi://h/" IQN "/1/lun", "trailing" },
	{ "iscsi://@h", "empty user name" },
	{ "iscsi://%pw@h", "empty user name" },
	{ "iscsi://alice%@h", "empty password" },
	{ "iscsi://alice:@h", "empty password" },
	{ "iscsi://al/ice@h", "bad character '/' in the user name" },
	{ "iscsi://h/iqn.a@b", "bad character '/' in the user name" },
	{ "iscsi://alice\n@h", "control character in the user name" },
	{ "iscsi://alice@", "empty host" },
	{ "iscsi://alice%pw@h:x", "bad port" },
	{ long_host, "host name too long" },
	{ long_target, "target name too long" },
	{ long_user, "user name too long" },
	{ long_pw, "password too long" },
};

static void setup_long(void)
{
	/* 256 characters: one more than the fields hold. */
	snprintf(long_host, sizeof long_host, "iscsi://%0256d/", 0);
	memset(long_host + 8, 'a', 256);
	snprintf(long_target, sizeof long_target, "iscsi://h/iqn.%0220d", 0);
	snprintf(long_user, sizeof long_user, "iscsi://%0256d@h", 0);
	snprintf(long_pw, sizeof long_pw, "iscsi://u%%%0256d@h", 0);
}

static void test_good(void)
{
	for (size_t i = 0; i < sizeof goods / sizeof goods[0]; i++) {
		const struct good *g = &goods[i];
		struct iscsi_url u;
		int rc = url_parse(g->url, &u);

		CHECK(rc == 0);
		if (rc != 0) {
			fprintf(stderr, "  %s: %s\n", g->url, err_msg());
			continue;
		}
		CHECK_STR(u.host, g->host);
		CHECK_EQ_U64(u.port, g->port);
		CHECK_STR(u.target, g->target);
		CHECK_EQ_U64(u.lun, g->lun);
		CHECK_STR(u.user, g->user);
		CHECK_STR(u.password, g->password);
		CHECK(u.has_password == (g->password[0] != '\0'));
		CHECK(u.ipv6 == g->ipv6);
	}
}

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
		const struct bad *b = &bads[i];
		struct iscsi_url u;
		int rc;

		memset(&u, 0x5a, sizeof u);
		err_set(0, "%s", "");
		rc = url_parse(b->url, &u);
		CHECK(rc == -1);
		CHECK(err_errno() == EINVAL);
		CHECK(strncmp(err_msg(), "invalid URL \"", 13) == 0);
		CHECK(strstr(err_msg(), b->message) != NULL);
		if (rc != -1 || !strstr(err_msg(), b->message))
			fprintf(stderr, "  url \"%.60s\": got \"%s\", want \"%s\"\n",
				b->url, rc == 0 ? "(accepted)" : err_msg(), b->message);
		/* Nothing half-parsed is left behind. */
		CHECK(u.host[0] == '\0' && u.password[0] == '\0' && !u.has_password);
		CHECK(u.lun == -1);
		/* One line, whatever the URL held. */
		CHECK(strchr(err_msg(), '\n') == NULL);
	}
	CHECK(url_parse(NULL, &(struct iscsi_url){ 0 }) == -1);
}

/* The password never appears in an error message. */
static void test_redaction(void)
{
	static const char *const urls[] = {
		"iscsi://alice%Sup3rS3cret@h:0/",
		"iscsi://alice:Sup3rS3cret@h/bad_name",
		"iscsi://alice%Sup3rS3cret@h/" IQN "/99999",
		"http://alice%Sup3rS3cret@h/",
		"iscsi://alice%Sup3rS3cret%zz@h/",
	};
	struct iscsi_url u;

	for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
		CHECK(url_parse(urls[i], &u) == -1);
		CHECK(strstr(err_msg(), "Sup3r") == NULL);
		CHECK(strstr(err_msg(), "alice%***@h") != NULL ||
		      strstr(err_msg(), "alice:***@h") != NULL);
	}
	/* A very long URL is cut in the message. */
	char longurl[1200];
	snprintf(longurl, sizeof longurl, "iscsi://h/iqn.%01000d?", 0);
	CHECK(url_parse(longurl, &u) == -1);
	CHECK(strstr(err_msg(), "...\"") != NULL);
	CHECK(strlen(err_msg()) < 400);
}

/* Fields exactly at their limits are accepted. */
static void test_limits(void)
{
	char text[600];
	struct iscsi_url u;

	snprintf(text, sizeof text, "iscsi://%0255d/", 0);
	memset(text + 8, 'h', 255);
	CHECK(url_parse(text, &u) == 0);
	CHECK(strlen(u.host) == 255);

	snprintf(text, sizeof text, "iscsi://h/iqn.%0219d/3", 0);
	CHECK(url_parse(text, &u) == 0);
	CHECK(strlen(u.target) == 223);
	CHECK_EQ_U64(u.lun, 3);

	/* 255 bytes once decoded, though the text is longer. */
	snprintf(text, sizeof text, "iscsi://u%%%%41%0254d@h", 0);
	CHECK(url_parse(text, &u) == 0);
	CHECK(strlen(u.password) == 255);
	CHECK(u.password[0] == 'A');
}

int main(void)
{
	setup_long();
	test_good();
	test_bad();
	test_redaction();
	test_limits();
	return test_done("test_url");
}
