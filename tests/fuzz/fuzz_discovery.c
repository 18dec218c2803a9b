/* fuzz_discovery.c: libFuzzer harness for the SendTargets answer of a
 * discovery session (discovery.c): discovery_parse() over the whole
 * key=value text and discovery_parse_address() on each value.
 *
 * Input: the reassembled text of the Text Responses, as discovery_run()
 * hands it over (not necessarily NUL-terminated); every NUL-terminated
 * piece of it is also parsed as one TargetAddress value.
 *
 * Checked promises (discovery.h): no read beyond @len; on failure the
 * output is empty and the error is EPROTO (or ENOMEM); every target found
 * has a name that is safe as a directory name (printable, no '/', not "."
 * or "..") and at most DISCOVERY_MAX_PORTALS portals, each with a host
 * and a port other than 0.
 *
 * Thread model: single-threaded.
 */
#include <errno.h>
#include <string.h>

#include "discovery.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_init();
	return 0;
}

static void check_portal(const struct discovery_portal *p)
{
	FUZZ_ASSERT(memchr(p->host, '\0', sizeof p->host) != NULL);
	FUZZ_ASSERT(p->host[0] != '\0');
	FUZZ_ASSERT(p->port != 0);
	FUZZ_ASSERT(p->tpgt >= -1 && p->tpgt <= 65535);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct discovery d;
	struct discovery_portal portal;

	/* exactly the answer, so that ASan sees any read beyond it */
	char *text = malloc(size ? size : 1);
	if (!text)
		abort();
	memcpy(text, data, size);

	if (discovery_parse(text, size, &d) == 0) {
		for (size_t i = 0; i < d.ntargets; i++) {
			const struct discovery_target *t = &d.targets[i];
			size_t len = strnlen(t->name, sizeof t->name);

			FUZZ_ASSERT(len > 0 && len < sizeof t->name);
			FUZZ_ASSERT(strcmp(t->name, ".") != 0 && strcmp(t->name, "..") != 0);
			for (size_t k = 0; k < len; k++)
				FUZZ_ASSERT(t->name[k] > 0x20 && t->name[k] < 0x7f && t->name[k] != '/');
			FUZZ_ASSERT(t->nportals <= DISCOVERY_MAX_PORTALS);
			for (unsigned k = 0; k < t->nportals; k++)
				check_portal(&t->portals[k]);
		}
		discovery_free(&d);
	} else {
		FUZZ_ASSERT(err_errno() == EPROTO || err_errno() == ENOMEM);
		FUZZ_ASSERT(d.targets == NULL && d.ntargets == 0);
	}

	/* each NUL-terminated piece as one TargetAddress value */
	for (size_t at = 0; at < size;) {
		const char *nul = memchr(text + at, '\0', size - at);
		if (!nul)
			break;
		const char *value = memchr(text + at, '=', (size_t)(nul - (text + at)));
		value = value ? value + 1 : text + at;
		if (discovery_parse_address(value, &portal) == 0)
			check_portal(&portal);
		else
			FUZZ_ASSERT(err_errno() == EPROTO);
		at = (size_t)(nul - text) + 1;
	}
	free(text);
	return 0;
}
