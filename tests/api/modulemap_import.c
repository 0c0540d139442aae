/* Imports libchat's client API as the Clang module CChat (include/chat/module.modulemap), as
 * Swift does, and calls into it. Built by check_modulemap.sh with clang -fmodules. */
#pragma clang module import CChat

#include <stdio.h>
#include <string.h>

int main(void)
{
    chat_client_config *cfg = NULL;
    if (chat_client_config_new(&cfg) != CHAT_OK)
        return 1;
    /* an error path: a config without credentials makes no client */
    chat_client_config_set_server(cfg, "ws://127.0.0.1:9/");
    chat_client *c = NULL;
    int rc = chat_client_new(&c, cfg);
    chat_client_config_free(cfg);
    if (rc != CHAT_EINVAL || c != NULL || strcmp(chat_error_name(rc), "EINVAL") != 0) {
        fprintf(stderr, "chat_client_new without credentials: %d\n", rc);
        return 1;
    }
    printf("CChat: %s\n", chat_version_string());
    return 0;
}
