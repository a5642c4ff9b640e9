#!/usr/bin/env python3
"""Greedy continuations and perplexity from llama.cpp (llama-cpp-python), for kiln's parity tests.

Run by hand (CI never does), with a llama-cpp-python built without AMX (its AMX path crashes on
some machines):
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON \
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" pip install llama-cpp-python==0.3.36
  python scripts/goldens/make_generation_goldens.py

Writes tests/data/generation/<model>.json:
  {"model", "llama_cpp_version", "cases": [{"prompt", "prompt_tokens", "tokens", "top2_gap",
   "top": [[id, logit] x 8 for the first 4 steps]}], "perplexity": {...}}
Prompts are tokenized as llama.cpp does for a raw prompt: special tokens added as the model's
metadata says (add_bos), special-token text not parsed, no chat template.
"""
import json
import math
import os
import sys

import numpy as np
from llama_cpp import Llama, __version__ as LLAMA_CPP_VERSION

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.environ.get("KILN_MODELS", os.path.expanduser("~/.cache/kiln/models"))
OUT = os.path.join(ROOT, "tests", "data", "generation")
N_NEW = 64
N_CTX = 512
THREADS = 2

MODEL_FILES = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Here is a list of five fruits:\n1.",
    "Q: What is the boiling point of water at sea level?\nA:",
    "The three laws of thermodynamics are",
    "import numpy as np\n\n# Compute the mean of an array\n",
    "In 1969, Neil Armstrong",
    "Translate to French: 'Good morning, how are you?'\n",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "Photosynthesis is the process by which",
    "To make a cup of tea, first",
]


def greedy(llm, prompt):
    llm.reset()
    toks = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
    llm.eval(toks)
    out, gaps, tops = [], [], []
    for step in range(N_NEW):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        order = np.argsort(-logits, kind="stable")
        best = int(order[0])
        gaps.append(float(logits[order[0]] - logits[order[1]]))
        if step < 4:
            tops.append([[int(i), float(logits[i])] for i in order[:8]])
        out.append(best)
        llm.eval([best])
    return {"prompt": prompt, "prompt_tokens": toks, "tokens": out, "top2_gap": gaps, "top": tops}


def perplexity(path, text, n_ctx):
    """llama.cpp's perplexity tool: non-overlapping windows of n_ctx tokens, the first token of
    each replaced by BOS when the model adds one, scoring the second half of each window."""
    llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, n_threads=THREADS,
                logits_all=True, verbose=False)
    toks = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    add_bos = llm._model.add_bos_token() if hasattr(llm._model, "add_bos_token") else True
    n_chunk = len(toks) // n_ctx
    nll, count = 0.0, 0
    for c in range(n_chunk):
        chunk = toks[c * n_ctx:(c + 1) * n_ctx]
        if add_bos:
            chunk = [llm.token_bos()] + chunk[1:]
        llm.reset()
        llm.eval(chunk)
        logits = np.array(llm.scores[:n_ctx], dtype=np.float64)
        for j in range(n_ctx // 2, n_ctx - 1):
            row = logits[j]
            m = row.max()
            lse = m + math.log(np.exp(row - m).sum())
            nll += lse - row[toks[c * n_ctx + j + 1]]
            count += 1
    return {"n_ctx": n_ctx, "tokens": len(toks), "chunks": n_chunk, "scored": count,
            "add_bos": bool(add_bos), "ppl": math.exp(nll / count)}


def main():
    os.makedirs(OUT, exist_ok=True)
    text = open(os.path.join(ROOT, "tests", "data", "perplexity", "text.txt"), encoding="utf-8").read()
    for name, file in MODEL_FILES.items():
        path = os.path.join(MODELS, file)
        llm = Llama(model_path=path, n_ctx=N_CTX, n_batch=N_CTX, n_threads=THREADS, logits_all=True,
                    verbose=False)
        cases = [greedy(llm, p) for p in PROMPTS]
        del llm
        ppl = perplexity(path, text, 256)
        doc = {"model": file, "llama_cpp_version": LLAMA_CPP_VERSION, "n_ctx": N_CTX,
               "cases": cases, "perplexity": ppl}
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(doc, f, indent=1)
        print(name, "ppl", ppl)


if __name__ == "__main__":
    sys.exit(main())
