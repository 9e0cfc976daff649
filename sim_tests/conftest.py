import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# Verilator builds in the suite: C++ at -O0 (about 20% faster to build; the runs here are short). A test that
# simulates long (the soak) takes Verilator's own optimization back (monkeypatch.delenv).
os.environ.setdefault("RNNACCEL_VERILATOR_OPT", "-O0")

#: The suite's longest tests (seconds on one core of the CI machine, ``--durations`` of a full run), started first:
#: with ``--dist load`` (scripts/test.sh) the two workers take them in turn and the short tests fill the end, so
#: neither worker is left with a two-minute build after the other has run out of work. Only the order changes.
HEAVY = {
    "test_random_config.py::test_raw_fields_valid_or_one_line_error": 166,
    "test_boards.py::test_real_bitstream_lstm512_fits_the_up5k": 150,
    "test_random_config.py::test_soak_lstm_small_verilator": 88,
    "test_random_config.py::test_random_config_bit_exact[rnn]": 88,
    "test_random_config.py::test_random_config_bit_exact[lstm]": 84,
    "test_random_config.py::test_random_streamed_weights_bit_exact": 70,
    "test_evaluate.py::test_example_vowels_quick": 67,
    "test_random_config.py::test_random_config_bit_exact[qrnn-2]": 66,
    "test_hostlink_fsm.py::test_link_state_machine": 61,
    "test_random_config.py::test_random_config_bit_exact[qrnn-1]": 61,
    "test_cocotb_hostlink.py::test_host_link_through_uart_pins[verilator]": 59,
    "test_random_config.py::test_random_runtime_dims_bit_exact": 55,
    "test_delta_hw.py::test_delta_cocotb[verilator]": 50,
    "test_random_config.py::test_random_config_bit_exact[gru": 49,
    "test_multicore.py::test_helpers_verilog_bit_exact[verilator]": 49,
    "test_fft_datapath.py::test_fft_generated_verilog_bit_exact[verilator]": 44,
    "test_hostlink_fsm.py::test_random_program_through_uart_pins": 44,
    "test_weight_stream.py::test_streamed_verilog_bit_exact[verilator]": 39,
    "test_retrain.py::test_retrained_model_bit_exact_in_verilator": 35,
    "test_train.py::test_fft_mode_retraining_with_the_exact_forward": 35,
    "test_runtime_dims.py::test_smaller_models_on_one_design_bit_exact[lstm]": 32,
    "test_cocotb_accelerator.py::test_generated_verilog_bit_exact[verilator": 30,
    "test_cocotb_multicore.py::test_multicore_verilog[verilator": 30,
}


def _weight(item) -> int:
    name = item.nodeid.split("/")[-1]
    return max((s for prefix, s in HEAVY.items() if name.startswith(prefix)), default=0)


def pytest_collection_modifyitems(config, items):
    """The heavy tests first, longest first (a stable sort: the others keep their order)."""
    items.sort(key=lambda item: -_weight(item))
