/*
 * fuzz_config: a configuration file (-c FILE) through qc_config_apply_json() over the
 * defaults, then what start-up does with the result: the cross-key checks and the effective
 * configuration (--check-config). Invariants: a refusal has a message; whatever was
 * applied, the config stays whole (every string set) and frees cleanly.
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
	char err[256], *text = fuzz_cstr(data, size);
	json_t *eff;
	int rc;

	CHECK(!qc_config_defaults(&c));
	err[0] = '\0';
	rc = qc_config_apply_json(&c, text, "fuzz.json", err, sizeof(err));
	CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	CHECK(!rc || err[0]);
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
