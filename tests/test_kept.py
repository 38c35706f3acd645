"""What a finished tiled run keeps for members added later (image3/kept.py): a kept file is
taken only with the same parameters and unchanged inputs, byte for byte."""

from image3.kept import keep_files, kept_files


def test_a_kept_file_applies_only_with_the_same_parameters_and_inputs(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    inputs = {}
    for name in ("m1", "m2"):
        (out / f"{name}.pkl").write_bytes(f"result of {name}".encode())
        (tmp_path / f"{name}.src").write_text(f"sources of {name}")
        inputs[name] = [tmp_path / f"{name}.src"]
    keep_files(work, "step", {"x": 1}, {m: out / f"{m}.pkl" for m in inputs}, inputs)
    (out / "m1.pkl").write_bytes(b"overwritten by the next run")
    found = kept_files(work, "step", {"x": 1}, inputs)
    assert sorted(found) == ["m1", "m2"]
    assert found["m1"].read_bytes() == b"result of m1"
    assert kept_files(work, "step", {"x": 2}, inputs) == {}
    (tmp_path / "m2.src").write_text("other sources")
    assert sorted(kept_files(work, "step", {"x": 1}, inputs)) == ["m1"]
    assert kept_files(work, "other step", {"x": 1}, inputs) == {}
    assert kept_files(tmp_path / "nothing", "step", {"x": 1}, inputs) == {}
