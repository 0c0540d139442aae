/* Independent models of JSON tree properties for the frame and reply targets: they check what
 * lib/core/decode.c promises without sharing its code (pairwise, recursive, slow and obvious). */
#ifndef CHAT_FUZZ_JSON_H
#define CHAT_FUZZ_JSON_H

#include <cjson/cJSON.h>
#include <string.h>

/* Nesting depth: 0 for a scalar, 1 for a flat object or array. */
static inline int fuzz_tree_depth(const cJSON *n)
{
    if (!cJSON_IsObject(n) && !cJSON_IsArray(n))
        return 0;
    int max = 0;
    for (const cJSON *c = n->child; c; c = c->next) {
        int d = fuzz_tree_depth(c);
        if (d > max)
            max = d;
    }
    return max + 1;
}

/* 1 when any object in the tree repeats a key. */
static inline int fuzz_tree_has_dup(const cJSON *n)
{
    if (cJSON_IsObject(n))
        for (const cJSON *a = n->child; a; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (a->string && b->string && strcmp(a->string, b->string) == 0)
                    return 1;
    for (const cJSON *c = n->child; c; c = c->next)
        if (fuzz_tree_has_dup(c))
            return 1;
    return 0;
}

#endif
