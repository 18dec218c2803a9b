/* stats.h: the text of the statistics file, .iscsifs/stats at the root of
 * a mount: per LUN and per session counters as "key value" lines.
 */
#ifndef ISCSIFS_STATS_H
#define ISCSIFS_STATS_H

#include <stddef.h>

struct fs;

/* A snapshot of every counter of @fs, as a NUL-terminated text in a
 * malloc()ed buffer (its length in *@len), or NULL on ENOMEM. */
char *stats_render(struct fs *fs, size_t *len);

#endif /* ISCSIFS_STATS_H */
