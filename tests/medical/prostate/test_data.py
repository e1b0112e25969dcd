import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medical.prostate.data import scan_dataset, split_cases
from medical.prostate.phantom import write_phantom_dataset
from pipelines.cli import main

MSD = Path(__file__).resolve().parents[4] / "shared" / "data" / "prostate-msd-labels"


def _nii(path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(
        nib.Nifti1Image(data, np.diag([0.5, 0.5, 3.0, 1.0]) if affine is None else affine),
        str(path),
    )


def _good_case(root, name="c0"):
    image = np.random.default_rng(0).random((8, 8, 4)).astype(np.float32)
    label = np.zeros((8, 8, 4), np.uint8)
    label[2:6, 2:6, 1:3] = 1
    label[3:5, 3:5, 1:3] = 2
    _nii(root / "imagesTr" / f"{name}.nii.gz", image)
    _nii(root / "labelsTr" / f"{name}.nii.gz", label)
    return image, label


def test_phantom_layout(tmp_path):
    root = write_phantom_dataset(
        tmp_path / "p", 3, seed=1, n_unlabelled=1, shape=(32, 32, 8), spacing=(2.0, 2.0, 6.0)
    )
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["numTraining"] == 3
    assert meta["numTest"] == 1
    assert meta["labels"] == {"0": "background", "1": "PZ", "2": "TZ", "3": "DPU", "4": "AFS"}
    for entry in meta["training"]:
        img = nib.load(str(root / entry["image"]))
        lab = nib.load(str(root / entry["label"]))
        assert img.shape == lab.shape == (32, 32, 8)
        assert np.allclose(img.header.get_zooms(), (2.0, 2.0, 6.0))
        assert np.allclose(img.affine, lab.affine)
        values = np.unique(np.asarray(lab.dataobj))
        assert values.tolist() == [0, 1, 2, 3, 4]
        # anatomical arrangement: AFS lies anterior (+y) of the TZ centroid, PZ posterior.
        lab_a = np.asarray(lab.dataobj)
        cy = {k: np.nonzero(lab_a == k)[1].mean() for k in (1, 2, 4)}
        assert cy[4] > cy[2] > cy[1]
    index = scan_dataset(root)
    assert len(index.cases) == 3
    assert len(index.unlabelled) == 1
    assert index.zones == (1, 2, 3, 4)
    # same seed, same files
    again = write_phantom_dataset(
        tmp_path / "q", 3, seed=1, n_unlabelled=1, shape=(32, 32, 8), spacing=(2.0, 2.0, 6.0)
    )
    a = np.asarray(nib.load(str(root / "imagesTr/prostate_000.nii.gz")).dataobj)
    b = np.asarray(nib.load(str(again / "imagesTr/prostate_000.nii.gz")).dataobj)
    assert np.array_equal(a, b)


@pytest.mark.realdata
@pytest.mark.skipif(not MSD.is_dir(), reason="../shared/data/prostate-msd-labels is absent")
def test_phantom_from_real_masks(tmp_path):
    root = write_phantom_dataset(tmp_path / "m", 2, seed=0, n_unlabelled=0, from_masks=MSD)
    first = sorted(p for p in MSD.iterdir() if p.name.endswith(".nii.gz"))[0]
    src = nib.as_closest_canonical(nib.load(str(first)))
    out = nib.load(str(root / "labelsTr" / first.name))
    lab = np.asarray(out.dataobj)
    assert set(np.unique(lab).tolist()) == {0, 1, 2, 3, 4}
    # real geometry: same spacing and rotation, and the PZ/TZ gland voxels sit at the same
    # world positions as in the source mask (the crop moved the origin only).
    assert np.allclose(out.header.get_zooms(), src.header.get_zooms())
    src_gland = np.argwhere(np.asarray(src.dataobj) > 0)
    out_gland = np.argwhere(lab > 0)
    assert len(src_gland) == len(out_gland)
    world_src = nib.affines.apply_affine(src.affine, src_gland)
    world_out = nib.affines.apply_affine(out.affine, out_gland)
    assert np.allclose(np.sort(world_src, axis=0), np.sort(world_out, axis=0), atol=1e-3)


def test_two_zone_labels_are_accepted(tmp_path, caplog):
    _good_case(tmp_path / "d")
    with caplog.at_level("INFO"):
        index = scan_dataset(tmp_path / "d")
    assert index.zones == (1, 2)
    assert index.zone_names == ("PZ", "TZ")
    assert "only PZ, TZ" in caplog.text


def test_split_is_deterministic_and_disjoint():
    from medical.prostate.data import Case

    cases = [Case(f"c{i}", Path("i"), Path("l")) for i in range(10)]
    s = split_cases(cases, 0.2, 0.3, seed=0)
    assert s == split_cases(cases, 0.2, 0.3, seed=0)
    assert len(s["test"]) == 3
    assert len(s["val"]) == 2
    assert len(s["train"]) == 5
    assert not set(s["train"]) & set(s["test"])
    assert not set(s["val"]) & set(s["test"])


def _bad(root, kind):
    image, label = _good_case(root)
    if kind == "shape":
        _nii(root / "labelsTr/c0.nii.gz", label[:, :, :3])
        return "labelsTr/c0.nii.gz"
    if kind == "affine":
        _nii(root / "labelsTr/c0.nii.gz", label, np.diag([0.6, 0.5, 3.0, 1.0]))
        return "labelsTr/c0.nii.gz"
    if kind == "values":
        _nii(root / "labelsTr/c0.nii.gz", (label * 3).astype(np.uint8))
        return "labelsTr/c0.nii.gz"
    if kind == "float":
        _nii(root / "labelsTr/c0.nii.gz", label.astype(np.float32) + 0.5)
        return "labelsTr/c0.nii.gz"
    if kind == "2d":
        _nii(root / "imagesTr/c0.nii.gz", image[:, :, 0])
        return "imagesTr/c0.nii.gz"
    if kind == "corrupt":
        (root / "imagesTr/c0.nii.gz").write_bytes(b"not a nifti file at all")
        return "imagesTr/c0.nii.gz"
    if kind == "missing-label":
        (root / "labelsTr/c0.nii.gz").unlink()
        return "labelsTr/c0.nii.gz"
    if kind == "dataset-json":
        entry = {"image": "./imagesTr/c9.nii.gz", "label": "./labelsTr/c9.nii.gz"}
        (root / "dataset.json").write_text(json.dumps({"training": [entry]}))
        return "c9.nii.gz"
    if kind == "empty":
        for p in sorted(root.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        return str(root)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "shape",
        "affine",
        "values",
        "float",
        "2d",
        "corrupt",
        "missing-label",
        "dataset-json",
        "empty",
    ],
)
def test_bad_input_exits_2_naming_the_file_and_writes_nothing(tmp_path, kind, capsys):
    data = tmp_path / "data"
    named = _bad(data, kind)
    out = tmp_path / "run"
    status = main(
        ["prostate", "train", "--out", str(out), "--data-dir", str(data), "trainer.progress=false"]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert named in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_phantom_cli_refuses_foreign_folder(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    assert main(["prostate", "phantom", "--out", str(tmp_path / "x"), "--n-cases", "1"]) == 2
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    assert (
        main(
            [
                "prostate",
                "phantom",
                "--out",
                str(tmp_path / "p"),
                "--n-cases",
                "1",
                "--n-unlabelled",
                "0",
                "--shape",
                "16,16,4",
                "--spacing",
                "4,4,12",
            ]
        )
        == 0
    )
    assert (tmp_path / "p" / "dataset.json").is_file()


def _phantom(out, *extra):
    small = ["--shape", "16,16,4", "--spacing", "4,4,12"]
    return main(["prostate", "phantom", "--out", str(out), *small, *extra])


def test_phantom_into_an_earlier_set_replaces_it_wholly(tmp_path, capsys):
    out = tmp_path / "p"
    assert _phantom(out, "--n-cases", "4", "--n-unlabelled", "2") == 0
    (out / "notes.txt").write_text("mine")
    assert _phantom(out, "--n-cases", "2", "--n-unlabelled", "0") == 0
    said = capsys.readouterr().out
    assert "2 labelled cases (imagesTr/, labelsTr/), 0 unlabelled images and" in said
    cases = ["prostate_000.nii.gz", "prostate_001.nii.gz"]
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == cases
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == cases
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "imagesTr", "labelsTr",
                                                      "notes.txt"]  # fmt: skip
    meta = json.loads((out / "dataset.json").read_text())
    assert [e["image"] for e in meta["training"]] == [f"./imagesTr/{c}" for c in cases]
    assert meta["test"] == []
    assert (out / "notes.txt").read_text() == "mine"


def test_a_failed_phantom_write_leaves_the_earlier_set_as_it_was(tmp_path, monkeypatch, capsys):
    import medical.prostate.phantom as phantom

    out = tmp_path / "p"
    assert _phantom(out, "--n-cases", "2", "--n-unlabelled", "0") == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real, calls = phantom._nifti_bytes, []

    def refused_on_the_third_file(*args):
        calls.append(1)
        if len(calls) == 3:
            raise PermissionError(13, "Permission denied", str(out / "imagesTr"))
        return real(*args)

    monkeypatch.setattr(phantom, "_nifti_bytes", refused_on_the_third_file)
    assert _phantom(out, "--n-cases", "3", "--n-unlabelled", "0", "--seed", "9") == 2
    capsys.readouterr()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_failure_during_the_swap_puts_the_earlier_set_back(tmp_path, monkeypatch, capsys):
    import medical.prostate.phantom as phantom

    out = tmp_path / "p"
    assert _phantom(out, "--n-cases", "2", "--n-unlabelled", "0") == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real, moves = phantom.os.replace, []

    def refused_on_the_first_move_in(src, dst):
        moves.append(Path(dst))
        if Path(src).parent.name == "new" and Path(dst).parent == out:  # moving the new set in
            raise PermissionError(13, "Permission denied", str(dst))
        return real(src, dst)

    monkeypatch.setattr(phantom.os, "replace", refused_on_the_first_move_in)
    assert _phantom(out, "--n-cases", "3", "--n-unlabelled", "0", "--seed", "9") == 2
    capsys.readouterr()
    assert any(m.parent.name == "old" for m in moves)  # it did get as far as the swap
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_swap_killed_halfway_is_undone_by_the_next_call(tmp_path, capsys):
    import os

    out = tmp_path / "p"
    assert _phantom(out, "--n-cases", "2", "--n-unlabelled", "0") == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # the state a kill leaves after dataset.json and imagesTr went to old/, nothing came in
    old = out / ".contrasuite-phantoms.killed" / "old"
    old.mkdir(parents=True)
    for name in ("dataset.json", "imagesTr"):
        os.replace(out / name, old / name)
    assert _phantom(out, "--n-cases", "3", "--n-unlabelled", "0", "--seed", "9") == 0
    capsys.readouterr()
    assert not list(out.glob(".contrasuite-phantoms.*"))
    assert len(list((out / "imagesTr").iterdir())) == 3  # the new set replaced the recovered one
    # and a kill before anything moved (only the hidden staging folder) is no foreign file
    fresh = tmp_path / "q"
    (fresh / ".contrasuite-phantoms.killed" / "new").mkdir(parents=True)
    assert _phantom(fresh, "--n-cases", "2", "--n-unlabelled", "0") == 0
    assert before == {p.relative_to(fresh): p.read_bytes() for p in fresh.rglob("*") if p.is_file()}


def test_phantom_says_when_there_are_fewer_masks_than_cases(tmp_path, capsys):
    label = np.zeros((16, 16, 4), np.uint8)
    label[4:12, 4:12, 1:3] = 1
    label[6:10, 6:10, 1:3] = 2
    for i in range(2):
        _nii(tmp_path / "masks" / f"m{i}.nii.gz", label)
    out = tmp_path / "p"
    assert _phantom(out, "--from-masks", str(tmp_path / "masks"), "--n-cases", "5") == 0
    captured = capsys.readouterr()
    assert "holds 2 masks" in captured.err, captured.err
    assert "--n-cases 5" in captured.err, captured.err
    assert "2 labelled cases (imagesTr/, labelsTr/), 0 unlabelled images and" in captured.out
    assert not (out / "imagesTs").exists()
