/* mountinfo.c: a path in /proc/self/mountinfo (see mountinfo.h).
 *
 * A line is "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...", the mount point
 * with its space, tab, newline and backslash written as \040, \011,
 * \012 and \134; later lines are mounts made later, so the last match is
 * the topmost mount.
 */
#include "mountinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

/* @field with its octal escapes undone, in place. */
static void unescape(char *field)
{
	char *out = field;

	for (const char *in = field; *in; ) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			*out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 4;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
}

bool mountinfo_find(const char *path, dev_t *dev)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char *line = NULL, *mnt = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	/* (whole lines: an escaped path may be four times PATH_MAX) */
	while (getline(&line, &cap, f) > 0) {
		unsigned major_no, minor_no;
		free(mnt);
		mnt = malloc(cap);
		if (!mnt || sscanf(line, "%*s %*s %u:%u %*s %s", &major_no, &minor_no, mnt) != 3)
			continue;
		unescape(mnt);
		if (strcmp(mnt, path) != 0)
			continue;
		found = true;
		if (dev)
			*dev = makedev(major_no, minor_no);
	}
	free(mnt);
	free(line);
	fclose(f);
	return found;
}
