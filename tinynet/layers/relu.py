"""ReLU, the rectified linear unit: y = max(x, 0)."""
from tinynet import backend
from tinynet.kernels import relu as kernel
from tinynet.layers.layer import Layer


class ReLU(Layer):
    def forward(self, x, training=False):
        self.x = x
        return backend.xp().maximum(x, 0.0)  # y = max(x, 0)

    def backward(self, dy):
        xp = backend.xp()
        if backend.get_backend() == "cupy" and kernel.fits(self.x, dy):
            return self.backward_compiled(dy)  # on a GPU: the line below, as one kernel
        # dL/dx = dL/dy * (x > 0)   (the slope of max(x, 0) is 1 where x > 0, else 0)
        return dy * xp.astype(self.x > 0, dy.dtype)

    # --- the same, compiled (CuPy only): on a GPU the line above is three kernels (x > 0, the cast, the
    # product); tinynet/kernels/relu.py does exactly its operations in one.
    def backward_compiled(self, dy):
        """``backward``'s line in one kernel launch, equal to it bit for bit (NaN, inf and -0 included)."""
        return kernel.relu_backward(self.x, dy)
