/* backend.h: the handful of things the loop needs from the OS.
 *
 * Two backends sit behind this table of functions:
 *   - backend_epoll.c (Linux): one epoll set holding the watched fds and
 *     the loop's own timerfd, eventfd, signal socket and libuv's backend
 *     fd; registration is synchronous, timers have nanosecond resolution.
 *   - backend_uv.c (everywhere, the only one in a portable build): a
 *     uv_poll_t per watched fd, one uv_timer_t for the earliest deadline,
 *     a uv_async_t for wake-ups.
 * The loop picks one at creation (tl_backend_choose); nothing outside the
 * two backend files names epoll, timerfd, eventfd or a libuv watcher.
 *
 * Threads and the GIL: every function runs in the loop's thread with the
 * GIL held, except wait() (called without the GIL when it blocks),
 * wakeup() (any thread, without the GIL) and release() (any thread).
 * None of them touches Python, except create(), which sets an exception
 * when it fails. */
#ifndef TL_BACKEND_H
#define TL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* The epoll backend exists on Linux unless the build is portable
 * (TIDELOOP_PORTABLE, set by setup.py: POSIX and libuv only). */
#if defined(__linux__) && !defined(TIDELOOP_PORTABLE)
#define TL_HAVE_EPOLL 1
#endif

struct tl_uv;

/* Sides of a watched fd: what watch() asks for and what wait() reports.
 * As selectors.EpollSelector: an error or hang-up wakes both sides. */
#define TL_EV_READ 1
#define TL_EV_WRITE 2

typedef struct tl_event {
    int fd;
    int events;                  /* TL_EV_READ | TL_EV_WRITE */
} tl_event;

typedef struct tl_backend_ops {
    const char *name;            /* "epoll" or "libuv": loop.stats() */
    /* Whether it waits in DNS's uv loop (u->dns), which then exists from
     * loop creation on; otherwise u->dns is made at the first lookup
     * (dns.c) and attached with uv_attach(). */
    char waits_in_uv;
    /* Whether a registration may be kept past its last handle for a
     * while (poll.c's lingering sock_* watches): an event of a file
     * that was closed meanwhile is then never reported under its fd
     * number to anyone (a stale item's events are dropped). */
    char lazy_unwatch;
    /* Make the kernel objects and the signal socket (tl_sig_pair), in u
     * (whose u->dns exists if waits_in_uv).  0, or -1 with a Python
     * exception set (u is then released by the caller, which calls
     * close() and release()). */
    int (*create)(struct tl_uv *u);
    /* u->dns was just made (or forked): have its completions wake wait().
     * 0, or -1 with errno. */
    int (*uv_attach)(struct tl_uv *u);
    /* Stop every libuv handle the backend owns (uv_close), so that the uv
     * loop can be run to its end.  Idempotent. */
    void (*close)(struct tl_uv *u);
    /* Free what create() made, once the uv loop is closed. */
    void (*release)(struct tl_uv *u);
    /* Watch `fd` for `events` (0: stop watching), `old` being what it
     * watched until now (0: nothing).  0, or -1 with errno set to what
     * asyncio's selector raises at register()/modify() (EBADF, EPERM for
     * a regular file, ...), the watch then unchanged. */
    int (*watch)(struct tl_uv *u, int fd, int events, int old);
    /* `fd`, watched, is about to be closed: forget its registration
     * without a syscall (lazy_unwatch backends only, else NULL). */
    void (*forget)(struct tl_uv *u, int fd);
    /* Whether `fd` is one of the backend's own (not watchable: EINVAL). */
    int (*owns_fd)(struct tl_uv *u, int fd);
    /* Wait for events, until a watched fd is ready, the armed timer
     * expires or wakeup() is called if `block`, else without blocking.
     * Sets *out to the ready fds in the kernel's order (the backend's
     * memory, valid until the next wait) and returns how many, or -1 with
     * errno (EINTR is not an error: 0 is returned).  Also sets
     * u->sig_pending (the signal socket is readable) and u->timer_fired. */
    int (*wait)(struct tl_uv *u, int block, tl_event **out);
    /* Wake a blocking wait() at `ns` on the loop's clock (CLOCK_MONOTONIC
     * nanoseconds), never earlier; 0 disarms. */
    void (*arm)(struct tl_uv *u, int64_t ns);
    /* Make a blocking wait() return: any thread, without the GIL. */
    void (*wakeup)(struct tl_uv *u);
    /* In a child after fork(): new kernel objects (the inherited ones are
     * shared with the parent).  0, or -1 with errno. */
    int (*after_fork)(struct tl_uv *u);
    /* After after_fork(): register again an fd watched for `events`. */
    void (*rewatch)(struct tl_uv *u, int fd, int events);
} tl_backend_ops;

/* backend.c: the backend for a new loop: TIDELOOP_BACKEND=epoll|libuv,
 * else epoll where it was compiled in, else libuv.  NULL with ValueError
 * for an unknown or unavailable name. */
const tl_backend_ops *tl_backend_choose(void);
/* Whether the epoll backend was compiled in (not a portable build). */
int tl_backend_have_epoll(void);

/* POSIX helpers shared by the backends and the loop. */
/* A non-blocking close-on-exec AF_UNIX stream pair. 0, or -1 with errno. */
int tl_socketpair_nb(int sv[2]);
/* The loop's signal wake-up socket pair, in u->sig_rfd/sig_wfd. */
int tl_sig_pair(struct tl_uv *u);
/* Move `newfd` onto the number `fd` (close-on-exec), closing newfd. */
int tl_fd_replace(int newfd, int fd);
/* Grow the table `*table` indexed by fd, `*n` items of `size` bytes, so
 * that it holds index `fd`: 64 items at first, then doubled; the new
 * items are zeroed.  0, or -1 with errno (ENOMEM), the table unchanged. */
int tl_fd_table_reserve(void **table, int *n, size_t size, int fd);

#ifdef TL_HAVE_EPOLL
extern const tl_backend_ops tl_backend_epoll;
#endif
extern const tl_backend_ops tl_backend_uv;

#endif /* TL_BACKEND_H */
