"""MaxPooling2D (alias MaxPool2D): each output pixel is the largest input in its window, channel by channel."""
from tinynet import backend
from tinynet.layers import windows
from tinynet.layers.layer import Layer


class MaxPooling2D(Layer):
    """Downsampling, as in Keras: windows of ``pool_size`` pixels, moved by ``strides`` (default: pool_size,
    so windows do not overlap), keep their maximum. Channels last: (N, H, W, C) -> (N, Ho, Wo, C).
    With padding='same', the border counts as -infinity: it is never the maximum.

    Backward: y = max of the window, so dy/dx is 1 for the window's largest input and 0 for the others; the
    gradient goes to that one pixel (``argmax``). On a tie the first maximum in the window, in row-major
    order, gets it all, as TensorFlow's MaxPoolGrad decides (its CPU kernel keeps a candidate only if it is
    strictly larger). Where PyTorch differs: ``nn.MaxPool2d`` is channels-first, with no 'same' padding."""

    def __init__(self, pool_size=2, strides=None, padding="valid", input_shape=None, name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.pool_size = windows.pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else windows.pair(strides, "strides")
        self.padding = windows.padding_name(padding)
        if self.input_shape is not None:
            self.compute_output_shape(self.input_shape)  # a wrong shape or a pool too large: said at once

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}

    def compute_output_shape(self, input_shape):
        windows.image_shape(input_shape, f"MaxPooling2D {self.name or 'layer'!r}")
        out = windows.output_hw(input_shape[1:3], self.pool_size, self.strides, self.padding,
                                f"MaxPooling2D {self.name or 'layer'!r}", "pool_size")
        return (input_shape[0], *out, input_shape[3])

    def build(self, input_shape):
        self.output_shape = self.compute_output_shape(input_shape)
        (h, w), (ho, wo) = input_shape[1:3], self.output_shape[1:3]
        self.pad_rows = windows.pads(h, self.pool_size[0], self.strides[0], ho)  # (top, bottom): 0 for 'valid'
        self.pad_cols = windows.pads(w, self.pool_size[1], self.strides[1], wo)  # (left, right)
        super().build(input_shape)

    def forward(self, x, training=False):
        xp = backend.xp()
        x = windows.pad(x, self.pad_rows, self.pad_cols, value=-float("inf"))  # (N, Hp, Wp, C)
        self.padded_shape, out = x.shape, self.output_shape[1:3]
        # A running maximum over the window's offsets k = 0, 1, ... (row-major), remembering which offset
        # holds it; only a strictly larger value takes over, so a tie keeps the earlier offset, as in TensorFlow.
        y = x[windows.seen_from(0, 0, self.strides, out)]  # offset 0 of every window   (N, Ho, Wo, C)
        self.argmax = backend.zeros(y.shape, dtype="int32")  # the offset holding the maximum so far
        for k, (i, j) in enumerate(windows.offsets(self.pool_size)[1:], start=1):
            seen = x[windows.seen_from(i, j, self.strides, out)]
            larger = xp.astype(seen > y, xp.int32)  # 1 where offset k beats the maximum so far
            self.argmax = xp.maximum(self.argmax, larger * k)  # k there (k exceeds every earlier offset)
            y = xp.maximum(y, seen)  # y = the maximum of each window   (N, Ho, Wo, C)
        return y

    def backward(self, dy):
        xp = backend.xp()
        out = self.output_shape[1:3]
        dx = backend.zeros(self.padded_shape, dtype=dy.dtype)
        for k, (i, j) in enumerate(windows.offsets(self.pool_size)):
            # dL/dx at offset (i, j) of each window = dL/dy where that offset holds the maximum, else 0;
            # added (+=), because overlapping windows (strides < pool_size) may share a pixel
            dx[windows.seen_from(i, j, self.strides, out)] += dy * xp.astype(self.argmax == k, dy.dtype)
        return windows.unpad(dx, self.pad_rows, self.pad_cols)  # (N, H, W, C)


MaxPool2D = MaxPooling2D  # Keras's alias: the same class
