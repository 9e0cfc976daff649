"""Accuracy work on top of the flow: evaluating a model on a data set, retraining for the hardware, the
worked examples.
"""
