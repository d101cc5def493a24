"""A generator's stage results: decoders, instruction-tuned models, generation scores, its ONNX graphs."""

from __future__ import annotations

from pydantic import BaseModel

from core.workspace import join
from tasks.results.common import PretrainedModel, TunedModel, Variant
from tasks.results.scores import GenerationScores


class DecoderArtifact(PretrainedModel):
    """The pretrained causal decoder (`tasks/kinds/generation/pretrain.py`)."""

    tokens_per_second: float  # training tokens per second of this attempt's training loop


class InstructionTunedModel(TunedModel):
    """The instruction-tuned generator checkpoint (`tasks/kinds/generation/sft.py`)."""

    eval_loss: float  # validation loss on answer tokens
    perplexity: float
    too_long: int  # chats longer than max_length (truncated or dropped, by policy)
    samples_per_second: float


class GenerationReport(BaseModel):
    """The evaluate_generation stage's verdict against the pre-SFT model and retrieval."""

    uri: str
    model: GenerationScores
    before_sft: GenerationScores | None
    retrieval: GenerationScores
    passed: bool
    reasons: list[str]
    test_size: int
    samples: list[dict[str, str]]
    mlflow_run_id: str


class GenerationParity(BaseModel):
    """One ONNX graph against PyTorch on the test chats."""

    agreement: float  # teacher-forced next-token argmax agreement
    tokens: int  # positions compared
    exact_match: float
    chrf: float
    exact_match_drop: float  # points (0-100) below PyTorch
    chrf_drop: float
    passed: bool
    reason: str | None = None


class OptimizedGenerator(BaseModel):
    """What the stage built, which graph serves, and why (`variant` pytorch: no graph passed, see `reasons`)."""

    uri: str
    onnx_dir: str | None  # the served graph's folder under `uri` (genai_config.json, model.onnx, tokenizer)
    variant: Variant
    passed: bool
    verdict: str
    reasons: list[str]
    parity: dict[str, GenerationParity]
    reference: dict[str, float]  # PyTorch's exact_match and chrF
    latency: list[dict]
    sizes_mb: dict[str, float]
    eval_size: int
    mlflow_run_id: str

    @property
    def onnx_uri(self) -> str | None:
        """The chosen graph's folder (None: PyTorch serves)."""
        return join(self.uri, self.onnx_dir) if self.onnx_dir else None
