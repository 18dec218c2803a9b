/* iov.h: slicing a payload described by iovecs, without copying it. */
#ifndef ISCSIFS_IOV_H
#define ISCSIFS_IOV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Point @dst at bytes [@off, @off + @len) of the payload @src (@cnt
 * entries).  Returns the number of entries used, or -1 when they would
 * exceed @max or the payload is shorter than @off + @len. */
static inline int iov_slice(const struct iovec *src, int cnt, size_t off, size_t len,
			    struct iovec *dst, int max)
{
	int n = 0;

	for (int i = 0; i < cnt && len; i++) {
		if (off >= src[i].iov_len) {
			off -= src[i].iov_len;
			continue;
		}
		if (n == max)
			return -1;
		size_t take = src[i].iov_len - off;
		if (take > len)
			take = len;
		dst[n++] = (struct iovec){ (uint8_t *)src[i].iov_base + off, take };
		len -= take;
		off = 0;
	}
	return len ? -1 : n;
}

#endif /* ISCSIFS_IOV_H */
