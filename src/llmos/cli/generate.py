"""Layer 9: `llmos generate MODEL --prompt ...`: stream a continuation of a prompt to the terminal.

MODEL is a checkpoint directory, a GGUF file, a model name (`smollm2`) or a
store name (`ollama:llama3.2:1b`), loaded by `load_model`.
Greedy decoding unless --do-sample (or a sampling flag such as --temperature,
--top-k, --top-p) asks for sampling; defaults for everything else come from
the checkpoint's generation_config.json (a GGUF file's from its metadata), as
`from_pretrained` loads it: the length too, unless --max-new-tokens is given. A
single sequence streams as it is generated; several (--num-return-sequences)
are printed one after another. `--max-tokens` is `--max-new-tokens` under the
name `llmos chat` (and the OpenAI API) use; `-t`/`--threads` sets torch's
thread count.
"""

from __future__ import annotations

import typer

from llmos.cli.runtime_options import set_threads, threads_option

CLI_MAX_NEW_TOKENS = 128  # when neither --max-new-tokens nor the checkpoint's generation_config sets a length


def generate_command(
    checkpoint: str = typer.Argument(..., help="Checkpoint directory (ours or a transformers one), GGUF file, "
                                          "model name (smollm2) or store name (ollama:NAME:TAG)."),
    prompt: str = typer.Option(..., "--prompt", "-p", help="Text to continue."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", "--max-tokens", min=1,
                                       help="How many tokens to generate at most "
                                            f"(default: the checkpoint's, else {CLI_MAX_NEW_TOKENS})."),
    temperature: float = typer.Option(None, help="Sampling temperature (> 0); implies sampling."),
    top_k: int = typer.Option(None, help="Sample among the k most likely tokens; implies sampling."),
    top_p: float = typer.Option(None, help="Nucleus sampling mass in (0, 1]; implies sampling."),
    num_beams: int = typer.Option(1, help="Beam search width (1 = no beam search)."),
    num_return_sequences: int = typer.Option(1, help="How many continuations to return."),
    seed: int = typer.Option(None, help="Random seed: the same seed gives the same text."),
    do_sample: bool = typer.Option(None, "--do-sample/--greedy", help="Sample, or pick the argmax."),
    quantize: str = typer.Option("auto", help="auto (as stored), none (float), int8 or int4 weight-only linears."),
    threads: int = threads_option(),
) -> None:
    """Generate text from a checkpoint, streamed as it is produced."""
    from llmos.generation import TextStreamer
    from llmos.generation.loading import load_model

    set_threads(threads)
    loaded = load_model(checkpoint, quantize=quantize)  # the model comes with its generation_config
    model, tokenizer = loaded.model, loaded.tokenizer
    sampling_flags = any(v is not None for v in (temperature, top_k, top_p))
    if max_new_tokens is None and model.generation_config.max_new_tokens is None \
            and model.generation_config.max_length is None:
        max_new_tokens = CLI_MAX_NEW_TOKENS
    options: dict = {"num_beams": num_beams,
                     "num_return_sequences": num_return_sequences,
                     "do_sample": do_sample if do_sample is not None else sampling_flags}
    for name, value in (("max_new_tokens", max_new_tokens), ("temperature", temperature), ("top_k", top_k),
                        ("top_p", top_p), ("seed", seed)):
        if value is not None:
            options[name] = value
    input_ids = tokenizer.encode(prompt, return_tensors="pt")
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if num_return_sequences == 1:
        streamer = TextStreamer(tokenizer, skip_prompt=False)
        model.generate(input_ids, streamer=streamer, tokenizer=tokenizer, **options)
        return
    sequences = model.generate(input_ids, tokenizer=tokenizer, **options)
    for i, row in enumerate(sequences.tolist()):
        typer.echo(f"--- {i + 1} ---")
        typer.echo(tokenizer.decode(row, skip_special_tokens=True))


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
