/* Fuzz target: the numeric request fields (conversation ids, sequence numbers, the "since"
 * cursor, page sizes, media sizes): chat__json_u64 / chat__json_i64 / chat__json_bool, and the
 * server's chat__arg_conv / chat__arg_limit on top of them.
 *
 * Input: the text of one JSON value, read as the field "n" of {"n": <text>}. An exact decimal
 * model of the text (sign, digits, fraction, exponent) is the oracle:
 *  - an integer within +-(2^53-1) is accepted with exactly its value (u64: when >= 0; "-0" is 0);
 *  - an integer beyond that, and any non-number, is refused;
 *  - a non-integer with at most 15 significant digits is refused, unless it is so small that a
 *    double rounds it to 0 (1e-400); longer fractions may round to an integer in a double
 *    (0.99999999999999999999). Both cases are documented in core/json.h;
 *  - page sizes are accepted iff positive (or absent: the default), and come out within
 *    1..page_max; conversation ids iff positive.
 */
#include "fuzz.h"

#include "chat/errors.h"
#include "core/json.h"
#include "server/req.h"

#include <string.h>

#define PAGE_MAX 200

typedef struct model {
    int number;   /* the text is a decimal number (as far as the model reads) */
    int zero;
    int integer;  /* exactly an integer */
    int negative;
    int fits;     /* integer with |value| <= 2^53 - 1 */
    uint64_t abs; /* |value| when fits */
    int sig;      /* significant digits */
    long mag;     /* decimal exponent of the leading digit: |value| is in [10^mag, 10^(mag+1)) */
} model;

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void read_model(const char *s, size_t n, model *m)
{
    memset(m, 0, sizeof *m);
    size_t i = 0;
    while (i < n && is_ws(s[i]))
        i++;
    while (n > i && is_ws(s[n - 1]))
        n--;
    if (i < n && s[i] == '-') {
        m->negative = 1;
        i++;
    }
    char digits[600];
    size_t nd = 0, int_digits = 0;
    int any = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (nd < sizeof digits)
            digits[nd++] = s[i];
        int_digits++;
        any = 1;
        i++;
    }
    if (!any)
        return; /* JSON numbers start with a digit after the sign */
    size_t frac_digits = 0;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (nd < sizeof digits)
                digits[nd++] = s[i];
            frac_digits++;
            i++;
        }
    }
    long exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i >= n || s[i] < '0' || s[i] > '9')
            return;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (exp < 100000)
                exp = exp * 10 + (s[i] - '0');
            i++;
        }
        if (eneg)
            exp = -exp;
    }
    if (i != n || nd != int_digits + frac_digits)
        return; /* trailing text, or too long for the model */
    m->number = 1;
    /* value = digits * 10^(exp - frac_digits), digits without leading / trailing zeros */
    size_t a = 0, b = nd;
    while (a < b && digits[a] == '0')
        a++;
    if (a == b) {
        m->zero = m->integer = m->fits = 1;
        return;
    }
    long e = exp - (long)frac_digits;
    while (b > a && digits[b - 1] == '0') {
        b--;
        e++;
    }
    m->sig = (int)(b - a);
    m->mag = e + m->sig - 1;
    if (e < 0)
        return; /* not an integer */
    m->integer = 1;
    if ((long)(b - a) + e > 16)
        return;
    uint64_t v = 0;
    for (size_t k = a; k < b; k++)
        v = v * 10 + (uint64_t)(digits[k] - '0');
    for (long k = 0; k < e; k++)
        v *= 10;
    if (v <= (uint64_t)CHAT__JSON_INT_MAX) {
        m->fits = 1;
        m->abs = v;
    }
}

static int64_t fake_clock(void *ud)
{
    (void)ud;
    return 1000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 400 || memchr(data, '\0', size))
        return 0;
    char text[420];
    int tl = snprintf(text, sizeof text, "{\"n\":%.*s}", (int)size, (const char *)data);
    cJSON *obj = cJSON_ParseWithLength(text, (size_t)tl);
    if (!obj)
        return 0;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, "n");
    if (!cJSON_IsObject(obj) || !item || cJSON_GetArraySize(obj) != 1) {
        cJSON_Delete(obj); /* the text closed the object early, or added members */
        return 0;
    }
    model m;
    read_model((const char *)data, size, &m);
    uint64_t u = 12345;
    int64_t s = 12345;
    int ru = chat__json_u64(obj, "n", &u);
    int rs = chat__json_i64(obj, "n", &s);
    FUZZ_CHECK(ru == CHAT_OK || ru == CHAT_EINVAL);
    FUZZ_CHECK(rs == CHAT_OK || rs == CHAT_EINVAL);
    FUZZ_CHECK(ru == CHAT_OK || u == 12345); /* untouched on failure */
    FUZZ_CHECK(rs == CHAT_OK || s == 12345);
    FUZZ_CHECK(ru != CHAT_OK || u <= (uint64_t)CHAT__JSON_INT_MAX);
    FUZZ_CHECK(rs != CHAT_OK || (s <= CHAT__JSON_INT_MAX && s >= -CHAT__JSON_INT_MAX));
    if (!cJSON_IsNumber(item))
        FUZZ_CHECK(ru == CHAT_EINVAL && rs == CHAT_EINVAL);
    if (m.number && m.zero)
        FUZZ_CHECK(ru == CHAT_OK && u == 0 && rs == CHAT_OK && s == 0);
    if (m.number && m.integer && m.fits && !m.zero) {
        FUZZ_CHECK(rs == CHAT_OK && (m.negative ? -s : s) == (int64_t)m.abs);
        FUZZ_CHECK(m.negative ? ru == CHAT_EINVAL : (ru == CHAT_OK && u == m.abs));
    }
    if (m.number && m.integer && !m.fits)
        FUZZ_CHECK(ru == CHAT_EINVAL && rs == CHAT_EINVAL);
    if (m.number && !m.integer && m.sig <= 15 && m.mag >= -300)
        FUZZ_CHECK(ru == CHAT_EINVAL && rs == CHAT_EINVAL);
    int rb = 0;
    FUZZ_CHECK(chat__json_bool(obj, "n", &rb) == (cJSON_IsBool(item) ? CHAT_OK : CHAT_EINVAL));

    /* The server's readers, on a connection that has no transport (error frames go nowhere). */
    static chat_server srv;
    static chat__conn conn;
    srv.cfg.clock = fake_clock;
    srv.cfg.limits[CHAT_LIMIT_PAGE_MAX] = PAGE_MAX;
    conn.srv = &srv;
    conn.err_count = 0;
    cJSON *args = cJSON_CreateObject();
    if (args) {
        cJSON_AddItemToObject(args, "conv", cJSON_Duplicate(item, 1));
        cJSON_AddItemToObject(args, "limit", cJSON_Duplicate(item, 1));
        int64_t conv = -1;
        int ok = chat__arg_conv(&conn, args, NULL, &conv);
        FUZZ_CHECK(ok == (ru == CHAT_OK && u > 0));
        FUZZ_CHECK(!ok || (uint64_t)conv == u);
        int limit = -1;
        ok = chat__arg_limit(&conn, args, NULL, 50, &limit);
        FUZZ_CHECK(ok == (ru == CHAT_OK && u > 0));
        FUZZ_CHECK(!ok || (limit >= 1 && limit <= PAGE_MAX &&
                           (u > PAGE_MAX || (uint64_t)limit == u)));
        cJSON_Delete(args);
    }
    cJSON_Delete(obj);
    return 0;
}
