import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# Verilator builds in the suite: C++ at -O0 (about 20% faster to build; the runs here are short). A test that
# simulates long (the soak) takes Verilator's own optimization back (monkeypatch.delenv).
os.environ.setdefault("RNNACCEL_VERILATOR_OPT", "-O0")
