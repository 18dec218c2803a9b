/* mount_config.h: the session configuration a mount starts from.
 *
 * Built once from the command line and the URL: the portal and target,
 * the initiator name (given, or one stable per host), the ISIDs (stable
 * per initiator, target and mountpoint, so that a reconnect reinstates
 * the same session and two mounts never collide), the digests asked for,
 * the limits offered in negotiation, keepalive and timeouts, the CHAP
 * credentials.  Every session of the mount starts from it; a discovery
 * mount gives each target found a copy with that target's name, portals
 * and ISIDs.
 *
 * Thread model: main() only, at start-up, before any thread.
 */
#ifndef ISCSIFS_MOUNT_CONFIG_H
#define ISCSIFS_MOUNT_CONFIG_H

#include <stdint.h>

#include "chap.h"
#include "options.h"
#include "session.h"
#include "url.h"

/* Fill @cfg for the URL @url, the options @o, the credentials @creds
 * (NULL for none; @cfg points to them, so they must outlive every
 * session) and @mountpoint (absolute; it seeds the ISIDs).  Returns 0,
 * or -1 with err_set(EINVAL) for a digest option that is not none,
 * crc32c or auto. */
int mount_config_sessions(struct session_config *cfg, const struct options *o,
			  const struct iscsi_url *url, const struct chap_credentials *creds,
			  const char *mountpoint);

/* The ISID base of the sessions of @initiator to @target mounted on
 * @mountpoint (RFC 7143 §10.12.5 "random" format; the last byte, the
 * qualifier, is left 0 for the session slot). */
void mount_config_isid(uint8_t isid[6], const char *initiator, const char *target,
		       const char *mountpoint);

#endif /* ISCSIFS_MOUNT_CONFIG_H */
