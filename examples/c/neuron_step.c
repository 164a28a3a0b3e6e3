/*
 * neuron_step.c: one gradient-descent step of a single neuron, y = w*x + b,
 * L = 1/2 (y - t)^2, in C `float` (float32) and `double` (float64), speaking the
 * neuronspec process protocol, version neuronspec-protocol/1 (spec/protocol.md):
 * JSON lines on standard input and output, one response per request, flushed.
 *
 * Build:  make -C examples/c      (or: cc -std=c99 -O2 -ffp-contract=off
 *                                       -fexcess-precision=standard neuron_step.c)
 * Check:  neuronspec check --cmd examples/c/neuron_step
 * Try:    printf '%s\n' '{"id": "a", "format": "float64", "inputs": {"w": {"hex": "0x1p-1"},
 *           "b": {"hex": "-0x1.999999999999ap-4"}, "x": {"hex": "0x1p+1"},
 *           "t": {"hex": "0x1p+0"}, "lr": {"hex": "0x1.999999999999ap-4"}}}' | ./neuron_step
 *
 * The step, in the canonical order of operations, each operation rounded once to the
 * format (round to nearest, ties to even):
 *
 *     p = w*x;  y = p + b;  r = y - t;  loss = 0.5*(r*r);  dL_dw = r*x;  dL_db = r;
 *     w_new = w - lr*dL_dw;  b_new = b - lr*dL_db
 *
 * One rounding per operation:
 *   - every intermediate is assigned to a `volatile` object of the format's type, and every
 *     expression below has one operator: the value is stored (so rounded to float / double)
 *     before the next operation reads it back.  Nothing can be fused or kept wider.
 *   - -ffp-contract=off (Makefile) forbids contracting a*b+c into a fused multiply-add
 *     (GCC contracts by default on targets with FMA, e.g. aarch64, POWER, x86-64-v3).
 *   - -fexcess-precision=standard (Makefile) makes casts and assignments round away any
 *     excess precision, as C99 requires, where FLT_EVAL_METHOD != 0 (x87).
 *   On x86-64 (SSE2), aarch64 and other FLT_EVAL_METHOD == 0 targets every operation is then
 *   correctly rounded.  With FLT_EVAL_METHOD == 2 (32-bit x87 without -mfpmath=sse) an
 *   operation is first rounded to 64 bits then to the type: harmless for float (64 >= 2*24+2),
 *   but double results can be double-rounded, so the program warns on stderr at start-up.
 *
 * Compile with -DNEURON_WRONG_SIGN for a deliberately wrong copy (dL_dy = t - y, everything
 * downstream consistent with it), used to show that the checker rejects it.
 *
 * Requests (fixed shape; parsed by a small JSON reader below, no library):
 *   {"id": "...", "format": "float32", "inputs": {"w": {"hex": "0x1p-1", "decimal": "0.5"},
 *    "b": {...}, "x": {...}, "t": {...}, "lr": {...}}}
 * Responses: {"id": "...", "outputs": {"y": "%a", ...}}, {"id": "...", "unsupported": "..."}
 * for float16 / bfloat16, {"id": "...", "error": "..."} for a request it cannot read (the
 * id is "" when none can be found).  The hello line {"protocol": ...} gets no response.
 * Exit status 0 at end of input; 1 if memory runs out.
 */

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROTOCOL "neuronspec-protocol/1"

/* ------------------------------------------------------------------------------------- */
/* The step                                                                              */

struct outputs {
    double y, loss, dL_dy, dL_dw, dL_db, w_new, b_new; /* float results widen exactly */
};

static void step_float(float w_in, float b_in, float x_in, float t_in, float lr_in,
                       struct outputs *out)
{
    volatile float w = w_in, b = b_in, x = x_in, t = t_in, lr = lr_in;
    volatile float p, y, r, sq, loss, dL_dw, dL_db, g_w, g_b, w_new, b_new;
    p = w * x;
    y = p + b;
#ifdef NEURON_WRONG_SIGN
    r = t - y; /* BUG, on purpose: dL/dy is y - t */
#else
    r = y - t;
#endif
    sq = r * r;
    loss = 0.5f * sq;
    dL_dw = r * x;
    dL_db = r;
    g_w = lr * dL_dw;
    w_new = w - g_w;
    g_b = lr * dL_db;
    b_new = b - g_b;
    out->y = y;
    out->loss = loss;
    out->dL_dy = r;
    out->dL_dw = dL_dw;
    out->dL_db = dL_db;
    out->w_new = w_new;
    out->b_new = b_new;
}

static void step_double(double w_in, double b_in, double x_in, double t_in, double lr_in,
                        struct outputs *out)
{
    volatile double w = w_in, b = b_in, x = x_in, t = t_in, lr = lr_in;
    volatile double p, y, r, sq, loss, dL_dw, dL_db, g_w, g_b, w_new, b_new;
    p = w * x;
    y = p + b;
#ifdef NEURON_WRONG_SIGN
    r = t - y; /* BUG, on purpose: dL/dy is y - t */
#else
    r = y - t;
#endif
    sq = r * r;
    loss = 0.5 * sq;
    dL_dw = r * x;
    dL_db = r;
    g_w = lr * dL_dw;
    w_new = w - g_w;
    g_b = lr * dL_db;
    b_new = b - g_b;
    out->y = y;
    out->loss = loss;
    out->dL_dy = r;
    out->dL_dw = dL_dw;
    out->dL_db = dL_db;
    out->w_new = w_new;
    out->b_new = b_new;
}

/* ------------------------------------------------------------------------------------- */
/* A small JSON reader: walks one object and keeps the few strings a request needs.     */

/* A string as it appears in the line (between the quotes, escapes untouched). */
struct span {
    const char *s;
    size_t n;
    int found;
};

enum input { IN_W, IN_B, IN_X, IN_T, IN_LR, N_INPUTS };
static const char *const INPUT_NAMES[N_INPUTS] = {"w", "b", "x", "t", "lr"};

struct request {
    struct span id, format, protocol;
    struct span hex[N_INPUTS], decimal[N_INPUTS];
    int id_not_string, inputs_not_object, input_not_object[N_INPUTS];
};

struct reader {
    const char *p, *end;
    const char *error; /* first error, NULL while none */
};

static void fail(struct reader *rd, const char *message)
{
    if (!rd->error)
        rd->error = message;
}

static void skip_ws(struct reader *rd)
{
    while (rd->p < rd->end &&
           (*rd->p == ' ' || *rd->p == '\t' || *rd->p == '\n' || *rd->p == '\r'))
        rd->p++;
}

static int is_hex_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Reads a JSON string at rd->p (which must be '"'); its raw text goes to *out. */
static int read_string(struct reader *rd, struct span *out)
{
    const char *start;
    if (rd->p >= rd->end || *rd->p != '"') {
        fail(rd, "expected a string");
        return 0;
    }
    start = ++rd->p;
    while (rd->p < rd->end) {
        unsigned char c = (unsigned char)*rd->p;
        if (c == '"') {
            if (out) {
                out->s = start;
                out->n = (size_t)(rd->p - start);
                out->found = 1;
            }
            rd->p++;
            return 1;
        }
        if (c < 0x20) {
            fail(rd, "control character in a string");
            return 0;
        }
        if (c == '\\') {
            rd->p++;
            if (rd->p >= rd->end)
                break;
            if (*rd->p == 'u') {
                int i;
                for (i = 1; i <= 4; i++) {
                    if (rd->p + i >= rd->end || !is_hex_digit(rd->p[i])) {
                        fail(rd, "bad \\u escape in a string");
                        return 0;
                    }
                }
                rd->p += 4;
            } else if (!strchr("\"\\/bfnrt", *rd->p) || *rd->p == '\0') {
                fail(rd, "bad escape in a string");
                return 0;
            }
        }
        rd->p++;
    }
    fail(rd, "unterminated string");
    return 0;
}

/* Compares a raw string with a plain ASCII key (keys of the protocol have no escapes). */
static int span_is(const struct span *sp, const char *key)
{
    size_t n = strlen(key);
    return sp->found && sp->n == n && memcmp(sp->s, key, n) == 0;
}

static int read_value(struct reader *rd, int depth);

typedef void (*member_fn)(struct reader *rd, const struct span *key, void *ctx, int depth);

/* Reads an object, calling on_member with rd->p at each member's value; on_member must
 * consume the value. */
static int read_object(struct reader *rd, member_fn on_member, void *ctx, int depth)
{
    if (depth > 64) {
        fail(rd, "nested too deeply");
        return 0;
    }
    if (rd->p >= rd->end || *rd->p != '{') {
        fail(rd, "expected an object");
        return 0;
    }
    rd->p++;
    skip_ws(rd);
    if (rd->p < rd->end && *rd->p == '}') {
        rd->p++;
        return 1;
    }
    for (;;) {
        struct span key = {NULL, 0, 0};
        skip_ws(rd);
        if (!read_string(rd, &key))
            return 0;
        skip_ws(rd);
        if (rd->p >= rd->end || *rd->p != ':') {
            fail(rd, "expected ':' after a key");
            return 0;
        }
        rd->p++;
        skip_ws(rd);
        if (on_member)
            on_member(rd, &key, ctx, depth + 1);
        else
            read_value(rd, depth + 1);
        if (rd->error)
            return 0;
        skip_ws(rd);
        if (rd->p < rd->end && *rd->p == ',') {
            rd->p++;
            continue;
        }
        if (rd->p < rd->end && *rd->p == '}') {
            rd->p++;
            return 1;
        }
        fail(rd, "expected ',' or '}' in an object");
        return 0;
    }
}

static int read_literal(struct reader *rd, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(rd->end - rd->p) >= n && memcmp(rd->p, word, n) == 0) {
        rd->p += n;
        return 1;
    }
    fail(rd, "not a JSON value");
    return 0;
}

static int read_number(struct reader *rd)
{
    const char *start = rd->p;
    if (rd->p < rd->end && *rd->p == '-')
        rd->p++;
    if (rd->p >= rd->end || *rd->p < '0' || *rd->p > '9') {
        fail(rd, "not a JSON value");
        return 0;
    }
    while (rd->p < rd->end && ((*rd->p >= '0' && *rd->p <= '9') || *rd->p == '.' ||
                               *rd->p == 'e' || *rd->p == 'E' || *rd->p == '+' ||
                               *rd->p == '-'))
        rd->p++;
    return rd->p > start;
}

/* Reads (and discards) any JSON value. */
static int read_value(struct reader *rd, int depth)
{
    skip_ws(rd);
    if (rd->p >= rd->end) {
        fail(rd, "unexpected end of line");
        return 0;
    }
    switch (*rd->p) {
    case '{':
        return read_object(rd, NULL, NULL, depth);
    case '[':
        if (depth > 64) {
            fail(rd, "nested too deeply");
            return 0;
        }
        rd->p++;
        skip_ws(rd);
        if (rd->p < rd->end && *rd->p == ']') {
            rd->p++;
            return 1;
        }
        for (;;) {
            if (!read_value(rd, depth + 1))
                return 0;
            skip_ws(rd);
            if (rd->p < rd->end && *rd->p == ',') {
                rd->p++;
                continue;
            }
            if (rd->p < rd->end && *rd->p == ']') {
                rd->p++;
                return 1;
            }
            fail(rd, "expected ',' or ']' in an array");
            return 0;
        }
    case '"':
        return read_string(rd, NULL);
    case 't':
        return read_literal(rd, "true");
    case 'f':
        return read_literal(rd, "false");
    case 'n':
        return read_literal(rd, "null");
    default:
        return read_number(rd);
    }
}

struct input_ctx {
    struct request *req;
    int which;
};

static void on_input_member(struct reader *rd, const struct span *key, void *ctx, int depth)
{
    struct input_ctx *ic = ctx;
    if (span_is(key, "hex") && rd->p < rd->end && *rd->p == '"')
        read_string(rd, &ic->req->hex[ic->which]);
    else if (span_is(key, "decimal") && rd->p < rd->end && *rd->p == '"')
        read_string(rd, &ic->req->decimal[ic->which]);
    else
        read_value(rd, depth);
}

static void on_inputs_member(struct reader *rd, const struct span *key, void *ctx, int depth)
{
    struct request *req = ctx;
    int i;
    for (i = 0; i < N_INPUTS; i++) {
        if (span_is(key, INPUT_NAMES[i])) {
            struct input_ctx ic;
            if (rd->p >= rd->end || *rd->p != '{') {
                req->input_not_object[i] = 1;
                read_value(rd, depth);
                return;
            }
            ic.req = req;
            ic.which = i;
            read_object(rd, on_input_member, &ic, depth);
            return;
        }
    }
    read_value(rd, depth);
}

static void on_top_member(struct reader *rd, const struct span *key, void *ctx, int depth)
{
    struct request *req = ctx;
    int is_string = rd->p < rd->end && *rd->p == '"';
    if (span_is(key, "id")) {
        if (is_string) {
            read_string(rd, &req->id);
        } else {
            req->id_not_string = 1;
            read_value(rd, depth);
        }
    } else if (span_is(key, "format") && is_string) {
        read_string(rd, &req->format);
    } else if (span_is(key, "protocol") && is_string) {
        read_string(rd, &req->protocol);
    } else if (span_is(key, "inputs")) {
        if (rd->p < rd->end && *rd->p == '{') {
            read_object(rd, on_inputs_member, req, depth);
        } else {
            req->inputs_not_object = 1;
            read_value(rd, depth);
        }
    } else {
        read_value(rd, depth);
    }
}

/* Parses a whole line; returns NULL or the first error. */
static const char *parse_request(const char *line, size_t n, struct request *req)
{
    struct reader rd;
    memset(req, 0, sizeof *req);
    rd.p = line;
    rd.end = line + n;
    rd.error = NULL;
    skip_ws(&rd);
    if (rd.p >= rd.end || *rd.p != '{')
        return "request is not a JSON object";
    read_object(&rd, on_top_member, req, 0);
    if (!rd.error) {
        skip_ws(&rd);
        if (rd.p != rd.end)
            fail(&rd, "text after the JSON object");
    }
    return rd.error;
}

/* For a line the reader rejects: the id, if a plain "id": "..." member can still be seen. */
static void salvage_id(const char *line, size_t n, struct span *id)
{
    const char *end = line + n, *p = line;
    while (p + 4 <= end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q || q + 4 > end)
            return;
        if (memcmp(q, "\"id\"", 4) == 0) {
            struct reader rd;
            struct span s = {NULL, 0, 0};
            rd.p = q + 4;
            rd.end = end;
            rd.error = NULL;
            skip_ws(&rd);
            if (rd.p < rd.end && *rd.p == ':') {
                rd.p++;
                skip_ws(&rd);
                if (read_string(&rd, &s)) {
                    *id = s;
                    return;
                }
            }
        }
        p = q + 1;
    }
}

/* ------------------------------------------------------------------------------------- */
/* Responses                                                                             */

/* Writes a raw string span as a JSON string (it was valid JSON text in the request). */
static void put_span(const struct span *sp)
{
    size_t i;
    putchar('"');
    if (sp->found) {
        for (i = 0; i < sp->n; i++) {
            unsigned char c = (unsigned char)sp->s[i];
            if (c < 0x20)
                printf("\\u%04x", c); /* cannot happen for a string the reader accepted */
            else
                putchar(c);
        }
    }
    putchar('"');
}

/* Writes a C string as JSON string contents (messages only: ASCII, maybe with quotes). */
static void put_text(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
}

static void respond_message(const struct span *id, const char *kind, const char *message)
{
    fputs("{\"id\": ", stdout);
    put_span(id);
    printf(", \"%s\": \"", kind);
    put_text(message);
    fputs("\"}\n", stdout);
    fflush(stdout);
}

/* At most 200 bytes of a piece of the request (a format name, a number's text), for a
 * message. */
static int clip(const struct span *sp)
{
    return sp->n > 200 ? 200 : (int)sp->n;
}

static void put_number(const char *name, double v, int last)
{
    printf("\"%s\": ", name);
    if (isnan(v))
        fputs("\"nan\"", stdout); /* not "%a": it may print "-nan" */
    else if (isinf(v))
        fputs(v < 0 ? "\"-inf\"" : "\"inf\"", stdout);
    else
        printf("\"%a\"", v); /* exact: C99 hex */
    if (!last)
        fputs(", ", stdout);
}

static void respond_outputs(const struct span *id, const struct outputs *o)
{
    fputs("{\"id\": ", stdout);
    put_span(id);
    fputs(", \"outputs\": {", stdout);
    put_number("y", o->y, 0);
    put_number("loss", o->loss, 0);
    put_number("dL_dw", o->dL_dw, 0);
    put_number("dL_db", o->dL_db, 0);
    put_number("w_new", o->w_new, 0);
    put_number("b_new", o->b_new, 0);
    put_number("dL_dy", o->dL_dy, 1);
    fputs("}}\n", stdout);
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------- */
/* One request                                                                           */

/* Copies a span into a NUL-terminated buffer; returns 0 if it does not fit or has a NUL or
 * a backslash (a number's text never needs an escape). */
static int span_text(const struct span *sp, char *buf, size_t size)
{
    if (!sp->found || sp->n >= size || memchr(sp->s, '\0', sp->n) || memchr(sp->s, '\\', sp->n))
        return 0;
    memcpy(buf, sp->s, sp->n);
    buf[sp->n] = '\0';
    return 1;
}

/* Converts input i: "hex" with strtod/strtof (exact for C99 hex of a value of the format),
 * or "decimal" when there is no hex (exact too: the decimal is the value's exact expansion,
 * and glibc's strtod/strtof round correctly).  Returns an error message or NULL. */
static const char *read_input(const struct request *req, int i, int is_float, double *value)
{
    static char buf[2048]; /* an exact float64 decimal: at most 1074 fraction digits */
    const struct span *sp = req->hex[i].found ? &req->hex[i] : &req->decimal[i];
    char *endp;
    if (!sp->found)
        return "no hex (and no decimal)";
    if (!span_text(sp, buf, sizeof buf) || buf[0] == '\0')
        return "unreadable number";
    if (is_float) {
        float f = strtof(buf, &endp);
        double d;
        if (*endp != '\0')
            return "not a number";
        d = strtod(buf, NULL);
        if (d != (double)f && !(d != d && f != f))
            return "not a float32 value";
        *value = f;
    } else {
        *value = strtod(buf, &endp);
        if (*endp != '\0')
            return "not a number";
    }
    if (isnan(*value) || isinf(*value))
        return "not a finite value";
    return NULL;
}

static void handle_line(const char *line, size_t n)
{
    static const struct span none = {NULL, 0, 0};
    struct request req;
    const char *err;
    char message[512];
    int is_float, i;
    double in[N_INPUTS];

    err = parse_request(line, n, &req);
    if (err) {
        struct span id = req.id;
        if (!id.found)
            salvage_id(line, n, &id);
        sprintf(message, "malformed request: %s", err);
        respond_message(&id, "error", message);
        return;
    }
    if (!req.id.found && req.protocol.found) { /* the hello: no response */
        if (!span_is(&req.protocol, PROTOCOL))
            fprintf(stderr, "neuron_step: warning: the checker speaks %.*s; this program "
                            "speaks " PROTOCOL "\n", clip(&req.protocol), req.protocol.s);
        return;
    }
    if (!req.id.found) {
        respond_message(&none, "error", req.id_not_string ? "malformed request: id is not a "
                                                           "string"
                                                         : "malformed request: no id");
        return;
    }
    if (!req.format.found) {
        respond_message(&req.id, "error", "malformed request: no format string");
        return;
    }
    if (span_is(&req.format, "float16") || span_is(&req.format, "bfloat16")) {
        sprintf(message, "%.*s is not a standard C99 type", clip(&req.format), req.format.s);
        respond_message(&req.id, "unsupported", message);
        return;
    }
    if (span_is(&req.format, "float32"))
        is_float = 1;
    else if (span_is(&req.format, "float64"))
        is_float = 0;
    else {
        sprintf(message, "unknown format '%.*s'", clip(&req.format), req.format.s);
        respond_message(&req.id, "error", message);
        return;
    }
    if (req.inputs_not_object) {
        respond_message(&req.id, "error", "malformed request: inputs is not an object");
        return;
    }
    for (i = 0; i < N_INPUTS; i++) {
        const struct span *text = req.hex[i].found ? &req.hex[i] : &req.decimal[i];
        if (req.input_not_object[i]) {
            sprintf(message, "malformed request: input %s is not an object", INPUT_NAMES[i]);
            respond_message(&req.id, "error", message);
            return;
        }
        err = read_input(&req, i, is_float, &in[i]);
        if (err) {
            if (text->found)
                sprintf(message, "input %s: %s: '%.*s'", INPUT_NAMES[i], err, clip(text),
                        text->s);
            else
                sprintf(message, "input %s: %s", INPUT_NAMES[i], err);
            respond_message(&req.id, "error", message);
            return;
        }
    }
    {
        struct outputs o;
        if (is_float)
            step_float((float)in[IN_W], (float)in[IN_B], (float)in[IN_X], (float)in[IN_T],
                       (float)in[IN_LR], &o);
        else
            step_double(in[IN_W], in[IN_B], in[IN_X], in[IN_T], in[IN_LR], &o);
        respond_outputs(&req.id, &o);
    }
}

/* ------------------------------------------------------------------------------------- */

int main(void)
{
    size_t cap = 4096, len;
    char *line = malloc(cap);
    int c;

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD < 0 || FLT_EVAL_METHOD > 1
    fprintf(stderr, "neuron_step: warning: FLT_EVAL_METHOD is not 0 or 1: double operations "
                    "may be rounded twice (build with SSE2, e.g. -msse2 -mfpmath=sse)\n");
#endif
    if (!line) {
        fprintf(stderr, "neuron_step: out of memory\n");
        return 1;
    }
    for (;;) {
        len = 0;
        while ((c = getchar()) != EOF && c != '\n') {
            if (len + 1 >= cap) {
                char *bigger = realloc(line, cap * 2);
                if (!bigger) {
                    fprintf(stderr, "neuron_step: out of memory (a line of %lu bytes)\n",
                            (unsigned long)len);
                    free(line);
                    return 1;
                }
                line = bigger;
                cap *= 2;
            }
            line[len++] = (char)c;
        }
        if (c == EOF && len == 0)
            break;
        if (len > 0 && line[len - 1] == '\r')
            len--; /* tolerate CRLF */
        line[len] = '\0';
        {
            size_t i = 0;
            while (i < len && (line[i] == ' ' || line[i] == '\t'))
                i++;
            if (i < len) /* blank lines are not requests */
                handle_line(line, len);
        }
        if (c == EOF)
            break;
    }
    free(line);
    return 0;
}
