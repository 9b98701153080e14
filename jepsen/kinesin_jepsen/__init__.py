"""Kinesin's Jepsen-style harness: clients record a history, nemeses inject faults, the checker
proves properties of the whole history (see checker.py)."""
