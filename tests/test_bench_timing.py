"""The benchmarks' timing: interleaved rounds keep ratios right on a machine whose speed drifts."""

from zoo.benchmarks import timing


def test_interleaved_rounds_keep_ratios_under_drift(monkeypatch):
    """Three functions costing 1, 2 and 3 units on a fake clock that slows down 1.5x every round: the medians keep
    the ratios 1:2:3 exactly; every function is warmed up once, then called once per round, round r starting at
    the r-th (timing them one after another, as before, would give 1 : 2·1.5^5 : 3·1.5^10)."""
    clock = {"now": 0.0, "slowdown": 1.0}
    calls = []
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock["now"])

    def costing(name, units):
        def fn():
            calls.append(name)
            clock["now"] += units * clock["slowdown"]
            if len(calls) % 3 == 0:  # a round (or the warm-ups) ended: the machine gets slower
                clock["slowdown"] *= 1.5
            return 0
        return fn

    seconds = timing.interleaved_seconds({"a": costing("a", 1), "b": costing("b", 2), "c": costing("c", 3)}, 5)
    assert calls[:3] == ["a", "b", "c"]  # warm-ups
    rounds = [calls[3 + 3 * r: 6 + 3 * r] for r in range(5)]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"], ["b", "c", "a"]]
    assert seconds["b"] / seconds["a"] == 2 and seconds["c"] / seconds["a"] == 3
    assert seconds["a"] == 1.5**3  # the median round (the third) ran at slowdown 1.5³ (the warm-ups took one)
