"""tinynet's own GPU kernels (CuPy RawKernels, and one ElementwiseKernel), for a training step captured into a
CUDA graph (``tinynet/models/graph.py``): ``gemm``, the matrix products, which CuPy cannot do during capture
(cuBLAS); ``softmax_crossentropy``, the loss and its gradient in one launch instead of about fifteen;
``batches``, a mini-batch cut from the data in one launch instead of five; ``relu``, ReLU's backward in one
launch instead of three."""
