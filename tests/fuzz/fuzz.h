/* fuzz.h: what every libFuzzer harness of tests/fuzz shares.
 *
 * Each harness is one program, tests/fuzz/fuzz_<name>.c, defining
 * LLVMFuzzerTestOneInput() over one parser of target input.  Besides the
 * sanitizers, a harness checks what the code under test promises in its
 * header (FUZZ_ASSERT): a broken promise is reported as a crash.
 *
 * Logging: iscsifs logs protocol violations at error level, which a fuzz
 * run meets thousands of times a second.  fuzz_log_init() keeps the
 * default (errors only) unless FUZZ_LOG=debug is set in the environment,
 * which is useful when replaying one input.  Run with -close_fd_mask=2 to
 * silence the log entirely: libFuzzer and the sanitizers still print their
 * reports, and FUZZ_ASSERT() writes to a copy of stderr taken before
 * libFuzzer closes it.
 */
#ifndef ISCSIFS_FUZZ_H
#define ISCSIFS_FUZZ_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Where FUZZ_ASSERT() reports: stderr as it was at start-up. */
static int fuzz_report_fd = STDERR_FILENO;

/* Abort with a message when an invariant the code under test promises
 * does not hold: libFuzzer reports it as a crash with this input. */
#define FUZZ_ASSERT(cond)                                                  \
	do {                                                               \
		if (!(cond)) {                                             \
			dprintf(fuzz_report_fd,                            \
				"%s:%d: invariant violated: %s\n",         \
				__FILE__, __LINE__, #cond);                \
			abort();                                           \
		}                                                          \
	} while (0)

/* Set the log level from FUZZ_LOG ("debug", "info"; default errors only)
 * and keep a copy of stderr for FUZZ_ASSERT().  Called from
 * LLVMFuzzerInitialize(), which libFuzzer runs before -close_fd_mask. */
static inline void fuzz_log_init(void)
{
	const char *v = getenv("FUZZ_LOG");
	int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);

	if (fd >= 0)
		fuzz_report_fd = fd;

	if (v && strcmp(v, "debug") == 0)
		log_set_level(LOG_LEVEL_DEBUG);
	else if (v && strcmp(v, "info") == 0)
		log_set_level(LOG_LEVEL_INFO);
	else
		log_set_level(LOG_LEVEL_ERROR);
}

/* The libFuzzer entry points a harness defines. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* ISCSIFS_FUZZ_H */
