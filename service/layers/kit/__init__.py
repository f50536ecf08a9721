"""What every layer family shares: the ONNX graph builder, activations, initializers,
regularizers, input specs, dtypes and default names."""
