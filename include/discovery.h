/* discovery.h: SendTargets discovery (RFC 7143 §11.10, Appendix C).
 *
 * A discovery session logs in with SessionType=Discovery, asks for
 * SendTargets=All in Text Requests (following continuations), logs out,
 * and returns the targets with their portals.
 */
#ifndef ISCSIFS_DISCOVERY_H
#define ISCSIFS_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

/* The name at the root of a mount that is iscsifs' own (the statistics
 * directory, fs.c): a target of that name is left out (with a log line). */
#define DISCOVERY_RESERVED_NAME ".iscsifs"

/* Portals kept per target; more are ignored (with a log line). */
#define DISCOVERY_MAX_PORTALS 8

/* PDUs that carry nothing (NOP-In, Async Message, a continued Text
 * Response without text) one discovery takes at most; the next fails it. */
#define DISCOVERY_MAX_EMPTY 16

/* One TargetAddress. */
struct discovery_portal {
	char host[256];               /* name or address, IPv6 without brackets */
	uint16_t port;                /* TCP port (3260 when not given) */
	int32_t tpgt;                 /* portal group tag, -1 when not given */
};

/* One target of a SendTargets answer. */
struct discovery_target {
	char name[224];               /* TargetName, checked: printable, no '/' */
	struct discovery_portal portals[DISCOVERY_MAX_PORTALS]; /* its addresses */
	unsigned nportals;            /* entries of portals used */
};

/* What discovery found. */
struct discovery {
	struct discovery_target *targets; /* malloc()ed array */
	size_t ntargets;              /* its entries */
};

/* Run SendTargets=All against the portal of @cfg (host, port, initiator
 * name, ISID, timeouts; its target_name is ignored), all of it, login
 * included, within cfg->connect_timeout_ms (ETIMEDOUT after that).  NOP-Ins
 * that ask for it are answered.  Returns 0 and fills @out, or -1 with
 * err_set() naming the cause. */
int discovery_run(const struct session_config *cfg, struct discovery *out);

/* Parse a SendTargets answer, @len bytes of key=value\0 pairs.  Targets
 * without an address get none (the caller uses the discovery portal).
 * A TargetName listed again is one target with the portals of all its
 * listings (each portal once); DISCOVERY_RESERVED_NAME is left out.
 * Returns 0, or -1 with err_set(EPROTO) on malformed input (a TargetName
 * or TargetAddress with a control character among it). */
int discovery_parse(const char *text, size_t len, struct discovery *out);

/* Parse one TargetAddress value: host[:port][,tpgt], IPv6 in brackets.
 * Returns 0, or -1 with err_set(EPROTO); a value with a byte that is not
 * printable ASCII (or a space) is refused, its message naming the byte,
 * never showing the value. */
int discovery_parse_address(const char *value, struct discovery_portal *out);

void discovery_free(struct discovery *d);

#endif /* ISCSIFS_DISCOVERY_H */
