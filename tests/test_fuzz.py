"""Random structures and parameters for every modifier at 1 and 2 threads, each case in a child
process (tests/fuzzing.py): a result with finite values or a clean refusal, never a crash, a hang
or a NaN. benchmarks/fuzz.py runs ten times as many."""
from collections import Counter

import pytest

import fuzzing

pytest.importorskip("hypothesis")


@pytest.mark.timeout(900)
def test_random_inputs_never_crash_hang_or_give_non_finite_values():
    cases = fuzzing.draw_cases(200, seed=0)
    outcomes = fuzzing.run_cases(cases, timeout=120)
    assert not any(o["kind"] in fuzzing.FAILURES for o in outcomes), fuzzing.report(cases, outcomes)
    # the cases reach the computations, not only the checks before them, for every modifier
    kinds = Counter(o["kind"] for o in outcomes)
    assert kinds["result"] >= len(cases) // 3, kinds
    assert {c["modifier"] for c, o in zip(cases, outcomes) if o["kind"] == "result"} == set(fuzzing.MODIFIERS)
