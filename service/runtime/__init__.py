"""ONNX Runtime: compiling layer graphs, sessions, providers, execution."""
