/* The live server's pass of writes in C: encrypt each connection's bytes and send them.

   The optional compiled half of ``townhall.live.fanout`` (its docstring says
   what it is for and what the Python fallback does). One call writes a whole
   pass: for each connection its TLS session's two methods are called
   and the records go to its socket with one send(2). What could not go
   whole (the socket's buffer is full, an error, an encryption failure, a
   connection without a writer) is handed back for the Python shell to give
   to the asyncio transport, which buffers, retries and reports errors as it
   always does. The loop keeps the GIL around send(2): the server is one
   thread, and a send of a few hundred bytes on a non-blocking socket returns
   at once. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Append (index, what) to the leftovers; steals the reference to ``what``. */
static int
hand_back(PyObject *leftovers, Py_ssize_t index, PyObject *what)
{
    if (what == NULL) {
        return -1;
    }
    PyObject *pair = Py_BuildValue("(nN)", index, what);
    if (pair == NULL) {
        return -1;
    }
    int failed = PyList_Append(leftovers, pair);
    Py_DECREF(pair);
    return failed;
}

/* The records of ``data`` from a writer's ``write`` and ``read``: a new bytes, or NULL
   with an exception set. ``write`` may take less than all (it does not with memory BIOs,
   but never lose a byte). */
static PyObject *
encrypt(PyObject *write, PyObject *read, PyObject *data)
{
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    Py_ssize_t done = 0;
    while (done < size) {
        PyObject *rest;
        if (done) {
            rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + done, size - done);
            if (rest == NULL) {
                return NULL;
            }
        }
        else {
            rest = data;
            Py_INCREF(rest);
        }
        PyObject *written = PyObject_CallOneArg(write, rest);
        Py_DECREF(rest);
        if (written == NULL) {
            return NULL;
        }
        Py_ssize_t count = PyLong_AsSsize_t(written);
        Py_DECREF(written);
        if (count == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (count <= 0) {
            PyErr_SetString(PyExc_RuntimeError, "TLS write took no bytes");
            return NULL;
        }
        done += count;
    }
    PyObject *records = PyObject_CallNoArgs(read);
    if (records != NULL && !PyBytes_Check(records)) {
        Py_DECREF(records);
        PyErr_SetString(PyExc_TypeError, "a writer's read() must return bytes");
        return NULL;
    }
    return records;
}

/* The exception now set, as an object; the indicator cleared. */
static PyObject *
take_exception(void)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    if (value == NULL) {
        Py_RETURN_NONE;
    }
    return value;
}

PyDoc_STRVAR(send_each_doc,
"send_each(writers, datas, /) -> list[tuple[int, bytes | BaseException | None]]\n"
"\n"
"Write ``datas[i]`` through ``writers[i]`` for each i, and hand back what could not go\n"
"whole, as ``(i, what)``: the wire bytes the socket did not take (give them to the\n"
"transport), the exception encryption raised, or None for a connection whose writer is\n"
"None (write it the slow way). A writer is ``(write, read, fd)``: ``write(data)`` takes\n"
"plaintext and answers how much it took, ``read()`` answers the records to send, both\n"
"None for no encryption; ``fd`` is the connection's non-blocking socket, whose transport\n"
"holds nothing unsent. Empty ``datas[i]`` are skipped.");

static PyObject *
send_each(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send_each(writers: list, datas: list)");
        return NULL;
    }
    PyObject *writers = args[0], *datas = args[1];
    Py_ssize_t count = PyList_GET_SIZE(writers);
    if (PyList_GET_SIZE(datas) != count) {
        PyErr_SetString(PyExc_ValueError, "send_each: as many datas as writers");
        return NULL;
    }
    PyObject *leftovers = PyList_New(0);
    if (leftovers == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *data = PyList_GET_ITEM(datas, i);
        if (!PyBytes_Check(data)) {
            PyErr_Format(PyExc_TypeError, "send_each: datas[%zd] is not bytes", i);
            goto failed;
        }
        if (PyBytes_GET_SIZE(data) == 0) {
            continue;
        }
        PyObject *writer = PyList_GET_ITEM(writers, i);
        if (writer == Py_None) {
            Py_INCREF(Py_None);
            if (hand_back(leftovers, i, Py_None) < 0) {
                goto failed;
            }
            continue;
        }
        if (!PyTuple_Check(writer) || PyTuple_GET_SIZE(writer) != 3) {
            PyErr_Format(PyExc_TypeError, "send_each: writers[%zd] is not (write, read, fd)", i);
            goto failed;
        }
        PyObject *write = PyTuple_GET_ITEM(writer, 0);
        PyObject *read = PyTuple_GET_ITEM(writer, 1);
        long fd = PyLong_AsLong(PyTuple_GET_ITEM(writer, 2));
        if (fd == -1 && PyErr_Occurred()) {
            goto failed;
        }
        if (fd < 0 || fd > INT_MAX) {
            PyErr_Format(PyExc_ValueError, "send_each: writers[%zd] has no file descriptor", i);
            goto failed;
        }
        PyObject *wire;
        if (write == Py_None) {
            wire = data;
            Py_INCREF(wire);
        }
        else {
            wire = encrypt(write, read, data);
            if (wire == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                    goto failed; /* KeyboardInterrupt, SystemExit: not the connection's */
                }
                if (hand_back(leftovers, i, take_exception()) < 0) {
                    goto failed;
                }
                continue;
            }
        }
        const char *bytes = PyBytes_AS_STRING(wire);
        Py_ssize_t size = PyBytes_GET_SIZE(wire), sent = 0;
        while (sent < size) {
            ssize_t n = send((int)fd, bytes + sent, (size_t)(size - sent), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                break; /* EAGAIN, or an error the transport will meet and report */
            }
            sent += n;
        }
        if (sent < size) {
            PyObject *rest = sent ? PyBytes_FromStringAndSize(bytes + sent, size - sent) : wire;
            if (!sent) {
                Py_INCREF(rest);
            }
            Py_DECREF(wire);
            if (hand_back(leftovers, i, rest) < 0) {
                goto failed;
            }
            continue;
        }
        Py_DECREF(wire);
    }
    return leftovers;

failed:
    Py_DECREF(leftovers);
    return NULL;
}

static PyMethodDef methods[] = {
    {"send_each", (PyCFunction)(void (*)(void))send_each, METH_FASTCALL, send_each_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "townhall.live._fanout",
    .m_doc = "The live server's pass of writes in C (see townhall.live.fanout).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__fanout(void)
{
    return PyModuleDef_Init(&module);
}
