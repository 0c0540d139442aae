/* send-file and download: transfers over HTTP(S) with a progress display and resume. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

int on_progress(uint64_t done, uint64_t total, void *ud)
{
    struct progress *p = ud;
    if (!p->reported) {
        p->reported = 1;
        p->first = done;
    }
    int pct = total ? (int)(done * 100 / total) : 100;
    if (!p->quiet && (pct != p->last_pct || done == total)) {
        if (p->on_screen) {
            struct strbuf b = {0};
            sb_addf(&b, "%s: %3d%% (%" PRIu64 " of %" PRIu64 " bytes)", p->what, pct, done,
                    total);
            screen_status(b.s);
            sb_free(&b);
        } else {
            fprintf(stderr, "\r%s: %3d%% (%" PRIu64 " of %" PRIu64 " bytes)", p->what, pct, done,
                    total);
            if (done == total)
                fputc('\n', stderr);
        }
        p->last_pct = pct;
    }
    if (p->stop_after && done >= p->stop_after && done < total) {
        if (!p->quiet && !p->on_screen)
            fputc('\n', stderr);
        return 1;
    }
    return 0;
}

static int transfer_error(const char *what, int rc)
{
    if (rc == CHAT_EUSER) {
        fprintf(stderr, "%s: %s interrupted; run the same command again to resume\n", prog,
                what);
        return EXIT_FAIL;
    }
    print_lib_error(what, rc);
    return rc == CHAT_EAUTH ? EXIT_AUTH : EXIT_FAIL;
}

int cmd_send_file(chat_client *c, const struct opts *o, struct waiter *w)
{
    if ((o->to != NULL) == (o->has_conv != 0))
        return usage_error("send-file needs exactly one of --to USER and --conv ID");
    if (o->npos != 2)
        return usage_error("send-file needs one FILE");
    const char *path = o->pos[1];
    int64_t deadline = now_ms() + o->timeout_s * 1000;
    int ex = wait_synced(c, w, deadline);
    if (ex != EXIT_OK)
        return ex;
    struct progress p = {"upload", o->stop_after, 0, o->quiet, 0, -1, 0};
    char *id = NULL;
    const char *mime = o->mime ? o->mime : "application/octet-stream";
    int rc = chat_client_upload_file(&id, c, path, mime, on_progress, &p);
    if (rc != CHAT_OK)
        return transfer_error("upload", rc);
    if (!o->quiet && p.first > 0)
        fprintf(stderr, "resumed at byte %" PRIu64 "\n", p.first);
    struct stat st;
    double size = stat(path, &st) == 0 ? (double)st.st_size : -1;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    cJSON *m = cJSON_CreateObject();
    char *media = NULL;
    if (m && cJSON_AddStringToObject(m, "id", id) && cJSON_AddStringToObject(m, "mime", mime) &&
        cJSON_AddNumberToObject(m, "size", size) && cJSON_AddStringToObject(m, "name", base))
        media = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    char *cmid = NULL;
    rc = !media ? CHAT_ENOMEM
         : o->to ? chat_client_send_media_to(&cmid, c, o->to, media)
                 : chat_client_send_media(&cmid, c, o->conv, media);
    cJSON_free(media);
    if (rc != CHAT_OK) {
        chat_string_free(id);
        print_lib_error("send-file", rc);
        return EXIT_FAIL;
    }
    chat_event *ev = NULL;
    ex = wait_for(c, w, now_ms() + o->timeout_s * 1000, match_cmid, cmid, &ev, "the server's ack");
    chat_string_free(cmid);
    if (ex == EXIT_OK && chat_event_type(ev) == CHAT_EVENT_SEND_FAILED) {
        fprintf(stderr, "%s: send refused: %s (%s)\n", prog, chat_event_message(ev),
                chat_error_name(chat_event_code(ev)));
        ex = EXIT_FAIL;
    } else if (ex == EXIT_OK) {
        printf("%s\t%" PRIu64 "\n", id, chat_event_seq(ev));
    }
    chat_event_free(ev);
    chat_string_free(id);
    return ex;
}

int cmd_download(chat_client *c, const struct opts *o, struct waiter *w)
{
    if (o->npos != 3)
        return usage_error("download needs MEDIA_ID and FILE");
    int64_t deadline = now_ms() + o->timeout_s * 1000;
    int ex = wait_synced(c, w, deadline);
    if (ex != EXIT_OK)
        return ex;
    uint64_t req = 0;
    int rc = chat_client_media_url(&req, c, o->pos[1]);
    if (rc != CHAT_OK) {
        print_lib_error("download", rc);
        return EXIT_FAIL;
    }
    chat_event *ev = NULL;
    ex = wait_for(c, w, deadline, match_request, &req, &ev, "the media URL");
    if (ex != EXIT_OK)
        return ex;
    cJSON *ans = chat_event_code(ev) == CHAT_OK ? cJSON_Parse(chat_event_json(ev)) : NULL;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(ans, "url");
    if (!cJSON_IsString(url)) {
        fprintf(stderr, "%s: media URL refused: %s (%s)\n", prog, chat_event_message(ev),
                chat_error_name(chat_event_code(ev)));
        cJSON_Delete(ans);
        chat_event_free(ev);
        return EXIT_FAIL;
    }
    chat_event_free(ev);
    struct progress p = {"download", o->stop_after, 0, o->quiet, 0, -1, 0};
    rc = chat_client_download(c, url->valuestring, o->pos[1], o->pos[2], on_progress, &p);
    cJSON_Delete(ans);
    if (rc != CHAT_OK)
        return transfer_error("download", rc);
    if (!o->quiet && p.first > 0)
        fprintf(stderr, "resumed at byte %" PRIu64 "\n", p.first);
    printf("%s\n", o->pos[2]);
    return EXIT_OK;
}
