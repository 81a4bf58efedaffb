/*
 * arcade.h: write an Arcade plugin in C (clang --target=wasm32-wasi with
 * wasi-libc, -mexec-model=reactor). Header only: include it in one file.
 *
 * It declares the Extism kernel ABI (the imports of extism:host/env) and
 * small helpers over it: the call's input, its output or error (permanent
 * or not), config values, plugin variables, log lines, and a little JSON:
 * reading a string member of a flat object, and writing escaped strings.
 * The contract (which functions to export, what they get and answer) is in
 * Arcade's docs/plugin-contracts.md; examples/plugin-c uses this header.
 */
#ifndef ARCADE_H
#define ARCADE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARCADE_IMPORT(name) __attribute__((import_module("extism:host/env"), import_name(name)))
#define ARCADE_EXPORT(name) __attribute__((export_name(name)))

/* The Extism kernel. Offsets address the kernel's memory, not the module's. */
ARCADE_IMPORT("input_length") uint64_t extism_input_length(void);
ARCADE_IMPORT("input_load_u8") uint8_t extism_input_load_u8(uint64_t offset);
ARCADE_IMPORT("input_load_u64") uint64_t extism_input_load_u64(uint64_t offset);
ARCADE_IMPORT("alloc") uint64_t extism_alloc(uint64_t n);
ARCADE_IMPORT("free") void extism_free(uint64_t offset);
ARCADE_IMPORT("length") uint64_t extism_length(uint64_t offset);
ARCADE_IMPORT("load_u8") uint8_t extism_load_u8(uint64_t offset);
ARCADE_IMPORT("load_u64") uint64_t extism_load_u64(uint64_t offset);
ARCADE_IMPORT("store_u8") void extism_store_u8(uint64_t offset, uint8_t v);
ARCADE_IMPORT("store_u64") void extism_store_u64(uint64_t offset, uint64_t v);
ARCADE_IMPORT("output_set") void extism_output_set(uint64_t offset, uint64_t n);
ARCADE_IMPORT("error_set") void extism_error_set(uint64_t offset);
ARCADE_IMPORT("config_get") uint64_t extism_config_get(uint64_t key);
ARCADE_IMPORT("var_get") uint64_t extism_var_get(uint64_t key);
ARCADE_IMPORT("var_set") void extism_var_set(uint64_t key, uint64_t value);
ARCADE_IMPORT("http_request") uint64_t extism_http_request(uint64_t request, uint64_t body);
ARCADE_IMPORT("http_status_code") int32_t extism_http_status_code(void);
ARCADE_IMPORT("log_debug") void extism_log_debug(uint64_t offset);
ARCADE_IMPORT("log_info") void extism_log_info(uint64_t offset);
ARCADE_IMPORT("log_warn") void extism_log_warn(uint64_t offset);
ARCADE_IMPORT("log_error") void extism_log_error(uint64_t offset);

/* arcade_kernel_write copies n bytes into a new kernel block. */
static inline uint64_t arcade_kernel_write(const char *s, size_t n) {
    uint64_t off = extism_alloc(n);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, s + i, 8); /* wasm is little-endian, like the kernel */
        extism_store_u64(off + i, word);
    }
    for (; i < n; i++) extism_store_u8(off + i, (uint8_t)s[i]);
    return off;
}

/* arcade_kernel_read copies a kernel block into a NUL-terminated malloc'd string. */
static inline char *arcade_kernel_read(uint64_t off) {
    uint64_t n = extism_length(off);
    char *buf = malloc(n + 1);
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word = extism_load_u64(off + i);
        memcpy(buf + i, &word, 8);
    }
    for (; i < n; i++) buf[i] = (char)extism_load_u8(off + i);
    buf[n] = 0;
    return buf;
}

/* arcade_input returns the call's input (JSON), NUL-terminated; free it. */
static inline char *arcade_input(void) {
    uint64_t n = extism_input_length();
    char *buf = malloc(n + 1);
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word = extism_input_load_u64(i);
        memcpy(buf + i, &word, 8);
    }
    for (; i < n; i++) buf[i] = (char)extism_input_load_u8(i);
    buf[n] = 0;
    return buf;
}

/* arcade_output sets the call's output; return 0 from the export after it. */
static inline int32_t arcade_output(const char *s) {
    size_t n = strlen(s);
    extism_output_set(arcade_kernel_write(s, n), n);
    return 0;
}

/* arcade_fail sets the call's error, shown to users verbatim; it returns 1,
 * the export's return value. Arcade may retry the call (notifications). */
static inline int32_t arcade_fail(const char *msg) {
    extism_error_set(arcade_kernel_write(msg, strlen(msg)));
    return 1;
}

/* ARCADE_PERMANENT_VAR is the plugin variable that marks an error permanent. */
#define ARCADE_PERMANENT_VAR "arcade.error.permanent"

/* arcade_fail_permanent is arcade_fail for an error no retry can fix (a
 * receiver refusing the request, a config value missing): Arcade does not
 * call again. */
static inline int32_t arcade_fail_permanent(const char *msg) {
    uint64_t k = arcade_kernel_write(ARCADE_PERMANENT_VAR, strlen(ARCADE_PERMANENT_VAR));
    extism_var_set(k, arcade_kernel_write("1", 1));
    extism_free(k);
    return arcade_fail(msg);
}

/* arcade_config returns the config value of key (plugins.yaml config:), or
 * NULL; free it. */
static inline char *arcade_config(const char *key) {
    uint64_t k = arcade_kernel_write(key, strlen(key));
    uint64_t off = extism_config_get(k);
    extism_free(k);
    if (off == 0) return NULL;
    char *v = arcade_kernel_read(off);
    extism_free(off);
    return v;
}

/* arcade_log writes a line to the step's or the server's log. */
static inline void arcade_log_info(const char *msg) { extism_log_info(arcade_kernel_write(msg, strlen(msg))); }
static inline void arcade_log_warn(const char *msg) { extism_log_warn(arcade_kernel_write(msg, strlen(msg))); }
static inline void arcade_log_error(const char *msg) { extism_log_error(arcade_kernel_write(msg, strlen(msg))); }

/*
 * arcade_json_string finds the first "key": "value" in a JSON text, at any
 * depth, and returns the value unescaped (\" \\ \/ \n \t \r \b \f; a \u
 * escape becomes '?'), or NULL when absent or not a string; free it. Enough
 * for the requests of the contract, whose keys are unambiguous.
 */
static inline char *arcade_json_string(const char *json, const char *key) {
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
                case 'r': *w++ = '\r'; break;
                case 'b': *w++ = '\b'; break;
                case 'f': *w++ = '\f'; break;
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

/* arcade_json_quote returns s as a JSON string, quoted and escaped; free it. */
static inline char *arcade_json_quote(const char *s) {
    char *out = malloc(strlen(s) * 6 + 3), *w = out;
    static const char hex[] = "0123456789abcdef";
    *w++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': *w++ = '\\'; *w++ = '"'; break;
        case '\\': *w++ = '\\'; *w++ = '\\'; break;
        case '\n': *w++ = '\\'; *w++ = 'n'; break;
        case '\t': *w++ = '\\'; *w++ = 't'; break;
        case '\r': *w++ = '\\'; *w++ = 'r'; break;
        default:
            if (*p < 0x20) {
                memcpy(w, "\\u00", 4);
                w += 4;
                *w++ = hex[*p >> 4];
                *w++ = hex[*p & 15];
            } else {
                *w++ = (char)*p;
            }
        }
    }
    *w++ = '"';
    *w = 0;
    return out;
}

#endif /* ARCADE_H */
