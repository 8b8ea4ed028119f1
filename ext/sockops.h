/* sockops.c: the loop's sock_* support (see sockops.c). */
#ifndef TL_SOCKOPS_H
#define TL_SOCKOPS_H

#include "tideloop.h"

/* _sock_add_reader(fd, callback, *args, context=None) and the writer
 * twin: the Loop's _add_reader()/_add_writer().  New reference. */
PyObject *tl_sockops_add_reader(LoopObject *self, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames);
PyObject *tl_sockops_add_writer(LoopObject *self, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames);

/* Intern the names sockops.c uses and find socket.socket (module
 * creation): 0, or -1 with an exception set. */
int tl_sockops_init(tl_state *st);

/* _sock_start(op, sock, a[, b]): asyncio's checks and the first try of
 * sock_recv() (op 0), sock_recv_into() (1), sock_sendall() (2),
 * sock_recvfrom() (3), sock_recvfrom_into() (4) or sock_sendto() (5);
 * its result, or the pending operation's record (a list, see sockops.c)
 * when it would block.  New reference. */
PyObject *tl_sockops_start(LoopObject *self, PyObject *const *args,
                           Py_ssize_t nargs);
/* _sock_end(rec): the pending operation is over (or cancelled): out of
 * the loop's _sock_waiters, its watch removed.  New reference (None). */
PyObject *tl_sockops_end(LoopObject *self, PyObject *rec);

#endif
