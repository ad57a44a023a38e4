"""The Verilog cache of ``hw/rtl/generate.py``: a cached text is what generation gives, and anything the
Verilog is made of (config, top, the RTL's source) makes a new entry."""

from leopard.hw.config import preset
from leopard.hw.rtl import generate


def test_a_cached_text_equals_a_fresh_generation(tmp_path, monkeypatch):
    monkeypatch.setenv("LEOPARD_BUILD_DIR", str(tmp_path))
    cfg = preset("tiny")
    name, first = generate.verilog_text(cfg, "frontend")
    cached = list((tmp_path / "verilog").iterdir())
    assert [path.name for path in cached] == [f"{name}-{generate.generator_key(cfg, 'frontend')}.v"]
    assert generate.verilog_text(cfg, "frontend") == (name, first)
    _, component = generate.top_component(cfg, "frontend")
    assert generate.component_verilog(component, name) == first


def test_the_key_follows_the_config_the_top_and_the_rtl_source(tmp_path, monkeypatch):
    cfg = preset("tiny")
    key = generate.generator_key(cfg, "engine")
    assert generate.generator_key(cfg, "engine") == key
    assert generate.generator_key(cfg.replace(lanes=3), "engine") != key
    assert generate.generator_key(cfg, "frontend") != key
    copy = tmp_path / "hw"
    (copy / "rtl").mkdir(parents=True)
    for path in [*generate.HW.glob("*.py"), *(generate.HW / "rtl").glob("*.py")]:
        (copy / path.relative_to(generate.HW)).write_bytes(path.read_bytes())
    monkeypatch.setattr(generate, "HW", copy)
    assert generate.generator_key(cfg, "engine") == key
    lane = copy / "rtl" / "lane.py"
    lane.write_text(lane.read_text() + "\n")
    assert generate.generator_key(cfg, "engine") != key
