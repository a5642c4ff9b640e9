#!/usr/bin/env python3
"""kiln against llama.cpp on the same GGUF: prefill and decode tokens/s, and their ratio.

  python3 bench/compare_llama.py [--kiln build/tools/kiln] [--models smollm2,gemma3]
                                 [--threads 1,2] [-p 128] [-n 64] [-r 5]

llama.cpp is llama-cpp-python. The script uses the venv at $KILN_LLAMA_VENV (default
~/.cache/kiln/llama-venv) and, when it is missing, creates it and installs llama-cpp-python from
PyPI there (built from source without AMX, whose path crashes on some machines).

Both sides measure what llama-bench measures: `pp` is a prompt of -p random tokens evaluated into
an empty cache in one call, `tg` is -n tokens decoded one at a time from an empty cache; each
process loads the model, runs both tests once untimed, then once timed. The repetitions alternate
the two programs (kiln first on even ones, llama.cpp first on odd ones) so a change in the load of
a shared machine falls on both. Printed: each median with its range, and kiln / llama.cpp.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.environ.get("KILN_MODELS", os.path.expanduser("~/.cache/kiln/models"))
MODEL_FILES = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}
LLAMA_CPP_VERSION = "0.3.36"
NO_AMX = ("-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON "
          "-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF")

# Runs inside the llama-cpp-python venv: one warm-up and one timed pp and tg, printed as JSON.
LLAMA_HELPER = r"""
import json, random, sys, time
from llama_cpp import Llama
model, threads, p, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=model, n_ctx=max(p, n) + 16, n_batch=max(p, 32), n_ubatch=max(p, 32),
            n_threads=threads, n_threads_batch=threads, verbose=False)
rng = random.Random(1234)
vocab = llm.n_vocab()
bos = llm.token_bos()
def tokens(k):
    t = [rng.randrange(vocab) for _ in range(k)]
    if bos >= 0:
        t[0] = bos
    return t
def pp():
    llm.reset()
    t = tokens(p)
    t0 = time.perf_counter()
    llm.eval(t)
    return p / (time.perf_counter() - t0)
def tg():
    llm.reset()
    t = tokens(n)
    t0 = time.perf_counter()
    for tok in t:
        llm.eval([tok])
    return n / (time.perf_counter() - t0)
pp(); tg()
print(json.dumps({"pp": pp(), "tg": tg()}))
"""


def llama_python():
    venv = os.environ.get("KILN_LLAMA_VENV", os.path.expanduser("~/.cache/kiln/llama-venv"))
    py = os.path.join(venv, "bin", "python")
    if os.path.exists(py) and subprocess.run([py, "-c", "import llama_cpp"],
                                             capture_output=True).returncode == 0:
        return py
    print(f"compare_llama: installing llama-cpp-python {LLAMA_CPP_VERSION} into {venv}",
          file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    env = dict(os.environ, CMAKE_ARGS=NO_AMX)
    subprocess.run([py, "-m", "pip", "install", "--quiet", f"llama-cpp-python=={LLAMA_CPP_VERSION}"],
                   check=True, env=env)
    return py


def run_llama(py, model, threads, p, n):
    # ggml's OpenMP threads: passive (sleep at once) is right on a busy machine; on an idle one
    # `OMP_WAIT_POLICY=active` lets llama.cpp spin between ops as kiln's barrier does.
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "passive")
    out = subprocess.run([py, "-c", LLAMA_HELPER, model, str(threads), str(p), str(n)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"compare_llama: llama.cpp failed on {model}:\n{out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["pp"], r["tg"]


def run_kiln(kiln, model, threads, p, n):
    out = subprocess.run([kiln, "bench", model, "-p", str(p), "-n", str(n), "-t", str(threads),
                          "-r", "1", "-o", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"compare_llama: kiln bench failed on {model}:\n{out.stderr}")
    j = json.loads(out.stdout)
    got = {r["test"][:2]: r["median"] for r in j["results"]}
    return got["pp"], got["tg"]


def summary(v):
    return f"{statistics.median(v):8.2f} ({min(v):.2f}-{max(v):.2f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "tools", "kiln"))
    ap.add_argument("--models", default="smollm2,gemma3",
                    help="names (smollm2, gemma3) or paths of GGUF files")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("-p", type=int, default=128)
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("-r", type=int, default=5)
    a = ap.parse_args()
    if not os.access(a.kiln, os.X_OK):
        sys.exit(f"compare_llama: no kiln binary at {a.kiln} (build it, or pass --kiln)")
    py = llama_python()
    rows = []
    for name in a.models.split(","):
        model = name if os.path.exists(name) else os.path.join(MODELS_DIR, MODEL_FILES[name])
        if not os.path.exists(model):
            sys.exit(f"compare_llama: model {model} not found (scripts/fetch-models)")
        for t in [int(x) for x in a.threads.split(",")]:
            k = {"pp": [], "tg": []}
            l = {"pp": [], "tg": []}
            for rep in range(a.r):
                order = ["kiln", "llama"] if rep % 2 == 0 else ["llama", "kiln"]
                for who in order:
                    if who == "kiln":
                        pp, tg = run_kiln(a.kiln, model, t, a.p, a.n)
                        k["pp"].append(pp)
                        k["tg"].append(tg)
                    else:
                        pp, tg = run_llama(py, model, t, a.p, a.n)
                        l["pp"].append(pp)
                        l["tg"].append(tg)
                print(f"  {os.path.basename(model)} t={t} rep {rep + 1}/{a.r}: "
                      f"kiln pp {k['pp'][-1]:.1f} tg {k['tg'][-1]:.1f}, "
                      f"llama.cpp pp {l['pp'][-1]:.1f} tg {l['tg'][-1]:.1f}",
                      file=sys.stderr, flush=True)
            for test, length in (("pp", a.p), ("tg", a.n)):
                ratio = statistics.median(k[test]) / statistics.median(l[test])
                rows.append((os.path.basename(model), t, f"{test}{length}", summary(k[test]),
                             summary(l[test]), ratio))
    print(f"| {'model':34} | thr | test  | {'kiln t/s median (range)':26} | "
          f"{'llama.cpp t/s median (range)':28} | kiln/llama |")
    print(f"|{'-' * 36}|----:|-------|{'-' * 28}:|{'-' * 30}:|-----------:|")
    for m, t, test, ks, ls, ratio in rows:
        print(f"| {m:34} | {t:3} | {test:5} | {ks:>26} | {ls:>28} | {ratio:9.2f}x |")


if __name__ == "__main__":
    main()
