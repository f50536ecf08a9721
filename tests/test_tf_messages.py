"""TensorFlow's wording where the reference data cannot show it (recorded from TF 2.21 by hand)."""

from __future__ import annotations

import numpy as np
import pytest

import layerserve


def test_layer_api_messages(conn: layerserve.Connection) -> None:
    dense = conn.layers.Dense(2)
    with pytest.raises(ValueError, match=r"^You tried to call `count_params` on dense_1, but the layer isn't built"):
        dense.count_params()
    with pytest.raises(ValueError, match=r"^Shape \(None,\) must have rank at least 2$"):
        dense.compute_output_shape([None])
    with pytest.raises(ValueError, match=r"should be defined. Found None. Received: input_shape=\(None, None\)$"):
        dense.compute_output_shape([None, None])
    with pytest.raises(TypeError, match=r"Received: dtype=<dtype: 'int32'>$"):
        dense(np.ones((2, 3), np.int32))
    dense(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"expecting 2 weights. Provided weights: \[array\(\[\[0\., 0\.\],"):
        dense.set_weights([np.zeros((3, 2), np.float32)])
    assert (dense.dynamic, dense.stateful, dense.supports_masking) == (False, False, True)
    with pytest.raises(AttributeError, match=r"^Layer dense_1 is not connected, no input to return\.$"):
        _ = dense.input
    with pytest.raises(AttributeError, match=r"^Layer dense_1 has no inbound nodes\.$"):
        _ = dense.output


def test_op_errors_come_after_the_build(conn: layerserve.Connection) -> None:
    """TF builds the layer (variables and all) before the op it then creates refuses the input."""
    separable = conn.layers.SeparableConv2D(1, 1)
    with pytest.raises(ValueError, match=r"^Shape must be rank 4 but is rank 5 for 'DepthwiseConv2dNative'"):
        separable(np.ones((1, 2, 3, 3, 1), np.float32))
    assert separable.built and separable.variables[0].name == "separable_conv2d/depthwise_kernel:0"
    pool = conn.layers.AveragePooling1D(4, 2)
    with pytest.raises(ValueError, match=r"subtracting 4 from 3 for 'AvgPool' with input shapes: \[2,3,1,1\]\.$"):
        pool(np.ones((2, 3, 1), np.float32))
    dropout = conn.layers.Dropout(0.5, noise_shape=[1, 1, 1])
    with pytest.raises(ValueError, match=r"^Shapes must be equal rank, but are 3 and 2$"):
        dropout(np.ones((2, 3), np.float32), training=True)
