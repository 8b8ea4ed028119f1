/* backend.c: which backend a new loop gets, and the POSIX helpers the
 * backends share (no Linux-only call: a portable build compiles this). */
#include "tideloop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
tl_backend_have_epoll(void)
{
#ifdef TL_HAVE_EPOLL
    return 1;
#else
    return 0;
#endif
}

const tl_backend_ops *
tl_backend_choose(void)
{
    const char *name = getenv("TIDELOOP_BACKEND");
    if (name == NULL || name[0] == '\0') {
#ifdef TL_HAVE_EPOLL
        return &tl_backend_epoll;
#else
        return &tl_backend_uv;
#endif
    }
    if (strcmp(name, "libuv") == 0) {
        return &tl_backend_uv;
    }
    if (strcmp(name, "epoll") == 0) {
#ifdef TL_HAVE_EPOLL
        return &tl_backend_epoll;
#else
        PyErr_SetString(PyExc_ValueError,
                        "TIDELOOP_BACKEND=epoll: this build of tideloop has "
                        "no epoll backend (portable build); use libuv");
        return NULL;
#endif
    }
    PyErr_Format(PyExc_ValueError,
                 "TIDELOOP_BACKEND=%s: expected 'epoll' or 'libuv'", name);
    return NULL;
}

static int
fd_set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        return -1;
    }
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int
tl_socketpair_nb(int sv[2])
{
    /* socketpair() then fcntl(): SOCK_NONBLOCK/SOCK_CLOEXEC are not POSIX
     * (macOS has neither).  The race with a fork() in another thread is
     * the one CPython's own socketpair() fallback accepts. */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        return -1;
    }
    if (fd_set_flags(sv[0]) < 0 || fd_set_flags(sv[1]) < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        errno = e;
        return -1;
    }
    return 0;
}

int
tl_fd_replace(int newfd, int fd)
{
    int r = dup2(newfd, fd);
    int e = errno;
    close(newfd);
    if (r < 0) {
        errno = e;
        return -1;
    }
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int
tl_fd_table_reserve(void **table, int *n, size_t size, int fd)
{
    if (fd < *n) {
        return 0;
    }
    int want = *n ? *n : 64;
    while (want <= fd) {
        want *= 2;
    }
    char *a = PyMem_RawRealloc(*table, (size_t)want * size);
    if (a == NULL) {
        errno = ENOMEM;
        return -1;
    }
    memset(a + (size_t)*n * size, 0, (size_t)(want - *n) * size);
    *table = a;
    *n = want;
    return 0;
}

int
tl_sig_pair(tl_uv *u)
{
    int sv[2];
    if (tl_socketpair_nb(sv) < 0) {
        return -1;
    }
    u->sig_rfd = sv[0];
    u->sig_wfd = sv[1];
    return 0;
}
