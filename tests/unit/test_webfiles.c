/*
 * test_webfiles: the in-memory static files: paths, types, ETags, index files, bounds, and
 * loading a directory tree.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "quotecast/webfiles.h"

static void test_types(void **state)
{
	(void)state;
	assert_string_equal(qc_webfile_type("/index.html"), "text/html; charset=utf-8");
	assert_string_equal(qc_webfile_type("/a/app.js"), "text/javascript; charset=utf-8");
	assert_string_equal(qc_webfile_type("/s.CSS"), "text/css; charset=utf-8");
	assert_string_equal(qc_webfile_type("/i.svg"), "image/svg+xml");
	assert_string_equal(qc_webfile_type("/noext"), "application/octet-stream");
	assert_string_equal(qc_webfile_type("/dir.js/file"), "application/octet-stream");
}

static void test_add_find(void **state)
{
	struct qc_webfiles w = {0};
	const struct qc_webfile *f, *g;
	char etag[20];

	(void)state;
	assert_int_equal(qc_webfiles_add(&w, "/index.html", "<p>hi</p>", 9), 0);
	assert_int_equal(qc_webfiles_add(&w, "/client/quotecast.js", "export {}", 9), 0);
	assert_int_equal(w.count, 2);
	assert_int_equal(w.bytes, 18);
	f = qc_webfiles_find(&w, "/");
	assert_non_null(f);
	assert_string_equal(f->path, "/index.html");
	assert_memory_equal(f->body, "<p>hi</p>", 9);
	assert_ptr_equal(qc_webfiles_find(&w, "/index.html"), f);
	assert_null(qc_webfiles_find(&w, "/client/"));
	assert_null(qc_webfiles_find(&w, "index.html"));
	assert_null(qc_webfiles_find(&w, ""));
	/* a strong ETag, quoted, changing with the bytes */
	assert_int_equal(strlen(f->etag), 18);
	assert_int_equal(f->etag[0], '"');
	memcpy(etag, f->etag, sizeof(etag));
	assert_int_equal(qc_webfiles_add(&w, "/index.html", "<p>ho</p>", 9), 0);
	g = qc_webfiles_find(&w, "/");
	assert_string_not_equal(g->etag, etag);
	assert_int_equal(w.count, 2);
	assert_int_equal(w.bytes, 18);
	qc_webfiles_free(&w);
	assert_int_equal(w.count, 0);
	assert_null(qc_webfiles_find(&w, "/"));
}

static void test_bad_paths(void **state)
{
	struct qc_webfiles w = {0};
	char longp[QC_WEBFILE_PATH_MAX + 2];

	(void)state;
	assert_int_equal(qc_webfiles_add(&w, "x.html", "", 0), -EINVAL);
	assert_int_equal(qc_webfiles_add(&w, "/../etc/passwd", "", 0), -EINVAL);
	assert_int_equal(qc_webfiles_add(&w, "/a/..", "", 0), -EINVAL);
	assert_int_equal(qc_webfiles_add(&w, "/a//b", "", 0), -EINVAL);
	assert_int_equal(qc_webfiles_add(&w, "/a\\b", "", 0), -EINVAL);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(qc_webfiles_add(&w, longp, "", 0), -EINVAL);
	assert_int_equal(qc_webfiles_add(&w, "/..x", "", 0), 0); /* a name, not a parent */
	assert_int_equal(qc_webfiles_add(&w, "/empty", "", 0), 0);
	assert_int_equal(qc_webfiles_find(&w, "/empty")->len, 0);
	qc_webfiles_free(&w);
}

static void test_total_bound(void **state)
{
	struct qc_webfiles w = {0};
	size_t half = QC_WEBFILES_MAX_BYTES / 2;
	char *big = calloc(1, half + 1);

	(void)state;
	assert_non_null(big);
	assert_int_equal(qc_webfiles_add(&w, "/a", big, half), 0);
	assert_int_equal(qc_webfiles_add(&w, "/b", big, half), 0);
	assert_int_equal(qc_webfiles_add(&w, "/c", big, 1), -EFBIG);
	/* replacing a file counts its old size out first */
	assert_int_equal(qc_webfiles_add(&w, "/b", big, half), 0);
	assert_int_equal(w.bytes, 2 * half);
	free(big);
	qc_webfiles_free(&w);
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_load_dir(void **state)
{
	char root[] = "/tmp/qc-webfiles-XXXXXX", p[256];
	struct qc_webfiles w = {0};
	const struct qc_webfile *f;

	(void)state;
	assert_non_null(mkdtemp(root));
	snprintf(p, sizeof(p), "%s/index.html", root);
	put(p, "<!doctype html>");
	snprintf(p, sizeof(p), "%s/.hidden", root);
	put(p, "secret");
	snprintf(p, sizeof(p), "%s/js", root);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/js/app.js", root);
	put(p, "console.log(1)");

	assert_int_equal(qc_webfiles_load_dir(&w, root, "/console"), 2);
	f = qc_webfiles_find(&w, "/console/");
	assert_non_null(f);
	assert_int_equal(f->len, 15);
	f = qc_webfiles_find(&w, "/console/js/app.js");
	assert_non_null(f);
	assert_string_equal(f->ctype, "text/javascript; charset=utf-8");
	assert_null(qc_webfiles_find(&w, "/console/.hidden"));
	assert_int_equal(qc_webfiles_load_dir(&w, "/nonexistent/quotecast", ""), -ENOENT);
	qc_webfiles_free(&w);

	snprintf(p, sizeof(p), "%s/js/app.js", root);
	unlink(p);
	snprintf(p, sizeof(p), "%s/js", root);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/index.html", root);
	unlink(p);
	snprintf(p, sizeof(p), "%s/.hidden", root);
	unlink(p);
	rmdir(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_types),     cmocka_unit_test(test_add_find),
	    cmocka_unit_test(test_bad_paths), cmocka_unit_test(test_total_bound),
	    cmocka_unit_test(test_load_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
