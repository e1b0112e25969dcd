import nibabel as nib
import numpy as np
import torch
from torch import nn

from medical.prostate.config import DataConfig
from medical.prostate.infer import keep_largest_component, predict_case, write_label
from medical.prostate.phantom import procedural_label


class Oracle(nn.Module):
    """Reads the class back from an image whose intensity is label / 4 (after scaling)."""

    def predict_proba(self, x):
        cls = torch.round(x[:, 0] * 4).long().clamp(0, 4)
        return nn.functional.one_hot(cls, 5).permute(0, 4, 1, 2, 3).float()


def test_predicted_map_lies_on_the_source_grid(tmp_path):
    # An LPS affine (x and y flipped) with an offset: Orientationd must flip, Invertd undo it.
    label = procedural_label((24, 20, 6), (2.0, 2.0, 6.0), np.random.default_rng(3))
    assert set(np.unique(label).tolist()) == {0, 1, 2, 3, 4}
    affine = np.diag([-2.0, -2.0, 6.0, 1.0])
    affine[:3, 3] = [40.0, 30.0, -12.0]
    src = nib.Nifti1Image(label.astype(np.float32), affine)
    src.header.set_qform(affine, code=1)
    src.header.set_sform(affine, code=2)
    src.header["descrip"] = b"source"
    path = tmp_path / "case.nii.gz"
    nib.save(src, str(path))
    cfg = DataConfig(spacing=(2.0, 2.0, 6.0), roi=(16, 16, 4), percentiles=(0.0, 100.0))
    pred, source = predict_case(Oracle(), path, cfg, postprocess=False)
    assert pred.shape == label.shape
    assert np.array_equal(pred, label)  # voxel-exact alignment after RAS + inverse
    out = write_label(pred, source, tmp_path / "case_zones.nii.gz")
    back = nib.load(str(out))
    assert np.allclose(back.affine, affine)
    assert np.allclose(back.get_qform(), affine)
    assert np.allclose(back.get_sform(), affine)
    assert int(back.header["qform_code"]) == 1
    assert int(back.header["sform_code"]) == 2
    assert back.header["descrip"].tobytes().rstrip(b"\0") == b"source"
    assert back.get_data_dtype() == np.uint8
    assert np.array_equal(np.asarray(back.dataobj), label)
    assert nib.aff2axcodes(back.affine) == nib.aff2axcodes(affine)


def test_predict_handles_4d_image_and_resampling(tmp_path):
    label = procedural_label((24, 24, 6), (2.0, 2.0, 6.0), np.random.default_rng(4))
    image = np.stack([label.astype(np.float32), np.zeros_like(label, np.float32)], axis=-1)
    affine = np.diag([2.0, 2.0, 6.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), str(tmp_path / "four.nii.gz"))
    cfg = DataConfig(spacing=(1.0, 1.0, 6.0), roi=(16, 16, 4), percentiles=(0.0, 100.0))
    pred, _source = predict_case(Oracle(), tmp_path / "four.nii.gz", cfg, postprocess=False)
    assert pred.shape == label.shape
    assert (pred == label).mean() > 0.97  # resampled to 1 mm and back


def test_keep_largest_component():
    x = np.zeros((6, 6, 2), np.uint8)
    x[0, 0, 0] = 3
    x[3:6, 3:6, :] = 3
    x[0:2, 4:6, 0] = 1
    y = keep_largest_component(x)
    assert y[0, 0, 0] == 0
    assert (y == 3).sum() == 18
    assert (y == 1).sum() == 4


def test_predict_refuses_two_inputs_with_one_output_name(tmp_path, capsys):
    from pipelines.cli import main

    images = tmp_path / "in"
    images.mkdir()
    volume = nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4))
    nib.save(volume, str(images / "p.nii"))
    nib.save(volume, str(images / "p.nii.gz"))
    out = tmp_path / "out"
    argv = ["prostate", "predict", "--run", str(tmp_path / "run"), "--input", str(images)]
    assert main([*argv, "--out", str(out), "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(images / "p.nii") in err, err
    assert str(images / "p.nii.gz") in err, err
    assert not out.exists()


def test_predict_message_claims_no_reports_under_no_report(tmp_path, capsys, monkeypatch):
    import medical.prostate.evaluate as evaluate
    from pipelines.cli import main

    def fake_predict(run, input_path, out, *, device, report):
        return [tmp_path / "out" / f"c{i}_zones.nii.gz" for i in range(2)]

    monkeypatch.setattr(evaluate, "predict", fake_predict)
    argv = ["prostate", "predict", "--run", "r", "--input", "i", "--out", str(tmp_path / "out")]
    assert main([*argv, "--no-report"]) == 0
    assert "wrote 2 label maps to" in capsys.readouterr().out
    assert main(argv) == 0
    assert "wrote 2 label maps and 2 HTML reports to" in capsys.readouterr().out
