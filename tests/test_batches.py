"""tinynet/models/batches.py: each epoch's mini-batches, cut on the device by a position kept there."""
import numpy as np

from tinynet import backend
from tinynet.models.batches import Batches
from tinynet.utils import set_random_seed
from conftest import dev


def epoch_rows(batches):
    batches.new_epoch()
    return [backend.to_numpy(batches.batch(step)[0])[:, 0].astype(int).tolist() for step in range(batches.steps)]


def test_an_epoch_is_every_sample_once_in_batches_with_a_smaller_last_one():
    x, y = np.arange(10, dtype="float32")[:, None], np.arange(10, dtype="float32")[:, None] * 2
    batches = Batches(dev(x), dev(y), 4, shuffle=False)
    assert batches.steps == 3 and [batches.size(s) for s in range(3)] == [4, 4, 2]
    assert epoch_rows(batches) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    batches.new_epoch()
    xb, yb = batches.batch(0)
    np.testing.assert_array_equal(backend.to_numpy(yb), 2 * backend.to_numpy(xb))  # rows of x and y together


def test_shuffled_epochs_differ_and_follow_the_seed():
    x = dev(np.arange(10, dtype="float32")[:, None])
    batches = Batches(x, x, 4, shuffle=True)
    set_random_seed(3)
    first, second = epoch_rows(batches), epoch_rows(batches)
    assert first != second and sorted(sum(first, [])) == list(range(10)) == sorted(sum(second, []))
    set_random_seed(3)
    assert epoch_rows(batches) == first


def test_the_position_is_on_the_device_so_the_step_number_only_sizes_the_batch():
    """What a replayed CUDA graph does: batch(1) again and again, as recorded, walks on through the epoch."""
    x = dev(np.arange(12, dtype="float32")[:, None])
    batches = Batches(x, x, 4, shuffle=False)
    batches.new_epoch()
    rows = [backend.to_numpy(batches.batch(1)[0])[:, 0].astype(int).tolist() for _ in range(3)]
    assert rows == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    order = batches.order
    batches.new_epoch()
    assert batches.order is order and int(batches.position) == 0  # written in place, for the graph
