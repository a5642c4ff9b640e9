#!/usr/bin/env python3
"""Makes the chat-template parity goldens in tests/data/templates/ with Python's jinja2.

    ~/.cache/kiln/venv/bin/python scripts/goldens/make_template_goldens.py [MODELS_DIR]

Renders with the environment Hugging Face transformers uses for chat templates (and that
llama.cpp's minja emulates): jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True) with the loopcontrols extension, a `{% generation %}` tag, tojson replaced by
json.dumps(ensure_ascii=False, indent=, separators=, sort_keys=), and the globals
raise_exception() and strftime_now(). strftime_now() is pinned to FIXED_NOW so goldens do not
depend on the day they were made; kiln's tests pin the same time.

Reads:
  templates.json          name -> {file, bos_token, eos_token} for every template
  *.jinja                 the template texts (smollm2.jinja is extracted from the SmolLM2 GGUF)
  conversations/*.json    {"messages": [...], "tools": [...]?, "kwargs": {...}?}
Writes:
  goldens/NAME.json       for every conversation x add_generation_prompt: the rendered text, or
                          the error jinja2 raised ({"type", "message", "raised"}; raised means the
                          template's own raise_exception())
  snippets.json           small templates exercising one feature each, with their output/error
"""
import datetime
import glob
import json
import os
import sys

import jinja2
from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "templates")
FIXED_NOW = datetime.datetime(2024, 7, 26, 9, 5, 7)


class GenerationTag(Extension):
    """transformers' AssistantTracker tag, rendering its body (it only marks assistant spans)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(format):
    return FIXED_NOW.strftime(format)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, context):
    try:
        return {"output": env.from_string(source).render(**context)}
    except Exception as e:  # noqa: BLE001 - every failure is a golden
        return {"error": {"type": type(e).__name__, "message": str(e),
                          "raised": type(e) is TemplateError}}


def extract_smollm2(models_dir):
    from gguf import GGUFReader
    path = os.path.join(models_dir, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        print(f"note: {path} missing; keeping the committed smollm2.jinja")
        return
    reader = GGUFReader(path)
    field = reader.fields["tokenizer.chat_template"]
    text = bytes(field.parts[field.data[0]]).decode("utf-8")
    with open(os.path.join(DATA, "smollm2.jinja"), "w", encoding="utf-8", newline="") as f:
        f.write(text)


def template_goldens(env):
    with open(os.path.join(DATA, "templates.json"), encoding="utf-8") as f:
        templates = json.load(f)
    conversations = {}
    for path in sorted(glob.glob(os.path.join(DATA, "conversations", "*.json"))):
        with open(path, encoding="utf-8") as f:
            conversations[os.path.splitext(os.path.basename(path))[0]] = json.load(f)
    os.makedirs(os.path.join(DATA, "goldens"), exist_ok=True)
    total = errors = 0
    for name, spec in templates.items():
        with open(os.path.join(DATA, spec["file"]), encoding="utf-8", newline="") as f:
            source = f.read()
        cases = []
        for conv_name, conv in conversations.items():
            for agp in (False, True):
                # What transformers' apply_chat_template passes: messages, tools (None when
                # absent), documents, add_generation_prompt, the special tokens, extra kwargs.
                context = {"messages": conv["messages"], "tools": conv.get("tools"),
                           "documents": None, "add_generation_prompt": agp,
                           "bos_token": spec["bos_token"], "eos_token": spec["eos_token"]}
                context.update(conv.get("kwargs", {}))
                result = render(env, source, context)
                errors += "error" in result
                cases.append({"conversation": conv_name, "add_generation_prompt": agp, **result})
        total += len(cases)
        with open(os.path.join(DATA, "goldens", name + ".json"), "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False, indent=1)
            f.write("\n")
    print(f"{len(templates)} templates x {len(conversations)} conversations x 2: "
          f"{total} cases ({errors} errors)")


def snippet_goldens(env):
    out = []
    for i, item in enumerate(SNIPPETS):
        source, context = (item, {}) if isinstance(item, str) else item
        out.append({"id": i, "template": source, "context": context,
                    **render(env, source, context)})
    with open(os.path.join(DATA, "snippets.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(out)} snippets ({sum('error' in s for s in out)} errors)")


MSGS = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo", "tool_calls": None}]
OBJ = {"b": 2, "a": [1, 2.5, None, True, "x"], "c": {"d": "é\u2028\"q\"\n"}}

# One feature each; a string, or (template, context). Errors are goldens too. Left out on
# purpose (kiln differs, see tests/data/templates/README.md): integers beyond 64 bits, and printing
# objects whose repr holds a memory address (methods, generators, cyclers).
SNIPPETS = [
    # whitespace control, trim_blocks / lstrip_blocks, comments, raw, line endings
    "a\n  {% if true %}\n  b\n  {% endif %}\nc",
    "a  {%- if true -%}  b  {%- endif -%}  c",
    "a\n  {%+ if true %}b{% endif +%}\nc",
    "x {{- ' y ' -}} z\n",
    "{# comment #}\n  {#- c2 -#}  a\n\n",
    "  {# indented comment #}\nb",
    "{% raw %}{{ not rendered }}{% endraw %}\n",
    "line1\r\nline2\rline3\n\n",
    "{% for i in range(3) %}\n  {{ i }}\n{% endfor %}\n",
    "{{ 'a' }}   {% if 1 %}x{% endif %}",
    "\t{% if 1 %}\tx\n\t{% endif %}\ty",
    "{%- if 1 %}\u3000{% endif -%}\u3000z",
    # literals and printing
    "{{ 1 }} {{ -3 }} {{ 1.5 }} {{ 2.0 }} {{ 1e3 }} {{ 1_000 }} {{ 0x1F }} {{ 0b101 }} {{ 0o17 }}",
    "{{ 1e16 }} {{ 1e15 }} {{ 1/3 }} {{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 123456789.123 }} {{ 1e-4 }}",
    "{{ true }} {{ False }} {{ none }} {{ None }} {{ [] }} {{ {} }} {{ () }} {{ (1,) }}",
    "{{ [1, 'a', none, true, 2.5, {'k': (1, 2)}] }}",
    "{{ 'it\\'s' }} {{ \"say \\\"hi\\\"\" }} {{ ['it\\'s', 'a\"b', \"both'\\\"\"] }}",
    "{{ ['\\n\\t\\\\', '\\x00\\x7f\\xa0', '\\u200b\\u00e9\\U0001F600'] }}",
    "{{ 'a' 'b' \"c\" }}",
    "{{ '\\u00e9\\x41\\101\\q' }}",
    "{{ 1, 2 }}",
    # arithmetic and operators
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }}",
    "{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 3 * 'ab' }} {{ [1] * 3 }} {{ [1] + [2] }} {{ 'a' + 'b' }}",
    "{{ 1 + true }} {{ 2 * 1.5 }} {{ -(-2) }} {{ +3 }} {{ 10 - 2 - 3 }} {{ 2 ** 3 ** 2 }}",
    "{{ '%s-%s' % ('a', 1) }} {{ '%d%%' % 5 }} {{ '%(x)s' % {'x': 'y'} }} {{ '%s' % [1] }} "
    "{{ '%.3f|%5.1f|%-4d|%+d' % (3.14159, 2.25, 7, 3) }} {{ '%s' % {'k': 1} }}",
    "{{ '%s %s' % ('a',) }}",
    "{{ 1 / 0 }}",
    "{{ 1 + 'a' }}",
    "{{ 'a' ~ 1 ~ none ~ [1] ~ undefined_var }}",
    "{{ 1 == 1.0 }} {{ 1 != 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 < 2 < 3 }} "
    "{{ 3 > 2 > 2 }} {{ 2 >= 2 }} {{ 'b' <= 'a' }}",
    "{{ 'a' in 'cat' }} {{ 1 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} "
    "{{ 3 not in [1] }}",
    "{{ 1 < 'a' }}",
    "{{ 1 and 2 }} {{ 0 and 2 }} {{ 0 or 'x' }} {{ '' or [] }} {{ not 0 }} {{ not not 'a' }}",
    "{{ 'yes' if 1 else 'no' }} {{ 'yes' if 0 else 'no' }} [{{ 'x' if 0 }}] "
    "{{ 'a' if 0 else 'b' if 1 else 'c' }}",
    "{{ -2 | abs }} {{ - 2 ** 2 }} {{ (1 + 2) * 3 }} {{ 1 + 2 * 3 }} {{ 2 * 3 ~ 4 }}",
    # subscripts, slices, attributes
    ("{{ s[0] }}{{ s[-1] }}{{ s[1:3] }}{{ s[::-1] }}{{ s[::2] }}{{ s[-2:] }}{{ s[:-2] }}"
     "{{ s[5:1:-1] }}|{{ s[10] }}|{{ s[1:100] }}", {"s": "h\u00e9llo w\u00f6rld"}),
    ("{{ l[0] }} {{ l[-1] }} {{ l[1:] }} {{ l[::-1] }} {{ l[:0] }} {{ l.0 }} [{{ l[9] }}] "
     "{{ l[-9:2] }} {{ l[::-2] }}", {"l": [1, 2, 3, 4]}),
    ("{{ d.a }} {{ d['b'] }} [{{ d.zz }}] [{{ d['zz'] }}] {{ d.a is defined }} "
     "{{ d.zz is defined }} {{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 7) }}",
     {"d": {"a": 1, "b": 2}}),
    ("{{ d['items'] }} {{ d.c.d }}", {"d": {"items": 1, "c": {"d": "deep"}}}),
    ("{{ x.y }}", {}),
    ("{{ x['y'] }}", {}),
    ("{{ l[5].a }}", {"l": [1]}),
    ("{{ n.a.b }}", {"n": None}),
    ("{{ d[3].x }}", {"d": {"a": 1}}),
    ("{{ n.y }}|{{ n['y'] }}|{{ n[0] }}|{{ 3.y }}", {"n": None}),
    ("{{ t[0] }} {{ t[1:] }} {{ t }}", {"t": ["a", "b", "c"]}),
    ("{{ s[1.5] }}", {"s": "abc"}),
    ("{{ s[::0] }}", {"s": "abc"}),
    # tests
    ("{{ x is defined }} {{ x is undefined }} {{ n is none }} {{ n is not none }} "
     "{{ 'a' is string }} {{ 1 is string }} {{ {} is mapping }} {{ [] is mapping }} "
     "{{ [] is iterable }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ x is iterable }} "
     "{{ 1 is number }} {{ 1.5 is number }} {{ true is number }} {{ 'a' is number }}",
     {"n": None}),
    "{{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ true is boolean }} "
    "{{ 0 is boolean }} {{ false is false }} {{ true is true }} {{ 1 is true }}",
    "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} "
    "{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'aB' is lower }} {{ '1' is lower }}",
    "{{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 2 is gt 1 }} {{ 2 is lt 1 }} {{ 1 is ne 1 }} "
    "{{ 2 is ge 2 }} {{ 2 is le 1 }} {{ 1 is in [1] }} {{ 'upper' is filter }} "
    "{{ 'odd' is test }} {{ 'zz' is filter }} {{ none is sameas none }} {{ [] is sequence }}",
    "{{ range is callable }} {{ 'a' is callable }} {{ {} is sequence }} {{ 1 is sequence }}",
    "{{ x is odd }}",
    "{{ 1 is nosuchtest }}",
    # filters on strings
    "{{ '  a b  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ ' \\u3000a\\xa0' | trim }}|"
    "{{ none | trim }}|{{ 12 | trim }}",
    "{{ 'Hello World' | upper }} {{ 'ÀÉÎ ß' | lower }} {{ 'àéî ß straße' | upper }} "
    "{{ 'hello WORLD' | capitalize }} {{ 'hello-world foo_bar (x) [y]' | title }}",
    "{{ 'Hello World' | replace('o', '0') }} {{ 'aaaa' | replace('a', 'b', 2) }} "
    "{{ 'ab' | replace('', '-') }} {{ 1212 | replace(1, 3) }}",
    "{{ 'a b  c\\nd' | wordcount }} {{ 'héllo wörld_x 42' | wordcount }}",
    "{{ 'x' | center(7) }}|{{ 'ab' | center(7) }}|{{ 'abc' | center(2) }}|",
    "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|"
    "{{ 'a\\n\\nb' | indent('> ', blank=true) }}|{{ '' | indent }}|{{ 'a\\r\\nb' | indent }}",
    "{{ '<a href=\"x\">&\\'</a>' | e }} {{ '<b>' | escape }} {{ 5 | safe }} {{ '<i>' | safe }}",
    "{{ '%s is %d years, %.2f%%' | format('Al', 30, 1.5) }} {{ '%(a)s-%(b)r' | format(a=1, b='x') }}"
    " {{ '%5s|%-5s|%05d|%x' | format('ab', 'cd', 42, 255) }}",
    "{{ 'abc' | string }} {{ 12 | string }} {{ [1] | string }} {{ none | string }}",
    "{{ 'abc' | length }} {{ 'h\u00e9' | length }} {{ [1, 2] | count }} {{ {'a': 1} | length }} "
    "{{ x | length }}",
    "{{ 'hello' | reverse }} {{ [1, 2, 3] | reverse | list }} {{ 'ab' | list }}",
    # numbers
    "{{ '42' | int }} {{ '3.7' | int }} {{ ' 12 ' | int }} {{ '1_0' | int }} "
    "{{ '0x1A' | int(base=16) }} {{ 'abc' | int(7) }} {{ none | int }} {{ 3.9 | int }} "
    "{{ true | int }} {{ '-5' | int }} {{ '1e3' | int }}",
    "{{ '3.5' | float }} {{ 'x' | float }} {{ 2 | float }} {{ 'inf' | float }} "
    "{{ '1_0.5' | float }} {{ none | float(1.5) }}",
    "{{ 3 | round }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} "
    "{{ 3.14159 | round(2, 'floor') }} {{ 7 | round(0, 'ceil') }} {{ -1.5 | round }} "
    "{{ 1234.5 | round(-2) }}",
    "{{ -3 | abs }} {{ -2.5 | abs }} {{ [3, 1, 2] | max }} {{ [3, 1, 2] | min }} "
    "{{ ['a', 'B'] | max }} {{ [] | max }}| {{ [1, 2.5] | sum }} {{ [] | sum }} "
    "{{ [{'n': 1}, {'n': 2}] | sum(attribute='n') }}",
    "{{ x | int }}",
    "{{ ['a'] | sum }}",
    # default
    "{{ x | default('dflt') }} {{ x | d('d2') }} {{ '' | default('e', true) }} "
    "{{ '' | default('e') }} {{ none | default('n') }} {{ 0 | default(5, boolean=true) }}",
    # sequences
    "{{ [1, 2, 3] | join(', ') }} {{ [1, none, 'a'] | join }} {{ 'abc' | join('-') }} "
    "{{ [{'n': 'x'}, {'n': 'y'}] | join('+', attribute='n') }}",
    "{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ 'abc' | first }} {{ {'k': 1} | first }} "
    "[{{ [] | first }}] [{{ x | last }}]",
    "{{ ['B', 'a', 'C'] | sort }} {{ ['B', 'a', 'C'] | sort(case_sensitive=true) }} "
    "{{ [3, 1, 2] | sort(reverse=true) }} {{ [{'a': 2, 'b': 1}, {'a': 1, 'b': 2}] | "
    "sort(attribute='a') }} {{ [{'a': 1, 'b': 2}, {'a': 1, 'b': 1}] | sort(attribute='a,b') }}",
    "{{ ['b', 'A', 'a', 'B'] | unique | list }} {{ ['b', 'A', 'a'] | unique(true) | list }} "
    "{{ [{'x': 1}, {'x': 1}, {'x': 2}] | unique(attribute='x') | list }}",
    "{{ {'b': 1, 'a': 2, 'C': 0} | dictsort }} {{ {'b': 1, 'a': 2} | dictsort(by='value') }} "
    "{{ {'b': 1, 'a': 2} | dictsort(reverse=true) }}",
    "{{ {'a': 1, 'b': [2]} | items | list }} {{ x | items | list }} {{ {'a': 1}.items() | list }}"
    " {{ {'a': 1}.keys() | list }} {{ {'a': 1}.values() | list }}",
    "{{ [{'a': {'b': [5]}}] | map(attribute='a.b.0') | list }} "
    "{{ [{'a': 1}, {}] | map(attribute='a', default=9) | list }} "
    "{{ ['a', 'B'] | map('upper') | list }} {{ [' a', 'b '] | map('trim') | join }} "
    "{{ ['1', '2'] | map('int') | sum }}",
    "{{ [1, 0, 2, none] | select | list }} {{ [1, 2, 3] | reject('odd') | list }} "
    "{{ [1, 2, 3, 4] | select('divisibleby', 2) | list }} "
    "{{ [5, 1, 7] | select('gt', 4) | list }}",
    ("{{ m | selectattr('role', 'equalto', 'user') | list }} "
     "{{ m | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }} "
     "{{ m | selectattr('tool_calls') | list }} {{ m | selectattr('tool_calls', 'none') | "
     "list | length }} {{ m | selectattr('tool_calls', 'defined') | list | length }}",
     {"m": MSGS}),
    "{{ [1, 2, 3, 4, 5] | batch(2) | list }} {{ [1, 2, 3] | batch(2, 0) | list }}",
    ("{{ d | attr('a') }}|{{ d | attr('get') is callable }}", {"d": {"a": 1}}),
    # tojson (transformers' json.dumps flavour)
    ("{{ o | tojson }}", {"o": OBJ}),
    ("{{ o | tojson(indent=2) }}", {"o": OBJ}),
    ("{{ o | tojson(indent=4, sort_keys=true) }}", {"o": OBJ}),
    ("{{ o | tojson(ensure_ascii=true) }}", {"o": OBJ}),
    ("{{ o | tojson(separators=(',', ':')) }}", {"o": OBJ}),
    "{{ [] | tojson(indent=2) }} {{ {} | tojson(indent=2) }} {{ [[]] | tojson(indent=1) }} "
    "{{ 'x' | tojson }} {{ 1.0 | tojson }} {{ 1e20 | tojson }} {{ none | tojson }} "
    "{{ {1: 2, none: 3, true: 4, 2.5: 5} | tojson }} {{ (1, 'a') | tojson }}",
    "{{ '\\x01\\x1f\\x7f\\t\\u2028 \\U0001F600/' | tojson }} "
    "{{ '\\U0001F600\\u00e9\\x7f' | tojson(ensure_ascii=true) }}",
    "{{ x | tojson }}",
    "{{ {'a': 1}.items | tojson }}",
    # string methods
    "{{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  x '.lstrip() }}|{{ ' x  '.rstrip() }}|"
    "{{ '\\n\\nx\\n'.rstrip('\\n') }}|{{ 'abcba'.lstrip('ab') }}",
    "{{ 'a,b,,c'.split(',') }} {{ ' a  b\\tc\\n'.split() }} {{ 'a b c'.split(' ', 1) }} "
    "{{ 'a b c'.rsplit(' ', 1) }} {{ '  a b  '.split(none, 1) }} {{ '  a b  c '.rsplit(none, 1) }}"
    " {{ ''.split(',') }} {{ ''.split() }} {{ 'x</think>y</think>z'.split('</think>')[-1] }}",
    "{{ 'abc'.startswith('ab') }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.endswith('bc') }} "
    "{{ 'abc'.endswith('b', 0, 2) }} {{ 'abc'.startswith('b', 1) }}",
    "{{ 'Hello'.upper() }} {{ 'Hello'.lower() }} {{ 'hello world-x'.title() }} "
    "{{ \"they're 1st\".title() }} {{ 'hELLO'.capitalize() }} {{ 'Hi'.swapcase() }}",
    "{{ 'a-b-c'.replace('-', '+') }} {{ 'a-b-c'.replace('-', '', 1) }} {{ 'abc'.find('c') }} "
    "{{ 'abc'.find('z') }} {{ 'h\u00e9llo'.find('l') }} {{ 'abcabc'.rfind('b') }} "
    "{{ 'abcabc'.count('bc') }} {{ 'abc'.index('b') }}",
    "{{ ', '.join(['a', 'b']) }} {{ ''.join('xyz') }} {{ '-'.join([]) }}",
    "{{ ','.join([1, 2]) }}",
    "{{ '{} and {}'.format('a', 'b') }} {{ '{1}{0}'.format('a', 'b') }} "
    "{{ '{name}!'.format(name='x') }} {{ '{{literal}} {:>5}|{:<4}|{:^5}|{:05.1f}'.format("
    "'r', 'l', 'c', 3.14159) }} {{ '{:,}'.format(1234567) }} {{ '{!r}'.format('q') }}",
    "{{ 'abc'.isalpha() }} {{ 'ab1'.isalnum() }} {{ '123'.isdigit() }} {{ ' \\t'.isspace() }} "
    "{{ 'abc'.islower() }} {{ 'ABC'.isupper() }} {{ ''.isdigit() }}",
    "{{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.py'.removesuffix('.py') }} "
    "{{ 'k=v=w'.partition('=') }} {{ 'k=v=w'.rpartition('=') }} {{ 'ab'.ljust(4, '*') }} "
    "{{ 'ab'.rjust(4) }} {{ '7'.zfill(3) }} {{ '-7'.zfill(4) }}",
    "{{ 'a\\nb\\r\\nc\\n'.splitlines() }}",
    "{{ 'abc'.nosuchmethod }}|{{ 'abc'.nosuchmethod is defined }}",
    "{{ 'abc'.nosuchmethod() }}",
    "{{ [1, 2, 2].count(2) }} {{ [1, 2].index(2) }}",
    "{{ [1].append(2) }}",
    "{% set l = [1] %}{{ l.append is defined }}",
    "{{ {'a': 1}.update({'b': 2}) }}",
    # for loops
    "{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
    "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
    "{% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }}|{% endfor %}",
    "{% for x in [1, 2, 3, 4] if x is odd %}{{ x }}:{{ loop.index }}/{{ loop.length }} "
    "{% else %}none{% endfor %}",
    "{% for x in [] %}a{% else %}empty{% endfor %} {% for x in none_var %}a{% else %}b{% endfor %}",
    "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %} "
    "{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %} {% for c in 'héy' %}[{{ c }}]{% endfor %}",
    "{% for a, b in [(1, 2), [3, 4]] %}{{ a + b }}{% endfor %}",
    "{% for a, b in [(1, 2, 3)] %}{% endfor %}",
    "{% for x in 5 %}{% endfor %}",
    "{% for x in none %}{% endfor %}",
    "{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}"
    "{% endif %}{{ x }}{% endfor %}",
    "{% for a in [1, 2] %}{% for b in [3, 4] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}"
    "{{ loop.index }}|{% endfor %}",
    "{% for x in range(3) %}{{ loop.cycle('a', 'b') }}{% endfor %} "
    "{% for x in [1, 1, 2] %}{{ loop.changed(x) }}{% endfor %}",
    "{% for x in range(2) %}{{ loop }}{% endfor %}",
    "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(5, 0, -2) | list }} "
    "{{ range(0) | list }}",
    "{{ range(100001) | length }}",
    "{{ range(1, 2, 0) }}",
    # scoping, set, namespace, with
    "{% set x = 1 %}{% for i in range(3) %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}",
    "{% if true %}{% set z = 3 %}{% endif %}{{ z }}",
    "{% for i in range(2) %}{% set y = i %}{% endfor %}[{{ y }}]",
    "{% set ns = namespace(count=0, items=[]) %}{% for i in range(3) %}"
    "{% set ns.count = ns.count + i %}{% set ns.items = ns.items + [i] %}{% endfor %}"
    "{{ ns.count }} {{ ns.items }} {{ ns }}",
    "{% set ns = namespace() %}{% set ns.a = 1 %}{{ ns.a }} {{ ns.b is defined }} {{ ns['a'] }}",
    "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}",
    "{% set d = {} %}{% set d.a = 1 %}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set c, d = 'xy' %}{{ c }}{{ d }}",
    "{% set x %}captured {{ 1 + 1 }}{% endset %}[{{ x }}]",
    "{% set x | upper %}shout{% endset %}{{ x }}",
    "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]",
    "{% set messages = messages[1:] %}{{ messages | length }}",
    ("{% set x = 5 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 6 %}{{ m() }}", {}),
    # macros and call blocks
    "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}"
    "{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(greeting='Yo', name='Cy') }}",
    "{% macro m(a, b=2) %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }} "
    "{{ m(1, 3, 4, z=5) }}",
    "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
    "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
    "{% call wrap('b') %}inner {{ 1 + 1 }}{% endcall %}",
    "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}"
    "{% call(x) each([1, 2]) %}[{{ x }}]{% endcall %}",
    "{% macro m() %}{{ undefined_in_macro.attr }}{% endmacro %}{{ m() }}",
    "{% filter upper %}shout {{ 'this' }}{% endfilter %}",
    "{% generation %}gen {{ 1 }}{% endgeneration %}",
    # calls, globals, errors
    "{{ dict(a=1, b=2) }} {{ dict([('x', 1)]) }} {{ dict({'a': 1}, c=3) }}",
    "{{ raise_exception('custom failure: ' ~ 42) }}",
    "{{ strftime_now('%Y-%m-%d %H:%M:%S %a %b %d %B %A %j') }}",
    "{{ strftime_now is defined }} {{ raise_exception is defined }} {{ nothere is defined }}",
    "{{ undefined_function() }}",
    "{{ 'abc'() }}",
    "{{ x + 1 }}",
    "{{ [1, 2] + (3,) }}",
    "{{ {[1]: 2} }}",
    # mixed cases seen in chat templates
    "{{ (1, 2) == [1, 2] }} {{ {'a': 1} == {'a': 1.0} }} {{ none == none }} {{ x == none }} "
    "{{ 'abc' * 0 }}| {{ -0.0 | abs }} {{ 10 / 4 }} {{ 10 // 4.0 }} {{ 2 ** 0.5 }} {{ 7 % -3 }}",
    "{{ 1e100 }} {{ 123456789012345678.0 }} {{ 0.000123 }} {{ 1.5e-7 }} {{ 3.0 | int }} "
    "{{ '12abc' | int }} {{ 1e22 }} {{ 9007199254740993 }} {{ -1.5e-300 * 1e-300 }}",
    "{{ [1, [2, [3]]] | tojson }} {{ 'é' | tojson }} {{ dict(b=1, a=2) | tojson(sort_keys=true) }}",
    "{% set x = namespace(v=[]) %}{% set x.v = x.v + ['a'] %}{{ x.v | length }}",
    "{% for k, v in {'b': 1, 'a': 2} | dictsort %}{{ k }}{{ v }}{{ loop.depth }}{% endfor %}",
    "{% macro m(a, b=a * 2) %}{{ a }}-{{ b }}{% endmacro %}{{ m(3) }} {{ m(3, 1) }}",
    ("{% for m in msgs if m.role != 'system' %}{{ loop.index }}{{ m.role }} {% endfor %}"
     "{{ msgs[-1].content }} {{ (msgs | last).role }} {{ msgs[0]['role'] }}", {"msgs": MSGS}),
    ("{%- for m in msgs -%}\n  {%- set c = m.content if m.content is string else '' -%}\n"
     "  {{ c ~ '|' }}\n{%- endfor %}", {"msgs": MSGS}),
    "{# {{ not a var }} #}{% raw -%}  x  {%- endraw %}|{{ \"It's\" }}",
    "{{ 'a' ~ 'b' if true else 'c' }} {{ not true == false }} [{{ 1 if none is none }}] "
    "{{ 'b' is in 'abc' }} {{ [1, 2, 3] | map('string') | join('-') }} "
    "{{ ['b', 'a'] | sort | first }} {{ 'Hello' | list | reverse | join }} "
    "{{ range(3) | map('string') | list }}",
    "{{ -x | default(1) }}",
    "{{ 'x'.center(5, '*') }} {{ 'a\\u00a0b c'.split() }} {{ '  '.join(['a', 'b']) }}",
    "a\n{%- if true %}\n  b\n{%- endif %}\nc\n{#- c -#}\n  d",
    "{% for i in range(3) %}{{ i }}{% if not loop.last %}, {% endif %}{% endfor %}",
    "{% set a = [] %}{% for i in range(3) %}{% set a = a + [i] %}{% endfor %}{{ a }}",
    "{{ {'k': none}.k is none }} {{ {'k': none}.k is defined }} {{ {}.k is defined }}",
    ("{{ t.function.parameters.properties.items() | list }} {{ t.function.parameters.properties"
     ".location.items is callable }}", {"t": {"function": {"parameters": {"properties": {
         "location": {"type": "string"}}}}}}),
    # syntax errors (and their lines)
    "line1\n{{ 1 + }}",
    "{% if true %}unclosed",
    "{% for x in [1] %}{% endif %}",
    "{{ 'unterminated }}",
    "{% nosuchtag %}",
    "{% break %}",
    "a\nb\n{{ x | nosuchfilter }}",
    "{{ x | wordwrap }}",
    "{% include 'other.html' %}",
    "{{ (1 }}",
    "{{ {'a': 1 }}",
    "{{ 1 ]] }}",
    "{# unclosed comment",
    "{{ a.b.c.d.e }}",
    "{% set 1 = 2 %}",
    "{% macro m(a=1, b) %}{% endmacro %}",
]


def main():
    models_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
        os.environ.get("KILN_MODELS", "~/.cache/kiln/models"))
    print(f"jinja2 {jinja2.__version__}")
    extract_smollm2(models_dir)
    env = make_env()
    template_goldens(env)
    snippet_goldens(env)


if __name__ == "__main__":
    main()
