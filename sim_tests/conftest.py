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
    "test_boards.py::test_real_bitstream_lstm512_fits_the_up5k": 87,
    "test_random_config.py::test_random_streamed_weights_bit_exact": 54,
    "test_random_config.py::test_random_config_bit_exact[lstm]": 52,
    "test_hostlink_fsm.py::test_random_program_through_uart_pins": 27,
    "test_hostlink_fsm.py::test_link_state_machine[rom]": 26,
    "test_cocotb_hostlink.py::test_host_link_through_uart_pins[verilator]": 24,
    "test_cocotb_accelerator.py::test_generated_verilog_bit_exact[verilator-lstm-2layer-k4-2x2]": 21,
    "test_retrain.py::test_retrained_model_bit_exact_in_verilator": 20,
    "test_hostlink.py::test_runtime_dims_two_models_through_one_link": 20,
    "test_evaluate.py::test_example_vowels_quick": 20,
    "test_weight_stream.py::test_streamed_verilog_bit_exact[verilator]": 18,
    "test_random_config.py::test_random_runtime_dims_bit_exact": 17,
    "test_time_steps.py::test_batched_verilog_bit_exact[verilator-qrnn1-T16-k8-L8]": 17,
    "test_random_config.py::test_random_config_bit_exact[qrnn-2]": 17,
    "test_hostlink_fsm.py::test_link_state_machine[ram]": 16,
    "test_random_config.py::test_random_config_bit_exact[gru-after]": 16,
    "test_train.py::test_fft_mode_retraining_with_the_exact_forward": 16,
    "test_fft_datapath.py::test_fft_generated_verilog_bit_exact[verilator]": 16,
    "test_multicore.py::test_generate_multicore_layers_and_programs": 15,
    "test_evaluate.py::test_example_gunpoint_quick": 14,
    "test_time_steps.py::test_batched_sessions_bit_exact_with_stalls[qrnn1-T2-3layer-L1]": 13,
    "test_random_config.py::test_random_config_bit_exact[qrnn-1]": 12,
    "test_runtime_dims.py::test_smaller_models_on_one_design_bit_exact[lstm]": 11,
    "test_random_config.py::test_raw_fields_valid_or_one_line_error": 10,
    "test_random_config.py::test_random_config_bit_exact[sru]": 10,
    "test_sweep.py::test_build_timeout_stops_the_tools": 9,
}


def _weight(item) -> int:
    name = item.nodeid.split("/")[-1]
    return max((s for prefix, s in HEAVY.items() if name.startswith(prefix)), default=0)


def pytest_collection_modifyitems(config, items):
    """The heavy tests first, longest first (a stable sort: the others keep their order)."""
    items.sort(key=lambda item: -_weight(item))
