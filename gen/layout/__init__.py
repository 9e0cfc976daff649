"""Memory layout: how quantized weights, biases and vectors sit in the accelerator's memories (plans,
slots, bank images).
"""
