#!/usr/bin/env python3
"""Dump llama.cpp's named intermediate tensors (f32) for one prompt, for tensor-by-tensor parity
checks against kiln's reference interpreter (docs/parity.md).

  llama_dump.py MODEL.gguf '[1, 2, 3]' OUT.npz [PREFIXES] [DECODE_TOKENS]

PREFIXES: comma-separated name prefixes to keep ("l_out,ffn_inp"; empty or absent: all).
DECODE_TOKENS: a JSON list of tokens decoded one at a time after the prompt; the tensors of the
last decode step are saved instead of the prompt's. OUT.npz also holds "logits" (one row per
token of the last batch). Run with the llama-cpp-python of scripts/goldens/ (same build as the
goldens). Flash attention is off, as in the goldens.
"""
import ctypes
import json
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama


class GgmlTensor(ctypes.Structure):
    """The head of struct ggml_tensor (ggml.h), as far as the fields read here."""
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p),
                ("ne", ctypes.c_int64 * 4), ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int),
                ("op_params", ctypes.c_int32 * 16), ("flags", ctypes.c_int32),
                ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p),
                ("name", ctypes.c_char * 64), ("extra", ctypes.c_void_p),
                ("padding", ctypes.c_char * 8)]


def main():
    path, prompt, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    want = sys.argv[4].split(",") if len(sys.argv) > 4 and sys.argv[4] else None
    decode = json.loads(sys.argv[5]) if len(sys.argv) > 5 else []
    dumps = {}

    def on_eval(t, ask, _user):
        tt = ctypes.cast(t, ctypes.POINTER(GgmlTensor)).contents
        name = tt.name.decode()
        keep = want is None or any(name.startswith(w) for w in want)
        if ask:
            return keep
        ne, nb = list(tt.ne), list(tt.nb)
        if keep and tt.type == 0 and nb[0] == 4 and nb[1] == 4 * ne[0]:  # contiguous f32 rows
            n = ne[0] * ne[1] * ne[2] * ne[3]
            arr = np.ctypeslib.as_array(ctypes.cast(tt.data, ctypes.POINTER(ctypes.c_float)),
                                        shape=(n,)).copy()
            dumps[name] = arr.reshape(ne[3], ne[2], ne[1], ne[0])
        return True

    callback = llama_cpp.ggml_backend_sched_eval_callback(on_eval)
    llm = Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=2, logits_all=True,
                verbose=False)
    params = llm.context_params
    params.cb_eval = callback
    params.cb_eval_user_data = None
    ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
    batch = llama_cpp.llama_batch_init(512, 0, 1)

    def run(tokens, first_pos):
        batch.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, first_pos + i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")

    run(prompt, 0)
    rows = len(prompt)
    for k, t in enumerate(decode):
        dumps.clear()
        run([t], len(prompt) + k)
        rows = 1
    vocab = llama_cpp.llama_n_vocab(llama_cpp.llama_model_get_vocab(llm._model.model))
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(rows * vocab,))
    np.savez(out, logits=logits.copy().reshape(rows, vocab), **dumps)
    print(f"{out}: {len(dumps)} tensors")


if __name__ == "__main__":
    main()
