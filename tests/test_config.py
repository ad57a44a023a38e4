import json

import pytest

from leopard.hw.config import PRESETS, ConfigError, EngineConfig, preset
from leopard.scripts.cli import main


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_json_round_trip(name):
    cfg = preset(name)
    assert EngineConfig.from_json(cfg.to_json()) == cfg
    assert cfg.to_json() == EngineConfig.from_json(cfg.to_json()).to_json()


def test_minilm_matches_the_model():
    cfg = preset("minilm")
    assert (cfg.head_dim, cfg.k_bits, cfg.lanes) == (32, 8, 8)
    assert cfg.score_bits == 21
    # The largest score, D·(−128)·(−128) = 2**19, fits the signed score width.
    assert cfg.threshold_max >= 32 * 128 * 128


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"head_dim": 0}, "head_dim must be in [1, 256], got 0"),
        ({"k_bits": 1}, "k_bits must be in [2, 16], got 1"),
        ({"lanes": 65}, "lanes must be in [1, 64], got 65"),
        ({"lanes": 2.5}, "lanes must be an integer, got 2.5"),
        ({"early_termination": 1}, "early_termination must be true or false, got 1"),
        ({"recip_index_bits": 12, "exp_frac_bits": 10},
         "recip_index_bits (12) must not exceed exp_frac_bits (10): "
         "the exponent sum has only that many mantissa bits"),
        ({"bus_width": 16}, "bus_width 16 cannot hold a 22-bit register; use a bus_width of at least 22"),
        ({"q_bits": 16, "k_bits": 16, "head_dim": 256, "scale_mantissa_bits": 24},
         "score_bits + scale_mantissa_bits (64) exceeds 62: narrow q_bits, k_bits or scale_mantissa_bits"),
        ({"colour": "red"}, "unknown config field 'colour'"),
        ({"fifo_depth": 3}, "fifo_depth must be at least 4, got 3: a FIFO taking a beat every cycle holds 2, "
         "and the front end waits once its FIFO holds fifo_depth − 1, so it would stall with nothing "
         "back-pressuring it"),
        ({"fifo_depth": 1}, "fifo_depth must be in [4, 4096], got 1"),
    ],
)
def test_impossible_configs_are_refused_with_exact_messages(changes, message):
    with pytest.raises(ConfigError) as error:
        EngineConfig().replace(**changes)
    assert str(error.value) == message


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'huge'; known presets: minilm, minilm-k12"):
        preset("huge")


def test_partial_json_takes_defaults():
    cfg = EngineConfig.from_json('{"lanes": 4}')
    assert cfg == EngineConfig(lanes=4)


def test_config_command_prints_the_preset(capsys):
    assert main(["config", "--preset", "tiny"]) == 0
    assert json.loads(capsys.readouterr().out) == preset("tiny").to_dict()


def test_config_command_reads_a_file(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text('{"lanes": 3}')
    assert main(["config", "--config", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["lanes"] == 3


def test_bad_config_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text('{"lanes": 0}')
    assert main(["config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"leopard config: error: {path}: lanes must be in [1, 64], got 0\n"
