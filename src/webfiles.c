/*
 * webfiles: the in-memory table of static files (see the header). Loading reads the disk and
 * runs at start-up only; lookups are pure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quotecast/webfiles.h"

#define MAX_DEPTH 8

static const struct {
	const char *ext;
	const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".webmanifest", "application/manifest+json"},
};

const char *qc_webfile_type(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot && !strchr(dot, '/'))
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (!strcasecmp(dot, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

/* FNV-1a, 64 bits: an ETag only has to change when the bytes do. */
static uint64_t fnv1a(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--) {
		h ^= *p++;
		h *= 0x100000001b3ull;
	}
	return h;
}

static bool path_ok(const char *path)
{
	size_t n = strlen(path);

	if (path[0] != '/' || n > QC_WEBFILE_PATH_MAX)
		return false;
	/* no ".." segment, no empty segment inside, no backslash */
	for (const char *p = path; *p; p++) {
		if (*p == '\\')
			return false;
		if (p[0] == '/' && p[1] == '.' && p[2] == '.' && (p[3] == '/' || !p[3]))
			return false;
		if (p[0] == '/' && p[1] == '/')
			return false;
	}
	return true;
}

static void file_free(struct qc_webfile *f)
{
	free(f->path);
	free(f->body);
	free(f);
}

int qc_webfiles_add(struct qc_webfiles *w, const char *path, const void *body, size_t len)
{
	struct qc_webfile *f, *old;

	if (!path_ok(path))
		return -EINVAL;
	HASH_FIND_STR(w->by_path, path, old);
	if (w->bytes - (old ? old->len : 0) + len > QC_WEBFILES_MAX_BYTES)
		return -EFBIG;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->path = strdup(path);
	f->body = malloc(len ? len : 1);
	if (!f->path || !f->body) {
		file_free(f);
		return -ENOMEM;
	}
	memcpy(f->body, body, len);
	f->len = len;
	f->ctype = qc_webfile_type(path);
	snprintf(f->etag, sizeof(f->etag), "\"%016llx\"", (unsigned long long)fnv1a(f->body, len));
	if (old) {
		HASH_DEL(w->by_path, old);
		w->bytes -= old->len;
		w->count--;
		file_free(old);
	}
	HASH_ADD_KEYPTR(hh, w->by_path, f->path, strlen(f->path), f);
	w->bytes += len;
	w->count++;
	return 0;
}

/* Read the whole regular file @fd into a new buffer. */
static int slurp(int fd, unsigned char **out, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	ssize_t n;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > QC_WEBFILES_MAX_BYTES)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	*out = buf;
	*len = got;
	return 0;
}

static int load(struct qc_webfiles *w, const char *dir, const char *prefix, int depth)
{
	char path[PATH_MAX], url[QC_WEBFILE_PATH_MAX + 2];
	struct dirent *de;
	int added = 0, ret = 0, fd;
	struct stat st;
	DIR *d;

	if (depth > MAX_DEPTH)
		return 0;
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		unsigned char *body;
		size_t len;
		int r;

		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		        sizeof(path) ||
		    (size_t)snprintf(url, sizeof(url), "%s/%s", prefix, de->d_name) >= sizeof(url))
			continue;
		if (stat(path, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			r = load(w, path, url, depth + 1);
			if (r < 0) {
				ret = r;
				break;
			}
			added += r;
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		r = slurp(fd, &body, &len);
		close(fd);
		if (r) {
			ret = r;
			break;
		}
		r = qc_webfiles_add(w, url, body, len);
		free(body);
		if (r == -EINVAL)
			continue; /* a name we would not serve */
		if (r) {
			ret = r;
			break;
		}
		added++;
	}
	closedir(d);
	return ret ? ret : added;
}

int qc_webfiles_load_dir(struct qc_webfiles *w, const char *dir, const char *prefix)
{
	return load(w, dir, prefix, 0);
}

const struct qc_webfile *qc_webfiles_find(const struct qc_webfiles *w, const char *path)
{
	char buf[QC_WEBFILE_PATH_MAX + 16];
	struct qc_webfile *f;
	size_t n = strlen(path);

	if (!n || path[0] != '/' || n > QC_WEBFILE_PATH_MAX)
		return NULL;
	if (path[n - 1] == '/') {
		snprintf(buf, sizeof(buf), "%sindex.html", path);
		path = buf;
	}
	HASH_FIND_STR(w->by_path, path, f);
	return f;
}

void qc_webfiles_free(struct qc_webfiles *w)
{
	struct qc_webfile *f, *tmp;

	HASH_ITER (hh, w->by_path, f, tmp) {
		HASH_DEL(w->by_path, f);
		file_free(f);
	}
	w->count = 0;
	w->bytes = 0;
}
