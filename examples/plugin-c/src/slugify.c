/*
 * slugify: an Arcade custom plugin in C, built with clang and wasi-libc.
 *
 * It speaks the Extism kernel ABI directly (imports from extism:host/env)
 * and the arcade.plugin.v1 contract as JSON:
 *
 *   metadata -> {"name":"slugify-c","kind":"KIND_CUSTOM",...}
 *   execute  <- {"action":"slugify","params":{"text":"Hello, World!"}}
 *            -> {"status":"STATUS_SUCCESS","result":{"slug":"hello-world"}}
 *
 * The separator comes from the plugin's config (config_get "separator",
 * default "-"). Unknown actions fail with an error the host shows verbatim.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("extism:host/env"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("input_length") uint64_t extism_input_length(void);
IMPORT("input_load_u8") uint8_t extism_input_load_u8(uint64_t offset);
IMPORT("input_load_u64") uint64_t extism_input_load_u64(uint64_t offset);
IMPORT("alloc") uint64_t extism_alloc(uint64_t n);
IMPORT("free") void extism_free(uint64_t offset);
IMPORT("length") uint64_t extism_length(uint64_t offset);
IMPORT("load_u8") uint8_t extism_load_u8(uint64_t offset);
IMPORT("store_u8") void extism_store_u8(uint64_t offset, uint8_t v);
IMPORT("output_set") void extism_output_set(uint64_t offset, uint64_t n);
IMPORT("error_set") void extism_error_set(uint64_t offset);
IMPORT("config_get") uint64_t extism_config_get(uint64_t offset);
IMPORT("log_info") void extism_log_info(uint64_t offset);

static uint64_t to_kernel(const char *s, size_t n) {
    uint64_t off = extism_alloc(n);
    for (size_t i = 0; i < n; i++) extism_store_u8(off + i, (uint8_t)s[i]);
    return off;
}

static int32_t output(const char *s) {
    size_t n = strlen(s);
    extism_output_set(to_kernel(s, n), n);
    return 0;
}

static int32_t fail(const char *msg) {
    extism_error_set(to_kernel(msg, strlen(msg)));
    return 1;
}

/* read_input returns the call's input as a NUL-terminated string. */
static char *read_input(void) {
    uint64_t n = extism_input_length();
    char *buf = malloc(n + 1);
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word = extism_input_load_u64(i);
        memcpy(buf + i, &word, 8); /* wasm is little-endian, like the kernel */
    }
    for (; i < n; i++) buf[i] = (char)extism_input_load_u8(i);
    buf[n] = 0;
    return buf;
}

/* config returns the configuration value for key, or NULL. */
static char *config(const char *key) {
    uint64_t k = to_kernel(key, strlen(key));
    uint64_t off = extism_config_get(k);
    extism_free(k);
    if (off == 0) return NULL;
    uint64_t n = extism_length(off);
    char *v = malloc(n + 1);
    for (uint64_t i = 0; i < n; i++) v[i] = (char)extism_load_u8(off + i);
    v[n] = 0;
    extism_free(off);
    return v;
}

/*
 * json_string finds "key": "value" in a flat JSON text and returns the
 * value, unescaped (\" \\ \/ \n \t; \u escapes become '?'), or NULL.
 */
static char *json_string(const char *json, const char *key) {
    size_t klen = strlen(key);
    for (const char *p = json; (p = strchr(p, '"')) != NULL; p++) {
        if (strncmp(p + 1, key, klen) != 0 || p[1 + klen] != '"') continue;
        const char *q = p + 2 + klen;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
        if (*q != ':') continue;
        q++;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
        if (*q != '"') return NULL;
        q++;
        char *out = malloc(strlen(q) + 1), *w = out;
        for (; *q && *q != '"'; q++) {
            if (*q == '\\' && q[1]) {
                q++;
                switch (*q) {
                case 'n': *w++ = '\n'; break;
                case 't': *w++ = '\t'; break;
                case 'u': *w++ = '?'; q += (q[1] && q[2] && q[3] && q[4]) ? 4 : 0; break;
                default: *w++ = *q;
                }
            } else {
                *w++ = *q;
            }
        }
        *w = 0;
        return out;
    }
    return NULL;
}

static int is_alnum(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* slugify lower-cases ASCII letters and digits and joins runs of them with sep. */
static char *slugify(const char *text, const char *sep) {
    size_t seplen = strlen(sep);
    char *out = malloc(strlen(text) * (seplen + 1) + 1), *w = out;
    int pending = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (is_alnum(*p)) {
            if (pending && w != out) {
                memcpy(w, sep, seplen);
                w += seplen;
            }
            pending = 0;
            *w++ = (*p >= 'A' && *p <= 'Z') ? (char)(*p + 32) : (char)*p;
        } else {
            pending = 1;
        }
    }
    *w = 0;
    return out;
}

EXPORT("metadata") int32_t metadata(void) {
    return output("{\"name\":\"slugify-c\",\"kind\":\"KIND_CUSTOM\",\"version\":\"1.0.0\","
                  "\"contractVersion\":\"v1\",\"functions\":[\"execute\"],"
                  "\"description\":\"URL slugs from text; an Arcade plugin in C\"}");
}

EXPORT("execute") int32_t execute(void) {
    char *in = read_input();
    char *action = json_string(in, "action");
    if (action == NULL || strcmp(action, "slugify") != 0) {
        return fail("slugify-c: unknown action (want slugify)");
    }
    char *text = json_string(in, "text");
    if (text == NULL) return fail("slugify-c: params.text is required");
    char *sep = config("separator");
    char *slug = slugify(text, sep ? sep : "-");
    const char *head = "{\"status\":\"STATUS_SUCCESS\",\"result\":{\"slug\":\"";
    const char *tail = "\"}}";
    char *out = malloc(strlen(head) + strlen(slug) + strlen(tail) + 1);
    strcpy(out, head);
    strcat(out, slug); /* a slug holds only [a-z0-9] and the separator */
    strcat(out, tail);
    output(out);
    char msg[64] = "slugified into ";
    strncat(msg, slug, sizeof msg - strlen(msg) - 1);
    extism_log_info(to_kernel(msg, strlen(msg)));
    free(in); free(action); free(text); free(sep); free(slug); free(out);
    return 0;
}
