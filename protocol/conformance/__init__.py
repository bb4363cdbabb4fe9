"""Conformance cases: the definition of correct service behaviour, as data.

`cases/*.json` are written in no language (see README.md here for the format
and for how to write a runner in an afternoon); `runner` plays them with plain
pyzmq, `matching` holds the case language, and `tamper` is a test double that
changes one field of one reply, to show that a runner notices.
"""

from protocol.conformance.matching import dumps_exact, loads_exact, mismatches
from protocol.conformance.runner import CaseFailed, Runner, case_names, load_case

__all__ = [
    "CaseFailed",
    "Runner",
    "case_names",
    "dumps_exact",
    "load_case",
    "loads_exact",
    "mismatches",
]
