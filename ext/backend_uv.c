/* backend_uv.c: the libuv backend (backend.h): macOS, the BSDs, a
 * portable build, and Linux with TIDELOOP_BACKEND=libuv.
 *
 * - One uv_poll_t per watched fd, its events switched between reader and
 *   writer.  The loop waits in uv_run(UV_RUN_ONCE); the callbacks only
 *   record which fds fired, in libuv's (the kernel's) order.
 * - One uv_timer_t for the earliest deadline.  libuv's clock counts
 *   milliseconds and may lag: the delay is rounded up, and a timer that
 *   wakes the loop early is not run (the loop checks loop.time() >= when
 *   and arms again), so no timer ever runs before its `when`.
 * - Wake-ups from other threads: a byte on a socket pair whose read end
 *   is watched like any fd.  (uv_async_send() makes its receiver spin
 *   and sched_yield() while the sender is between its two atomic steps:
 *   measured 0.43x the epoll backend's eventfd on threadsafe_pingpong.)
 * - The signal wake-up socket is watched like any fd.
 * - After fork, uv_loop_fork() re-creates the kernel objects.
 *
 * Deferred registration.  libuv applies uv_poll_start() inside the next
 * poll, and on Linux 1.44 abort()s when that epoll_ctl() fails: an fd
 * closed (or closed and replaced by a regular file) between add_reader()
 * and the next poll would kill the process.  So:
 *   - watch() checks the fd as asyncio's selector would at register()
 *     (fstat: EBADF; EPERM for a regular file; ENOENT for a change of
 *     events on an fd that now names another file, as epoll's modify()),
 *     calls uv_poll_start() and puts the watcher on the pending list;
 *   - wait(), right before its one uv_run(), checks each pending watcher
 *     again: one whose fd was closed, or now names another file, is
 *     stopped (libuv then never registers it), as the kernel's set drops
 *     a file when its last descriptor goes.  Nothing runs between that
 *     check and the poll that applies the rest.
 * So a change of watch costs no poll of its own (uvloop's cost: one
 * epoll_ctl in libuv's next poll).  A watcher whose fd stops being
 * watched is stopped at once and kept, for the same file, for the next
 * watch (no uv_poll_init() per add_reader()).  One difference remains
 * with asyncio on epoll: an fd closed before the first poll while its
 * file stays open through another descriptor is dropped (asyncio on
 * epoll keeps reporting it under the closed number; asyncio on kqueue,
 * macOS and the BSDs, drops it, as here).  A handle that libuv stops on
 * POLLERR goes on the same pending list.  (Another thread closing the fd
 * between the check and the poll is outside what this can see.) */
#include "tideloop.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

struct tl_backend;

typedef struct tl_uvw {
    uv_poll_t h;                 /* h.data = this */
    struct tl_backend *b;
    struct tl_uvw *next_pending;
    uint64_t batch;              /* the batch that recorded it last */
    int slot;                    /* its index in that batch */
    int fd;
    int events;                  /* TL_EV_* watched (0: stopped, kept) */
    char pending;                /* on the pending list */
    dev_t dev;                   /* the file it was registered for */
    ino_t ino;
} tl_uvw;

typedef struct tl_backend {
    tl_uv *u;
    uv_timer_t timer;
    uv_poll_t wake;              /* wake_fd[0] */
    int wake_fd[2];
    uv_poll_t sig;
    char have_timer, have_wake, have_sig, closed;
    tl_uvw **w;                  /* by fd */
    int nw;
    int n_watched;               /* watchers in the table */
    /* Started since the last poll, or stopped by libuv on POLLERR: to
     * check before the next poll. */
    tl_uvw *pending;
    /* Two buffers of events: wait() hands one to the loop, which reads
     * it while the other records the next wait. */
    tl_event *buf[2];
    int cap[2];
    int cur;                     /* the recording buffer */
    int nout;                    /* events in it */
    uint64_t batch;              /* its batch number */
} tl_backend;
static void
uvbe_on_close_free(uv_handle_t *h)
{
    PyMem_RawFree(h->data);
}

static void
uvbe_on_timer(uv_timer_t *t)
{
    tl_backend *b = t->data;
    b->u->timer_fired = 1;
    /* uv_run() runs due timers before it polls, and the poll would then
     * block with no timer left: make it return instead. */
    uv_stop(t->loop);
}

static void
uvbe_on_wake(uv_poll_t *h, int status, int events)
{
    /* The wake-up is the whole job: the handles are queued. */
    tl_backend *b = h->data;
    char buf[64];
    while (read(b->wake_fd[0], buf, sizeof(buf)) > 0) {
    }
    if (status < 0) {
        (void)uv_poll_start(h, UV_READABLE, uvbe_on_wake);
    }
}

static void
uvbe_on_signal(uv_poll_t *h, int status, int events)
{
    tl_backend *b = h->data;
    b->u->sig_pending = 1;
    if (status < 0) {
        /* libuv stopped it (POLLERR): keep watching. */
        (void)uv_poll_start(h, UV_READABLE, uvbe_on_signal);
    }
}

static int
uvbe_create(tl_uv *u)
{
    tl_backend *b = PyMem_RawCalloc(1, sizeof(*b));
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    u->bd = b;
    b->u = u;
    b->wake_fd[0] = b->wake_fd[1] = -1;
    if (tl_sig_pair(u) < 0 || tl_socketpair_nb(b->wake_fd) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    /* libuv registers its own fds inside uv_run(), which is our wait. */
    u->dns->primed = 1;
    int err = uv_timer_init(&u->dns->loop, &b->timer);
    if (err == 0) {
        b->have_timer = 1;
        b->timer.data = b;
        err = uv_poll_init(&u->dns->loop, &b->wake, b->wake_fd[0]);
    }
    if (err == 0) {
        b->have_wake = 1;
        b->wake.data = b;
        err = uv_poll_start(&b->wake, UV_READABLE, uvbe_on_wake);
    }
    if (err == 0) {
        err = uv_poll_init(&u->dns->loop, &b->sig, u->sig_rfd);
    }
    if (err == 0) {
        b->have_sig = 1;
        b->sig.data = b;
        err = uv_poll_start(&b->sig, UV_READABLE, uvbe_on_signal);
    }
    if (err < 0) {
        PyErr_Format(PyExc_OSError, "libuv backend: %s", uv_strerror(err));
        return -1;
    }
    return 0;
}

static void
uvbe_close_handle(uv_handle_t *h, char *have)
{
    if (*have && !uv_is_closing(h)) {
        uv_close(h, NULL);
    }
    *have = 0;
}

static void
uvbe_close(tl_uv *u)
{
    tl_backend *b = u->bd;
    if (b == NULL || b->closed) {
        return;
    }
    b->closed = 1;
    uvbe_close_handle((uv_handle_t *)&b->timer, &b->have_timer);
    uvbe_close_handle((uv_handle_t *)&b->wake, &b->have_wake);
    uvbe_close_handle((uv_handle_t *)&b->sig, &b->have_sig);
    for (int fd = 0; fd < b->nw; fd++) {
        tl_uvw *w = b->w[fd];
        if (w != NULL) {
            b->w[fd] = NULL;
            uv_close((uv_handle_t *)&w->h, uvbe_on_close_free);
        }
    }
    b->pending = NULL;
}

static void
uvbe_release(tl_uv *u)
{
    tl_backend *b = u->bd;
    if (b == NULL) {
        return;
    }
    if (b->wake_fd[0] >= 0) {
        close(b->wake_fd[0]);
        close(b->wake_fd[1]);
    }
    PyMem_RawFree(b->w);
    PyMem_RawFree(b->buf[0]);
    PyMem_RawFree(b->buf[1]);
    PyMem_RawFree(b);
    u->bd = NULL;
}

static int
uvbe_owns_fd(tl_uv *u, int fd)
{
    tl_backend *b = u->bd;
    return fd == uv_backend_fd(&u->dns->loop) || fd == b->wake_fd[0] ||
           fd == b->wake_fd[1];
}

/* Room in the recording buffer for one event per watched fd (callbacks
 * merge the reports of one fd). */
static int
out_reserve(tl_backend *b)
{
    int want = b->n_watched + 1;
    int c = b->cur;
    if (want > b->cap[c]) {
        tl_event *o = PyMem_RawRealloc(b->buf[c], (size_t)want * sizeof(*o));
        if (o == NULL) {
            errno = ENOMEM;
            return -1;
        }
        b->buf[c] = o;
        b->cap[c] = want;
    }
    return 0;
}

static void
pending_unlink(tl_backend *b, tl_uvw *w)
{
    tl_uvw **pp = &b->pending;
    while (*pp != NULL) {
        if (*pp == w) {
            *pp = w->next_pending;
            break;
        }
        pp = &(*pp)->next_pending;
    }
    w->pending = 0;
    w->next_pending = NULL;
}

static void
pending_push(tl_backend *b, tl_uvw *w)
{
    if (!w->pending) {
        w->pending = 1;
        w->next_pending = b->pending;
        b->pending = w;
    }
}

/* Whether `fd` still names the file `w` was registered for. */
static int
same_file(tl_uvw *w, const struct stat *sb)
{
    return sb->st_dev == w->dev && sb->st_ino == w->ino;
}

static void
watcher_close(tl_backend *b, tl_uvw *w)
{
    if (w->pending) {
        pending_unlink(b, w);
    }
    b->w[w->fd] = NULL;
    b->n_watched--;
    uv_close((uv_handle_t *)&w->h, uvbe_on_close_free);
}

static int
uv_events(int events)
{
    return (events & TL_EV_READ ? UV_READABLE : 0) |
           (events & TL_EV_WRITE ? UV_WRITABLE : 0);
}

static void uvbe_on_poll(uv_poll_t *h, int status, int events);

static int
table_reserve(tl_backend *b, int fd)
{
    void *t = b->w;
    int r = tl_fd_table_reserve(&t, &b->nw, sizeof(*b->w), fd);
    b->w = t;
    return r;
}

/* A new watcher for `fd`, naming the file `sb`: uv_poll_init() checks
 * the fd as the kernel's set would (EPERM for a regular file, EBADF,
 * ...). */
static tl_uvw *
watcher_new(tl_backend *b, int fd, const struct stat *sb)
{
    if (table_reserve(b, fd) < 0) {
        return NULL;
    }
    tl_uvw *w = PyMem_RawCalloc(1, sizeof(*w));
    if (w == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    /* uv_poll_init() makes the fd non-blocking; asyncio's add_reader()
     * leaves its flags alone, and readiness polling does not need it. */
    int flags = fcntl(fd, F_GETFL);
    int err = uv_poll_init(&b->u->dns->loop, &w->h, fd);
    if (err < 0) {
        PyMem_RawFree(w);
        errno = -err;
        return NULL;
    }
    if (flags >= 0 && !(flags & O_NONBLOCK)) {
        (void)fcntl(fd, F_SETFL, flags);
    }
    w->h.data = w;
    w->b = b;
    w->fd = fd;
    w->dev = sb->st_dev;
    w->ino = sb->st_ino;
    w->batch = (uint64_t)-1;
    b->w[fd] = w;
    b->n_watched++;
    return w;
}

/* Stop watching: at once (the fd is still open: the kernel's set drops
 * it now, as asyncio's unregister()).  The handle stays for the next
 * watch of the same file. */
static void
watcher_stop(tl_backend *b, tl_uvw *w)
{
    w->events = 0;
    if (w->pending) {
        pending_unlink(b, w);
    }
    uv_poll_stop(&w->h);
}

/* What the kernel's set would say about a new watch (or a change of
 * events if `old`) of `fd`: 0, or -1 with errno.  Sets *sb. */
static int
watch_check(tl_uvw *w, int fd, int old, struct stat *sb)
{
    if (fstat(fd, sb) < 0) {
        return -1;
    }
#ifdef __linux__
    /* epoll refuses files that cannot be polled before anything else. */
    if (S_ISREG(sb->st_mode) || S_ISDIR(sb->st_mode)) {
        errno = EPERM;
        return -1;
    }
#endif
    if (old && w != NULL && !same_file(w, sb)) {
        /* The fd was closed and now names another file, which the
         * kernel's set does not hold: epoll's modify() says ENOENT (and
         * asyncio then forgets the fd). */
        errno = ENOENT;
        return -1;
    }
    return 0;
}

static int
uvbe_watch(tl_uv *u, int fd, int events, int old)
{
    tl_backend *b = u->bd;
    tl_uvw *w = fd < b->nw ? b->w[fd] : NULL;
    if (events == 0) {
        if (w != NULL && w->events != 0) {
            watcher_stop(b, w);
        }
        return 0;
    }
    struct stat sb;
    if (watch_check(w, fd, old, &sb) < 0) {
        return -1;
    }
    if (w != NULL && !same_file(w, &sb)) {
        /* A handle kept for a file that is gone. */
        watcher_close(b, w);
        w = NULL;
    }
    if (w == NULL && (w = watcher_new(b, fd, &sb)) == NULL) {
        return -1;
    }
    w->events = events;
    /* libuv registers it in the next poll; wait() checks the fd again
     * right before it (see the top). */
    (void)uv_poll_start(&w->h, uv_events(events), uvbe_on_poll);
    pending_push(b, w);
    return 0;
}

/* Right before the poll: each watcher started since the last one (or
 * stopped by libuv on POLLERR) whose fd still names its file is (re)started
 * and registered by the poll; the others are stopped, so that libuv never
 * registers a closed fd. */
static void
flush_pending(tl_backend *b)
{
    tl_uvw *w = b->pending;
    b->pending = NULL;
    while (w != NULL) {
        tl_uvw *next = w->next_pending;
        struct stat sb;
        w->pending = 0;
        w->next_pending = NULL;
        if (w->events == 0) {
            /* stopped meanwhile */
        }
        else if (fstat(w->fd, &sb) < 0 || !same_file(w, &sb)) {
            uv_poll_stop(&w->h);
        }
        else if (!uv_is_active((uv_handle_t *)&w->h)) {
            (void)uv_poll_start(&w->h, uv_events(w->events), uvbe_on_poll);
        }
        w = next;
    }
}

static void
uvbe_on_poll(uv_poll_t *h, int status, int events)
{
    tl_uvw *w = h->data;
    tl_backend *b = w->b;
    int ev;
    if (status < 0) {
        /* POLLERR: libuv stopped the handle.  As EpollSelector, wake both
         * sides; the next wait() restarts it (level-triggered: the error
         * is reported again until it is dealt with). */
        ev = TL_EV_READ | TL_EV_WRITE;
        pending_push(b, w);
    }
    else {
        ev = ((events & (UV_READABLE | UV_DISCONNECT)) ? TL_EV_READ : 0) |
             ((events & UV_WRITABLE) ? TL_EV_WRITE : 0);
    }
    tl_event *out = b->buf[b->cur];
    if (w->batch == b->batch) {
        /* Reported twice in one batch: one entry per fd, as epoll. */
        out[w->slot].events |= ev;
        return;
    }
    if (b->nout >= b->cap[b->cur]) {
        return;                  /* cannot happen: reserved per watcher */
    }
    w->batch = b->batch;
    w->slot = b->nout;
    out[b->nout].fd = w->fd;
    out[b->nout].events = ev;
    b->nout++;
}

static int
uvbe_wait(tl_uv *u, int block, tl_event **out)
{
    tl_backend *b = u->bd;
    if (out_reserve(b) < 0) {
        return -1;
    }
    flush_pending(b);
    uv_run(&u->dns->loop, block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
    /* Hand this batch over; the other buffer records the next one. */
    int n = b->nout;
    *out = b->buf[b->cur];
    b->cur ^= 1;
    b->nout = 0;
    b->batch++;
    return n;
}

static void
uvbe_arm(tl_uv *u, int64_t ns)
{
    tl_backend *b = u->bd;
    if (ns == 0) {
        uv_timer_stop(&b->timer);
        return;
    }
    /* libuv counts from its cached millisecond clock: refresh it, and
     * round the delay up.  An early wake-up only makes the loop arm again
     * (it runs a timer only once loop.time() >= when). */
    uv_update_time(&u->dns->loop);
    int64_t delta = ns - tl_monotonic_ns();
    uint64_t ms = delta > 0 ? (uint64_t)((delta + 999999) / 1000000) : 0;
    (void)uv_timer_start(&b->timer, uvbe_on_timer, ms, 0);
}

static void
uvbe_wakeup(tl_uv *u)
{
    char one = 1;
    while (write(u->bd->wake_fd[1], &one, 1) < 0 && errno == EINTR) {
    }
}

/* uv_loop_fork() registers every handle again in the next poll.  A
 * watched fd the child closed would make that registration fail (and
 * libuv abort()), so the watchers are checked now: one whose fd no
 * longer names its file is stopped, as the kernel would have dropped
 * it, and the rest are applied at once. */
static int
uvbe_after_fork(tl_uv *u)
{
    tl_backend *b = u->bd;
    uv_timer_stop(&b->timer);
    /* The wake-up pair is shared with the parent: a new one, same
     * numbers. */
    int sv[2];
    if (tl_socketpair_nb(sv) < 0 || tl_fd_replace(sv[0], b->wake_fd[0]) < 0 ||
        tl_fd_replace(sv[1], b->wake_fd[1]) < 0) {
        return -1;
    }
    for (int fd = 0; fd < b->nw; fd++) {
        tl_uvw *w = b->w[fd];
        struct stat sb;
        if (w != NULL && (fstat(fd, &sb) < 0 || !same_file(w, &sb))) {
            uv_poll_stop(&w->h);
        }
    }
    int err = uv_loop_fork(&u->dns->loop);
    if (err < 0) {
        errno = -err;
        return -1;
    }
    uv_run(&u->dns->loop, UV_RUN_NOWAIT);
    b->nout = 0;
    b->batch++;
    return 0;
}

/* It waits in that loop already. */
static int
uvbe_uv_attach(tl_uv *u)
{
    return 0;
}

/* uv_loop_fork() did it. */
static void
uvbe_rewatch(tl_uv *u, int fd, int events)
{
}

const tl_backend_ops tl_backend_uv = {
    .name = "libuv",
    .waits_in_uv = 1,
    .create = uvbe_create,
    .uv_attach = uvbe_uv_attach,
    .close = uvbe_close,
    .release = uvbe_release,
    .watch = uvbe_watch,
    .owns_fd = uvbe_owns_fd,
    .wait = uvbe_wait,
    .arm = uvbe_arm,
    .wakeup = uvbe_wakeup,
    .after_fork = uvbe_after_fork,
    .rewatch = uvbe_rewatch,
};
