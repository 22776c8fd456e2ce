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
_lib.odk_status_name.argtypes = [ctypes.c_int]


class OdkError(Exception):
    def __init__(self, status):
        self.status = status
        self.name = _lib.odk_status_name(status).decode()
        super().__init__(self.name)


def _check(st):
    if st < 0:
        raise OdkError(st)
    return st


class Connection:
    def __init__(self, state_dir, node, type_=0):
        self._client = ctypes.c_void_p()
        _check(_lib.odk_client_open(str(state_dir).encode(), ctypes.byref(self._client)))
        self._conn = ctypes.c_void_p()
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
        _check(_lib.odk_connection_call(self._conn, selector, ins, len(scalars), struct,
                                        len(struct), outs, ctypes.byref(n), sbuf,
                                        ctypes.byref(slen)))
        return list(outs[:n.value]), sbuf.raw[:slen.value]

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
