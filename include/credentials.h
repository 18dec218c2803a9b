/* credentials.h: where a mount's CHAP credentials come from (DESIGN §1).
 *
 *   our user     -o chap_user=NAME, or USER@ in the URL (both: must agree)
 *   our secret   the first line of -o chap_secret_file=PATH, else the
 *                URL's USER%PASSWORD@ (with a warning: the process list
 *                shows it), else env ISCSIFS_CHAP_SECRET
 *   mutual CHAP  -o target_user=NAME with the first line of
 *                -o target_secret_file=PATH, else env ISCSIFS_TARGET_SECRET
 *
 * A secret file readable or writable by group or others is refused; a
 * secret shorter than 12 bytes gets a warning; mutual CHAP with two equal
 * secrets is refused.  Secrets read from the environment are wiped there.
 *
 * Thread model: called once by main() at start-up, before any thread.
 */
#ifndef ISCSIFS_CREDENTIALS_H
#define ISCSIFS_CREDENTIALS_H

#include <stdbool.h>

#include "chap.h"

/* Environment variables holding the secrets. */
#define CREDENTIALS_ENV_SECRET "ISCSIFS_CHAP_SECRET"
#define CREDENTIALS_ENV_TARGET_SECRET "ISCSIFS_TARGET_SECRET"

/* What the command line says about credentials. */
struct credentials_options {
	const char *chap_user;          /* -o chap_user=, NULL when not given */
	const char *chap_secret_file;   /* -o chap_secret_file=, NULL when not given */
	const char *target_user;        /* -o target_user=, NULL when not given */
	const char *target_secret_file; /* -o target_secret_file=, NULL when not given */
	const char *url_user;           /* USER of the URL, "" or NULL when none */
	const char *url_password;       /* PASSWORD of the URL (when url_has_password) */
	bool url_has_password;          /* the URL carried USER%PASSWORD@ */
};

/* Gather the credentials @o asks for.  Returns 1 with *out set (free it
 * with credentials_free()), 0 with *out NULL when no CHAP is asked for,
 * or -1 with err_set() and a one-line message (EINVAL for a contradictory
 * or incomplete configuration, EACCES for a secret file others can read,
 * the errno of a file that cannot be read). */
int credentials_load(const struct credentials_options *o, struct chap_credentials **out);

/* Wipe and free (NULL is fine). */
void credentials_free(struct chap_credentials *c);

/* Overwrite, in place, the PASSWORD of an iscsi://USER%PASSWORD@ URL in
 * @arg with 'x' (the same length), so that the process list stops
 * showing it.  Anything else is left alone. */
void credentials_hide_url_password(char *arg);

#endif /* ISCSIFS_CREDENTIALS_H */
