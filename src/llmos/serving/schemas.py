"""Layer 7: the request bodies of the OpenAI-compatible API, as pydantic models.

Fields OpenAI defines but we do not act on are accepted only at their neutral
value (e.g. presence_penalty 0) or ignored where they change nothing here
(user, metadata, store); anything else unknown is a 400 naming the field, as
OpenAI answers "Unrecognized request argument". Nothing in a request can name
a file: the model field is matched against the one served model's id.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_N = 16
MAX_STOP = 4
MAX_TOP_LOGPROBS = 20


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(StrictModel):
    include_usage: bool = False
    include_obfuscation: bool | None = None  # OpenAI's padding option: meaningless here


class _Common(StrictModel):
    model: str
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)  # extension (0 = off), as vLLM
    n: int = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    # accepted and ignored: they change nothing a local server does
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    # accepted only at their neutral value
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences are allowed, got {len(stops)}")
        if any(not s for s in stops):
            raise ValueError("stop sequences must be non-empty strings")
        return stops

    @model_validator(mode="after")
    def _neutral_only(self):
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) != 0.0:
                raise ValueError(f"{name} is not supported by this server; use 0 or leave it out")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported by this server; leave it out")
        return self


class CompletionRequest(_Common):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=0)
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("prompt must not be an empty list")
        return value

    @model_validator(mode="after")
    def _unsupported(self):
        if self.best_of not in (None, 1) and self.best_of != self.n:
            raise ValueError("best_of is not supported by this server; leave it out")
        if self.suffix:
            raise ValueError("suffix (insertion) is not supported by this server")
        return self


class ContentPart(StrictModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # e.g. tool_calls/refusal echoed back by clients
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    @model_validator(mode="after")
    def _checks(self):
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs requires logprobs to be true")
        if self.response_format is not None:
            kind = self.response_format.get("type")
            if kind not in ("text", "json_object", "json_schema"):
                raise ValueError(f"response_format type {kind!r} is not valid; expected 'text', 'json_object' "
                                 "or 'json_schema'")
            spec = self.response_format.get("json_schema")
            if kind == "json_schema" and not (isinstance(spec, dict) and isinstance(spec.get("schema", {}), dict)):
                raise ValueError("response_format json_schema needs {'name': ..., 'schema': {...}}")
        return self

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """The JSON schema the reply must match (json_object: any object), or None for text."""
        kind = (self.response_format or {}).get("type")
        if kind == "json_object":
            return {"type": "object"}
        if kind == "json_schema":
            return self.response_format["json_schema"].get("schema", {"type": "object"})
        return None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens
