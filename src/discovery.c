/* discovery.c: SendTargets discovery (see discovery.h).
 *
 * Synchronous, on its own connection, before any thread exists for it:
 * connect, log in (SessionType=Discovery), Text Request SendTargets=All,
 * Text Responses until one has F set and C clear (a continued answer is
 * asked for again with its Target Transfer Tag and an empty request),
 * Logout.  Every answer is bounded by the conn's receive timeout, the
 * whole text by DISCOVERY_MAX_TEXT, and the whole discovery, login
 * included, by one deadline on CLOCK_MONOTONIC: the connect timeout
 * (-o timeout).  NOP-Ins (answered when they ask for it), Async Messages
 * and continued Text Responses without text carry nothing towards the
 * answer: more than DISCOVERY_MAX_EMPTY of them fail the discovery, so a
 * target that sends only these ends it at once rather than at the
 * deadline.
 */
#include "discovery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "portal.h"
#include "login.h"
#include "text.h"
#include "wire.h"

/* The largest SendTargets answer we accept, all continuations together. */
#define DISCOVERY_MAX_TEXT (1u << 20)
/* Continuations we follow at most (a target that never ends is broken). */
#define DISCOVERY_MAX_EXCHANGES 64
/* Targets kept from one answer at most (a hostile answer of tiny
 * TargetName pairs must not make us allocate hundreds of megabytes). */
#define DISCOVERY_MAX_TARGETS 4096
/* The ITT of our Text Requests and Logout; one exchange at a time. */
#define DISCOVERY_ITT 1

/* The state of one discovery session. */
struct disc_session {
	struct conn conn;             /* the connection */
	uint32_t cmdsn;               /* CmdSN of the next request */
	uint32_t exp_statsn;          /* StatSN we expect next */
	uint32_t max_recv_dsl;        /* the longest data segment we declared we take */
	char *text;                   /* the answer so far */
	size_t text_len;              /* bytes of it */
	unsigned nops;                /* NOP-Ins received so far */
	unsigned asyncs;              /* Async Messages received so far */
	unsigned empty_continues;     /* continued Text Responses without text so far */
};

/* Is @c allowed in a target name we show as a directory? */
static bool target_name_char_ok(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '/';
}

/* Is @c allowed in a TargetAddress?  A host name, an IPv4 or a bracketed
 * IPv6 address, a port and a tag are printable ASCII without spaces;
 * anything else (a terminal escape sequence, say) is refused before the
 * value reaches a message, a log line or --list. */
static bool address_char_ok(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

int discovery_parse_address(const char *value, struct discovery_portal *out)
{
	const char *host = value, *host_end, *p;
	char *end;

	memset(out, 0, sizeof *out);
	out->port = 3260;
	out->tpgt = -1;
	for (p = value; *p; p++)
		if (!address_char_ok((unsigned char)*p)) {
			err_set(EPROTO, "TargetAddress with byte 0x%02x", (unsigned char)*p);
			return -1;
		}
	if (*value == '[') {
		host = value + 1;
		host_end = strchr(host, ']');
		if (!host_end) {
			err_set(EPROTO, "TargetAddress %s: unclosed '['", value);
			return -1;
		}
		p = host_end + 1;
	} else {
		host_end = host + strcspn(host, ":,");
		p = host_end;
	}
	if (host_end == host || (size_t)(host_end - host) >= sizeof out->host) {
		err_set(EPROTO, "TargetAddress %s: bad host", value);
		return -1;
	}
	memcpy(out->host, host, (size_t)(host_end - host));
	if (*p == ':') {
		if (p[1] < '0' || p[1] > '9') {
			err_set(EPROTO, "TargetAddress %s: bad port", value);
			return -1;
		}
		errno = 0;
		unsigned long port = strtoul(p + 1, &end, 10);
		if (end == p + 1 || errno || port == 0 || port > 65535) {
			err_set(EPROTO, "TargetAddress %s: bad port", value);
			return -1;
		}
		out->port = (uint16_t)port;
		p = end;
	}
	if (*p == ',') {
		if (p[1] < '0' || p[1] > '9') {
			err_set(EPROTO, "TargetAddress %s: bad portal group tag", value);
			return -1;
		}
		errno = 0;
		unsigned long tpgt = strtoul(p + 1, &end, 10);
		if (end == p + 1 || errno || tpgt > 65535) {
			err_set(EPROTO, "TargetAddress %s: bad portal group tag", value);
			return -1;
		}
		out->tpgt = (int32_t)tpgt;
		p = end;
	}
	if (*p) {
		err_set(EPROTO, "TargetAddress %s: junk after the address", value);
		return -1;
	}
	return 0;
}

/* What discovery_parse() has seen so far, beyond its result. */
struct parse_state {
	size_t cur;                   /* the target TargetAddresses go to now */
	bool named;                   /* a TargetName came (cur or skipping is set) */
	bool skipping;                /* the last TargetName was left out: so are its addresses */
	size_t repeats;               /* TargetNames listed again */
	char first_repeat[sizeof ((struct discovery_target *)0)->name]; /* the first of them */
	bool reserved_seen;           /* DISCOVERY_RESERVED_NAME came (logged once) */
	size_t unusable;              /* targets left out for a name no directory can
	                               * have (the first logged, the count at the end) */
};

/* Why TargetName @name (@len bytes, NUL-terminated) cannot name a
 * directory of the mount, in @buf, or NULL when it can. */
static const char *name_unusable(const char *name, size_t len, char *buf, size_t cap)
{
	if (len == 0)
		return "it is empty";
	if (len >= sizeof ((struct discovery_target *)0)->name) {
		snprintf(buf, cap, "it is %zu bytes long", len);
		return buf;
	}
	for (size_t i = 0; i < len; i++)
		if (!target_name_char_ok((unsigned char)name[i])) {
			snprintf(buf, cap, "it has byte 0x%02x", (unsigned char)name[i]);
			return buf;
		}
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return "it is '.' or '..'";
	return NULL;
}

/* A TargetName (@len bytes, NUL-terminated): a new target, or the one of
 * that name listed before (its addresses are added to that one's), or
 * left out, with its addresses, when it is DISCOVERY_RESERVED_NAME or no
 * directory can have it ('/', '..', a control character: the other
 * targets of the portal stay usable).  Returns 0, or -1 with err_set(). */
static int add_target(struct discovery *d, struct parse_state *st, const char *name, size_t len)
{
	struct discovery_target *t;
	char why_buf[64], shown[TEXT_SHOWN_SIZE];
	const char *why = name_unusable(name, len, why_buf, sizeof why_buf);

	st->named = true;
	st->skipping = false;
	if (why) {
		if (st->unusable++ == 0)
			log_warn("SendTargets: target '%s' left out: no directory can have its name "
				 "(%s)", text_shown(name, shown), why);
		st->skipping = true;
		return 0;
	}
	if (len == sizeof DISCOVERY_RESERVED_NAME - 1 &&
	    memcmp(name, DISCOVERY_RESERVED_NAME, len) == 0) {
		if (!st->reserved_seen)
			log_warn("SendTargets: target '%s' left out: that name is the mount's own "
				 "directory", DISCOVERY_RESERVED_NAME);
		st->reserved_seen = true;
		st->skipping = true;
		return 0;
	}
	/* An iSCSI name names one target: listed again (with other
	 * portals, say) it is the same target, so one directory and one
	 * pool whose sessions may use every portal listed for it. */
	for (size_t i = 0; i < d->ntargets; i++)
		if (strlen(d->targets[i].name) == len && memcmp(d->targets[i].name, name, len) == 0) {
			if (st->repeats++ == 0)
				memcpy(st->first_repeat, name, len);   /* len < its size */
			st->cur = i;
			return 0;
		}
	if (d->ntargets == DISCOVERY_MAX_TARGETS) {
		err_set(EPROTO, "SendTargets: more than %d targets", DISCOVERY_MAX_TARGETS);
		return -1;
	}
	t = realloc(d->targets, (d->ntargets + 1) * sizeof *t);
	if (!t) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	d->targets = t;
	st->cur = d->ntargets;
	t = &d->targets[d->ntargets++];
	memset(t, 0, sizeof *t);
	memcpy(t->name, name, len);
	return 0;
}

/* A TargetAddress of the current target: added unless it is already
 * one of its portals (same host and port). */
static void add_portal(struct discovery_target *t, const struct discovery_portal *portal,
		       const char *value)
{
	for (unsigned i = 0; i < t->nportals; i++)
		if (t->portals[i].port == portal->port && strcmp(t->portals[i].host, portal->host) == 0)
			return;
	if (t->nportals == DISCOVERY_MAX_PORTALS)
		log_warn("target %s: more than %d portals; ignoring %s", t->name,
			 DISCOVERY_MAX_PORTALS, value);
	else
		t->portals[t->nportals++] = *portal;
}

int discovery_parse(const char *text, size_t len, struct discovery *out)
{
	struct parse_state st = { .named = false };
	size_t at = 0;

	memset(out, 0, sizeof *out);
	while (at < len) {
		const char *pair = text + at;
		const char *nul = memchr(pair, '\0', len - at);
		size_t plen = nul ? (size_t)(nul - pair) : len - at;
		const char *eq = memchr(pair, '=', plen);

		at += plen + 1;
		if (plen == 0)
			continue;
		if (!nul) {
			err_set(EPROTO, "SendTargets: text not NUL-terminated");
			goto err;
		}
		if (!eq) {
			char shown[TEXT_SHOWN_SIZE];

			err_set(EPROTO, "SendTargets: '%s' is not key=value",
				text_shown_n(pair, plen, shown));
			goto err;
		}
		size_t klen = (size_t)(eq - pair);
		const char *value = eq + 1;
		size_t vlen = plen - klen - 1;
		if (klen == 10 && memcmp(pair, "TargetName", 10) == 0) {
			if (add_target(out, &st, value, vlen) < 0)
				goto err;
		} else if (klen == 13 && memcmp(pair, "TargetAddress", 13) == 0) {
			struct discovery_portal portal;
			if (!st.named) {
				err_set(EPROTO, "SendTargets: TargetAddress before any TargetName");
				goto err;
			}
			if (discovery_parse_address(value, &portal) < 0) {
				err_set(EPROTO, "SendTargets: %s", err_msg());
				goto err;
			}
			if (!st.skipping)
				add_portal(&out->targets[st.cur], &portal, value);
		}
		/* other keys (TargetAlias, ...) are not needed */
	}
	if (st.unusable > 1)
		log_warn("SendTargets: %zu targets left out in all for their names",
			 st.unusable);
	if (st.repeats)
		log_warn("SendTargets: %zu TargetNames listed again (the first: %s); each is one "
			 "target with the portals of all its listings", st.repeats, st.first_repeat);
	return 0;
err:
	discovery_free(out);
	return -1;
}

void discovery_free(struct discovery *d)
{
	free(d->targets);
	d->targets = NULL;
	d->ntargets = 0;
}

/* Send a Text Request: SendTargets=All first, then empty continuations. */
static int send_text(struct disc_session *s, uint32_t ttt, bool first)
{
	static const char request[] = "SendTargets=All";
	union iscsi_bhs bhs;
	struct iovec iov = { (void *)request, sizeof request };

	memset(&bhs, 0, sizeof bhs);
	bhs.text_req.opcode = ISCSI_OP_TEXT_REQ | ISCSI_FLAG_IMMEDIATE;
	bhs.text_req.flags = ISCSI_FLAG_FINAL;
	put_be32(bhs.text_req.itt, DISCOVERY_ITT);
	put_be32(bhs.text_req.ttt, ttt);
	put_be32(bhs.text_req.cmdsn, s->cmdsn);
	put_be32(bhs.text_req.exp_statsn, s->exp_statsn);
	return conn_send_pdu(&s->conn, &bhs, first ? &iov : NULL, first ? 1 : 0,
			     first ? (uint32_t)sizeof request : 0, false);
}

/* One more PDU that carried nothing: fails when there were too many. */
static int count_empty(struct disc_session *s, unsigned *counter)
{
	++*counter;
	if (s->nops + s->asyncs + s->empty_continues <= DISCOVERY_MAX_EMPTY)
		return 0;
	err_set(EPROTO, "SendTargets: %s sent more than %d PDUs that carry nothing instead of "
		"the answer (%u NOP-In, %u Async Message, %u continued Text Responses without text)",
		s->conn.peer, DISCOVERY_MAX_EMPTY, s->nops, s->asyncs, s->empty_continues);
	return -1;
}

/* The NOP-Out a NOP-In with a Target Transfer Tag asks for (RFC 7143
 * §11.19): its TTT and LUN echoed, no data, our ITT reserved. */
static int answer_nop_in(struct disc_session *s, const union iscsi_bhs *nop_in)
{
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_NOP_OUT, true);
	bhs.nop_out.flags = ISCSI_FLAG_FINAL;
	memcpy(bhs.nop_out.lun, nop_in->nop_in.lun, sizeof bhs.nop_out.lun);
	put_be32(bhs.nop_out.itt, ISCSI_RESERVED_TAG);
	memcpy(bhs.nop_out.ttt, nop_in->nop_in.ttt, sizeof bhs.nop_out.ttt);
	put_be32(bhs.nop_out.cmdsn, s->cmdsn);
	put_be32(bhs.nop_out.exp_statsn, s->exp_statsn);
	return conn_send_pdu(&s->conn, &bhs, NULL, 0, 0, false);
}

/* Receive the next PDU for our exchange into @bhs; the data of a Text
 * Response is appended to s->text.  NOP-Ins (answered when they ask for
 * it) and Async Messages are skipped, and counted.  Returns 0, or -1
 * with err_set(). */
static int recv_answer(struct disc_session *s, union iscsi_bhs *bhs, uint8_t want_opcode)
{
	for (;;) {
		uint8_t opcode;
		uint32_t len;

		/* (the header checks of a login's answers: a target opcode,
		 * no AHS, no segment over what we declared) */
		if (conn_recv_bhs(&s->conn, bhs) < 0 || pdu_check_received(bhs, s->max_recv_dsl) < 0)
			return -1;
		opcode = bhs->common.opcode & ISCSI_OPCODE_MASK;
		len = get_be24(bhs->common.data_len);
		if (opcode == ISCSI_OP_NOP_IN) {
			if (conn_recv_data(&s->conn, NULL, len) < 0 || count_empty(s, &s->nops) < 0)
				return -1;
			if (get_be32(bhs->nop_in.ttt) != ISCSI_RESERVED_TAG && answer_nop_in(s, bhs) < 0)
				return -1;
			continue;
		}
		if (opcode == ISCSI_OP_ASYNC_MSG) {
			if (conn_recv_data(&s->conn, NULL, len) < 0 || count_empty(s, &s->asyncs) < 0)
				return -1;
			continue;
		}
		if (opcode == ISCSI_OP_REJECT) {
			err_set(EPROTO, "discovery: target rejected our %s",
				want_opcode == ISCSI_OP_TEXT_RSP ? "SendTargets request" : "logout");
			return -1;
		}
		if (opcode != want_opcode || get_be32(bhs->common.itt) != DISCOVERY_ITT) {
			err_set(EPROTO, "discovery: unexpected PDU opcode 0x%02x", opcode);
			return -1;
		}
		if (opcode != ISCSI_OP_TEXT_RSP) {
			if (conn_recv_data(&s->conn, NULL, len) < 0)
				return -1;
			return 0;
		}
		if (len > DISCOVERY_MAX_TEXT - s->text_len) {
			err_set(EPROTO, "discovery: SendTargets answer over %u bytes",
				DISCOVERY_MAX_TEXT);
			return -1;
		}
		char *text = realloc(s->text, s->text_len + len + 1);
		if (!text) {
			err_set(ENOMEM, "out of memory");
			return -1;
		}
		s->text = text;
		if (conn_recv_data(&s->conn, s->text + s->text_len, len) < 0)
			return -1;
		s->text_len += len;
		s->exp_statsn = get_be32(bhs->text_rsp.statsn) + 1;
		return 0;
	}
}

static int send_targets(struct disc_session *s)
{
	uint32_t ttt = 0xffffffff;

	for (int exchange = 0; exchange < DISCOVERY_MAX_EXCHANGES; exchange++) {
		union iscsi_bhs rsp;
		if (send_text(s, ttt, exchange == 0) < 0 ||
		    recv_answer(s, &rsp, ISCSI_OP_TEXT_RSP) < 0)
			return -1;
		bool more = rsp.text_rsp.flags & ISCSI_TEXT_CONTINUE;
		bool final = rsp.text_rsp.flags & ISCSI_FLAG_FINAL;
		if (more && final) {
			err_set(EPROTO, "discovery: Text Response with both F and C set");
			return -1;
		}
		if (final)
			return 0;
		if (pdu_data_len(&rsp) == 0 && count_empty(s, &s->empty_continues) < 0)
			return -1;
		ttt = get_be32(rsp.text_rsp.ttt);
		if (ttt == 0xffffffff) {
			err_set(EPROTO, "discovery: continued Text Response without a Target Transfer Tag");
			return -1;
		}
	}
	err_set(EPROTO, "discovery: SendTargets answer still not finished after %d exchanges",
		DISCOVERY_MAX_EXCHANGES);
	return -1;
}

/* Close the discovery session politely; its outcome does not matter. */
static void logout(struct disc_session *s)
{
	union iscsi_bhs bhs;

	memset(&bhs, 0, sizeof bhs);
	bhs.logout_req.opcode = ISCSI_OP_LOGOUT_REQ | ISCSI_FLAG_IMMEDIATE;
	bhs.logout_req.flags = ISCSI_FLAG_FINAL | ISCSI_LOGOUT_CLOSE_SESSION;
	put_be32(bhs.logout_req.itt, DISCOVERY_ITT);
	put_be32(bhs.logout_req.cmdsn, s->cmdsn);
	put_be32(bhs.logout_req.exp_statsn, s->exp_statsn);
	if (conn_send_pdu(&s->conn, &bhs, NULL, 0, 0, false) == 0)
		(void)recv_answer(s, &bhs, ISCSI_OP_LOGOUT_RSP);
}

int discovery_run(const struct session_config *cfg, struct discovery *out)
{
	struct disc_session s = { .conn = { .fd = -1 } };
	struct text_config text = cfg->text;
	struct login_result lr;
	/* the whole discovery, login included, within the connect timeout */
	int64_t deadline_ns = conn_deadline_after(cfg->connect_timeout_ms);
	int rc = -1;

	text.discovery = true;
	text.target_name = NULL;
	memset(out, 0, sizeof *out);
	/* start-up: a target that drops us during login is tried again
	 * within the connect timeout; redirects are followed */
	if (login_connect(&s.conn, cfg->host, cfg->port, cfg->connect_timeout_ms,
			  cfg->connect_timeout_ms, &text, cfg->isid_base, 0, &lr) < 0)
		goto out;
	s.conn.deadline_ns = deadline_ns;
	s.cmdsn = lr.cmdsn;
	s.exp_statsn = lr.exp_statsn;
	s.max_recv_dsl = lr.params.max_recv_dsl;
	if (send_targets(&s) < 0) {
		if (err_errno() == ETIMEDOUT && conn_deadline_passed(&s.conn))
			err_set(ETIMEDOUT, "SendTargets: %s did not finish the answer within %g s",
				s.conn.peer, cfg->connect_timeout_ms / 1000.0);
		goto out;
	}
	logout(&s);
	if (discovery_parse(s.text ? s.text : "", s.text_len, out) < 0)
		goto out;
	char portal[PORTAL_TEXT_MAX];

	portal_format(portal, sizeof portal, cfg->host, cfg->port);
	log_debug("discovery on %s: %zu targets", portal, out->ntargets);
	rc = 0;
out:
	conn_close(&s.conn);
	free(s.text);
	return rc;
}
