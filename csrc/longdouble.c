/* redcell: long double arithmetic for INCRBYFLOAT / HINCRBYFLOAT and blocking timeouts.
 * Redis computes these in C `long double` and prints them with "%.17Lf" trimmed of trailing
 * zeros; Rust has no long double, so this small shim does the arithmetic and formatting. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>

/* Parses `len` bytes as a long double the way Redis's string2ld does.
 * Returns 1 on success. */
static int parse_ld(const char *s, size_t len, long double *out) {
    char buf[5120];
    char *eptr;
    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (isspace((unsigned char)buf[0])) return 0;
    errno = 0;
    long double v = strtold(buf, &eptr);
    if ((size_t)(eptr - buf) != len || (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) || isnan(v))
        return 0;
    *out = v;
    return 1;
}

/* Adds `incr` to `cur` (cur may be NULL for a missing value = 0).
 * Returns the formatted length, -1 if a value is not a valid float, -2 on NaN/Infinity. */
int redcell_ld_add(const char *cur, size_t cur_len, const char *incr, size_t incr_len, char *out, size_t out_len) {
    long double a = 0, b;
    if (cur != NULL && !parse_ld(cur, cur_len, &a)) return -1;
    if (!parse_ld(incr, incr_len, &b)) return -3;
    long double r = a + b;
    if (isnan(r) || isinf(r)) return -2;
    int n = snprintf(out, out_len, "%.17Lf", r);
    if (n <= 0 || (size_t)n >= out_len) return -2;
    if (strchr(out, '.') != NULL) {
        char *p = out + n - 1;
        while (*p == '0') { p--; n--; }
        if (*p == '.') n--;
        out[n] = '\0';
    }
    if (n == 2 && out[0] == '-' && out[1] == '0') { out[0] = '0'; n = 1; }
    return n;
}

/* A blocking command's timeout in seconds, read as Redis 7.0 does: a long double, times 1000,
 * rounded up to whole milliseconds, then converted to long long the way x86 converts (a value
 * out of range, infinity included, becomes LLONG_MIN and so reads as negative).
 * Returns 1 with the milliseconds in *out, or 0 if the text is not a float. */
int redcell_timeout_ms(const char *s, size_t len, long long *out) {
    long double v;
    if (!parse_ld(s, len, &v)) return 0;
    long double ms = ceill(v * 1000.0L);
    if (ms >= -9223372036854775808.0L && ms < 9223372036854775808.0L)
        *out = (long long)ms;
    else
        *out = (-9223372036854775807LL - 1);
    return 1;
}
