/* Names for libchat's own threads, so that top -H, perf and /proc/PID/task show which is the
 * server's loop, its writer, the store's checkpointer... instead of the host's name for each. */
#ifndef CHAT_CORE_THREADNAME_H
#define CHAT_CORE_THREADNAME_H

/* Name the calling thread (at most 15 characters are kept); does nothing where the system has
 * no thread names. */
void chat__thread_name(const char *name);

#endif /* CHAT_CORE_THREADNAME_H */
