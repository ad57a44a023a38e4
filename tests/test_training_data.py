"""Labelled sentences: the built-in Rotten Tomatoes set, the user's CSV/TSV, the split by group."""

import bz2
from dataclasses import replace

import pytest
from training_fixtures import tiny_csv, tiny_spec

from leopard.hw.errors import LeopardError
from leopard.model.training import bert, data


@pytest.fixture(scope="module")
def rotten_tomatoes():
    return data.load_dataset(data.DataSpec())


def test_rotten_tomatoes_is_split_by_movie(rotten_tomatoes):
    summary = rotten_tomatoes.summary()
    assert summary["train_sentences"] + summary["test_sentences"] == 12808
    assert summary["train_groups"] + summary["test_groups"] == 508
    assert summary["labels"] == ["fresh", "rotten"]
    assert not set(rotten_tomatoes.train.groups) & set(rotten_tomatoes.test.groups)
    assert 0.15 < summary["test_sentences"] / 12808 < 0.25


def test_the_split_is_a_function_of_the_seed(rotten_tomatoes):
    again = data.load_dataset(data.DataSpec())
    assert again.test.texts == rotten_tomatoes.test.texts
    other = data.load_dataset(data.DataSpec(seed=1))
    assert other.test.texts != rotten_tomatoes.test.texts


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
def test_a_users_file_loads(tmp_path, suffix, delimiter):
    path = tiny_csv(tmp_path / f"mine{suffix}", rows=40, delimiter=delimiter)
    dataset = data.load_dataset(tiny_spec(path))
    assert dataset.label_names == ("neg", "pos")
    assert len(dataset.train) + len(dataset.test) == 40
    assert len(set(dataset.test.groups)) == round(0.25 * 10)
    assert not set(dataset.train.groups) & set(dataset.test.groups)


def test_compressed_files_load(tmp_path):
    plain = tiny_csv(tmp_path / "mine.csv", rows=40)
    packed = tmp_path / "mine.csv.bz2"
    packed.write_bytes(bz2.compress(plain.read_bytes()))
    assert data.load_dataset(tiny_spec(packed)).test.texts == data.load_dataset(tiny_spec(plain)).test.texts


def test_without_a_group_column_rows_are_split(tmp_path):
    spec = replace(tiny_spec(tiny_csv(tmp_path / "mine.csv", rows=40)), group_column=None)
    dataset = data.load_dataset(spec)
    assert len(dataset.test) == 10


@pytest.mark.parametrize(
    "change, message",
    [
        ({"text_column": "body"}, "has no column 'body' (columns: review, sentiment, film)"),
        ({"data": "nowhere.csv"}, "cannot read data file nowhere.csv"),
        ({"test_fraction": 1.5}, "test fraction must be in (0, 1)"),
        ({"labels": ("pos",)}, "needs at least two labels"),
    ],
)
def test_bad_data_is_a_one_line_error(tmp_path, change, message):
    spec = replace(tiny_spec(tiny_csv(tmp_path / "mine.csv", rows=40)), **change)
    with pytest.raises(LeopardError) as caught:
        data.load_dataset(spec)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_tokenizer_truncates_and_pad_marks_valid_tokens():
    tokenizer = data.Tokenizer.from_folder(bert.pretrained_path(), 6)
    ids = tokenizer.encode(["a b c d e f g h", "hi"])
    assert [len(row) for row in ids] == [6, 3]
    assert ids[0][0] == 101 and ids[0][-1] == 102
    tokens, valid = data.pad(ids)
    assert tokens.shape == (2, 6) and valid.sum().item() == 9 and tokens[1, 3:].eq(0).all()
