"""Where data stops being numbers: the first row holding NaN or infinity."""
import numpy

from tinynet import backend


def first_non_finite(a):
    """The index of the first row of ``a`` that holds NaN or infinity, or None."""
    xp = backend.xp()
    bad_rows = xp.any(~xp.isfinite(xp.reshape(a, (a.shape[0], -1))), axis=1)
    if not bool(xp.any(bad_rows)):  # one read from the device, when all is well
        return None
    return int(numpy.flatnonzero(backend.to_numpy(bad_rows))[0])
