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

    def __init__(self, pool_size=2, strides=None, padding="valid", input_shape=None, name=None):
        super().__init__(input_shape=input_shape, name=name)
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
        self.padded_shape = x.shape
        patches = windows.gather(x, self.pool_size, self.strides, self.output_shape[1:3])  # (N, Ho, Wo, ph*pw, C)
        self.argmax = xp.argmax(patches, axis=3)  # which input is the maximum (the first, on a tie)  (N, Ho, Wo, C)
        return xp.max(patches, axis=3)  # y = the maximum of each window   (N, Ho, Wo, C)

    def backward(self, dy):
        xp = backend.xp()
        out = self.output_shape[1:3]
        dx = backend.zeros(self.padded_shape, dtype=dy.dtype)
        for k, (i, j) in enumerate(windows.offsets(self.pool_size)):
            # dL/dx at offset (i, j) of each window = dL/dy where that offset holds the argmax, else 0;
            # added (+=), because overlapping windows (strides < pool_size) may share a pixel
            dx[windows.seen_from(i, j, self.strides, out)] += xp.where(self.argmax == k, dy, 0.0)
        return windows.unpad(dx, self.pad_rows, self.pad_cols)  # (N, H, W, C)


MaxPool2D = MaxPooling2D  # Keras's alias: the same class
