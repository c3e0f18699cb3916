"""tinynet's own GPU kernels (CuPy RawKernels), for what CuPy's own functions cannot do: ``gemm``, the
matrix products of a training step captured into a CUDA graph (``tinynet/models/graph.py``)."""
