/* client-minimal: the smallest complete libchat client (doc/client.md walks through it).
 *
 *   client-minimal ws://127.0.0.1:7700/ TOKEN [PEER [TEXT]]
 *   client-minimal --version
 *
 * Connects with TOKEN, keeps its cache in ./client-minimal.db, sends TEXT to PEER if given
 * (queued in the outbox even while offline), then prints events for 10 seconds: connection
 * changes, messages (marking them read), acks and receipts. */
#include <chat/chat.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        /* the library loaded at run time, and the headers compiled against */
        printf("libchat %s (headers %s)\n", chat_version_string(), CHAT_VERSION_STRING);
        return 0;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s URL TOKEN [PEER [TEXT]]\n       %s --version\n", argv[0],
                argv[0]);
        return 2;
    }
    chat_client_config *cfg = NULL;
    chat_client *c = NULL;
    int rc = chat_client_config_new(&cfg);
    if (rc == CHAT_OK)
        rc = chat_client_config_set_server(cfg, argv[1]);
    if (rc == CHAT_OK)
        rc = chat_client_config_set_token(cfg, argv[2]);
    if (rc == CHAT_OK)
        rc = chat_client_config_set_cache_path(cfg, "client-minimal.db");
    if (rc == CHAT_OK)
        rc = chat_client_new(&c, cfg);
    chat_client_config_free(cfg); /* the client copied what it needs */
    if (rc == CHAT_OK)
        rc = chat_client_start(c); /* the loop thread connects, syncs, flushes the outbox */
    if (rc != CHAT_OK) {
        fprintf(stderr, "libchat: %s (%s)\n", chat_strerror(rc), chat_error_last()->message);
        chat_client_free(c);
        return 1;
    }

    if (argc >= 4) {
        const char *text = argc >= 5 ? argv[4] : "hello from client-minimal";
        char *cmid = NULL;
        rc = chat_client_send_text_to(&cmid, c, argv[3], text, strlen(text));
        if (rc == CHAT_OK)
            printf("queued %s\n", cmid); /* durable in the outbox from here on */
        else
            fprintf(stderr, "send: %s\n", chat_error_last()->message);
        chat_string_free(cmid);
    }

    time_t end = time(NULL) + 10;
    while (time(NULL) < end) {
        chat_event *ev = NULL;
        if (chat_client_wait_event(&ev, c, 500) != CHAT_OK)
            continue; /* timed out: nothing happened */
        switch (chat_event_type(ev)) {
        case CHAT_EVENT_ONLINE:
            printf("online as %s\n", chat_event_user(ev));
            break;
        case CHAT_EVENT_OFFLINE:
            printf("offline (%s), retry in %lld ms\n", chat_event_message(ev),
                   (long long)chat_event_retry_ms(ev));
            break;
        case CHAT_EVENT_AUTH_FAILED:
            printf("auth failed: %s\n", chat_event_message(ev));
            end = 0;
            break;
        case CHAT_EVENT_MESSAGE:
            printf("[%lld #%llu] %s: %s\n", (long long)chat_event_conv(ev),
                   (unsigned long long)chat_event_seq(ev), chat_event_user(ev),
                   chat_event_text(ev, NULL));
            chat_client_mark_read(c, chat_event_conv(ev), chat_event_seq(ev));
            break;
        case CHAT_EVENT_SENT:
            printf("sent %s as #%llu\n", chat_event_cmid(ev),
                   (unsigned long long)chat_event_seq(ev));
            break;
        case CHAT_EVENT_RECEIPT:
            printf("%s: delivered %llu, read %llu\n", chat_event_user(ev),
                   (unsigned long long)chat_event_delivered(ev),
                   (unsigned long long)chat_event_read(ev));
            break;
        default:
            break;
        }
        chat_event_free(ev);
    }
    chat_client_free(c); /* stops the loop thread; the outbox stays in the cache file */
    return 0;
}
