"""Compiling CUDA C on the host with NVRTC (NVIDIA's runtime compiler, through ctypes): no GPU needed, so a
kernel's source is checked on any machine (tests/test_rmsprop_kernel.py; the same two functions as in
tests/test_softmax_crossentropy_kernel.py)."""
import ctypes
import ctypes.util
import glob
import os

import pytest


def nvrtc_compile(source, name_expressions, options=("--fmad=false", "-arch=compute_90")):
    """``source`` compiled by NVRTC through ctypes: its PTX, or a test failure with NVRTC's log."""
    lib = nvrtc_library()
    program = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"kernel.cu", 0, None, None) == 0
    for name in name_expressions:
        assert lib.nvrtcAddNameExpression(program, name.encode()) == 0
    flags = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
    result = lib.nvrtcCompileProgram(program, len(options), flags)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(program, log)
    assert result == 0, log.value.decode()
    for name in name_expressions:  # every instantiation exists
        lowered = ctypes.c_char_p()
        assert lib.nvrtcGetLoweredName(program, name.encode(), ctypes.byref(lowered)) == 0 and lowered.value
    lib.nvrtcGetPTXSize(program, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(program, ptx)
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    return ptx.value.decode()


def nvrtc_library():
    """libnvrtc: the file NVRTC_LIBRARY names, else the nvidia-cuda-nvrtc-cu12 wheel's, else the system's.
    Missing: a skip saying how to install it, and in CI (CI=true) a failure."""
    path = os.environ.get("NVRTC_LIBRARY")
    if not path:
        try:
            import nvidia.cuda_nvrtc
            path = next(iter(glob.glob(os.path.join(list(nvidia.cuda_nvrtc.__path__)[0], "lib", "libnvrtc.so*"))), None)
        except ImportError:
            pass
    path = path or ctypes.util.find_library("nvrtc")
    if not path:
        message = ("NVRTC is not installed: pip install nvidia-cuda-nvrtc-cu12 (no GPU needed), or set "
                   "NVRTC_LIBRARY to the path of libnvrtc.so.12.")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return ctypes.CDLL(path)
