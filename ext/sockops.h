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

/* _sock_start(op, sock, arg): the first try of sock_recv() (op 0),
 * sock_recv_into() (1) or sock_sendall() (2); its result, or a list for
 * _loop.py's _sock_wait() when it would block.  New reference. */
PyObject *tl_sockops_start(LoopObject *self, PyObject *const *args,
                           Py_ssize_t nargs);

#endif
