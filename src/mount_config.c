/* mount_config.c: the session configuration a mount starts from (see
 * mount_config.h).
 */
#include "mount_config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* What every login offers (RFC 7143 §13): MaxRecvDataSegmentLength,
 * MaxBurstLength, FirstBurstLength and MaxOutstandingR2T. */
#define OFFER_MAX_RECV_DSL (256 * 1024)
#define OFFER_MAX_BURST_LENGTH (16 * 1024 * 1024 - 1)
#define OFFER_FIRST_BURST_LENGTH (256 * 1024)
#define OFFER_MAX_OUTSTANDING_R2T 16
/* The connect and login-PDU timeout: -o timeout, but at most this. */
#define CONNECT_TIMEOUT_MAX_S 15

/* @text, the value of -o @name (NULL when not given), as a digest
 * preference.  0, or -1 with err_set(EINVAL). */
static int parse_digest(const char *text, const char *name, enum digest_pref *out)
{
	if (!text || strcmp(text, "auto") == 0)
		*out = DIGEST_PREF_AUTO;
	else if (strcmp(text, "none") == 0)
		*out = DIGEST_PREF_NONE;
	else if (strcmp(text, "crc32c") == 0)
		*out = DIGEST_PREF_CRC32C;
	else {
		err_set(EINVAL, "invalid %s=%s: use none, crc32c or auto", name, text);
		return -1;
	}
	return 0;
}

void mount_config_isid(uint8_t isid[6], const char *initiator, const char *target,
		       const char *mountpoint)
{
	uint32_t h = 2166136261u;    /* FNV-1a over the three names */
	const char *parts[] = { initiator, target, mountpoint };

	for (size_t i = 0; i < 3; i++)
		for (const char *p = parts[i]; *p; p++)
			h = (h ^ (uint8_t)*p) * 16777619u;
	isid[0] = 0x80;                /* T=10b: random; B and C from the hash */
	isid[1] = (uint8_t)(h >> 24);
	isid[2] = (uint8_t)(h >> 16);
	isid[3] = (uint8_t)(h >> 8);
	isid[4] = (uint8_t)h;
	isid[5] = 0;
}

/* The initiator name of this host: iqn.2026-11.org.iscsifs:HOSTNAME,
 * the host name in lower case with anything but [a-z0-9.-] as '-'. */
static void default_initiator(char *out, size_t cap)
{
	char host[HOST_NAME_MAX + 1] = "localhost";

	gethostname(host, sizeof host - 1);
	for (char *p = host; *p; p++)
		*p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') :
		     ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '.') ? *p : '-';
	snprintf(out, cap, "iqn.2026-11.org.iscsifs:%s", host);
}

int mount_config_sessions(struct session_config *cfg, const struct options *o,
			  const struct iscsi_url *url, const struct chap_credentials *creds,
			  const char *mountpoint)
{
	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->host, sizeof cfg->host, "%s", url->host);
	cfg->port = url->port;
	snprintf(cfg->target_name, sizeof cfg->target_name, "%s", url->target);
	if (o->initiator) {
		/* (RFC 7143: at most 223 bytes; cut, another name would log in) */
		size_t len = strlen(o->initiator);
		if (len == 0 || len >= sizeof cfg->initiator_name) {
			err_set(EINVAL, "-o initiator: %s", len ? "longer than 223 bytes (RFC 7143)" :
				"empty");
			return -1;
		}
		memcpy(cfg->initiator_name, o->initiator, len + 1);
	} else
		default_initiator(cfg->initiator_name, sizeof cfg->initiator_name);
	cfg->text.initiator_name = cfg->initiator_name;
	cfg->text.target_name = cfg->target_name;
	cfg->text.discovery = false;
	if (parse_digest(o->header_digest, "header_digest", &cfg->text.header_digest) < 0 ||
	    parse_digest(o->data_digest, "data_digest", &cfg->text.data_digest) < 0)
		return -1;
	cfg->text.max_recv_dsl = OFFER_MAX_RECV_DSL;
	cfg->text.max_burst_length = OFFER_MAX_BURST_LENGTH;
	cfg->text.first_burst_length = OFFER_FIRST_BURST_LENGTH;
	cfg->text.max_outstanding_r2t = OFFER_MAX_OUTSTANDING_R2T;
	cfg->text.immediate_data = true;
	cfg->text.initial_r2t = false;
	cfg->text.chap = creds;    /* every login, reconnects too, reads it until exit */
	cfg->queue_depth = o->queue_depth;
	cfg->noop_interval_s = o->noop_interval;
	cfg->noop_timeout_s = o->noop_timeout;
	cfg->cmd_timeout_s = o->cmd_timeout;
	cfg->connect_timeout_ms = (int)(o->timeout < CONNECT_TIMEOUT_MAX_S ? o->timeout :
					CONNECT_TIMEOUT_MAX_S) * 1000;
	if (cfg->connect_timeout_ms <= 0)
		cfg->connect_timeout_ms = 1000;
	mount_config_isid(cfg->isid_base, cfg->initiator_name, cfg->target_name, mountpoint);
	return 0;
}
