"""The lever bench's synthesis-cost table: designs paired across hardware settings."""

from leopard.model.reference.levers import cost_table, synthesis_costs


def _report(points):
    return {"results": [{"top": top, "lanes": lanes, "status": "ok", "fmax_mhz": fmax,
                         "core": {"lut": lut, "ff": 10, "carry": 1, "bram": 0, "dsp": 0, "lutram": 0}}
                        for top, lanes, lut, fmax in points]}


def test_only_designs_every_report_holds_are_compared_against_the_first_setting():
    sweep = _report([("frontend", 1, 100, 50.0), ("frontend", 8, 800, 30.0), ("engine", 8, 2000, 25.0)])
    skipping = _report([("frontend", 8, 880, 28.5), ("engine", 8, 2100, 24.0)])
    costs = synthesis_costs({"paper bound": sweep, "zero-plane skipping": skipping})
    assert [(c["hardware"], c["top"], c["lanes"], c["lut_change"]) for c in costs] == [
        ("paper bound", "engine", 8, 0.0), ("paper bound", "frontend", 8, 0.0),
        ("zero-plane skipping", "engine", 8, 0.05), ("zero-plane skipping", "frontend", 8, 0.1)]
    assert "| zero-plane skipping | frontend | 8 | 880 | +10.0% |" in cost_table(costs, "ECP5")
