"""Layer 2: task heads on the trunk: causal LM, masked LM (+ next-sentence prediction),
sequence classification. Each is an `nn.Module` that returns a `ModelOutput` (see `outputs`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmos.config import ModelConfig
from llmos.model.cache import KVCache
from llmos.model.norms import make_norm
from llmos.model.outputs import (
    CausalLMOutput,
    MaskedLMOutput,
    PreTrainingOutput,
    SequenceClassifierOutput,
)
from llmos.model.transformer import Transformer, init_weights

# The label that takes no loss (PyTorch's cross_entropy default, as in transformers). The one
# definition: data collators and training objectives import it from here.
IGNORE_INDEX = -100


def mean_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the targets that are not IGNORE_INDEX (0, not nan, when all are)."""
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                            ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (targets != IGNORE_INDEX).sum().clamp(min=1)


class PreTrainedModel(nn.Module):
    """What every head shares: a config, a trunk, tied weights, `num_parameters`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = Transformer(config)

    def post_init(self) -> None:
        init_weights(self, self.config)
        self.tie_weights()

    def tie_weights(self) -> None:
        pass

    def save_pretrained(self, path, tokenizer=None, generation_config=None, **kwargs):
        """Write a checkpoint directory with `llmos.checkpoint.save_pretrained` (see there).
        Like `generate`, a thin late import: the familiar API puts it on the model, while
        the model layer itself stays free of file formats."""
        from llmos.checkpoint import save_pretrained

        return save_pretrained(self, path, tokenizer=tokenizer, generation_config=generation_config, **kwargs)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


class CausalLM(PreTrainedModel):
    """Next-token prediction. `labels` are the input ids themselves: the shift happens here."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=config.lm_head_bias)
        self.post_init()

    def tie_weights(self) -> None:
        if self.config.tie_embeddings and isinstance(self.lm_head, nn.Linear):
            self.lm_head.weight = self.transformer.embed.tokens.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        labels: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        targets: torch.Tensor | None = None,
        cache_position: torch.Tensor | None = None,
    ) -> CausalLMOutput:
        """logits_to_keep > 0 runs the LM head on the last that many positions only.

        targets (training): the next token at each position (already shifted, -100 =
        ignored; the head skips those positions); only the mean loss is returned and `logits` is None, so a head that can
        compute its loss without the (B, T, V) logits (`llmos.kernels.FusedLossHead`,
        through its `cross_entropy` method) never builds them."""
        h = self.transformer(input_ids, attention_mask, position_ids, cache=cache, cache_position=cache_position)
        if targets is not None:
            trained = targets != IGNORE_INDEX
            if not bool(trained.all()):  # fine-tuning: the head runs only where a target is learned
                h, targets = h[trained], targets[trained]
            head_loss = getattr(self.lm_head, "cross_entropy", None)
            if head_loss is not None and self.config.final_logit_softcap is None:
                return CausalLMOutput(loss=head_loss(h, targets))
            return CausalLMOutput(loss=mean_cross_entropy(self.logits(h), targets))
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        logits = self.logits(h)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                labels[:, 1:].reshape(-1),
                ignore_index=IGNORE_INDEX,
            )
        return CausalLMOutput(loss=loss, logits=logits)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """The LM head over hidden states, capped (cap * tanh(logits / cap)) when the config says so."""
        logits = self.lm_head(h)
        cap = self.config.final_logit_softcap
        return logits if cap is None else cap * torch.tanh(logits / cap)

    def generate(self, *args, **kwargs):
        """Decode with `llmos.generation` (see there). The one call from the model layer
        upward: the API people know puts `generate` on the model, so it is kept a thin
        late import and the model code itself stays free of decoding logic."""
        from llmos.generation import generate

        return generate(self, *args, **kwargs)


class MLMHead(nn.Module):
    """BERT's prediction head: optional dense + GELU + norm, then a decoder tied to the embeddings."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.mlm_transform:
            self.dense = nn.Linear(config.d_model, config.d_model)
            self.norm = make_norm(config)
        self.decoder = nn.Linear(config.d_model, config.vocab_size, bias=config.lm_head_bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "dense"):
            h = self.norm(F.gelu(self.dense(h)))
        return self.decoder(h)


class Pooler(nn.Module):
    """tanh(dense(h[:, 0])): a summary of the sequence from its first ([CLS]) token."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(h[:, 0]))


class MaskedLM(PreTrainedModel):
    """Masked-token prediction; `labels` hold the original ids at masked positions, -100 elsewhere."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.mlm = MLMHead(config)
        self.post_init()

    def tie_weights(self) -> None:
        if self.config.tie_embeddings:
            self.mlm.decoder.weight = self.transformer.embed.tokens.weight

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                labels=None, masked_only: bool = False) -> MaskedLMOutput:
        """masked_only (with labels): run the prediction head only where labels != -100, so
        `logits` is (number of masked tokens, V), in row-major order of those positions.
        Training needs no more, and the head then costs ~15% of what it costs on every token."""
        h = self.transformer(input_ids, attention_mask, position_ids, token_type_ids)
        loss, logits = self._predict_masked(h, labels, masked_only)
        return MaskedLMOutput(loss=loss, logits=logits)

    def _predict_masked(self, h, labels, masked_only) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(mean loss over the labelled tokens or None, token logits) from the trunk's states."""
        if masked_only and labels is not None:
            masked = labels != IGNORE_INDEX
            logits, labels = self.mlm(h[masked]), labels[masked]
        else:
            logits = self.mlm(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return loss, logits


class PreTrainingModel(MaskedLM):
    """Masked LM + next-sentence prediction (is segment B the true continuation of A?)."""

    def __init__(self, config: ModelConfig) -> None:
        PreTrainedModel.__init__(self, config)
        self.mlm = MLMHead(config)
        self.pooler = Pooler(config)
        self.nsp = nn.Linear(config.d_model, 2)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                labels=None, next_sentence_label=None, masked_only: bool = False) -> PreTrainingOutput:
        h = self.transformer(input_ids, attention_mask, position_ids, token_type_ids)
        loss, prediction_logits = self._predict_masked(h, labels, masked_only)
        seq_relationship_logits = self.nsp(self.pooler(h))  # (B, 2)
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(seq_relationship_logits.float(), next_sentence_label.reshape(-1))
            loss = nsp_loss if loss is None else loss + nsp_loss
        return PreTrainingOutput(loss=loss, prediction_logits=prediction_logits,
                                 seq_relationship_logits=seq_relationship_logits)


class SequenceClassifier(PreTrainedModel):
    """Encoders classify from the pooled first token; decoders from the last non-pad token."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        if not config.causal and config.pooler:
            self.pooler = Pooler(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels, bias=config.classifier_bias)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                labels=None) -> SequenceClassifierOutput:
        h = self.transformer(input_ids, attention_mask, position_ids, token_type_ids)
        if not self.config.causal:
            pooled = self.pooler(h) if hasattr(self, "pooler") else h[:, 0]
        else:
            pooled = h[torch.arange(h.shape[0], device=h.device), self._last_token(input_ids, attention_mask)]
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            if self.config.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.reshape(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def _last_token(self, input_ids, attention_mask) -> torch.Tensor:
        if attention_mask is not None:
            real = attention_mask.bool()
        elif self.config.pad_token_id is not None:
            real = input_ids != self.config.pad_token_id
        else:
            return torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, device=input_ids.device)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return (positions * real).argmax(-1)  # right-most real token, left or right padding
