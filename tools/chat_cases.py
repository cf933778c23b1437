#!/usr/bin/env python3
"""Generates chat-encoding test cases and mistral_common's answers for them.

Deterministic: the same --seed gives the same conversations. Each case is a chat-completions
request body (OpenAI or Mistral dialect) with system prompts, multi-turn text, tool definitions,
tool calls and results, assistant prefixes and 0-4 images of random sizes given as data URIs,
file:// URLs or plain paths. mistral_common 1.13.1 (MistralTokenizer.from_file on the bundled
tekken_240911.json, i.e. MistralTokenizer.v3(is_tekken=True, is_mm=True)) encodes each one; a
request it rejects is recorded as an expected error. Some cases are mutated to be invalid on
purpose (bad ids, roles, order).

Writes OUT/cases.json: {"tokenizer": path, "cases": [{"name", "request": file, "tokens" | "error",
"images": [[rows, cols], ...]}]}, the request bodies under OUT/requests/ and images under
OUT/images/. Usage: chat_cases.py --out DIR [--count 320] [--seed 1]
"""
import argparse
import base64
import copy
import io
import json
import os
import pathlib
import random
import string
import sys

import numpy as np
from PIL import Image

import mistral_common
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

TEXTS = [
    "Hello", "What is in this image?", "a", "Describe it.", "  leading spaces", "trailing spaces   ",
    "line1\nline2", "\n\nstarts with newlines", "ends with newline\n", "tab\tseparated", "", " ",
    "naïve café, 東京 🙂", "[INST] not a special token [/INST]", "</s><s>", "x  =  1234.5;",
    "Ünïcödé ÉCOLE", "{\"json\": \"looking\"}", "/path/to//file\n", "multi\n\n\nnewlines",
    "emoji 👩‍👩‍👧 family", "العربية", "Привет, мир!", "  \n  ", "trailing space then newline \n",
]
ARG_VALUES = ["Paris", "東京", 22, 22.0, 0.1, 1e-05, 1e16, -3, True, None, [1, 2.5, "x"],
              {"nested": {"deep": [1, {"k": "v"}]}}, "quote\"back\\slash", "ctrl\u0001\u001f", ""]
NAMES = ["get_weather", "search", "calc-sum", "lookup_2", "f"]


def rand_id(rng, n=9):
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def rand_text(rng):
    return rng.choice(TEXTS) if rng.random() < 0.8 else " ".join(rng.choice(TEXTS) for _ in range(3))


def make_image(rng, out_dir, index):
    """Random size (mostly <= 1024, some larger to exercise the down-scale), PNG or JPEG."""
    if rng.random() < 0.7:
        w, h = rng.randint(1, 1024), rng.randint(1, 1024)
    else:
        w, h = rng.randint(1, 2600), rng.randint(1, 2600)
    mode = rng.choice(["RGB", "RGB", "RGBA", "L"])
    img = Image.new(mode, (w, h), tuple(rng.randint(0, 255) for _ in mode) if mode != "L" else rng.randint(0, 255))
    small = np.random.default_rng(index).integers(0, 256, (min(h, 8), min(w, 8), len(mode)), dtype=np.uint8)
    img.paste(Image.fromarray(small.squeeze(-1) if mode == "L" else small, mode), (0, 0))
    fmt = "JPEG" if mode != "RGBA" and rng.random() < 0.3 else "PNG"
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    data = buf.getvalue()
    path = out_dir / f"img{index:05d}.{fmt.lower()}"
    path.write_bytes(data)
    return data, path, fmt.lower()


def image_part(rng, dialect, out_dir, counter):
    data, path, fmt = make_image(rng, out_dir, counter[0])
    counter[0] += 1
    kind = rng.choice(["data", "data", "file", "path"])
    if kind == "data":
        url = f"data:image/{fmt};base64," + base64.b64encode(data).decode()
    elif kind == "file":
        url = "file://" + str(path.resolve())
    else:
        url = str(path.resolve())  # plain path: our extension; mistral_common gets file://
    if dialect == "mistral" and kind == "data" and rng.random() < 0.2:
        return {"type": "image", "image": base64.b64encode(data).decode()}
    if dialect == "mistral" and rng.random() < 0.5:
        return {"type": "image_url", "image_url": url}
    return {"type": "image_url", "image_url": {"url": url}}


def user_message(rng, dialect, out_dir, counter, images_left):
    if images_left[0] == 0 or rng.random() < 0.5:
        if rng.random() < 0.6:
            return {"role": "user", "content": rand_text(rng)}
        return {"role": "user", "content": [{"type": "text", "text": rand_text(rng)} for _ in range(rng.randint(1, 3))]}
    parts = []
    for _ in range(rng.randint(1, 4)):
        if images_left[0] > 0 and rng.random() < 0.5:
            parts.append(image_part(rng, dialect, out_dir, counter))
            images_left[0] -= 1
        else:
            parts.append({"type": "text", "text": rand_text(rng)})
    return {"role": "user", "content": parts}


def tool_definition(rng, name):
    props = {f"p{i}": {"type": rng.choice(["string", "number"]), "description": rand_text(rng)}
             for i in range(rng.randint(0, 3))}
    fn = {"name": name, "parameters": {"type": "object", "properties": props, "required": sorted(props)[:1]}}
    if rng.random() < 0.8:
        fn["description"] = rand_text(rng)
    if rng.random() < 0.2:
        fn["strict"] = True
    return {"type": "function", "function": fn}


def tool_call(rng, names):
    args = {f"a{i}": rng.choice(ARG_VALUES) for i in range(rng.randint(0, 3))}
    style = rng.random()
    if style < 0.5:
        arguments = json.dumps(args, ensure_ascii=rng.random() < 0.5, separators=rng.choice([(",", ":"), (", ", ": ")]))
    elif style < 0.8:
        arguments = args
    elif style < 0.9:
        arguments = "not json at all"
    else:
        arguments = ""
    return {"id": rand_id(rng), "type": "function", "function": {"name": rng.choice(names), "arguments": arguments}}


def tool_result(rng, call):
    content = rng.choice(['{"temp": 22.0, "unit": "°C"}', "22", "plain text result", "", '[1, 2, {"a": null}]',
                          '  {"spaced" :  true }  ', "\"a string\""])
    msg = {"role": "tool", "tool_call_id": call["id"], "content": content}
    if rng.random() < 0.3:
        msg["content"] = [{"type": "text", "text": content}, {"type": "text", "text": "more"}]
    if rng.random() < 0.5:
        msg["name"] = call["function"]["name"]
    return msg


def assistant_turn(rng, names, use_tools):
    if use_tools and rng.random() < 0.4:
        calls = [tool_call(rng, names) for _ in range(rng.randint(1, 3))]
        msg = {"role": "assistant", "tool_calls": calls}
        if rng.random() < 0.5:
            msg["content"] = None
        return [msg] + [tool_result(rng, c) for c in calls]
    text = rand_text(rng) or "ok"
    if rng.random() < 0.3:
        return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
    return [{"role": "assistant", "content": text}]


def conversation(rng, dialect, out_dir, counter):
    names = rng.sample(NAMES, rng.randint(1, 3))
    use_tools = rng.random() < 0.4
    images_left = [rng.choice([0, 0, 1, 2, 3, 4])]
    messages = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": rand_text(rng) or "You are helpful."})
    for turn in range(rng.randint(1, 4)):
        messages.append(user_message(rng, dialect, out_dir, counter, images_left))
        if rng.random() < 0.15:
            messages.append(user_message(rng, dialect, out_dir, counter, images_left))
        if rng.random() < 0.15:
            messages.append({"role": "system", "content": rand_text(rng)})
        messages.extend(assistant_turn(rng, names, use_tools))
        if rng.random() < 0.1:
            messages.extend(assistant_turn(rng, names, False))
    body = {"model": "pixtral-12b-2409", "messages": messages}
    end = rng.random()
    if end < 0.6:
        messages.append(user_message(rng, dialect, out_dir, counter, images_left))
    elif end < 0.8 and messages[-1]["role"] == "assistant" and messages[-1].get("content"):
        if dialect == "openai":
            body["continue_final_message"] = True
        else:
            messages[-1]["prefix"] = True
    elif messages[-1]["role"] == "assistant":
        messages.append(user_message(rng, dialect, out_dir, counter, images_left))
    if use_tools:
        body["tools"] = [tool_definition(rng, n) for n in names]
    return body


def mutate(rng, body):
    """Makes a request that mistral_common (and so we) should reject."""
    msgs = body["messages"]
    kind = rng.choice(["role", "call_id", "result_id", "empty", "order", "name", "last"])
    if kind == "role":
        rng.choice(msgs)["role"] = "narrator"
    elif kind == "call_id":
        body["messages"].insert(1, {"role": "assistant", "tool_calls": [
            {"id": rng.choice(["call_12345", "abc", "null"]), "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
        body["messages"].insert(2, {"role": "tool", "tool_call_id": "abcdefghi", "content": "1"})
    elif kind == "result_id":
        body["messages"].insert(1, {"role": "assistant", "tool_calls": [
            {"id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
        body["messages"].insert(2, {"role": "tool", "tool_call_id": "call_abcdefghi", "content": "1"})
    elif kind == "empty":
        body["messages"] = []
    elif kind == "order":
        body["messages"].insert(1, {"role": "tool", "tool_call_id": "abcdefghi", "content": "x"})
        body["messages"].insert(1, {"role": "system", "content": "s"})
    elif kind == "name":
        body["tools"] = [tool_definition(rng, "bad name!")]
    else:
        msgs.append({"role": "assistant", "content": "unfinished"})
    return body


def to_reference(body, dialect):
    """The request as mistral_common is given it (plain paths -> file:// URLs)."""
    ref = copy.deepcopy(body)
    for m in ref.get("messages", []):
        for part in m.get("content") or [] if isinstance(m.get("content"), list) else []:
            url = part.get("image_url")
            if isinstance(url, dict):
                url = url.get("url")
            if isinstance(url, str) and url.startswith("/"):
                part["image_url"] = {"url": "file://" + url} if isinstance(part["image_url"], dict) else "file://" + url
    if dialect == "openai":
        return ChatCompletionRequest.from_openai(ref["messages"], ref.get("tools"),
                                                 continue_final_message=ref.get("continue_final_message", False))
    ref.pop("model", None)
    return ChatCompletionRequest.model_validate(ref)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=320)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    (out / "requests").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tok_path = pathlib.Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
    tokenizer = MistralTokenizer.from_file(str(tok_path))
    rng = random.Random(args.seed)
    counter = [0]
    cases = []
    for i in range(args.count):
        dialect = "openai" if i % 2 == 0 else "mistral"
        body = conversation(rng, dialect, out / "images", counter)
        if rng.random() < 0.1:
            body = mutate(rng, body)
        name = f"case{i:04d}_{dialect}"
        (out / "requests" / f"{name}.json").write_text(json.dumps(body, ensure_ascii=False))
        case = {"name": name, "request": f"requests/{name}.json"}
        try:
            encoded = tokenizer.encode_chat_completion(to_reference(body, dialect))
            case["tokens"] = encoded.tokens
            case["images"] = [[img.shape[1] // 16, img.shape[2] // 16] for img in encoded.images]
        except Exception as e:  # noqa: BLE001 - any rejection is an expected error for us
            case["error"] = f"{type(e).__name__}: {e}"[:300]
        cases.append(case)
    (out / "cases.json").write_text(json.dumps({"tokenizer": str(tok_path), "cases": cases}))
    errors = sum("error" in c for c in cases)
    print(f"chat_cases: {len(cases)} cases ({errors} expected errors), {counter[0]} images -> {out}")


if __name__ == "__main__":
    sys.exit(main())
