"""Test helper: a tiny chat model that answers in Chinese, for Chinese text end to end.

A byte-level BPE tokenizer trained on a few Chinese sentences (vocabulary 300,
so most characters of the reply are split across two or three byte tokens),
and a 2-layer Llama-shaped model trained for a second or two until it has
memorized one ChatML conversation: asked QUESTION, it answers REPLY, greedily,
token for token. Streaming, serving and the chat page can then be checked
against a known Chinese answer whose characters really straddle tokens.

Not a test module; import it (tests/conftest.py puts tests/ on sys.path).
"""

from __future__ import annotations

import functools

import torch

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = ["你好，世界！", "今天天气很好。", "我们一起学习语言模型。", "中文分词和流式输出。"] * 5
QUESTION = "你好"
REPLY = "你好！我是一个很小的模型，只会说这一句中文。🙂"


@functools.lru_cache(maxsize=1)
def chinese_chat_model():
    """(model, tokenizer): the model answers QUESTION with REPLY under greedy decoding."""
    from llmos.config import ModelConfig
    from llmos.model import CausalLM
    from llmos.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(CORPUS, kind="bpe", vocab_size=300, min_frequency=2, special_tokens=SPECIALS)
    tokenizer.chat_template = CHATML
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    conversation = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": REPLY}]
    ids = torch.tensor([tokenizer.apply_chat_template(conversation)])
    generator_state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny matmuls: a second thread only waits (seconds become tens on a busy machine)
    config = ModelConfig.from_preset("nano", vocab_size=len(tokenizer), d_model=64, n_layers=2, n_heads=4,
                                     n_kv_heads=2, d_ff=128, max_seq_len=128, eos_token_id=end_of_turn)
    model = CausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(400):
        loss = model(ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 2e-3:
            break
    torch.random.set_rng_state(generator_state)
    torch.set_num_threads(threads)
    return model.eval(), tokenizer


def reply_token_ids(tokenizer) -> list[int]:
    """The ids of REPLY as the model writes it after the prompt (no special tokens)."""
    return tokenizer.encode(REPLY, add_special_tokens=False)


def split_characters(tokenizer) -> int:
    """How many of REPLY's tokens hold only part of a character (decode alone to U+FFFD)."""
    return sum("\ufffd" in tokenizer.decode([i]) for i in reply_token_ids(tokenizer))
