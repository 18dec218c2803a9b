/* test_portal.c: portal_format() (include/portal.h), table-driven. */
#include <stdbool.h>
#include <stdint.h>

#include "portal.h"
#include "testlib.h"

/* A 255-byte host (the most a portal holds) into @out: a name of 'h's,
 * or with @v6 an address-like one that starts with "::". */
static void longest_host(char out[256], bool v6)
{
	memset(out, 'h', 255);
	if (v6)
		memcpy(out, "::", 2);
	out[255] = '\0';
}

static void test_vectors(void)
{
	static const struct {
		const char *host;     /* as given */
		uint16_t port;        /* as given */
		const char *text;     /* what a user reads */
	} cases[] = {
		{ "target.example", 3260, "target.example:3260" },
		{ "127.0.0.1", 3261, "127.0.0.1:3261" },
		{ "localhost", 0, "localhost:0" },
		{ "::1", 3260, "[::1]:3260" },
		{ "fe80::1", 65535, "[fe80::1]:65535" },
		{ "fe80::1%eth0", 3260, "[fe80::1%eth0]:3260" },
		{ "2001:db8::a:b:c", 860, "[2001:db8::a:b:c]:860" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[PORTAL_TEXT_MAX];

		portal_format(out, sizeof out, cases[i].host, cases[i].port);
		CHECK_STR(out, cases[i].text);
	}
}

/* The longest host with the longest port fits PORTAL_TEXT_MAX; a short
 * buffer gets the text cut short, NUL-terminated. */
static void test_sizes(void)
{
	char host[256], out[PORTAL_TEXT_MAX], small[8];

	longest_host(host, false);
	portal_format(out, sizeof out, host, 65535);
	CHECK_EQ_U64(strlen(out), 255 + strlen(":65535"));
	CHECK_STR(out + 255, ":65535");

	longest_host(host, true);
	portal_format(out, sizeof out, host, 65535);
	CHECK_EQ_U64(strlen(out), 1 + 255 + strlen("]:65535"));
	CHECK(out[0] == '[');
	CHECK_STR(out + 256, "]:65535");

	portal_format(small, sizeof small, "fe80::1", 3260);
	CHECK_STR(small, "[fe80::");
}

int main(void)
{
	test_vectors();
	test_sizes();
	return test_done("test_portal");
}
