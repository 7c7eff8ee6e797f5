"""A GGUF file served as `llmos serve` opens it (`load_model`, then `ServedTokenizer`): the file's own
tokenizer, chat template and stop tokens."""

from gguf_models import write_gguf_model

from llmos.auto import AutoTokenizer
from llmos.generation.loading import load_model
from llmos.kernels import Int4Linear
from llmos.serving.text import ServedTokenizer

TEMPLATE = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}[assistant] {% endif %}")


def test_a_gguf_file_serves_with_its_own_chat_template(tmp_path):
    path = write_gguf_model(tmp_path, "llama", "Q4_1", chat_template=TEMPLATE)
    loaded = load_model(path, quantize="auto")
    served = ServedTokenizer(loaded.tokenizer, None, loaded.stop_ids)
    assert isinstance(loaded.model.transformer.blocks[0].attn.qkv, Int4Linear)  # "auto": the file's blocks
    assert served.render_chat([{"role": "user", "content": "hi"}]) == "[user] hi\n[assistant] "
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert served.encode("hello world") == tokenizer.encode("hello world", add_special_tokens=False)
    assert tokenizer.eos_token_id in served.stop_token_ids
    assert served.token_to_id("<|im_end|>") in served.stop_token_ids


def test_quantize_none_serves_float_linears(tmp_path):
    loaded = load_model(write_gguf_model(tmp_path, "llama", "Q4_1"), quantize="none")
    assert not isinstance(loaded.model.transformer.blocks[0].attn.qkv, Int4Linear)
    assert loaded.report.quantization == "none"
