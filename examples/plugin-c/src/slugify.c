/*
 * slugify: an Arcade custom plugin in C, built with clang and wasi-libc.
 *
 * pdk/c/arcade.h declares the Extism kernel ABI and the helpers used here;
 * the arcade.plugin.v1 contract is spoken as JSON:
 *
 *   metadata -> {"name":"slugify-c","kind":"KIND_CUSTOM",...}
 *   execute  <- {"action":"slugify","params":{"text":"Hello, World!"}}
 *            -> {"status":"STATUS_SUCCESS","result":{"slug":"hello-world"}}
 *
 * The separator comes from the plugin's config (separator, default "-").
 * Unknown actions and a missing text fail with a permanent error (calling
 * again cannot help) that the host shows verbatim.
 */
#include <stdio.h>

#include "arcade.h"

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

ARCADE_EXPORT("metadata") int32_t metadata(void) {
    return arcade_output("{\"name\":\"slugify-c\",\"kind\":\"KIND_CUSTOM\",\"version\":\"1.0.0\","
                         "\"contractVersion\":\"v1\",\"functions\":[\"execute\"],"
                         "\"description\":\"URL slugs from text; an Arcade plugin in C\","
                         "\"params\":[{\"name\":\"action\",\"required\":true},{\"name\":\"text\",\"required\":true}],"
                         "\"config\":[{\"name\":\"separator\",\"defaultValue\":\"-\"}]}");
}

ARCADE_EXPORT("execute") int32_t execute(void) {
    char *in = arcade_input();
    char *action = arcade_json_string(in, "action");
    char *text = arcade_json_string(in, "text");
    int32_t rc;
    if (action == NULL || strcmp(action, "slugify") != 0) {
        rc = arcade_fail_permanent("slugify-c: unknown action (want slugify)");
    } else if (text == NULL) {
        rc = arcade_fail_permanent("slugify-c: params.text is required");
    } else {
        char *sep = arcade_config("separator");
        char *slug = slugify(text, sep ? sep : "-");
        char *quoted = arcade_json_quote(slug);
        char *out = malloc(strlen(quoted) + 64);
        sprintf(out, "{\"status\":\"STATUS_SUCCESS\",\"result\":{\"slug\":%s}}", quoted);
        rc = arcade_output(out);
        char msg[64];
        snprintf(msg, sizeof msg, "slugified into %s", slug);
        arcade_log_info(msg);
        free(sep); free(slug); free(quoted); free(out);
    }
    free(in); free(action); free(text);
    return rc;
}
