/* list.c: iscsifs --list (see list.h).  Synchronous: one session per
 * target, logged in, asked, logged out, one target after the other.
 */
#include "list.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "discovery.h"
#include "log.h"
#include "lun.h"
#include "pool.h"
#include "portal.h"

/* LUNs listed per target at most. */
#define LIST_MAX_LUNS 1024

/* @bytes as "64.0 MiB" (binary units, one decimal). */
static void human_size(uint64_t bytes, char *out, size_t cap)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024;
		u++;
	}
	snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void print_lun(FILE *out, const struct lun *l)
{
	char size[32];

	human_size(l->size, size, sizeof size);
	fprintf(out, "  %-6s disk, %s (%" PRIu64 " bytes), %u-byte blocks", l->name, size, l->size,
		l->block_size);
	if (l->physical_block_size != l->block_size)
		fprintf(out, " (%u physical)", l->physical_block_size);
	fprintf(out, ", %s %s %s", l->inquiry.vendor, l->inquiry.product, l->inquiry.revision);
	if (l->serial[0])
		fprintf(out, ", serial %s", l->serial);
	fprintf(out, ", %s", l->write_protected ? "write-protected" : "read-write");
	if (l->capacity.lbpme || l->lbp.provisioning_type == 2)
		fprintf(out, ", thin-provisioned");
	fputc('\n', out);
}

/* List one target; returns 0, or -1 with err_set() when it cannot be
 * logged in to or its LUNs cannot be listed. */
static int list_target(const struct session_config *cfg, FILE *out)
{
	struct pool *pool = pool_create(cfg, 1, 5);
	uint32_t *numbers;
	int nluns;

	if (!pool)
		return -1;
	numbers = calloc(LIST_MAX_LUNS, sizeof *numbers);
	nluns = numbers ? lun_list(pool, cfg->target_name, numbers, LIST_MAX_LUNS, false,
							NULL) : -1;
	if (nluns < 0) {
		if (!numbers)
			err_set(ENOMEM, "out of memory");
		free(numbers);
		pool_destroy(pool, 5000);
		return -1;
	}
	for (int i = 0; i < nluns; i++) {
		struct lun *l = NULL;
		int rc = lun_probe(pool, cfg->target_name, numbers[i], &l);
		if (rc == 1) {
			print_lun(out, l);
			lun_free(l);
		} else {
			char name[16];
			snprintf(name, sizeof name, "lun%u", numbers[i]);
			fprintf(out, "  %-6s %s\n", name, err_msg());
		}
	}
	free(numbers);
	pool_destroy(pool, 5000);
	return 0;
}

int list_portal(const struct session_config *cfg, FILE *out)
{
	struct discovery d;
	int rc = 0;

	char asked[PORTAL_TEXT_MAX];    /* the portal of the URL */

	portal_format(asked, sizeof asked, cfg->host, cfg->port);
	if (cfg->target_name[0]) {
		fprintf(out, "%s\n  portal %s\n", cfg->target_name, asked);
		return list_target(cfg, out);
	}
	if (discovery_run(cfg, &d) < 0) {
		err_set(err_errno(), "discovery on %s failed: %s", asked, err_msg());
		return -1;
	}
	if (d.ntargets == 0)
		fprintf(out, "no targets at %s\n", asked);
	for (size_t i = 0; i < d.ntargets; i++) {
		const struct discovery_target *t = &d.targets[i];
		struct session_config tc = *cfg;

		tc.text.initiator_name = tc.initiator_name;
		tc.text.target_name = tc.target_name;
		snprintf(tc.target_name, sizeof tc.target_name, "%s", t->name);
		fprintf(out, "%s\n", t->name);
		for (unsigned p = 0; p < t->nportals; p++) {
			char portal[PORTAL_TEXT_MAX];

			portal_format(portal, sizeof portal, t->portals[p].host, t->portals[p].port);
			fprintf(out, "  portal %s", portal);
			if (t->portals[p].tpgt >= 0)
				fprintf(out, ", portal group %d", (int)t->portals[p].tpgt);
			fputc('\n', out);
		}
		if (t->nportals) {
			snprintf(tc.host, sizeof tc.host, "%s", t->portals[0].host);
			tc.port = t->portals[0].port;
		}
		if (list_target(&tc, out) < 0)
			fprintf(out, "  cannot list: %s\n", err_msg());
	}
	discovery_free(&d);
	return rc;
}
