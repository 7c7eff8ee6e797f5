"""Ollama's and LM Studio's model stores, laid out in a temporary home exactly as those tools write them:
`llmos models` lists their GGUF files with architecture, size and quantization, and every verb loads one
by its store name in place (nothing copied, nothing written)."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import httpx
import pytest
import torch
from gguf_models import write_gguf_model
from live_server import start_server

from llmos.auto import AutoModelForCausalLM, AutoTokenizer
from llmos.generation.loading import load_model

OLLAMA_TEMPLATE = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Prompt }}"


def ollama_pull(store: Path, name: str, tag: str, gguf: Path, namespace: str = "library") -> Path:
    """`ollama pull NAME:TAG` as it leaves the store: blobs named by digest, a manifest per tag whose
    model layer is the GGUF file (plus the template, params and config layers Ollama writes)."""
    blobs = store / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)

    def blob(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / f"sha256-{digest}").write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    model = blob(gguf.read_bytes(), "application/vnd.ollama.image.model")
    layers = [model, blob(OLLAMA_TEMPLATE.encode(), "application/vnd.ollama.image.template"),
              blob(b'{"stop": ["<|im_end|>"]}', "application/vnd.ollama.image.params")]
    config = blob(json.dumps({"model_format": "gguf", "model_family": "llama"}).encode(),
                  "application/vnd.docker.container.image.v1+json")
    manifest = store / "manifests" / "registry.ollama.ai" / namespace / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "mediaType":
                                    "application/vnd.docker.distribution.manifest.v2+json",
                                    "config": config, "layers": layers}))
    return blobs / f"sha256-{model['digest'].removeprefix('sha256:')}"


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A home with Ollama's store (under OLLAMA_MODELS) holding tiny:1b (llama, Q8_0), user/qwen:latest and a
    manifest that is not a model; LM Studio's folder (and its older one) holding a qwen2 Q4_0 file beside
    its vision projector, and a llama F16 file. The models folder and the Hugging Face cache are empty."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    monkeypatch.setenv("LLMOS_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("COLUMNS", "400")
    made = tmp_path / "made"
    llama = write_gguf_model(made, "llama", "Q8_0", file_name="llama.gguf")
    qwen = write_gguf_model(made, "qwen2", "Q4_0", file_name="qwen.gguf")
    blob = ollama_pull(tmp_path / "ollama", "tiny", "1b", llama)
    ollama_pull(tmp_path / "ollama", "qwen", "latest", qwen, namespace="user")
    broken = tmp_path / "ollama" / "manifests" / "registry.ollama.ai" / "library" / "notes" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text(json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.license",
                                              "digest": "sha256:00"}]}))
    repo = home / ".lmstudio" / "models" / "someone" / "Qwen-GGUF"
    repo.mkdir(parents=True)
    (repo / "qwen-Q4_0.gguf").write_bytes(qwen.read_bytes())
    (repo / "mmproj-qwen-f16.gguf").write_bytes(qwen.read_bytes())  # a vision projector: not a model
    write_gguf_model(home / ".cache" / "lm-studio" / "models" / "old" / "Llama-GGUF", "llama", "F16",
                     file_name="llama-F16.gguf")
    return {"blob": blob, "llama": llama, "tmp": tmp_path}


def listing(tmp: Path) -> dict[str, tuple[int, int]]:
    """Every file of the stores and of the models folder, with its size and modification time."""
    roots = [tmp / "ollama", tmp / "home" / ".lmstudio", tmp / "home" / ".cache" / "lm-studio", tmp / "models"]
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in root.rglob("*")
            if p.is_file()}


def row(out: str, name: str) -> list[str]:
    lines = [line for line in out.splitlines() if f" {name} " in line]
    assert len(lines) == 1, out
    return [cell.strip() for cell in lines[0].split("│")]


def test_llmos_models_lists_the_files_of_ollamas_and_lm_studios_stores(machine, llmos_cli):
    code, out, err = llmos_cli("models")
    assert code == 0, err
    tiny = row(out, "ollama:tiny:1b")
    assert tiny[2:3] == ["Ollama"] and tiny[3].endswith("KiB") and tiny[4:7] == ["llama", "GGUF Q8_0",
                                                                                   str(machine["blob"])]
    assert row(out, "ollama:user/qwen:latest")[4:6] == ["qwen2", "GGUF Q4_0"]
    lm = row(out, "lmstudio:someone/Qwen-GGUF/qwen-Q4_0.gguf")
    assert lm[2] == "LM Studio" and lm[4:6] == ["qwen2", "GGUF Q4_0"]
    assert row(out, "lmstudio:old/Llama-GGUF/llama-F16.gguf")[4:6] == ["llama", "GGUF F16"]
    assert "mmproj" not in out and "notes" not in out


def test_ollamas_store_is_found_in_the_home_folder_without_ollama_models(machine, monkeypatch, llmos_cli):
    monkeypatch.delenv("OLLAMA_MODELS")
    ollama_pull(Path.home() / ".ollama" / "models", "other", "3b", machine["llama"])
    code, out, err = llmos_cli("models")
    assert code == 0 and "ollama:other:3b" in out and "ollama:tiny:1b" not in out


def test_from_pretrained_reads_a_store_model_as_it_reads_the_file(machine):
    model = AutoModelForCausalLM.from_pretrained("ollama:tiny:1b", quantize="none")
    tokenizer = AutoTokenizer.from_pretrained("ollama:tiny:1b")
    own = AutoModelForCausalLM.from_pretrained(machine["llama"], quantize="none")
    ids = torch.tensor([tokenizer.encode("hello world")])
    assert torch.equal(model(ids).logits, own(ids).logits)


def test_load_model_reports_the_store_entry_it_read_and_writes_nothing(machine):
    before = listing(machine["tmp"])
    loaded = load_model("ollama:tiny:1b")
    assert loaded.report.source.path == machine["blob"] and loaded.report.source.store == "Ollama"
    assert loaded.report.architecture == "llama" and loaded.report.quantization != "none"  # Q8_0 kept in int8
    assert loaded.tokenizer.eos_token_id in loaded.stop_ids
    lm = load_model("lmstudio:someone/Qwen-GGUF")  # the repo's one model file (the projector is not one)
    assert lm.report.source.path.name == "qwen-Q4_0.gguf" and lm.report.source.store == "LM Studio"
    assert listing(machine["tmp"]) == before


@pytest.mark.parametrize("name, says", [
    ("ollama:tiny", "no model 'ollama:tiny' in Ollama's store"),
    ("ollama:nothing:1b", "it has: ollama:tiny:1b, ollama:user/qwen:latest"),
    ("lmstudio:someone/Nothing", "no model 'lmstudio:someone/Nothing' in LM Studio's models folder"),
])
def test_a_store_name_that_names_nothing_is_one_line_listing_the_store(machine, llmos_cli, name, says):
    code, out, err = llmos_cli("generate", name, "-p", "hi")
    assert code == 2 and err.count("\n") == 1 and says in err, err


def test_generate_chat_serve_and_run_take_a_store_name(machine, llmos_cli, monkeypatch):
    before = listing(machine["tmp"])
    code, out, err = llmos_cli("generate", "ollama:tiny:1b", "-p", "hello", "--max-new-tokens", 4)
    assert code == 0, err
    code, expected, err = llmos_cli("generate", machine["llama"], "-p", "hello", "--max-new-tokens", 4)
    assert code == 0 and out == expected

    monkeypatch.setattr(sys, "stdin", io.StringIO("/set temperature 0\n/set max_tokens 3\nhello\n/exit\n"))
    code, out, err = llmos_cli("chat", "lmstudio:someone/Qwen-GGUF/qwen-Q4_0.gguf")
    assert code == 0 and "chatting with qwen-Q4_0" in err and out.count("assistant> ") == 1

    import uvicorn

    started: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: started.update(app=app))
    code, _, err = llmos_cli("serve", "ollama:tiny:1b")
    assert code == 0, err
    server, thread, url = start_server(started["app"])
    try:
        assert [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]] == ["tiny:1b"]
        reply = httpx.post(url + "/v1/chat/completions", json={"model": "tiny:1b", "max_tokens": 3,
                                                               "messages": [{"role": "user", "content": "hi"}]})
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] <= 3
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    code, out, err = llmos_cli("run", "text-generation", "ollama:user/qwen:latest", "--input", "the cat sat",
                               "--max-new-tokens", 4)
    assert code == 0, err
    code, out, err = llmos_cli("run", "ollama:tiny:1b")
    assert code == 2 and "is a model" in err
    assert listing(machine["tmp"]) == before


def test_the_studio_lists_store_models_and_its_playground_streams_from_one(machine):
    from studio_helpers import studio

    (machine["tmp"] / "studio").mkdir()
    with studio(machine["tmp"] / "studio") as (client, _):
        models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
        assert models["ollama:tiny:1b"]["source"] == "Ollama" and models["ollama:tiny:1b"]["architecture"] == "llama"
        assert models["lmstudio:someone/Qwen-GGUF/qwen-Q4_0.gguf"]["parameters"] > 0
        with client.stream("POST", "/api/generate", json={"model": "ollama:tiny:1b", "prompt": "hello",
                                                          "max_new_tokens": 3, "temperature": 0}) as response:
            events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
        assert response.status_code == 200 and events[-1]["done"] and events[-1]["tokens"] <= 3
        missing = client.post("/api/generate", json={"model": "ollama:gone:1b", "prompt": "hi"})
        assert missing.status_code == 404 and missing.json()["error"]["field"] == "model"
