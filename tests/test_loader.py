"""The YAML loader keeps each file's parse per (path, text): a caller gets its own copy, and an edited file is
parsed again."""
from simulator.loader import Node, NodeList, load_yaml


def test_each_load_is_a_copy_the_caller_may_change(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("name: m\nstages:\n  - {name: a, repeat: 2}\n  - {name: b, repeat: 3}\n")
    first = load_yaml(path)
    first["name"] = "changed"
    first["stages"][0]["repeat"] = 99
    first["stages"].append("extra")
    again = load_yaml(path)
    assert again == {"name": "m", "stages": [{"name": "a", "repeat": 2}, {"name": "b", "repeat": 3}]}
    assert again is not first and again["stages"] is not first["stages"]
    # the lines errors point at come with every copy
    assert isinstance(again, Node) and isinstance(again["stages"], NodeList)
    assert again.key_lines == {"name": 1, "stages": 2}
    assert again["stages"].item_lines == [3, 4] and again["stages"][1].loc("repeat").line == 4
    assert again.file == str(path)


def test_an_edited_file_is_read_again(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("a: 1\n")
    assert load_yaml(path) == {"a": 1}
    path.write_text("a: 2\nb: 3\n")
    assert load_yaml(path) == {"a": 2, "b": 3}


def test_aliases_stay_shared_in_the_copy(tmp_path):
    """An alias is one object, loaded and copied once: a file of many aliases does not grow when copied."""
    path = tmp_path / "m.yaml"
    path.write_text("base: &b {x: [1, 2]}\nuse1: *b\nuse2: *b\n")
    data = load_yaml(path)
    assert data["use1"] is data["base"] and data["use2"] is data["base"]
    assert data["base"] is not load_yaml(path)["base"]
