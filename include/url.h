/* url.h: the iscsi:// URL that names what to mount (DESIGN section 1).
 *
 *	iscsi://[USER[%PASSWORD]@]HOST[:PORT][/TARGET-IQN[/LUN]]
 *
 * HOST is a name, an IPv4 address or a bracketed IPv6 address
 * ("[fe80::1]", a zone as "[fe80::1%25eth0]").  Without TARGET-IQN (no
 * path, or just "/") the URL names a portal, whose targets are found by
 * SendTargets discovery.  A '/' after the target is allowed; after the LUN
 * nothing is.
 *
 * USER and PASSWORD follow libiscsi: the first '%' (else the first ':') of
 * the part before the last '@' separates them.  After that split, %XX
 * escapes are decoded in both, so a password can carry any byte but NUL
 * ("%25" for '%', "%40" for '@').  %XX escapes in TARGET-IQN are decoded
 * too.
 *
 * Thread model: pure functions, no state.
 */
#ifndef ISCSIFS_URL_H
#define ISCSIFS_URL_H

#include <stdbool.h>
#include <stdint.h>

#define ISCSI_DEFAULT_PORT 3260
/* Highest LUN the URL may name (flat space addressing, SAM-5). */
#define ISCSI_URL_MAX_LUN 16383

struct iscsi_url {
	char host[256];     /* host name or address; IPv6 without brackets,
			     * with "%zone" when one was given */
	uint16_t port;      /* TCP port; ISCSI_DEFAULT_PORT when absent */
	char target[224];   /* target IQN; "" for the portal form (discovery) */
	int64_t lun;        /* LUN number, or -1 when the URL names none */
	char user[256];     /* CHAP user from the URL, "" if none */
	char password[256]; /* CHAP secret from USER%PASSWORD@, "" if none;
			     * wipe it once copied where it is needed */
	bool has_password;  /* the URL carried a password (warn the user:
			     * the process list shows it) */
	bool ipv6;          /* host was a bracketed IPv6 literal */
};

/* Parse @text into @out.  Returns 0, or -1 with err_set(EINVAL, "invalid
 * URL ...: <cause>") naming the first problem; the message never contains
 * the password.  @out is fully written either way (zeroed on failure). */
int url_parse(const char *text, struct iscsi_url *out);

#endif /* ISCSIFS_URL_H */
