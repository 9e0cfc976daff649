"""Models in: importing PyTorch/ONNX/npz models, choosing Q formats, the training forward and the data sets."""
