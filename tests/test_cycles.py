import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from leopard.hw.config import preset
from leopard.model.reference import compiled_cycles, cycles, golden, report, synthetic


def stepped(planes_by_query, lanes, in_flight):
    """Cycle-by-cycle simulation of the key handing in model/reference/cycles.py's docstring."""
    head = [None] * lanes
    finishing_at = [None] * lanes
    query, key, slot_ready = 0, 0, cycles.DISPATCH_START
    reported = [[None] * len(keys) for keys in planes_by_query]
    completed = []
    cycle = cycles.DISPATCH_START
    while len(completed) < len(planes_by_query):
        while len(completed) < len(planes_by_query):
            times = reported[len(completed)]
            if any(t is None or t > cycle for t in times):
                break
            completed.append(max(max(times), completed[-1] if completed else 0))
        may_dispatch = (
            query < len(planes_by_query)
            and cycle >= slot_ready
            and (query < in_flight or completed_before(completed, query - in_flight, cycle))
        )
        empty = [waiting is None for waiting in head]
        for lane in range(lanes):
            free = finishing_at[lane] is None or finishing_at[lane] <= cycle
            if head[lane] is not None and free:
                waiting_query, waiting_key, planes = head[lane]
                finishing_at[lane] = cycle + planes
                reported[waiting_query][waiting_key] = cycle + planes + 1
                head[lane] = None
        for lane in range(lanes):
            if may_dispatch and empty[lane] and key < len(planes_by_query[query]):
                head[lane] = (query, key, planes_by_query[query][key])
                key += 1
        if may_dispatch and key == len(planes_by_query[query]):
            query, key, slot_ready = query + 1, 0, cycle + 1
        cycle += 1
    return completed


def completed_before(completed, index, cycle):
    return index < len(completed) and completed[index] < cycle


def front_end(lanes, in_flight):
    return preset("minilm").replace(lanes=lanes, queries_in_flight=in_flight)


query_planes = st.lists(st.lists(st.integers(1, 8), min_size=1, max_size=12), min_size=1, max_size=10)


@settings(max_examples=400, deadline=None)
@given(query_planes, st.integers(1, 9), st.sampled_from([2, 4, 8]))
def test_model_equals_the_cycle_by_cycle_policy(planes, lanes, in_flight):
    job = cycles.job_cycles(front_end(lanes, in_flight), planes)
    assert job.query_done == stepped(planes, lanes, in_flight)
    assert job.cycles == job.query_done[-1]


@given(query_planes, st.integers(1, 9))
def test_no_schedule_beats_the_ideal(planes, lanes):
    job = cycles.job_cycles(front_end(lanes, 4), planes)
    assert job.cycles - cycles.DISPATCH_START >= sum(map(sum, planes)) / lanes


def test_dense_cycles_of_one_full_query_are_rounds_of_k_bits():
    # 16 keys of 8 planes on 8 lanes: two rounds of 8 cycles after the dispatch start, the cycle in
    # the head register and the cycle in which the decision is reported.
    job = cycles.job_cycles(front_end(8, 4), [[8] * 16])
    assert job.cycles == cycles.DISPATCH_START + 1 + 16 + 1


def test_report_efficiency_is_high_on_long_queries():
    cfg = preset("minilm")
    batch = synthetic.random_trace(cfg, seed=2, problems=2, prune_fraction=0.9).problems()
    figures = report.golden_report(cfg, batch)
    assert figures["efficiency"] > 0.95 and figures["efficiency_head"] > 0.9
    result = golden.run(cfg, batch)
    assert np.all(result.planes[result.visible] >= 1)


@st.composite
def jobs(draw):
    """A problem's planes, visibility and kept mask, and an engine config to run it on."""
    n = draw(st.integers(1, 10))
    valid_len = draw(st.integers(1, n))
    causal = draw(st.booleans())
    cfg = preset("minilm").replace(
        lanes=draw(st.integers(1, 9)), queries_in_flight=draw(st.sampled_from([2, 4, 8])),
        result_buffers=draw(st.integers(2, 4)), v_lanes=draw(st.sampled_from([4, 8, 16, 32])),
    )
    planes = np.array(draw(st.lists(st.integers(1, 8), min_size=n * n, max_size=n * n))).reshape(1, n, n)
    kept = np.array(draw(st.lists(st.booleans(), min_size=n * n, max_size=n * n))).reshape(1, n, n)
    index = np.arange(n)
    visible = (index[:, None] < valid_len) & (index[None, :] < valid_len)
    if causal:
        visible &= index[None, :] <= index[:, None]
    return cfg, planes, visible[None], kept & visible[None], np.array([valid_len])


@settings(max_examples=300, deadline=None)
@given(jobs())
def test_compiled_model_equals_the_readable_one(job):
    cfg, planes, visible, kept, valid_len = job
    rows = cycles.planes_by_query(planes[0], visible[0], int(valid_len[0]))
    counts = kept[0].sum(axis=-1)[: int(valid_len[0])].tolist()
    assert compiled_cycles.problem_cycles(cfg, planes, visible, valid_len).tolist() == [
        cycles.job_cycles(cfg, rows).cycles]
    assert compiled_cycles.problem_cycles(cfg, planes, visible, valid_len, kept).tolist() == [
        cycles.job_cycles(cfg, rows, counts).cycles]
