import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# Verilator builds in the suite: C++ at -O0 (about 20% faster to build; the runs here are short). A test that
# simulates long (the soak) takes Verilator's own optimization back (monkeypatch.delenv).
os.environ.setdefault("RNNACCEL_VERILATOR_OPT", "-O0")

#: The suite's longest tests (seconds on one core, ``--durations=0`` of a full run on 2026-12-03; they vary by up to
#: 2x between runs of this machine), started first:
#: with ``--dist load`` (scripts/test.sh) the two workers take them in turn and the short tests fill the end, so
#: neither worker is left with a two-minute build after the other has run out of work. Only the order changes.
HEAVY = {
    "test_boards.py::test_real_bitstream_lstm512_fits_the_up5k": 71,
    "test_runtime_dims.py::test_smaller_model_on_generated_verilog[verilator]": 47,
    "test_random_config.py::test_random_config_bit_exact[lstm]": 47,
    "test_multicore.py::test_helpers_verilog_bit_exact[verilator]": 46,
    "test_cocotb_multicore.py::test_multicore_verilog[verilator-layers]": 39,
    "test_hostlink_fsm.py::test_random_program_through_uart_pins": 39,
    "test_cocotb_accelerator.py::test_generated_verilog_bit_exact[verilator-lstm-2layer-k4-2x2]": 39,
    "test_retrain.py::test_retrained_model_bit_exact_in_verilator": 37,
    "test_train.py::test_fft_mode_retraining_with_the_exact_forward": 36,
    "test_hostlink_fsm.py::test_link_state_machine[ram]": 36,
    "test_hostlink_fsm.py::test_link_state_machine[rom]": 36,
    "test_weight_stream.py::test_streamed_verilog_bit_exact[verilator]": 33,
    "test_random_config.py::test_random_config_bit_exact[gru-after]": 33,
    "test_fft_datapath.py::test_fft_generated_verilog_bit_exact[verilator]": 32,
    "test_runtime_dims.py::test_smaller_models_on_one_design_bit_exact[lstm]": 32,
    "test_random_config.py::test_raw_fields_valid_or_one_line_error": 30,
    "test_random_config.py::test_soak_lstm_small_verilator": 30,
    "test_cocotb_hostlink.py::test_host_link_through_uart_pins[verilator]": 29,
    "test_runtime_dims.py::test_smaller_models_on_one_design_bit_exact[qrnn-w2]": 28,
    "test_random_config.py::test_random_config_bit_exact[sru]": 27,
    "test_random_config.py::test_random_config_bit_exact[gru-before]": 26,
    "test_synth.py::test_mvu_multipliers_in_dsps[ice40]": 25,
    "test_runtime_dims.py::test_smaller_models_on_one_design_bit_exact[gru-before]": 25,
    "test_cocotb_hostlink_multicore.py::test_programs_host_link_through_uart_pins_icarus": 21,
    "test_runtime_dims.py::test_smaller_models_on_one_design_bit_exact[gru-after]": 21,
    "test_delta_hw.py::test_delta_cocotb[verilator]": 19,
    "test_random_config.py::test_random_runtime_dims_bit_exact": 19,
    "test_sweep.py::test_cycle_model_in_the_table": 19,
    "test_evaluate.py::test_example_vowels_quick": 19,
    "test_cocotb_activation.py::test_activation_stream[verilator-tanh]": 18,
    "test_serial.py::test_serial_session_bit_exact_with_stalls[lstm-2layer-k8-L2]": 18,
    "test_random_config.py::test_random_streamed_weights_bit_exact": 17,
}


def _weight(item) -> int:
    name = item.nodeid.split("/")[-1]
    return max((s for prefix, s in HEAVY.items() if name.startswith(prefix)), default=0)


def pytest_collection_modifyitems(config, items):
    """The heavy tests first, longest first (a stable sort: the others keep their order)."""
    items.sort(key=lambda item: -_weight(item))
