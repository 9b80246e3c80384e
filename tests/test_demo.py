from robustfast.demo import run


def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    first = run(epochs=3, device="cpu", out=str(tmp_path), quick=True)
    attacks = first["attacks"]
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "model.json").is_file()
    assert 0.6 < attacks["clean"] <= 1.0
    assert 0.0 <= attacks["robust"] <= attacks["clean"]
    assert attacks["images_per_s"] > 0 and attacks["reference_images_per_s"] > 0
    assert set(first["noisy"]) == {"ce", "nce+rce"} and all(0.0 <= a <= 1.0 for a in first["noisy"].values())
    assert first["unlearnable"]["rounds"] == 1 and (tmp_path / "unlearnable").is_dir()
    assert (tmp_path / "lid_histogram.png").is_file() and first["lid"]["png"] == str(tmp_path / "lid_histogram.png")
    assert set(first["backdoor"]["asr"]) == {"badnets", "blend", "sig", "trojan"}
    assert set(first["cd"]) == {"badnets train", "badnets backdoor test"}
    assert (tmp_path / "cd" / "patterns.png").is_file()
    robust = first["robust"]["accuracy"]
    assert robust["clean"] >= robust["pgd20"] >= robust["cw"] and (tmp_path / "robust" / "report.json").is_file()
    assert (tmp_path / "nas_genotype.json").is_file() and 0.0 <= first["nas"]["val_acc"] <= 1.0
    assert 1 <= first["dta"]["layer"] <= 3 and 0.0 <= first["dta"]["dta"] <= 1.0
    # Rerunning with the same folder resumes from the finished epoch instead of training again.
    second = run(epochs=3, device="cpu", out=str(tmp_path), quick=True)
    assert second["attacks"]["clean"] == attacks["clean"]
    assert "training" in capsys.readouterr().out
