"""`oilspill ml-serve`: an in-process backend (the embedded detector, or an ONNX model) as a
model service speaking the earlier system's API, for `serve --backend http` to call."""
