#!/usr/bin/env python3
"""Worked example: a GunPoint LSTM classifier, compressed, retrained and run on the generated hardware.

GunPoint (UCR/UEA, shipped inside sktime): one channel, the x coordinate of
an actor's hand over 150 samples, two classes (gun drawn or pointing); 50
training and 150 test sequences. The LSTM reads the series as 30 frames of 5
consecutive samples (``--frame 5``: 5 inputs per step); a plain LSTM on the
150 single samples does not train reliably on 50 sequences. Same pipeline as
``scripts/example_vowels.py`` (:mod:`rnnaccel.accuracy.examples`):

1. train a dense float LSTM classifier in PyTorch and save it (``dense.pt``);
2. import it exactly (k = 1, 16-bit weights) and check the golden model's accuracy;
3. for each block size k and weight width: import it projected onto
   block-circulant weights, then retrain with the hardware's exact arithmetic
   (``--modes direct,fft``: also in the FFT circulant mode for k = 4, 8, 16);
4. table and plot of accuracy against weight memory;
5. export the smallest model within ``--tolerance`` points of the dense float
   model, generate its Verilog and simulate it: bit-exact verdict.

    .venv/bin/python scripts/example_gunpoint.py                 # the full run
    .venv/bin/python scripts/example_gunpoint.py --quick --out /tmp/g   # smoke test

Needs the extras ``models`` and ``examples``; the RTL step needs Icarus or
``--rtl-backend verilator|amaranth``. Results: ``docs/example_gunpoint.md``.
"""

from __future__ import annotations

from rnnaccel.accuracy.examples import ExampleSpec, main

SPEC = ExampleSpec(
    dataset="GunPoint",
    out="out/gunpoint",
    hidden=32,
    frame=5,
    epochs=200,
    lr=1e-2,
    batch=16,
    retrain_epochs=300,
    retrain_lr=1e-2,
    retrain_batch=16,
    quick_hidden=16,
    quick_per_class_train=10,
    quick_per_class_test=10,
    description=__doc__,
)

if __name__ == "__main__":
    raise SystemExit(main(SPEC, doc=__doc__))
