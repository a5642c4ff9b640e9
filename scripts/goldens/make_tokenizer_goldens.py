#!/usr/bin/env python3
"""Makes the tokenizer parity goldens in tests/data/tokenizer/ with llama.cpp.

    OMP_WAIT_POLICY=passive ~/.cache/kiln/llama-venv/bin/python \
        scripts/goldens/make_tokenizer_goldens.py [MODELS_DIR]

Needs llama-cpp-python 0.3.x (the llama.cpp reference venv) and g++. Writes:
  corpus.json   the test strings: {"tag", "text"} or {"tag", "hex"} when not valid UTF-8
  smollm2.json  llama.cpp's ids for every string x (add_special, parse_special), its
  gemma3.json   detokenized text, the special ids, EOG set, token attributes and sample pieces
  splits.json   llama.cpp's pre-tokenizer pieces (byte lengths) for each regex family, got by
                calling the unicode_regex_split() that libllama exports (a small C++ helper
                compiled here), so the splitters are checked without a model of each family

Strings whose llama.cpp decoding yields a codepoint above U+10FFFF (e.g. F4 90 80 80) are
left out: llama.cpp aborts on them (uncaught std::invalid_argument in unicode_cpt_to_utf8).
"""
import ctypes
import json
import os
import random
import subprocess
import sys
import tempfile

import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")
MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}

PROSE = (
    "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of "
    "times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief, "
    "it was the epoch of incredulity, it was the season of Light, it was the season of Darkness. "
)

CODE_PY = '''def fib(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


if __name__ == "__main__":
    print([fib(i) for i in range(10)])
'''

CODE_CPP = '''#include <vector>
template <typename T>
T sum(const std::vector<T>& v) {
\tT s{};
\tfor (const auto& x : v) s += x;  // accumulate
\treturn s;
}
'''


def fixed_strings():
    s = []
    add = lambda tag, *texts: s.extend((tag, t) for t in texts)
    add("empty", "")
    add("prose", "Hello world", "hello world", "Hello, world!", " Hello world", "Hello world ",
        PROSE, PROSE * 20, "The year 1984 was not like 1984.", "Mr. O'Neil's car isn't red.",
        "Once upon a time, in a land far, far away, there lived a king.",
        "E = mc^2 is Einstein's famous equation.", "I  have   irregular    spacing.",
        "Sentence one.Sentence two!Sentence three?", "UPPER CASE TEXT AND lower case text",
        "camelCaseIdentifier snake_case_identifier kebab-case-identifier",
        "tl;dr: read the docs (they're short).", "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "a", "A", "I", "ab", " a", "a ", "The", " the", "the the the the the the")
    add("code", CODE_PY, CODE_CPP, '{"key": [1, 2.5, -3e10, true, null], "nested": {"a": "b"}}',
        "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>", "SELECT * FROM users WHERE id = 42;",
        "x += 1; y -= 2; z *= 3; w /= 4;", "if (a && b || !c) { return a->b[0]; }",
        "https://example.com/path?query=1&other=two#frag", "user@example.com",
        "#!/bin/bash\necho \"$HOME\" | grep -v '^#' > /dev/null 2>&1\n",
        "    indented with four spaces\n\tindented with a tab\n", "```python\nprint('hi')\n```",
        "a=b==c!==d<=e>=f->g=>h::i", "0x1F 0b1010 0o777 1e-9 3.14159 1_000_000")
    add("whitespace", " ", "  ", "   ", "    ", " " * 8, " " * 15, " " * 16, " " * 17, " " * 31,
        " " * 32, " " * 33, " " * 100, "\t", "\t\t", "\t" * 7, "\n", "\n\n", "\n\n\n", "\n" * 10,
        "\n" * 40, "\r\n", "\r\n\r\n", "\r", " \n", "\n ", " \n \n ", "a  b", "a   b", "a \t b",
        "a\n\nb", "a \n\n b", "trailing   ", "   leading", "\t\tmixed  \n\n  white\r\n\tspace  ",
        "line1\nline2\r\nline3\rline4", " \t \n \r \x0b \x0c ", "word\n\n\n\nword", "a" + " " * 40 + "b")
    add("numbers", "0", "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678",
        "123456789", "1234567890", "12345678901234567890", "3.14", "-42", "+7", "1,000,000",
        "1.000.000,50", "2024-01-15", "12:30:45", "(555) 123-4567", "v1.2.3", "1st 2nd 3rd 4th",
        "0.000001", "9" * 50, "a1b2c3", "abc123def", " 1 22 333 4444 55555", "٠١٢٣٤٥٦٧٨٩",
        "１２３４５", "²³¹ ½ ¾ Ⅻ ⅷ", "१२३ ๑๒๓")
    add("punct", "!", "!!", "!!!", "...", "?!", "---", "___", "***", "(((", ")))",
        "«quoted» „german“ ‘single’ “double”", "¿Qué? ¡Sí!", "a.b.c", "end.", "—–-",
        "!@#$%^&*()_+-=[]{}|;':\",./<>?`~", "§¶†‡•…‰′″", "«»‹›", "$100 + €50 = £?", "<>=<=>=")
    add("contractions", "I'm", "you're", "he's", "she'll", "we've", "they'd", "can't", "won't",
        "IT'S", "I'M", "YOU'RE", "HE'LL", "WE'VE", "THEY'D", "DON'T", "It'S", "We'Ll", "you'Re",
        "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D", "rock'n'roll", "''quoted''",
        "the dog's bone", "O'Reilly's", "ma'am y'all")
    add("emoji", "😀", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇺🇸🇯🇵", "Hello 👋 world 🌍!",
        "🧑‍💻 coding", "🫨🩷🪿", "1️⃣ 2️⃣", "👩🏾‍🚀")
    add("cjk", "你好，世界！", "中文分词测试，包括标点。", "日本語のテキストです。", "カタカナとひらがな",
        "한국어 텍스트입니다.", "漢字かなカナ混じり文", "中文English混合text", "𠀀𠀁𪚥")
    add("scripts", "مرحبا بالعالم", "السلام عليكم ورحمة الله", "שלום עולם", "नमस्ते दुनिया",
        "हिन्दी में लिखा गया वाक्य।", "สวัสดีครับ", "Привет, мир!", "Γειά σου Κόσμε", "Բարեւ",
        "ქართული", "አማርኛ", "தமிழ்", "Tiếng Việt có dấu")
    add("accents", "café", "naïve résumé", "Ångström", "Ça va? Œuvre", "ñandú", "Zürich", "ß ẞ",
        "cafe\u0301", "e\u0301\u0302\u0303", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334",
        "a\u0308o\u0308u\u0308", "\u0301leading combining", "ﬁ ﬂ ﬀ", "Ｆｕｌｌｗｉｄｔｈ")
    add("unicode", "\u00a0", "a\u00a0b", "a\u2009b", "a\u3000b", "a\u2028b", "a\u0085b", "\ufeffBOM",
        "zero\u200bwidth", "a\u200db", "a\u00adb", "\ufe0f", "\ue000\uf8ff", "\U000f0000",
        "a\u0378b", "\U0002ebf0\U0002ebf1", "x\u0cf3y", "\U00011f04\U00011f05", "a\u31efb",
        "\ufffd", "\u2581", "\u2581\u2581", "\u2581word", "Ġ", "Ċ", "\x00", "a\x00b", "\x1b[31mred\x1b[0m",
        "\x7f", "\x1c\x1d\x1e\x1f", "\U0001d400\U0001d401", "ǅ ǈ ǋ")
    add("special", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHi<|im_end|>\n",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|><|im_start|><|im_end|>", "<|im_start", "im_start|>", "<|im_start|", "<<|im_end|>>",
        "<start_of_turn>", "<end_of_turn>", "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
        "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<bos><bos>", "<unused0>", "<unused6241>",
        "[multimodal]", "<table><tr><td>1</td></tr></table>", "</s>", "<s>", "<start_of_image>",
        "<repo_name>kiln<file_sep>main.cpp", "<jupyter_code>x=1<jupyter_output>",
        "text<|endoftext|>more", " <|im_end|> ", "<|im_end|><|endoftext|><|im_start|>")
    add("long", "a" * 2000, "ab" * 500, "abc " * 300, "\n" * 100 + "x", "x" + "\t" * 50, "1" * 200,
        "😀" * 100, "你好" * 200, "!" * 300)
    return s


def invalid_strings():
    """Byte strings that are not valid UTF-8 (the tag says what)."""
    return [
        ("invalid", b"\xff"), ("invalid", b"\xfe\xff"), ("invalid", b"\x80"), ("invalid", b"abc\x80def"),
        ("invalid", b"\xc3"), ("invalid", b"\xc3("), ("invalid", b"caf\xc3"), ("invalid", b"\xe2\x82"),
        ("invalid", b"\xe2\x82 euro"), ("invalid", b"\xf0\x9f\x98"), ("invalid", b"\xf0\x9f\x98 smile"),
        ("invalid", b"\xc0\x80"), ("invalid", b"\xc0\xaf"), ("invalid", b"\xe0\x80\xaf"),
        ("invalid", b"\xed\xa0\x80"), ("invalid", b"\xed\xbf\xbf\xed\xa0\x80"), ("invalid", b"\xf8\x88\x80\x80\x80"),
        ("invalid", b"hello \xff\xfe world"), ("invalid", b"\x80\x81\x82\x83"), ("invalid", b"\xbf\xbf"),
        ("invalid", b"<|im_start|>\xff<|im_end|>"), ("invalid", b"\xe2<|im_end|>"),
        ("invalid", b"a\xc3\xa9\xc3b"), ("invalid", b"\xf0\x90\x80"), ("invalid", b" \xff \xfe "),
        ("invalid", b"12\xff34"), ("invalid", b"\xc2\xa0\xc2"),
    ]


def llama_codepoints(b: bytes):
    """llama.cpp's unicode_cpts_from_utf8: permissive decoding, U+FFFD per bad byte."""
    out, i = [], 0
    while i < len(b):
        c = b[i]
        need = 0 if c < 0x80 else -1 if c < 0xC0 else 1 if c < 0xE0 else 2 if c < 0xF0 else 3 if c < 0xF8 else -1
        if need == 0:
            out.append(c)
            i += 1
            continue
        if need < 0 or i + need >= len(b) or any((b[i + k] & 0xC0) != 0x80 for k in range(1, need + 1)):
            out.append(0xFFFD)
            i += 1
            continue
        v = c & (0x1F if need == 1 else 0x0F if need == 2 else 0x07)
        for k in range(1, need + 1):
            v = (v << 6) | (b[i + k] & 0x3F)
        out.append(v)
        i += need + 1
    return out


def random_strings(rng: random.Random):
    pools = [
        [chr(c) for c in range(0x20, 0x7F)] * 3, list(" \t\n\r  "), list("0123456789"),
        [chr(c) for c in range(0xA0, 0x180)], [chr(c) for c in range(0x300, 0x370)],
        [chr(c) for c in range(0x4E00, 0x4E80)], [chr(c) for c in range(0x3040, 0x30FF)],
        [chr(c) for c in range(0x600, 0x6FF)], [chr(c) for c in range(0x900, 0x97F)],
        [chr(c) for c in range(0x1F600, 0x1F64F)], list("\u200d\ufe0f\u00a0\u3000\u2028\u0085\u2009\u200b"),
        list("０１２３²³¹½Ⅻⅷ٠١٢३४"), list("'sStTmMdDrReEvVlL'''"), [chr(c) for c in (0x378, 0x379, 0xE000, 0x2EBF0, 0x11F04, 0x31EF, 0xFFFE, 0x10FFFF)],
        list(".,;:!?()[]{}<>/\\|-_=+*&^%$#@~`\"'"),
    ]
    out = []
    for _ in range(60):
        n = rng.randint(1, 40)
        k = rng.sample(range(len(pools)), rng.randint(1, 4))
        out.append(("random", "".join(rng.choice(pools[rng.choice(k)]) for _ in range(n))))
    while len(out) < 75:
        b = bytes(rng.choice([rng.randint(0, 255), rng.randint(0x80, 0xBF), rng.randint(0xC0, 0xF4), ord("a"), 0x20])
                  for _ in range(rng.randint(1, 24)))
        if max(llama_codepoints(b), default=0) > 0x10FFFF:
            continue
        out.append(("random-bytes", b))
    return out


def build_corpus():
    entries = []
    for tag, t in fixed_strings():
        entries.append((tag, t.encode("utf-8")))
    entries += invalid_strings()
    for tag, t in random_strings(random.Random(1234)):
        entries.append((tag, t.encode("utf-8") if isinstance(t, str) else t))
    for tag, b in entries:
        assert max(llama_codepoints(b), default=0) <= 0x10FFFF, (tag, b)
    return entries


def corpus_json(entries):
    rows = []
    for tag, b in entries:
        try:
            rows.append({"tag": tag, "text": b.decode("utf-8")})
        except UnicodeDecodeError:
            rows.append({"tag": tag, "hex": b.hex()})
    return rows


class Vocab:
    def __init__(self, path):
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not self.model:
            sys.exit(f"cannot load {path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n = llama_cpp.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, b: bytes, add_special: bool, parse_special: bool):
        cap = len(b) * 2 + 16
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self.vocab, b, len(b), buf, cap, add_special, parse_special)
        assert n >= 0, n
        return list(buf[:n])

    def detokenize(self, ids, unparse_special: bool) -> bytes:
        arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
        cap = 64 * len(ids) + 64
        buf = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_detokenize(self.vocab, arr, len(ids), buf, cap, False, unparse_special)
        assert n >= 0, n
        return buf.raw[:n]

    def piece(self, tid: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(1024)
        n = llama_cpp.llama_token_to_piece(self.vocab, tid, buf, 1024, 0, special)
        assert n >= 0
        return buf.raw[:n]


def model_golden(name, path, entries):
    v = Vocab(path)
    tok = lambda i: -1 if i is None else int(i)
    out = {
        "model": name, "file": os.path.basename(path), "vocab_size": v.n,
        "bos": tok(llama_cpp.llama_vocab_bos(v.vocab)), "eos": tok(llama_cpp.llama_vocab_eos(v.vocab)),
        "eot": tok(llama_cpp.llama_vocab_eot(v.vocab)), "pad": tok(llama_cpp.llama_vocab_pad(v.vocab)),
        "nl": tok(llama_cpp.llama_vocab_nl(v.vocab)),
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(v.vocab)),
        "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(v.vocab)),
        "eog": [i for i in range(v.n) if llama_cpp.llama_vocab_is_eog(v.vocab, i)],
        "attrs": [], "pieces": [], "cases": [],
    }
    for i in range(v.n):
        a = int(llama_cpp.llama_vocab_get_attr(v.vocab, i))
        if a != llama_cpp.LLAMA_TOKEN_ATTR_NORMAL:
            out["attrs"].append([i, a])
    rng = random.Random(99)
    sample = sorted(set(list(range(min(v.n, 600))) + rng.sample(range(v.n), 3000) + [v.n - 1]))
    for i in sample:
        out["pieces"].append([i, v.piece(i, False).hex(), v.piece(i, True).hex()])
    for _, b in entries:
        ids = [v.tokenize(b, a, s) for a in (False, True) for s in (False, True)]
        out["cases"].append({
            "ids": ids,
            "detok": v.detokenize(ids[0], False).hex(),
            "detok_special": v.detokenize(ids[1], True).hex(),
            "detok_bos": v.detokenize(ids[2], False).hex(),
        })
    return out


# The regexes llama.cpp uses for each pre-tokenizer family (llama-vocab.cpp), as data.
GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
LLAMA3 = ("(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
          "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2 = ("(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
         "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
FAMILIES = {
    "gpt2": [GPT2],
    "smollm": ["\\p{N}", GPT2],
    "llama3": [LLAMA3],
    "qwen2": [QWEN2],
    "default": ["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"],
    "falcon": ["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2, "[0-9][0-9][0-9]"],
}

SPLIT_HELPER = r'''
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>
std::vector<std::string> unicode_regex_split(const std::string&, const std::vector<std::string>&, bool);
static std::string unhex(const std::string& h) {
  std::string s;
  for (size_t i = 0; i + 1 < h.size(); i += 2) s += char(std::stoi(h.substr(i, 2), nullptr, 16));
  return s;
}
int main() {
  size_t n;
  std::cin >> n;
  std::vector<std::string> re(n);
  for (auto& r : re) { std::string h; std::cin >> h; r = unhex(h); }
  std::string h;
  while (std::cin >> h) {
    std::string text = unhex(h.substr(1));  // leading 'x' keeps empty strings readable
    auto words = unicode_regex_split(text, re, false);
    for (auto& w : words) std::printf("%zu ", w.size());
    std::printf("\n");
  }
}
'''


def split_goldens(entries):
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "split.cpp"), os.path.join(tmp, "split")
        with open(src, "w") as f:
            f.write(SPLIT_HELPER)
        subprocess.check_call(["g++", "-O1", "-std=c++17", src, "-o", exe, f"-L{libdir}", "-lllama",
                               f"-Wl,-rpath,{libdir}"])
        for fam, regexes in FAMILIES.items():
            stdin = f"{len(regexes)}\n" + "\n".join(r.encode().hex() for r in regexes) + "\n"
            stdin += "\n".join("x" + b.hex() for _, b in entries) + "\n"
            res = subprocess.run([exe], input=stdin.encode(), capture_output=True, check=True)
            lines = res.stdout.decode().split("\n")[: len(entries)]
            out[fam] = [[int(x) for x in line.split()] for line in lines]
    return {"regexes": FAMILIES, "pieces": out}


def dump(path, obj, case_keys=("cases", "pieces")):
    # One list element per line: diffable and still plain JSON.
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        items = list(obj.items())
        for k, (key, val) in enumerate(items):
            f.write(f"  {json.dumps(key)}: ")
            if isinstance(val, list) and val and key in case_keys + ("attrs",):
                f.write("[\n" + ",\n".join("    " + json.dumps(x, ensure_ascii=False) for x in val) + "\n  ]")
            elif isinstance(val, dict) and key == "pieces":
                f.write("{\n" + ",\n".join(f"    {json.dumps(fk)}: " + json.dumps(fv) for fk, fv in val.items()) + "\n  }")
            else:
                f.write(json.dumps(val, ensure_ascii=False))
            f.write(",\n" if k + 1 < len(items) else "\n")
        f.write("}\n")


def main():
    models_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/kiln/models")
    os.makedirs(OUT, exist_ok=True)
    entries = build_corpus()
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in corpus_json(entries)) + "\n]\n")
    print(f"corpus: {len(entries)} strings")
    dump(os.path.join(OUT, "splits.json"), split_goldens(entries))
    for name, file in MODELS.items():
        g = model_golden(name, os.path.join(models_dir, file), entries)
        dump(os.path.join(OUT, f"{name}.json"), g)
        print(f"{name}: {len(g['cases'])} strings x 4 flag sets, {len(g['eog'])} EOG ids")


if __name__ == "__main__":
    main()
