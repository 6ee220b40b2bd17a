/*
 * main: read the configuration (file, QUOTECAST_* environment, flags), then run the server.
 * Nothing here runs after the event loop has started.
 */
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "quotecast/config.h"
#include "quotecast/server.h"

extern char **environ;

int main(int argc, char **argv)
{
	struct qc_config cfg;
	struct qc_cli cli = {0};
	char err[512];
	int status;

	if (qc_config_load(&cfg, &cli, argc, argv, environ, err, sizeof(err))) {
		fprintf(stderr, "quotecast: %s\n", err);
		return 2;
	}
	if (cli.help) {
		fputs(qc_config_usage(), stdout);
		qc_config_free(&cfg);
		return 0;
	}
	if (cli.version) {
		printf("quotecast %s\n", QC_VERSION);
		qc_config_free(&cfg);
		return 0;
	}
	if (cli.check_config) {
		json_t *j = qc_config_to_json(&cfg);

		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputs("\nquotecast: configuration OK\n", stdout);
		json_decref(j);
		qc_config_free(&cfg);
		return 0;
	}
	status = qc_server_run(&cfg);
	qc_config_free(&cfg);
	return status;
}
