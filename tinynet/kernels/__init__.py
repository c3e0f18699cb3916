"""tinynet's own GPU kernels (CuPy RawKernels), for a training step captured into a CUDA graph
(``tinynet/models/graph.py``): ``gemm``, the matrix products, which CuPy cannot do during capture (cuBLAS);
``softmax_crossentropy``, the loss and its gradient in one launch instead of about fifteen; ``running_means``,
a batch's loss and accuracy added to the epoch's running means in one launch instead of about nineteen."""
