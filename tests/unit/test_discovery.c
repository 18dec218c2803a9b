/* test_discovery.c: unit tests of the SendTargets answer parser
 * (discovery_parse, discovery_parse_address): the forms RFC 7143 allows
 * for TargetAddress, continuations of several targets, and what a hostile
 * target may send instead.
 *
 * Thread model: single-threaded test program.
 */
#include <errno.h>
#include <string.h>

#include "discovery.h"
#include "log.h"
#include "testlib.h"

/* A text segment from a C string literal with explicit NULs. */
#define SEG(s) (s), (sizeof(s) - 1)

static void test_addresses(void)
{
	struct discovery_portal p;

	CHECK(discovery_parse_address("10.0.0.5", &p) == 0);
	CHECK_STR(p.host, "10.0.0.5");
	CHECK_EQ_U64(p.port, 3260);
	CHECK(p.tpgt == -1);
	CHECK(discovery_parse_address("10.0.0.5:3261,7", &p) == 0);
	CHECK_STR(p.host, "10.0.0.5");
	CHECK_EQ_U64(p.port, 3261);
	CHECK(p.tpgt == 7);
	CHECK(discovery_parse_address("host.example,1", &p) == 0);
	CHECK_STR(p.host, "host.example");
	CHECK_EQ_U64(p.port, 3260);
	CHECK(p.tpgt == 1);
	CHECK(discovery_parse_address("[fe80::1%eth0]:860,2", &p) == 0);
	CHECK_STR(p.host, "fe80::1%eth0");
	CHECK_EQ_U64(p.port, 860);
	CHECK(discovery_parse_address("[::1]", &p) == 0);
	CHECK_STR(p.host, "::1");
	CHECK_EQ_U64(p.port, 3260);

	static const char *const bad[] = {
		"", ":3260", "[::1", "[]:3260", "host:", "host:0", "host:65536", "host:12x",
		"host,", "host,70000", "host:3260,1,2", "host:3260x", "host: 3260", "host:+3260",
		"host,+1", "host, 1",
		/* issue 12 item 8: control characters and non-ASCII bytes */
		"10.0.0.1\x1b[2J:3260,1", "host\x07", "host:3260,1\x1b]0;x\x07", "\x7f",
		"h\xc3\xa9te", "[::1\x1b]:3260",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(discovery_parse_address(bad[i], &p) < 0);
		CHECK(err_errno() == EPROTO);
	}
	/* the message names the byte and never shows the value */
	CHECK(discovery_parse_address("evil\x1b[31m:3260", &p) < 0);
	CHECK_STR(err_msg(), "TargetAddress with byte 0x1b");
	char long_host[400];
	memset(long_host, 'a', sizeof long_host - 1);
	long_host[sizeof long_host - 1] = '\0';
	CHECK(discovery_parse_address(long_host, &p) < 0);
}

static void test_answers(void)
{
	struct discovery d;

	CHECK(discovery_parse(SEG("TargetName=iqn.a:one\0TargetAddress=10.0.0.1:3260,1\0"
				  "TargetAddress=[::1]:3260,1\0TargetAlias=x\0"
				  "TargetName=iqn.a:two\0"), &d) == 0);
	CHECK_EQ_U64(d.ntargets, 2);
	CHECK_STR(d.targets[0].name, "iqn.a:one");
	CHECK_EQ_U64(d.targets[0].nportals, 2);
	CHECK_STR(d.targets[0].portals[1].host, "::1");
	CHECK_STR(d.targets[1].name, "iqn.a:two");
	CHECK_EQ_U64(d.targets[1].nportals, 0);
	discovery_free(&d);

	CHECK(discovery_parse(SEG(""), &d) == 0);
	CHECK_EQ_U64(d.ntargets, 0);
	discovery_free(&d);

	/* more portals than kept: the rest ignored, no overflow */
	char many[2048] = "TargetName=iqn.a:m";
	size_t len = strlen(many) + 1;
	for (int i = 0; i < 20; i++)
		len += (size_t)snprintf(many + len, sizeof many - len, "TargetAddress=10.0.0.%d", i) + 1;
	CHECK(discovery_parse(many, len, &d) == 0);
	CHECK_EQ_U64(d.targets[0].nportals, DISCOVERY_MAX_PORTALS);
	discovery_free(&d);

	/* issue 12 item 9: a TargetName listed again is the same target,
	 * with the portals of both listings, each once */
	CHECK(discovery_parse(SEG("TargetName=iqn.a:one\0TargetAddress=10.0.0.1:3260,1\0"
				  "TargetName=iqn.a:two\0TargetAddress=10.0.0.9\0"
				  "TargetName=iqn.a:one\0TargetAddress=10.0.0.2:3260,2\0"
				  "TargetAddress=10.0.0.1:3260,1\0"), &d) == 0);
	CHECK_EQ_U64(d.ntargets, 2);
	CHECK_STR(d.targets[0].name, "iqn.a:one");
	CHECK_EQ_U64(d.targets[0].nportals, 2);
	CHECK_STR(d.targets[0].portals[0].host, "10.0.0.1");
	CHECK_STR(d.targets[0].portals[1].host, "10.0.0.2");
	CHECK_EQ_U64(d.targets[1].nportals, 1);
	discovery_free(&d);
	/* the statistics directory's name is left out, with its addresses,
	 * and nothing else is */
	CHECK(discovery_parse(SEG("TargetName=iqn.a:one\0TargetAddress=10.0.0.1\0"
				  "TargetName=.iscsifs\0TargetAddress=10.0.0.66\0"
				  "TargetName=iqn.a:two\0"), &d) == 0);
	CHECK_EQ_U64(d.ntargets, 2);
	CHECK_STR(d.targets[0].name, "iqn.a:one");
	CHECK_EQ_U64(d.targets[0].nportals, 1);
	CHECK_STR(d.targets[1].name, "iqn.a:two");
	CHECK_EQ_U64(d.targets[1].nportals, 0);
	discovery_free(&d);
	CHECK(discovery_parse(SEG("TargetName=.iscsifs\0TargetAddress=10.0.0.66\0"), &d) == 0);
	CHECK_EQ_U64(d.ntargets, 0);
	discovery_free(&d);
	CHECK(discovery_parse(SEG("TargetName=.iscsifsx\0"), &d) == 0);
	CHECK_EQ_U64(d.ntargets, 1);
	discovery_free(&d);

	static const struct {
		const char *text;
		size_t len;
	} bad[] = {
		{ SEG("TargetName=iqn.a:x") },                 /* no NUL */
		{ SEG("TargetAddress=10.0.0.1\0") },           /* address before a name */
		{ SEG("TargetName=iqn.a:x\0garbage\0") },      /* not key=value */
		{ SEG("TargetName=iqn.a:x\0TargetAddress=h:0\0") },
		{ SEG("TargetName=iqn.a:x\0TargetAddress=h\x1b[2J:3260,1\0") },
		{ SEG("TargetName=.iscsifs\0TargetAddress=h\x1b[2J\0") },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(discovery_parse(bad[i].text, bad[i].len, &d) < 0);
		CHECK(d.ntargets == 0 && d.targets == NULL);
	}
	/* a name no directory can have leaves that target out, with its
	 * addresses; the others stay (an address that cannot be read still
	 * fails the answer, above: the discovery portal in its place could
	 * be another target's) */
	static const struct {
		const char *text;
		size_t len;
	} unusable[] = {
		{ SEG("TargetName=\0TargetAddress=10.0.0.66\0") },               /* empty */
		{ SEG("TargetName=iqn.a/../etc\0TargetAddress=10.0.0.66\0") },   /* '/' */
		{ SEG("TargetName=..\0TargetAddress=10.0.0.66\0") },
		{ SEG("TargetName=.\0TargetAddress=10.0.0.66\0") },
		{ SEG("TargetName=iqn.a:\x01x\0TargetAddress=10.0.0.66\0") },    /* control */
		{ SEG("TargetName=iqn.a:b c\0TargetAddress=10.0.0.66\0") },      /* space */
	};
	for (size_t i = 0; i < sizeof unusable / sizeof unusable[0]; i++) {
		static const char before[] = "TargetName=iqn.a:one\0TargetAddress=10.0.0.1\0";
		static const char after[] = "TargetName=iqn.a:two\0";
		char text[256];
		size_t n = 0;
		/* (sizeof - 1: the literal's own NUL left out) */
		memcpy(text, before, sizeof before - 1);
		n += sizeof before - 1;
		memcpy(text + n, unusable[i].text, unusable[i].len);
		n += unusable[i].len;
		memcpy(text + n, after, sizeof after - 1);
		n += sizeof after - 1;
		CHECK(discovery_parse(text, n, &d) == 0);
		CHECK_EQ_U64(d.ntargets, 2);
		if (d.ntargets == 2) {
			CHECK_STR(d.targets[0].name, "iqn.a:one");
			CHECK_EQ_U64(d.targets[0].nportals, 1);
			CHECK_STR(d.targets[1].name, "iqn.a:two");
			CHECK_EQ_U64(d.targets[1].nportals, 0);
		}
		discovery_free(&d);
	}
	char name[300] = "TargetName=";
	memset(name + 11, 'n', 250);
	CHECK(discovery_parse(name, sizeof name, &d) == 0);
	CHECK_EQ_U64(d.ntargets, 0);
	discovery_free(&d);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	test_addresses();
	test_answers();
	return test_done("test_discovery");
}
