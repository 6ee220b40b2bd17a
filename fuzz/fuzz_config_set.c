/*
 * fuzz_config_set: settings in their text form, as QUOTECAST_* variables and --set KEY=VALUE
 * flags give them: one "key=value" per line through qc_config_set() over the defaults, then
 * the cross-key checks and the effective configuration. Invariants: a refusal is -ENOENT or
 * -EINVAL with a one-line message; the config stays whole and frees cleanly.
 */
#include <errno.h>

#include "fuzz.h"
#include "quotecast/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qc_config c;
	char err[256], *text = fuzz_cstr(data, size), *line, *next, *eq;
	json_t *eff;
	int rc;

	CHECK(!qc_config_defaults(&c));
	for (line = text; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		err[0] = '\0';
		rc = qc_config_set(&c, line, eq + 1, err, sizeof(err));
		CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL || rc == -ENOMEM);
		CHECK(!rc || (err[0] && !strchr(err, '\n')));
	}
	CHECK(c.listen_host && c.tls_cert && c.tls_key && c.auth_jwt_secret && c.auth_admin_token &&
	      c.auth_publish_token && c.store_url);
	(void)qc_config_validate(&c, err, sizeof(err));
	eff = qc_config_to_json(&c);
	CHECK(eff);
	json_decref(eff);
	qc_config_free(&c);
	free(text);
	return 0;
}
