/* errors.c: the errno and exception helpers of the C core, once.
 *
 * Every errno the transports meet becomes an OSError here (so that the
 * subclass is right: ConnectionResetError, BrokenPipeError, ...), and the
 * pending exception is taken and put back through the two functions
 * below, which hide the 3.12 change of the C API. */
#include "tideloop.h"

#include <errno.h>

PyObject *
tl_fetch_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

void
tl_restore_exception(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *type = (PyObject *)Py_TYPE(exc);
    Py_INCREF(type);
    PyErr_Restore(type, exc, PyException_GetTraceback(exc));
#endif
}

PyObject *
tl_err_from_errno(int err)
{
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return NULL;
}

int
tl_err_stops_loop(void)
{
    return PyErr_ExceptionMatches(PyExc_SystemExit) ||
           PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
}

PyObject *
tl_err_none_has_no(const char *name)
{
    PyErr_Format(PyExc_AttributeError,
                 "'NoneType' object has no attribute '%s'", name);
    return NULL;
}

void
tl_err_chain(PyObject *first)
{
    if (first == NULL) {
        return;
    }
    PyObject *exc = tl_fetch_exception();
    PyException_SetContext(exc, first);  /* steals first */
    tl_restore_exception(exc);
}
