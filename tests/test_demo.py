from robustfast.demo import run


def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    first = run(epochs=3, device="cpu", out=str(tmp_path), noisy_epochs=1)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "model.json").is_file()
    assert 0.6 < first["clean"] <= 1.0
    assert 0.0 <= first["robust"] <= first["clean"]
    assert first["images_per_s"] > 0 and first["reference_images_per_s"] > 0
    # Rerunning with the same folder resumes from the finished epoch instead of training again.
    assert set(first["noisy"]) == {"ce", "nce+rce"} and all(0.0 <= a <= 1.0 for a in first["noisy"].values())
    second = run(epochs=3, device="cpu", out=str(tmp_path), noisy_epochs=1)
    assert second["clean"] == first["clean"]
    assert "training" in capsys.readouterr().out
