"""NVRTC, NVIDIA's runtime CUDA C++ compiler (the one CuPy calls), through ctypes: tinynet's kernels compile on
any machine, no GPU and no CuPy needed (tests/test_cuda_sources.py compiles every one; the kernels' own tests ask
it about their PTX). Without NVRTC's library the checks skip, saying how to install it, and fail in CI."""
import ctypes
import ctypes.util
import importlib
import os
from pathlib import Path

import pytest

INSTALL = "pip install nvidia-cuda-nvrtc-cu12 (NVIDIA's CUDA compiler library; no GPU needed)"
ARCH = "-arch=compute_90"  # PTX for the H100/H200 generation: any GPU of it or later runs it


# --- NVRTC through ctypes --------------------------------------------------------------------------------------

def find_nvrtc():
    """The path of libnvrtc: from the ``nvidia-cuda-nvrtc-cu12`` wheel, else the system's, else the one CuPy
    finds (with the ``cuda-pathfinder`` package CuPy 14 uses); None if there is none."""
    try:
        package = importlib.import_module("nvidia.cuda_nvrtc")
        for folder in package.__path__:  # a namespace package: no __file__
            found = [path for path in sorted((Path(folder) / "lib").glob("libnvrtc.so*"))
                     if "builtins" not in path.name and ".alt." not in path.name]  # libnvrtc.so.12 itself
            if found:
                return str(found[0])
    except ImportError:
        pass
    system = ctypes.util.find_library("nvrtc")
    if system:
        return system
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib
        return load_nvidia_dynamic_lib("nvrtc").abs_path
    except Exception:  # not installed, or no NVRTC where it looks
        return None


def load_nvrtc():
    """NVRTC's library, loaded; a skip saying how to install it (a failure in CI: nothing skips silently there)."""
    path = find_nvrtc()
    if path is None:
        message = f"NVRTC not found: {INSTALL}."
        if os.environ.get("CI"):
            pytest.fail(f"{message} CI is set, so the CUDA compile checks fail instead of skipping.")
        pytest.skip(message)
    lib = ctypes.CDLL(path)
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


class CompileError(Exception):
    """NVRTC refused the source; ``log`` is what it said."""
    def __init__(self, result, log):
        super().__init__(f"NVRTC: {result}\n{log}")
        self.log = log


def compile_cuda(lib, source, options, name_expressions=()):
    """PTX for ``source``, and {name expression: its lowered (mangled) name}, as CuPy's RawModule compiles them;
    CompileError with NVRTC's log if it refuses."""
    def check(result, what):
        if result != 0:
            raise CompileError(f"{what}: {lib.nvrtcGetErrorString(result).decode()}", log)

    log = ""
    program = ctypes.c_void_p()
    check(lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"tinynet.cu", 0, None, None), "create")
    try:
        for name in name_expressions:
            check(lib.nvrtcAddNameExpression(program, name.encode()), f"add name {name}")
        encoded = [option.encode() for option in options]
        result = lib.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(program, buffer)
        log = buffer.value.decode(errors="replace")
        check(result, "compile")
        lowered = {}
        for name in name_expressions:
            mangled = ctypes.c_char_p()
            check(lib.nvrtcGetLoweredName(program, name.encode(), ctypes.byref(mangled)), f"lowered name {name}")
            lowered[name] = mangled.value.decode()
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        check(lib.nvrtcGetPTX(program, ptx), "PTX")
        return ptx.value.decode(), lowered, log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def assert_compiles(lib, what, source, options, name_expressions=()):
    """compile_cuda, with NVRTC's log and the numbered source in the failure message; a warning fails too."""
    numbered = "\n".join(f"{i:4} {line}" for i, line in enumerate(source.splitlines(), 1))
    try:
        ptx, lowered, log = compile_cuda(lib, source, options, name_expressions)
    except CompileError as error:
        pytest.fail(f"NVRTC refuses {what} (options {' '.join(options)}):\n{error}\n--- the source:\n{numbered}",
                    pytrace=False)
    if "warning" in log:
        pytest.fail(f"NVRTC warns on {what}:\n{log}\n--- the source:\n{numbered}", pytrace=False)
    return ptx, lowered


def nvrtc_compile(source, name_expressions, options=("--fmad=false", ARCH)):
    """The PTX of ``source`` with these template names resolved, or a test failure with NVRTC's log."""
    return assert_compiles(load_nvrtc(), "the kernel", source, options, name_expressions)[0]
