"""tinynet's own GPU kernels (CuPy RawKernels, and one ElementwiseKernel), for a training step captured into a
CUDA graph (``tinynet/models/graph.py``), where every kernel costs the GPU a few microseconds however little it
computes. Each stands beside the readable code it equals, with a NumPy model of its index arithmetic:
``gemm``, the matrix products, which CuPy cannot do during capture (cuBLAS), and Dense's steps around them (a
Dense + ReLU layer's forward in one launch instead of two, its backward in one instead of four); ``batches``, a
mini-batch cut from the data in one launch instead of five; ``softmax_crossentropy``, the loss and its gradient in
one launch instead of about fifteen; ``relu``, ReLU's backward in one launch instead of three; ``rmsprop``,
RMSprop's update of every parameter in one launch instead of one per parameter; ``running_means``, a batch's loss
and accuracy added to the epoch's running means in one launch instead of about nineteen; ``block_sum``, the tree
sum two of them end with."""
