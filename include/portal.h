/* portal.h: a portal (host and TCP port) as the text users read.
 *
 * A portal is written "host:port", or "[address]:port" when the host is an
 * IPv6 address (it holds a ':'), as in iscsi:// URLs and TargetAddress
 * values.  Every message, log line, xattr and fsname that names a portal
 * is formatted here, so they all read alike.
 *
 * Header-only; pure, any thread.
 */
#ifndef ISCSIFS_PORTAL_H
#define ISCSIFS_PORTAL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Bytes of a buffer that holds any portal text: a 255-byte host, its
 * brackets, the colon, five digits and the NUL fit with room to spare. */
#define PORTAL_TEXT_MAX 300

/* @host and @port as "host:port" or "[v6]:port" into @out (@cap bytes,
 * cut short if need be).  @host is a name or address, an IPv6 address
 * without brackets. */
static inline void portal_format(char *out, size_t cap, const char *host, uint16_t port)
{
	snprintf(out, cap, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
}

#endif /* ISCSIFS_PORTAL_H */
