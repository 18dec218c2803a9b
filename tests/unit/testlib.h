/* testlib.h: the few macros every unit test uses.
 *
 * A unit test is a program that runs its cases, prints one line for each
 * failed check, and exits 0 when all passed, 1 otherwise (the automake
 * "plain" protocol).  Tables of vectors are preferred over one-off checks.
 */
#ifndef ISCSIFS_TESTLIB_H
#define ISCSIFS_TESTLIB_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                        \
	do {                                                               \
		test_checks++;                                             \
		if (!(cond)) {                                             \
			test_failures++;                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n",       \
				__FILE__, __LINE__, #cond);                \
		}                                                          \
	} while (0)

#define CHECK_EQ_U64(a, b)                                                 \
	do {                                                               \
		uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);           \
		test_checks++;                                             \
		if (a_ != b_) {                                            \
			test_failures++;                                   \
			fprintf(stderr, "%s:%d: %s == %s: 0x%" PRIx64      \
				" != 0x%" PRIx64 "\n", __FILE__, __LINE__, \
				#a, #b, a_, b_);                           \
		}                                                          \
	} while (0)

#define CHECK_STR(a, b)                                                    \
	do {                                                               \
		const char *a_ = (a), *b_ = (b);                           \
		test_checks++;                                             \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                   \
			test_failures++;                                   \
			fprintf(stderr, "%s:%d: %s == %s: \"%s\" != \"%s\"\n", \
				__FILE__, __LINE__, #a, #b,                \
				a_ ? a_ : "(null)", b_ ? b_ : "(null)");   \
		}                                                          \
	} while (0)

/* Call at the end of main(): prints the tally, returns the exit code. */
static inline int test_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
	return test_failures ? 1 : 0;
}

#endif /* ISCSIFS_TESTLIB_H */
