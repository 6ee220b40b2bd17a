/*
 * fuzz_webfiles: the static-file table's lookup of a request path (qc_webfiles_find(), what
 * GET / and GET /client/... answer from) and its Content-Type choice, on a table that holds a
 * console, the client and a file the input names. The first line of the input is a path to
 * add (qc_webfiles_add(), as the start-up scan does with file names), the rest is the request
 * path. Invariants: a path with a ".." segment or no leading '/' is never added; an added path
 * is found again; a lookup finds only a file whose path is the one asked for (index.html for a
 * trailing '/'); every path has a Content-Type.
 */
#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "quotecast/webfiles.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

/* Has @path a ".." segment (a way out of the served directory)? */
static bool dotdot(const char *path)
{
	for (const char *p = strstr(path, "/.."); p; p = strstr(p + 1, "/.."))
		if (p[3] == '/' || !p[3])
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qc_webfiles w = {0};
	const struct qc_webfile *f;
	char *text = fuzz_cstr(data, size), *req, *nl, want[QC_WEBFILE_PATH_MAX + 16];
	size_t n;
	int rc;

	CHECK(!qc_webfiles_add(&w, "/index.html", "<html></html>", 13));
	CHECK(!qc_webfiles_add(&w, "/client/quotecast.js", "export {}", 9));
	CHECK(!qc_webfiles_add(&w, "/app/style.css", "", 0));
	nl = strchr(text, '\n');
	req = nl ? nl + 1 : text;
	if (nl) {
		*nl = '\0';
		rc = qc_webfiles_add(&w, text, "x", 1);
		CHECK(rc == 0 || rc == -EINVAL);
		if (!rc) {
			CHECK(text[0] == '/' && !dotdot(text));
			CHECK(strlen(text) <= QC_WEBFILE_PATH_MAX);
			f = qc_webfiles_find(&w, text);
			CHECK(text[strlen(text) - 1] == '/' || (f && !strcmp(f->path, text)));
		}
	}
	CHECK(qc_webfile_type(req));
	f = qc_webfiles_find(&w, req);
	if (f) {
		n = strlen(req);
		snprintf(want, sizeof(want), "%s%s", req,
		         n && req[n - 1] == '/' ? "index.html" : "");
		CHECK(!strcmp(f->path, want));
		CHECK(f->ctype && f->etag[0] == '"');
	}
	qc_webfiles_free(&w);
	CHECK(!w.count && !w.by_path);
	free(text);
	return 0;
}
