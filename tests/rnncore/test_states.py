import numpy as np
import pytest

from rnncore import Model
from rnncore.states import pack_states, state_width, unpack_states


@pytest.mark.parametrize("cell", ["MinGRU", "LSTM"])
def test_pack_unpack_round_trip(rng, cell):
    model = Model.init(cell, 1, [2, 5, 3], dtype=np.float64)
    _, states = model(rng.normal(size=(6, 4, 1)))
    packed = pack_states(model, states)
    width = 10 if cell == "LSTM" else 5
    assert packed.shape == (4, 3, width) and state_width(model) == width
    assert np.isnan(packed[:, 0, 2 * (2 if cell == "LSTM" else 1) :]).all(), "NaN padding"
    for mine, theirs in zip(unpack_states(model, packed), states, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_unpack_checks_the_shape():
    model = Model.init("GRU", 1, [2, 3])
    with pytest.raises(ValueError, match=r"\(B, 2, 3\) for this model"):
        unpack_states(model, np.zeros((4, 2, 4)))
