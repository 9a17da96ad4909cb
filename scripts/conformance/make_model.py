#!/usr/bin/env python3
"""Writes a tiny GGUF chat model that says one fixed reply, with no download.

Runs in the rig's venv (gguf-py and llama-cpp-python from the same sdist). The vocabulary is a
real one shipped in the sdist (`vendor/llama.cpp/models/ggml-vocab-qwen2.gguf`), the chat
template a real one from `models/templates/`. The weights are generated: a 2-layer llama whose
transformer blocks are small random matrices and whose embedding and output matrices are set so
the model is, in effect, a bigram table:

* every token of the reply (and the last token of the generation prompt) has its own embedding
  direction, and the output matrix maps that direction to the next token of the reply, with a
  margin that no sampler setting overturns; the last reply token maps to end-of-generation;
* every other token shares one "fallback" direction whose output ranks end-of-generation, `}`,
  `"}`, `"`, `]`, `0` and `{` above all else, so wherever a grammar (a `response_format`) forces
  the model off its reply, it closes strings and objects and stops instead of rambling.

So the model writes its reply byte for byte at any temperature, and a grammar-constrained
request still ends in a few tokens. The reply's tokens must all differ (a bigram cannot say
the same token twice with different successors); the generator refuses a reply that repeats one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from jinja2.sandbox import ImmutableSandboxedEnvironment

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_FF = 128
N_CTX = 4096
# The embedding length along the fallback direction and along a token's own direction; after
# RMS normalisation the logits are ~5.7 x (fallback bias + reply margin).
FALLBACK_SCALE = 8.0
OWN_SCALE = 8.0
REPLY_MARGIN = 6.0
# The fallback ranking: end-of-generation first, then what closes JSON.
FALLBACK_BIAS = [("<eos>", 3.0), ("}", 2.6), ('"}', 2.5), ('"', 2.2), ("]", 1.8), ("0", 1.2), ("{", 0.8)]
LAYER_STD = 0.02


def tokenizer(vocab: Path):
    import llama_cpp

    return llama_cpp.Llama(model_path=str(vocab), vocab_only=True, verbose=False)


def tokenize(vocab_model, text: str) -> list[int]:
    return vocab_model.tokenize(text.encode("utf-8"), add_bos=False, special=True)


def generation_prompts(template: str, eos: str) -> list[str]:
    """The prompt the server renders for one user message, with thinking on and off."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = lambda message: (_ for _ in ()).throw(ValueError(message))
    compiled = env.from_string(template)
    messages = [{"role": "user", "content": "Judge the subject."}]
    prompts = []
    for kwargs in ({}, {"enable_thinking": True}, {"enable_thinking": False}):
        prompts.append(
            compiled.render(messages=messages, add_generation_prompt=True, eos_token=eos, bos_token="", **kwargs)
        )
    return prompts


def copy_tokenizer(reader: GGUFReader, writer: GGUFWriter) -> int:
    """Copies every `tokenizer.*` key of the vocabulary file; returns the vocabulary size."""
    n_vocab = 0
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer.") or field.name == "tokenizer.chat_template":
            continue
        value = field.contents()
        main = field.types[0]
        if main == GGUFValueType.ARRAY:
            sub = field.types[-1]
            writer.add_array(field.name, value) if sub == GGUFValueType.STRING else writer.add_key_value(
                field.name, value, main, sub_type=sub
            )
            if field.name == "tokenizer.ggml.tokens":
                n_vocab = len(value)
        else:
            writer.add_key_value(field.name, value, main)
    return n_vocab


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=Path, required=True, help="a vocabulary-only GGUF file")
    parser.add_argument("--template", type=Path, required=True, help="a Jinja chat template")
    parser.add_argument("--reply", required=True, help="the one reply the model gives")
    parser.add_argument("--name", required=True)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    reader = GGUFReader(args.vocab)
    eos_id = int(reader.fields["tokenizer.ggml.eos_token_id"].contents())
    template = args.template.read_text()
    vocab_model = tokenizer(args.vocab)
    eos_text = vocab_model.detokenize([eos_id], special=True).decode("utf-8")

    reply = tokenize(vocab_model, args.reply)
    if vocab_model.detokenize(reply, special=True).decode("utf-8") != args.reply:
        raise SystemExit("the reply does not round-trip through the tokenizer")
    starts = sorted({tokenize(vocab_model, p)[-1] for p in generation_prompts(template, eos_text)})
    clash = [t for t in starts if t in reply]
    if clash or len(set(reply)) != len(reply):
        repeated = sorted({vocab_model.detokenize([t]).decode("utf-8", "replace") for t in reply if reply.count(t) > 1 or t in clash})
        raise SystemExit(f"the reply repeats tokens (or the prompt's last token): {repeated}; a bigram model cannot say it")
    # Successor of each token that has its own direction.
    successor: dict[int, int] = {start: reply[0] for start in starts}
    for current, following in zip(reply, reply[1:] + [eos_id]):
        successor[current] = following
    own = list(successor)
    if len(own) >= N_EMBD:
        raise SystemExit(f"the reply is {len(reply)} tokens; at most {N_EMBD - 1 - len(starts)} fit")

    writer = GGUFWriter(str(args.out), "llama")
    writer.add_name(args.name)
    n_vocab = copy_tokenizer(reader, writer)
    writer.add_chat_template(template)
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(1)  # mostly F16

    rng = np.random.default_rng(args.seed)
    embedding = np.zeros((n_vocab, N_EMBD), dtype=np.float32)
    embedding[:, 0] = FALLBACK_SCALE
    output = np.zeros((n_vocab, N_EMBD), dtype=np.float32)
    for text, bias in FALLBACK_BIAS:
        ids = [eos_id] if text == "<eos>" else tokenize(vocab_model, text)
        if len(ids) == 1:
            output[ids[0], 0] = bias
    for direction, token in enumerate(own, start=1):
        embedding[token, direction] = OWN_SCALE
        output[successor[token], direction] = REPLY_MARGIN

    def small(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * LAYER_STD).astype(np.float32)

    writer.add_tensor("token_embd.weight", embedding.astype(np.float16))
    for layer in range(N_LAYER):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{prefix}.{name}.weight", small(N_EMBD, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", small(N_FF, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_up.weight", small(N_FF, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_down.weight", small(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", output.astype(np.float16))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(
        json.dumps(
            {
                "model": str(args.out),
                "reply_tokens": len(reply),
                "start_tokens": starts,
                "eos": eos_id,
                "n_vocab": n_vocab,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
