# SPDX-License-Identifier: MIT
"""A thin ctypes binding of libodk, so tests drive drivers the way an app does."""
import ctypes
import os

from conftest import BUILD

_lib = ctypes.CDLL(str(BUILD / "src" / "client" / "libodk.so"))
_lib.odk_client_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
_lib.odk_client_close.argtypes = [ctypes.c_void_p]
_lib.odk_connection_open.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                                     ctypes.POINTER(ctypes.c_void_p)]
_lib.odk_connection_close.argtypes = [ctypes.c_void_p]
_lib.odk_connection_call.argtypes = [
    ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint64), ctypes.c_uint32,
    ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
_lib.odk_status_name.restype = ctypes.c_char_p
_lib.odk_connection_error.restype = ctypes.c_char_p
_lib.odk_connection_error.argtypes = [ctypes.c_void_p]
_lib.odk_status_name.argtypes = [ctypes.c_int]
_lib.odk_buffer_create.argtypes = [ctypes.c_uint64, ctypes.POINTER(ctypes.c_void_p)]
_lib.odk_buffer_data.restype = ctypes.c_void_p
_lib.odk_buffer_data.argtypes = [ctypes.c_void_p]
_lib.odk_buffer_length.restype = ctypes.c_uint64
_lib.odk_buffer_length.argtypes = [ctypes.c_void_p]
_lib.odk_buffer_free.argtypes = [ctypes.c_void_p]
_lib.odk_connection_register_buffer.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32,
                                                ctypes.POINTER(ctypes.c_uint32)]
_lib.odk_connection_unregister_buffer.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
_lib.odk_connection_map_memory.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                           ctypes.POINTER(ctypes.c_void_p)]


class MemoryRef(ctypes.Structure):
    _fields_ = [("buffer", ctypes.c_uint32), ("offset", ctypes.c_uint64),
                ("length", ctypes.c_uint64)]


_lib.odk_connection_call_memory.argtypes = [
    ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint64), ctypes.c_uint32,
    ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(MemoryRef), ctypes.c_uint32,
    ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_size_t)]
ASYNC_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint64),
                            ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t)
_lib.odk_connection_call_async.argtypes = [
    ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint64), ctypes.c_uint32,
    ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(MemoryRef), ctypes.c_uint32,
    ctypes.c_uint32, ctypes.c_size_t, ASYNC_FN, ctypes.c_void_p]
_lib.odk_connection_dispatch.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.odk_connection_pending.restype = ctypes.c_uint32
_lib.odk_connection_pending.argtypes = [ctypes.c_void_p]

_lib.odk_connection_map_data_queue.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                               ctypes.POINTER(ctypes.c_void_p)]
_lib.odk_data_queue_dequeue.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32,
                                        ctypes.POINTER(ctypes.c_uint32)]
_lib.odk_data_queue_wait.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.odk_data_queue_free.argtypes = [ctypes.c_void_p]

MEM_IN, MEM_OUT, MEM_INOUT = 1, 2, 3


class DataQueue:
    """The consumer side of a driver's data queue."""
    def __init__(self, handle):
        self.handle = handle
        self.buf = ctypes.create_string_buffer(65536)

    def get(self, timeout_ms=5000):
        """The next record, waiting for it; None on timeout."""
        n = ctypes.c_uint32()
        while True:
            st = _lib.odk_data_queue_dequeue(self.handle, self.buf, len(self.buf), ctypes.byref(n))
            if st == 0:
                return self.buf.raw[:n.value]
            if _lib.odk_status_name(st) != b"ODK_E_AGAIN":
                raise OdkError(st)
            if _lib.odk_data_queue_wait(self.handle, timeout_ms) != 0:
                return None

    def free(self):
        _lib.odk_data_queue_free(self.handle)


class Buffer:
    """An odk_buffer: shared memory the app reads and writes in place."""
    def __init__(self, length=None, _handle=None):
        self.handle = ctypes.c_void_p()
        if _handle is not None:
            self.handle = _handle
        else:
            _check(_lib.odk_buffer_create(length, ctypes.byref(self.handle)))
        self.length = _lib.odk_buffer_length(self.handle)
        self.addr = _lib.odk_buffer_data(self.handle)

    def read(self, offset, n):
        assert offset + n <= self.length
        return ctypes.string_at(self.addr + offset, n)

    def write(self, offset, data):
        assert offset + len(data) <= self.length
        ctypes.memmove(self.addr + offset, data, len(data))

    def free(self):
        if self.handle:
            _lib.odk_buffer_free(self.handle)
            self.handle = None


class OdkError(Exception):
    def __init__(self, status, why=None):
        self.status = status
        self.name = _lib.odk_status_name(status).decode()
        self.why = why  # odk_connection_error's sentence, when the host's check refused
        super().__init__(f"{self.name}: {why}" if why else self.name)


def _check(st):
    if st < 0:
        raise OdkError(st)
    return st


class Connection:
    def __init__(self, state_dir, node, type_=0):
        self._client = ctypes.c_void_p()
        _check(_lib.odk_client_open(str(state_dir).encode(), ctypes.byref(self._client)))
        self._conn = ctypes.c_void_p()
        self._keep = []
        try:
            _check(_lib.odk_connection_open(self._client, node, type_, ctypes.byref(self._conn)))
        except OdkError:
            _lib.odk_client_close(self._client)
            raise

    def call(self, selector, scalars=(), struct=b"", n_out=16, struct_out=0):
        ins = (ctypes.c_uint64 * max(1, len(scalars)))(*scalars)
        outs = (ctypes.c_uint64 * max(1, n_out))()
        n = ctypes.c_uint32(n_out)
        sbuf = ctypes.create_string_buffer(max(1, struct_out))
        slen = ctypes.c_size_t(struct_out)
        self._check_call(_lib.odk_connection_call(self._conn, selector, ins, len(scalars), struct,
                                                  len(struct), outs, ctypes.byref(n), sbuf,
                                                  ctypes.byref(slen)))
        return list(outs[:n.value]), sbuf.raw[:slen.value]

    def error(self):
        """odk_connection_error: why the host's check refused the last call, or None."""
        why = _lib.odk_connection_error(self._conn)
        return why.decode() if why else None

    def _check_call(self, st):
        if st < 0:
            raise OdkError(st, self.error())
        return st

    def call_memory(self, selector, scalars=(), refs=(), struct=b"", n_out=16, struct_out=0):
        ins = (ctypes.c_uint64 * max(1, len(scalars)))(*scalars)
        mem = (MemoryRef * max(1, len(refs)))(*[MemoryRef(*r) for r in refs])
        outs = (ctypes.c_uint64 * max(1, n_out))()
        n = ctypes.c_uint32(n_out)
        sbuf = ctypes.create_string_buffer(max(1, struct_out))
        slen = ctypes.c_size_t(struct_out)
        self._check_call(_lib.odk_connection_call_memory(
            self._conn, selector, ins, len(scalars), struct, len(struct), mem, len(refs), outs,
            ctypes.byref(n), sbuf, ctypes.byref(slen)))
        return list(outs[:n.value]), sbuf.raw[:slen.value]

    def register(self, buf, direction):
        bid = ctypes.c_uint32()
        _check(_lib.odk_connection_register_buffer(self._conn, buf.handle, direction,
                                                   ctypes.byref(bid)))
        return bid.value

    def unregister(self, bid):
        _check(_lib.odk_connection_unregister_buffer(self._conn, bid))

    def map_memory(self, type_):
        h = ctypes.c_void_p()
        _check(_lib.odk_connection_map_memory(self._conn, type_, ctypes.byref(h)))
        return Buffer(_handle=h)

    def map_data_queue(self, type_):
        h = ctypes.c_void_p()
        _check(_lib.odk_connection_map_data_queue(self._conn, type_, ctypes.byref(h)))
        return DataQueue(h)

    def call_async(self, selector, scalars, callback, n_out=4, struct_out=0):
        """callback(status, [scalars]) runs inside dispatch(); with struct_out
        (room for a structure out), callback(status, [scalars], bytes)."""
        def trampoline(_ctx, status, outs, n, data, length):
            scalars_out = [outs[i] for i in range(n)]
            if struct_out:
                callback(status, scalars_out, ctypes.string_at(data, length) if length else b"")
            else:
                callback(status, scalars_out)
        fn = ASYNC_FN(trampoline)
        self._keep.append(fn)  # ctypes callbacks must outlive the call
        ins = (ctypes.c_uint64 * max(1, len(scalars)))(*scalars)
        _check(_lib.odk_connection_call_async(self._conn, selector, ins, len(scalars), None, 0,
                                              None, 0, n_out, struct_out, fn, None))

    def dispatch(self, timeout_ms=1000):
        return _check(_lib.odk_connection_dispatch(self._conn, timeout_ms))

    def pending(self):
        return _lib.odk_connection_pending(self._conn)

    def close(self):
        if self._conn:
            _lib.odk_connection_close(self._conn)
            self._conn = None
        if self._client:
            _lib.odk_client_close(self._client)
            self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_lib.odk_client_request.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                                    ctypes.POINTER(ctypes.c_void_p)]
_lib.odk_value_to_json.restype = ctypes.c_void_p
_lib.odk_value_to_json.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.odk_value_free.argtypes = [ctypes.c_void_p]
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]


def request(state_dir, op):
    """odkd's answer to a request without arguments (e.g. "ping"), as a dict,
    on a client connection of its own, closed before it returns."""
    import json
    c = ctypes.c_void_p()
    _check(_lib.odk_client_open(str(state_dir).encode(), ctypes.byref(c)))
    try:
        r = ctypes.c_void_p()
        _check(_lib.odk_client_request(c, op.encode(), None, ctypes.byref(r)))
        body = {}
        if r.value:
            s = _lib.odk_value_to_json(r, 0)
            if s:
                body = json.loads(ctypes.string_at(s).decode())
                _libc.free(s)
            _lib.odk_value_free(r)
        return body
    finally:
        _lib.odk_client_close(c)


def odkd_fds(odkd):
    """odkd's descriptors now, and those it holds for its primed hosts
    (ping's "primed_fds": each host primed for a bundle keeps its channel,
    log pipe and log file in odkd; docs/architecture.md, "primed hosts").
    A leak check compares count - primed against the same at its baseline.
    The count is read first: the ping's own connection is not in it."""
    n = len(os.listdir(f"/proc/{odkd.proc.pid}/fd"))
    return n, int(request(odkd.state, "ping").get("primed_fds", 0))


def odkd_fds_back(odkd, baseline):
    """True once odkd holds no more descriptors than at baseline (a pair
    from odkd_fds) besides those of hosts primed since."""
    n, primed = odkd_fds(odkd)
    return n - primed <= baseline[0] - baseline[1]
