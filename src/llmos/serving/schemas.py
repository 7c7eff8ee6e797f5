"""Layer 7: the request bodies of the OpenAI-compatible API, as pydantic models.

Fields OpenAI defines but we do not act on are accepted only at their neutral
value (e.g. presence_penalty 0) or ignored where they change nothing here
(user, metadata, store); anything else unknown is a 400 naming the field, as
OpenAI answers "Unrecognized request argument". Nothing in a request can name
a file: the model field is matched against the one served model's id.
`null` for an optional field means its default, as in OpenAI's spec (where
every optional field is nullable). min_p and repetition_penalty are sampling
extensions with vLLM's and llama.cpp's names and transformers' semantics. A
sampling field left out (None) takes the model's own generation_config value,
as vLLM fills it, else LLMOS's measured chat default when the chat request
names no sampling field at all (`llmos.generation_config.chat_sampling`), else
OpenAI's neutral value (see serving/routes.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmos.serving.errors import FieldProblem

MAX_N = 16
MAX_STOP = 4
MAX_TOP_LOGPROBS = 20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # OpenAI's range for seed
REPETITION_PENALTY_RANGE = (0.01, 100)
MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        """An optional field sent as null takes its default (required fields stay required)."""
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {key: value for key, value in data.items()
                if not (value is None and key in fields and not fields[key].is_required())}


class StreamOptions(StrictModel):
    include_usage: bool = False
    include_obfuscation: bool | None = None  # OpenAI's padding option: meaningless here


class _Common(StrictModel):
    model: str
    # sampling: None = the server's default for this model (see the module docstring)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)  # extension (0 = off), as vLLM
    n: int = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
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
    # sampling extensions (vLLM, llama.cpp)
    min_p: float | None = None  # keep tokens at least min_p x the top token's probability; 0 = off
    repetition_penalty: float | None = None  # CTRL's penalty on tokens already in prompt or output; 1 = off

    @field_validator("min_p")
    @classmethod
    def _min_p_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError("min_p must be in [0, 1] (0 turns it off)")
        return value

    @field_validator("repetition_penalty")
    @classmethod
    def _penalty_range(cls, value: float | None) -> float | None:
        low, high = REPETITION_PENALTY_RANGE
        if value is not None and not low <= value <= high:  # beyond it, dividing the scores can overflow them to inf
            raise ValueError(f"repetition_penalty must be in [{low}, {high}] (1 turns it off, > 1 "
                             "discourages repeats, < 1 encourages them)")
        return value

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
                raise FieldProblem(name, f"{name} is not supported by this server; use 0 or leave it out")
        if self.logit_bias:
            raise FieldProblem("logit_bias", "logit_bias is not supported by this server; leave it out")
        return self


class CompletionRequest(_Common):
    prompt: str | list[str] | list[int] | list[list[int]] | None  # required, but may be null or ""
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
            raise FieldProblem("best_of", "best_of is not supported by this server; leave it out")
        if self.suffix:
            raise FieldProblem("suffix", "suffix (insertion) is not supported by this server")
        return self


class ContentPart(StrictModel):
    type: Literal["text"]
    text: str


class EarlierCallFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    arguments: str | dict[str, Any] = "{}"  # OpenAI sends a JSON string; a dict is taken as it is


class EarlierToolCall(BaseModel):
    """A call an assistant turn made, sent back in the history (the template writes it back)."""

    model_config = ConfigDict(extra="ignore")  # e.g. the index a streamed call carried
    id: str | None = None
    type: Literal["function"] = "function"
    function: EarlierCallFunction


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # e.g. refusal/audio echoed back by clients
    # checked by the chat route (its 400 names the role); published as the roles it accepts
    role: str = Field(json_schema_extra={"enum": list(MESSAGE_ROLES)})
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[EarlierToolCall] | None = None  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool turn: which call this result answers

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class FunctionSpec(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # calls always validate here: the grammar enforces the schema


class ToolSpec(StrictModel):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(StrictModel):
    name: str


class NamedToolChoice(StrictModel):
    type: Literal["function"]
    function: NamedFunction


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    tools: list[ToolSpec] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None

    @model_validator(mode="after")
    def _checks(self):
        if self.top_logprobs is not None and not self.logprobs:
            raise FieldProblem("top_logprobs", "top_logprobs requires logprobs to be true")
        names = [tool.function.name for tool in self.tools or []]
        if len(set(names)) != len(names):
            raise FieldProblem("tools", f"tool names must be unique; got {names}")
        if self.tool_choice is not None and not self.tools and self.tool_choice != "none":
            raise FieldProblem("tool_choice", "tool_choice is only allowed when tools are specified")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.function.name not in names:
            raise FieldProblem("tool_choice", f"tool_choice names function {self.tool_choice.function.name!r}, which is not "
                             f"in tools {names}")
        if self.response_format is not None:
            kind = self.response_format.get("type")
            if kind not in ("text", "json_object", "json_schema"):
                raise FieldProblem("response_format", f"response_format type {kind!r} is not valid; "
                                   "expected 'text', 'json_object' or 'json_schema'")
            spec = self.response_format.get("json_schema")
            if kind == "json_schema" and not (isinstance(spec, dict) and isinstance(spec.get("schema", {}), dict)):
                raise FieldProblem("response_format",
                                   "response_format json_schema needs {'name': ..., 'schema': {...}}")
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
    def tool_mode(self) -> str:
        """How tools apply: "none" (no tools, or tool_choice none), "auto", "required" or "named"."""
        if not self.tools or self.tool_choice == "none":
            return "none"
        if isinstance(self.tool_choice, NamedToolChoice):
            return "named"
        return self.tool_choice or "auto"

    @property
    def callable_tools(self) -> list[dict[str, Any]]:
        """The function dicts the reply may call under tool_choice."""
        if self.tool_mode == "none":
            return []
        named = self.tool_choice.function.name if self.tool_mode == "named" else None
        return [t.function.model_dump(exclude_none=True) for t in self.tools
                if named is None or t.function.name == named]

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens
