/*
 * webfiles: the static files quotecast serves (the web console under /, the JavaScript client
 * at /client/quotecast.js), held in memory. They are read once at start-up, before the loop
 * serves anyone, so serving one is a table lookup and a write: no disk I/O on the loop. Each
 * file knows its content type and a strong ETag (a hash of its bytes).
 */
#ifndef QC_WEBFILES_H
#define QC_WEBFILES_H

#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#define QC_WEBFILES_MAX_BYTES (32u * 1024 * 1024) /* all files together */
#define QC_WEBFILE_PATH_MAX   255

struct qc_webfile {
	char *path;          /* "/index.html", "/client/quotecast.js" (owned) */
	unsigned char *body; /* owned */
	size_t len;
	const char *ctype; /* static */
	char etag[20];     /* "\"<16 hex>\"" */
	UT_hash_handle hh;
};

struct qc_webfiles {
	struct qc_webfile *by_path; /* uthash head */
	uint32_t count;
	size_t bytes;
};

/** qc_webfile_type() - the Content-Type for @path by its extension (static string). */
const char *qc_webfile_type(const char *path);

/**
 * qc_webfiles_add() - serve a copy of @body (@len bytes) at @path (must start with '/', no
 * "..", no NUL, at most QC_WEBFILE_PATH_MAX bytes). Replaces a file at the same path.
 * Returns 0, -EINVAL (bad path), -EFBIG (over QC_WEBFILES_MAX_BYTES in all) or -ENOMEM.
 */
int qc_webfiles_add(struct qc_webfiles *w, const char *path, const void *body, size_t len);

/**
 * qc_webfiles_load_dir() - at start-up: every regular file under @dir (recursively, at most 8
 * levels, names starting with '.' skipped) served under @prefix ("" or "/client"). Returns the
 * number of files added, or a negative errno (-ENOENT when @dir does not exist).
 */
int qc_webfiles_load_dir(struct qc_webfiles *w, const char *dir, const char *prefix);

/**
 * qc_webfiles_find() - the file for the request path @path (the query already cut off):
 * "/" and any path ending in '/' mean its index.html. NULL when there is none.
 */
const struct qc_webfile *qc_webfiles_find(const struct qc_webfiles *w, const char *path);

/** qc_webfiles_free() - drop every file; @w is empty (and reusable) afterwards. */
void qc_webfiles_free(struct qc_webfiles *w);

#endif
