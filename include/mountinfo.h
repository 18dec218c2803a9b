/* mountinfo.h: what /proc/self/mountinfo says of a path, without asking
 * the file system mounted there (a stat() of a FUSE mount point is a
 * request its own daemon must answer).
 *
 * Thread model: any thread; nothing shared.
 */
#ifndef ISCSIFS_MOUNTINFO_H
#define ISCSIFS_MOUNTINFO_H

#include <stdbool.h>
#include <sys/types.h>

/* Whether something is mounted on @path (absolute, as realpath() gives
 * it); the device of the topmost such mount into *@dev (may be NULL).
 * False too when the table cannot be read. */
bool mountinfo_find(const char *path, dev_t *dev);

#endif /* ISCSIFS_MOUNTINFO_H */
