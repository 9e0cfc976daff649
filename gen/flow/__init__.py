"""The flow: Verilog conversion and artefacts, the simulation backends (golden, Amaranth, cocotb) and tool discovery."""
