"""Chat templates render exactly as transformers' apply_chat_template does."""

from __future__ import annotations

import json

import pytest
import torch

from llmos.errors import LLMOSError
from llmos.tokenizer import CHATML_TEMPLATE, Tokenizer

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.parity

CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "  What is the weather in Paris?  "},
    {"role": "assistant", "content": "Sunny, 21°C."},
    {"role": "user", "content": "And in Tokyo?"},
]
TOOL_CHAT = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,  # dropped before rendering, as transformers does
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}},
            }
        ],
    },
    {"role": "tool", "content": json.dumps({"temp": 21})},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather <in> a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def _pair(directory):
    return transformers.AutoTokenizer.from_pretrained(str(directory)), Tokenizer.from_pretrained(
        directory
    )


@pytest.mark.parametrize("name", ["llama3", "qwen2"])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_rendered_string_matches_transformers(all_dirs, name, add_generation_prompt):
    hf, ours = _pair(all_dirs[name])
    expected = hf.apply_chat_template(
        CHAT, add_generation_prompt=add_generation_prompt, tokenize=False
    )
    got = ours.apply_chat_template(
        CHAT, add_generation_prompt=add_generation_prompt, tokenize=False
    )
    assert got == expected
    headers = {
        "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "qwen2": "<|im_start|>assistant\n",
    }
    assert got.endswith(headers[name]) == add_generation_prompt


@pytest.mark.parametrize("name", ["llama3", "qwen2"])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_tokenized_chat_matches_transformers(all_dirs, name, add_generation_prompt):
    hf, ours = _pair(all_dirs[name])
    expected = hf.apply_chat_template(
        CHAT, add_generation_prompt=add_generation_prompt, return_dict=False
    )
    assert ours.apply_chat_template(CHAT, add_generation_prompt=add_generation_prompt) == expected
    as_tensor = ours.apply_chat_template(
        CHAT, add_generation_prompt=add_generation_prompt, return_tensors="pt"
    )
    assert torch.equal(as_tensor, torch.tensor([expected]))
    as_dict = ours.apply_chat_template(CHAT, return_dict=True)
    assert as_dict["input_ids"] == hf.apply_chat_template(CHAT, return_dict=False)
    assert as_dict["attention_mask"] == [1] * len(as_dict["input_ids"])


def test_tools_and_tool_calls_render_as_in_transformers(qwen2_dir):
    hf, ours = _pair(qwen2_dir)
    for prompt in (False, True):
        expected = hf.apply_chat_template(
            TOOL_CHAT, tools=TOOLS, add_generation_prompt=prompt, tokenize=False
        )
        got = ours.apply_chat_template(
            TOOL_CHAT, tools=TOOLS, add_generation_prompt=prompt, tokenize=False
        )
        assert got == expected
    assert '"unit": "°C"' in got and "<in>" in got  # tojson neither escapes non-ASCII nor HTML


def test_a_batch_of_conversations_renders_each(qwen2_dir):
    hf, ours = _pair(qwen2_dir)
    batch = [CHAT[:2], CHAT]
    assert ours.apply_chat_template(batch, tokenize=False) == hf.apply_chat_template(
        batch, tokenize=False
    )
    out = ours.apply_chat_template(batch, padding=True, return_dict=True, return_tensors="pt")
    expected = hf.apply_chat_template(batch, padding=True, return_dict=True, return_tensors="pt")
    assert torch.equal(out["input_ids"], expected["input_ids"])
    assert torch.equal(out["attention_mask"], expected["attention_mask"])


def test_a_role_the_template_rejects_raises_with_the_templates_message(qwen2_dir):
    ours = Tokenizer.from_pretrained(qwen2_dir)
    with pytest.raises(LLMOSError, match="Unknown role: narrator"):
        ours.apply_chat_template([{"role": "narrator", "content": "Once upon a time"}])


def test_no_template_says_so(bert_dir):
    with pytest.raises(LLMOSError, match="no chat template"):
        Tokenizer.from_pretrained(bert_dir).apply_chat_template(CHAT)


def test_an_explicit_template_argument_wins_and_uses_special_token_variables(llama3_dir):
    hf, ours = _pair(llama3_dir)
    template = "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}{% endfor %}"
    got = ours.apply_chat_template(CHAT, chat_template=template, tokenize=False)
    assert got == hf.apply_chat_template(CHAT, chat_template=template, tokenize=False)
    assert got.startswith("<|begin_of_text|>system: You are terse.<|eot_id|>")


def test_named_template_list_form_picks_default_or_the_named_one(tmp_path, llama3_dir):
    import shutil

    shutil.copytree(llama3_dir, tmp_path / "tok")
    config_path = tmp_path / "tok" / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = [
        {"name": "default", "template": CHATML_TEMPLATE},
        {"name": "plain", "template": "{% for m in messages %}{{ m.content }}\n{% endfor %}"},
    ]
    config_path.write_text(json.dumps(config))
    hf, ours = _pair(tmp_path / "tok")
    assert isinstance(ours.chat_template, dict)
    for name in (None, "plain"):
        got = ours.apply_chat_template(CHAT, chat_template=name, tokenize=False)
        assert got == hf.apply_chat_template(CHAT, chat_template=name, tokenize=False)
    assert ours.apply_chat_template(CHAT, chat_template="plain", tokenize=False).startswith(
        "You are terse.\n"
    )


def test_loop_controls_and_sandbox_match_transformers(llama3_dir):
    hf, ours = _pair(llama3_dir)
    template = (
        "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}"
        "{% if m.role == 'system' %}{% continue %}{% endif %}[{{ m.content | trim }}]{% endfor %}"
        "{% generation %}{{ dict(a=1) | tojson }}{% endgeneration %}"
    )
    got = ours.apply_chat_template(CHAT, chat_template=template, tokenize=False)
    assert (
        got
        == hf.apply_chat_template(CHAT, chat_template=template, tokenize=False)
        == '[What is the weather in Paris?]{"a": 1}'
    )
    with pytest.raises(LLMOSError, match="unsafe"):
        ours.apply_chat_template(
            CHAT, chat_template="{{ messages.__class__.__mro__ }}", tokenize=False
        )
