/* list.h: iscsifs --list URL: what a portal or target offers, printed. */
#ifndef ISCSIFS_LIST_H
#define ISCSIFS_LIST_H

#include <stdio.h>

#include "session.h"

/* Print to @out the targets of @cfg's portal (SendTargets) or, when
 * cfg->target_name is set, that target alone: portals, and each LUN with
 * its type, size, block size, vendor/product/revision, serial, write
 * protection and provisioning.  A target that cannot be logged in to is
 * listed with the reason.  Returns 0, or -1 with err_set() when discovery
 * or the named target fails. */
int list_portal(const struct session_config *cfg, FILE *out);

#endif /* ISCSIFS_LIST_H */
