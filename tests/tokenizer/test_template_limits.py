"""A chat template comes with a model file, so it renders under limits: a template that would build a huge
value, write too much, loop too long or format a huge date is refused with one TemplateLimitError line naming
the template and the limit, before the memory or time is spent; real templates (SmolLM2's, Qwen2's with tools,
namespaces, loop controls) render exactly as transformers renders them."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from llmos.tokenizer import Tokenizer, template_sandbox
from llmos.tokenizer.chat_template import ChatTemplateError, TemplateLimitError

CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Weather in Paris?"}]
SMOLLM2_TEMPLATE = (  # SmolLM2-135M-Instruct's, as its GGUF file ships it
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
NAMESPACES = (  # the constructs real templates use: namespace, loop controls, filters, tojson, string methods
    "{% set ns = namespace(n=0, last='') %}{% for m in messages %}{% if m.role == 'system' %}{% continue %}"
    "{% endif %}{% set ns.n = ns.n + 1 %}{% set ns.last = m.content|trim %}[{{ ns.n }}:{{ m.role|upper }}:"
    "{{ m.content.split(' ')|join('_') }}]{% endfor %}{{ {'n': ns.n, 'last': ns.last}|tojson }}"
    "{{ '%s-%03d' % ('x', 7) }}{{ '{}/{}'.format(1, 2) }}{{ ('ab' * 3)|replace('b', 'c')|center(10) }}"
    "{% for i in range(3) %}{{ loop.index }}{% if loop.last %}!{% endif %}{% endfor %}")


@pytest.fixture(scope="module")
def tokenizer(qwen2_dir) -> Tokenizer:
    return Tokenizer.from_pretrained(qwen2_dir)


def render(tokenizer: Tokenizer, template: str, messages=CHAT) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, add_generation_prompt=True,
                                         tokenize=False)


def refusal(tokenizer: Tokenizer, template: str) -> str:
    """The one-line message of the refusal."""
    with pytest.raises(TemplateLimitError) as caught:
        render(tokenizer, template)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("chat template ") and " is refused: " in message
    return message


@pytest.mark.parametrize(("template", "says"), [
    ("{{ 'x' * 1000000000 }}", "a '*' repetition would hold 1,000,000,000 characters"),
    ("{{ 'x' * 10 ** 9 }}", "1,000,000,000 characters"),
    ("{{ ['x'] * 1000000000 }}", "the limit is 4,194,304"),
    ("{{ 'x'|center(1000000000) }}", "the center filter was given 1,000,000,000"),
    ("{{ 'x'.ljust(1000000000) }}", "str.ljust() was given 1,000,000,000"),
    ("{{ '{:>999999999}'.format('x') }}", "str.format() would hold"),
    ("{{ '%999999999s' % 'x' }}", "a '%' formatting would hold"),
    ("{% set a = 'x' * 2000000 %}{{ a.replace('x', 'yyyyy') }}", "str.replace() would hold 10,000,000"),
    ("{% set a = 'x' * 2000000 %}{{ [a, a, a]|join }}", "the join filter would hold"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
     "a '~' concatenation would hold"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
     "a '+' concatenation would hold"),
    ("{{ 9 ** 999999 }}", "would make an integer of about 3,169,92"),
    ("{% set l = ['x' * 4000000] * 1000 %}{{ l }}", "a value written out would hold"),
    ("{% for i in range(2000) %}{{ 'x' * 3000 }}{% endfor %}", "it wrote more than 4,194,304 characters"),
    ("{% macro m() %}{% for i in range(2000) %}{{ 'x' * 3000 }}{% endfor %}{% endmacro %}{% set s = m() %}",
     "it wrote more than 4,194,304 characters"),
    ("{{ strftime_now('%Y' * 10 ** 7) }}", "20,000,000 characters"),
    ("{{ strftime_now('%Y' * 1000) }}", "strftime_now's format has 2,000 characters; the limit is 256"),
])
def test_a_template_that_would_build_a_huge_value_is_refused_before_it_does(tokenizer, template, says):
    tracemalloc.start()
    try:
        message = refusal(tokenizer, template)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert says in message
    assert peak < 50_000_000, f"{peak:,} bytes allocated before the refusal"


def test_nested_loops_are_stopped_by_the_step_budget(tokenizer):
    nested = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    started = time.perf_counter()
    message = refusal(tokenizer, nested)
    assert "it took more than 1,000,000 steps" in message and message.startswith("chat template '{% for i in range(10000) %}")
    assert time.perf_counter() - started < 30  # 10^8 iterations ran for minutes


def test_a_render_past_its_time_is_stopped(tokenizer, monkeypatch):
    monkeypatch.setattr(template_sandbox, "MAX_SECONDS", 0.0)
    with pytest.raises(TemplateLimitError, match=r"it ran for more than 0 s"):
        render(tokenizer, "{% for i in range(1000) %}{{ i }}{% endfor %}")
    assert render(tokenizer, SMOLLM2_TEMPLATE).startswith("<|im_start|>system\nYou are terse.")  # a few steps


def test_a_template_that_fails_is_one_chat_template_error(tokenizer):
    for template, says in (("{{ 10.0 ** 1000 }}", "OverflowError"), ("{{ 1 + 'a' }}", "TypeError"),
                           ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nests calls deeper"),
                           ("{{ raise_exception('no ' * 400000) }}", "rejected the conversation: no no")):
        with pytest.raises(ChatTemplateError, match=says) as caught:
            render(tokenizer, template)
        assert len(str(caught.value)) < 700


def test_a_huge_template_is_refused_before_it_compiles(tokenizer):
    with pytest.raises(TemplateLimitError, match=r"more than 1,048,576 characters"):
        render(tokenizer, "{{ 'x' }}" * 200_000)


def test_a_long_real_conversation_renders_within_the_limits(tokenizer):
    long_chat = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " * 50}
                 for i in range(2000)]
    rendered = render(tokenizer, SMOLLM2_TEMPLATE, long_chat)
    assert rendered.count("<|im_start|>") == 2002 and rendered.endswith("<|im_start|>assistant\n")
    big = [{"role": "user", "content": "y" * 3_000_000}]  # a prompt of megabytes is a prompt, not an attack
    assert len(render(tokenizer, SMOLLM2_TEMPLATE, big)) > 3_000_000


EVERY_CONSTRUCT = (  # what the bounded code generator rewrites: loops (filtered, recursive, with else), outputs in
    # buffers (filter, set and call blocks, macros), '~', autoescape, operators, filters, string methods
    "{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}/{{ loop.revindex }}"
    "{{ m.content }}{% if not loop.last %},{% endif %}{% endfor %}\n"
    "{%- for item in tree recursive %}<{{ item.name }}{% if item.children %}[{{ loop(item.children) }}]{% endif %}>"
    "{% endfor %}{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for x in [] %}x{% else %}"
    "empty{% endfor %}{% filter upper %}shout {{ messages[0].content }}{% endfilter %}{% set block %}B{{ 1 + 2 }}"
    "{% endset %}{{ block ~ '!' ~ 3 }}{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
    "{% call wrap('b') %}in{% endcall %}{% autoescape true %}{{ '<a>' }}{{ '<x>' ~ 'y' }}{% endautoescape %}"
    "{{ '<a>' }}{{ [3, 1, 2]|sort|join(',') }} {{ 'a,b'.split(',')|map('upper')|join('-') }} "
    "{{ '%5.1f|%-4s|' % (3.14159, 'ab') }}{{ '{:>6}'.format('r') }} {{ 7 // 2 }} {{ 2 ** 10 }} {{ [1] * 3 }} "
    "{{ [1] + [2] }} {{ range(5)|list }} {{ 'x'|indent(2, true) }} {{ 'hello world'|title|wordwrap(5) }}")


def test_every_construct_renders_as_in_jinjas_own_sandbox(tokenizer):
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    plain = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    tree = [{"name": "a", "children": [{"name": "b", "children": []}, {"name": "c"}]}]
    expected = plain.from_string(EVERY_CONSTRUCT).render(messages=CHAT, tree=tree)
    assert tokenizer.apply_chat_template(CHAT, chat_template=EVERY_CONSTRUCT, tokenize=False, tree=tree) == expected
    assert "<a[<b><c>]>" in expected and "&lt;x&gt;y" in expected and "SHOUT YOU ARE TERSE." in expected


@pytest.mark.parametrize("template", [SMOLLM2_TEMPLATE, NAMESPACES])
def test_real_templates_render_exactly_as_transformers_renders_them(qwen2_dir, tokenizer, template):
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(str(qwen2_dir))
    for messages in (CHAT, CHAT[1:]):
        expected = hf.apply_chat_template(messages, chat_template=template, add_generation_prompt=True,
                                          tokenize=False)
        assert render(tokenizer, template, messages) == expected
    assert render(tokenizer, NAMESPACES).startswith("[1:USER:Hi_there][2:ASSISTANT:Hello.]")
