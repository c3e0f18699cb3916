"""The optimizer base class: its state belongs to the parameters it was built for."""
import numpy as np
import pytest

from conftest import dev, host
from tinynet.optimizers import RMSprop, SGD


def test_build_makes_one_slot_per_parameter_once():
    params = [dev(np.ones((2, 3))), dev(np.ones(3))]
    optimizer = RMSprop()
    optimizer.build(params)
    slots = optimizer.slots
    assert [tuple(s.shape) for s in slots] == [(2, 3), (3,)]
    optimizer.build(params)  # the same arrays: nothing changes
    assert optimizer.slots is slots
    assert optimizer.count_params() == 2 + 9


@pytest.mark.parametrize("other", ["fewer", "more", "different"])
def test_other_parameters_are_refused(other):
    params = [dev(np.ones((2, 3))), dev(np.ones(3))]
    optimizer = SGD(momentum=0.9)
    optimizer.apply([dev(np.ones((2, 3))), dev(np.ones(3))], params)
    given = {"fewer": params[:1], "more": params + [dev(np.ones(2))],
             "different": [dev(np.ones((2, 3))), params[1]]}[other]
    with pytest.raises(ValueError, match=r"SGD was built for other parameters \(2 arrays\) .*a layer's trainable "
                                         r"was changed.*compile again after such a change.*model.compile\(optimizer"
                                         r"=SGD\(\), loss=...\)"):
        optimizer.apply([dev(np.ones(p.shape)) for p in given], given)
    np.testing.assert_allclose(host(params[1]), 0.99)  # only the first update happened


@pytest.mark.host_only("argument checks: no arrays")
@pytest.mark.parametrize("kwargs, error, message", [
    ({"learning_rate": "fast"}, TypeError, "learning_rate must be a number above 0, such as 0.001, got 'fast'"),
    ({"learning_rate": -0.1}, ValueError, "learning_rate must be a number above 0"),
    ({"learning_rate": 0}, ValueError, "learning_rate must be a number above 0"),
    ({"rho": 1.0}, ValueError, r"rho must be a number in \[0, 1\), such as 0.9, got 1.0"),
    ({"rho": None}, TypeError, r"rho must be a number in \[0, 1\)"),
    ({"epsilon": -1e-7}, ValueError, "epsilon must be a number above 0"),
    # float32, the weights' dtype, rounds these to 0 or inf: a step that silently does nothing, or NaN weights
    ({"epsilon": 1e-50}, ValueError, r"^epsilon must be a number above 0 that float32 \(the weights' dtype\) "
                                     r"holds, from 1.2e-38 to 3.4e\+38, such as 1e-7; got 1e-50, which is 0 in "
                                     r"float32\.$"),
    ({"learning_rate": 1e-300}, ValueError, r"^learning_rate must .* such as 0.001; got 1e-300, which is 0 in "),
    ({"learning_rate": 1e39}, ValueError, r"^learning_rate must .*; got 1e\+39, which is inf in float32"),
    ({"learning_rate": 1e-39}, ValueError, r"^learning_rate must .*; got 1e-39, which is 0 in float32"),  # subnormal
])
def test_rmsprop_checks_its_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        RMSprop(**kwargs)


@pytest.mark.parametrize("optimizer_class", [RMSprop, SGD])
@pytest.mark.parametrize("grads", [[np.ones(3)], [np.ones(3), np.ones(3)], [np.ones(3), np.ones(2), np.ones(2)]])
def test_gradients_that_do_not_fit_the_parameters_change_nothing(optimizer_class, grads):
    params = [dev(np.ones(3)), dev(np.ones(2))]
    optimizer = optimizer_class(learning_rate=0.1)
    with pytest.raises(ValueError, match=rf"{optimizer_class.__name__}.apply needs one gradient per parameter, "
                                         r"shaped like it; got gradients .* for parameters \[\(3,\), \(2,\)\]"):
        optimizer.apply([dev(g) for g in grads], params)
    assert [host(p).tolist() for p in params] == [[1, 1, 1], [1, 1]] and optimizer.iterations == 0


@pytest.mark.host_only("argument checks: no arrays")
@pytest.mark.parametrize("optimizer_class", [RMSprop, SGD])
def test_the_smallest_and_largest_float32_settings_are_taken(optimizer_class):
    tiny, huge = float(np.finfo(np.float32).smallest_normal), float(np.finfo(np.float32).max)
    assert optimizer_class(learning_rate=tiny).learning_rate == tiny
    assert optimizer_class(learning_rate=huge).learning_rate == huge
    assert optimizer_class(learning_rate=np.float32(0.5)).learning_rate == 0.5


@pytest.mark.host_only("argument checks: no arrays")
@pytest.mark.parametrize("optimizer_class", [RMSprop, SGD])
def test_learning_rate_set_later_is_checked_as_in_the_constructor(optimizer_class):
    optimizer = optimizer_class()
    optimizer.learning_rate = 0.0005  # as Keras users lower it between calls to fit
    assert optimizer.learning_rate == 0.0005 and optimizer.get_config()["learning_rate"] == 0.0005
    for value, error in [("fast", TypeError), (None, TypeError), (-1.0, ValueError), (1e-300, ValueError)]:
        with pytest.raises(error, match="^learning_rate must be a number above 0"):
            optimizer.learning_rate = value
    assert optimizer.learning_rate == 0.0005  # unchanged by the refused values


@pytest.mark.host_only("an error before any array")
@pytest.mark.parametrize("kwargs, fix", [({"lr": 0.01}, "use learning_rate=0.01"),
                                         ({"decay": 1e-4}, "Keras 3 has no decay either"),
                                         ({"momentun": 0.9}, "(did you mean momentum\\?|it takes learning_rate, )"),
                                         ({"beta1": 0.9}, "(did you mean beta_1\\?|it takes learning_rate, )")])
def test_keras_2_argument_names_get_their_keras_3_name(kwargs, fix):
    from tinynet.optimizers import SGD, Adam, RMSprop
    for cls in (Adam, RMSprop, SGD):
        with pytest.raises(TypeError, match=f"^{cls.__name__} takes no argument {next(iter(kwargs))}=.*{fix}"):
            cls(**kwargs)
