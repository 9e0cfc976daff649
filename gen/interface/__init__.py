"""The accelerator's interface without Amaranth: command words and status bits, host sessions, and the
host-link frame protocol.
"""
