"""ONNX Runtime and the device: sessions over a package, row operations where tensors live, and
the execution-provider profile. The bottom of the service: it imports nothing else of it."""
