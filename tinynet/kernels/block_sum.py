"""The sum of one number per thread of a block, by a tree in shared memory: the last step of the one-block
kernels (``softmax_crossentropy``, ``running_means``), which prepend ``SOURCE`` to their own.

Each of the BLOCK threads puts its number in ``partial[t]``; then at each level the first half of the threads
adds the second half's numbers to its own (thread t adds partial[t + half]), halving the count until
partial[0] holds the total: 256 numbers -> 128 -> ... -> 1. The order of every addition is fixed, so a float
sum is the same number at every run (atomicAdd on floats adds in whatever order the threads arrive).
``model_block_sum`` does the same additions in NumPy, level by level."""
BLOCK = 256  # threads in the one block; a power of two, for the tree that halves it

SOURCE = r"""
#define BLOCK 256

// partial[0] = partial[0] + partial[1] + ... + partial[BLOCK - 1], by a tree; every thread of the block calls it.
template <typename V>
__device__ void block_sum(V* partial, int t) {
    __syncthreads();  // every thread's number is in shared memory
    for (int half = BLOCK / 2; half > 0; half /= 2) {  // the tree: 256 numbers -> 128 -> ... -> 1
        if (t < half) {
            partial[t] += partial[t + half];  // thread t adds the number of thread t + half
        }
        __syncthreads();  // this level is done before the next reads it
    }
}
"""


def model_block_sum(partial):
    """What ``block_sum`` leaves in partial[0], from the BLOCK threads' numbers (a NumPy array), added in its order."""
    partial, half = partial.copy(), BLOCK // 2
    while half > 0:  # thread t < half adds partial[t + half]
        partial[:half] = partial[:half] + partial[half:2 * half]
        half //= 2
    return partial[0]
