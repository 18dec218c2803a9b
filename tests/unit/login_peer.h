/* login_peer.h: the wire of a scripted target for the login unit tests
 * (test_login_chap.c, test_login_redirect.c): read a Login Request, send
 * a Login Response.  Header-only, static functions; blocking I/O on the
 * socket the test's target thread accepted.
 */
#ifndef ISCSIFS_LOGIN_PEER_H
#define ISCSIFS_LOGIN_PEER_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One Login Request as the target reads it. */
struct request {
	uint8_t bhs[48];              /* its header */
	char text[8192];              /* its data segment, NUL terminated */
	size_t len;                   /* bytes in text */
};

static int read_all(int fd, void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = read(fd, (uint8_t *)buf + got, len - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int read_request(int fd, struct request *r)
{
	uint8_t pad[4];

	if (read_all(fd, r->bhs, 48) < 0)
		return -1;
	r->len = (size_t)r->bhs[5] << 16 | (size_t)r->bhs[6] << 8 | r->bhs[7];
	if (r->len >= sizeof r->text || read_all(fd, r->text, r->len) < 0 ||
	    read_all(fd, pad, (4 - r->len % 4) % 4) < 0)
		return -1;
	r->text[r->len] = '\0';
	return 0;
}

/* The value of @key in @r, or NULL. */
static const char *value_of(const struct request *r, const char *key)
{
	size_t klen = strlen(key);

	for (size_t off = 0; off < r->len; off += strlen(r->text + off) + 1)
		if (strncmp(r->text + off, key, klen) == 0 && r->text[off + klen] == '=')
			return r->text + off + klen + 1;
	return NULL;
}

/* Text of a response under construction. */
struct answer {
	char text[4096];              /* key=value pairs, NUL separated */
	size_t len;                   /* bytes used */
};

static void add(struct answer *a, const char *key, const char *value)
{
	a->len += (size_t)snprintf(a->text + a->len, sizeof a->text - a->len, "%s=%s", key,
				   value) + 1;
}

/* Send a Login Response to @r: @flags (T, CSG, NSG), a status and @a. */
static void respond(int fd, const struct request *r, uint8_t flags, uint8_t sclass,
		    uint8_t sdetail, const struct answer *a)
{
	static atomic_uint statsn;      /* (connections log in at once) */
	uint8_t bhs[48] = { 0x23 }, pad[4] = { 0 };
	size_t len = a ? a->len : 0;

	bhs[1] = flags;
	bhs[5] = (uint8_t)(len >> 16);
	bhs[6] = (uint8_t)(len >> 8);
	bhs[7] = (uint8_t)len;
	memcpy(bhs + 8, r->bhs + 8, 6);                  /* ISID */
	bhs[15] = (flags & 3) == 3 ? 1 : 0;              /* TSIH once in FFP */
	memcpy(bhs + 16, r->bhs + 16, 4);                /* ITT */
	bhs[27] = (uint8_t)(atomic_fetch_add(&statsn, 1) + 1);
	bhs[31] = 1;                                     /* ExpCmdSN */
	bhs[35] = 1;                                     /* MaxCmdSN */
	bhs[36] = sclass;
	bhs[37] = sdetail;
	if (write(fd, bhs, 48) != 48 || (len && write(fd, a->text, len) != (ssize_t)len) ||
	    write(fd, pad, (4 - len % 4) % 4) < 0)
		fprintf(stderr, "scripted target: write failed\n");
}

/* Answer every operational key with the first item of our value. */
static void answer_operational(int fd, const struct request *r)
{
	struct answer a = { .len = 0 };

	for (size_t off = 0; off < r->len; off += strlen(r->text + off) + 1) {
		char pair[300];
		snprintf(pair, sizeof pair, "%s", r->text + off);
		char *eq = strchr(pair, '='), *comma;
		if (!eq)
			continue;
		*eq = '\0';
		if ((comma = strchr(eq + 1, ',')))
			*comma = '\0';
		add(&a, pair, eq + 1);
	}
	respond(fd, r, 0x80 | 1 << 2 | 3, 0, 0, &a);
}

#endif /* ISCSIFS_LOGIN_PEER_H */
