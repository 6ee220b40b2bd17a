/*
 * utf8: validation of UTF-8 text (RFC 3629), as RFC 6455 requires of every text frame.
 */
#ifndef QC_UTF8_H
#define QC_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/**
 * qc_utf8_valid() - whether the @len bytes at @s are well-formed UTF-8: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no sequence cut short at the end. NUL
 * bytes are valid (U+0000). Runs of ASCII are checked eight bytes at a time.
 */
bool qc_utf8_valid(const char *s, size_t len);

#endif
