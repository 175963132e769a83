"""The official `openai` Python package against a running `jielong serve`.

Run by scripts/openai-client-test (which trains a tiny checkpoint, starts the server and
installs `openai` into a venv). Usage: openai_client.py BASE_URL API_KEY
"""
import sys

import openai
from openai import OpenAI

base, key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    checks += 1
    print(f"ok   {what}")


models = client.models.list()
model = models.data[0].id
check(len(models.data) == 1 and model, f"models.list → {model}")

# Chat, not streaming, with log-probabilities and n = 2.
r = client.chat.completions.create(
    model=model,
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "第1步：模型读入前面的词"}],
    max_tokens=12, temperature=0.8, seed=1, n=2, logprobs=True, top_logprobs=3,
)
check(r.object == "chat.completion" and len(r.choices) == 2, "chat.completions.create n=2")
check(all(isinstance(c.message.content, str) for c in r.choices), "chat replies are strings")
check(r.choices[0].finish_reason in ("stop", "length"), f"finish_reason {r.choices[0].finish_reason}")
check(r.usage.completion_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, "chat usage adds up")
lp = r.choices[0].logprobs.content
check(lp and len(lp[0].top_logprobs) == 3 and lp[0].logprob <= 0, "chat logprobs with 3 alternatives")

# Chat, streaming, with usage at the end.
text, usage, finish = "", None, None
for chunk in client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Step 1: the model reads"}],
    max_tokens=16, temperature=0, stream=True, stream_options={"include_usage": True},
):
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
check(usage is not None and usage.completion_tokens > 0, f"chat stream with usage ({usage.completion_tokens if usage else None} tokens)")
check(finish in ("stop", "length"), f"chat stream finish_reason {finish}")
r2 = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Step 1: the model reads"}], max_tokens=16, temperature=0,
)
check(r2.choices[0].message.content == text, "greedy chat: streamed text equals the whole reply")

# Completions, not streaming and streaming.
c = client.completions.create(model=model, prompt="Step 3: the model", max_tokens=10, temperature=0, logprobs=2)
check(c.object == "text_completion" and isinstance(c.choices[0].text, str), "completions.create")
check(len(c.choices[0].logprobs.tokens) == c.usage.completion_tokens or c.choices[0].finish_reason == "stop", "completion logprobs per token")
streamed = "".join(ch.choices[0].text for ch in client.completions.create(
    model=model, prompt="Step 3: the model", max_tokens=10, temperature=0, stream=True) if ch.choices)
check(streamed == c.choices[0].text, "completions stream equals the whole completion")

# Embeddings (the tiny checkpoint is causal: the mean of its last hidden states). The client
# asks for base64 by default and decodes it; "float" must give the same numbers.
texts = ["Step 1: the model reads", "第2步：猜下一个词", "hello world"]
e = client.embeddings.create(model=model, input=texts)
dim = len(e.data[0].embedding)
check(e.object == "list" and [d.index for d in e.data] == [0, 1, 2] and dim > 0
      and all(len(d.embedding) == dim for d in e.data), f"embeddings.create: 3 vectors of {dim} in order")
check(e.usage.prompt_tokens > 0 and e.usage.total_tokens == e.usage.prompt_tokens, f"embeddings usage ({e.usage.prompt_tokens} tokens)")
f = client.embeddings.create(model=model, input=texts, encoding_format="float")
check(all(abs(a - b) <= 1e-6 * max(1.0, abs(a)) for x, y in zip(e.data, f.data) for a, b in zip(x.embedding, y.embedding)),
      "embeddings: base64 (the client's default) decodes to the float answer")
one = client.embeddings.create(model=model, input=texts[1], encoding_format="float")
check(max(abs(a - b) for a, b in zip(one.data[0].embedding, f.data[1].embedding)) < 1e-5, "embeddings: one text alone gets the same vector")
try:
    client.embeddings.create(model=model, input=[[1, 2, 3]])
    check(False, "token-id input must fail")
except openai.BadRequestError as err:
    check(err.status_code == 400 and "token ids" in str(err), "embeddings of token ids → BadRequestError (400)")

# Errors come back as the client's own exceptions.
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    check(False, "unknown model must fail")
except openai.NotFoundError as e:
    check(e.status_code == 404, "unknown model → NotFoundError (404)")
try:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], max_tokens=-1)
    check(False, "negative max_tokens must fail")
except openai.BadRequestError as e:
    check(e.status_code == 400 and "max_tokens" in str(e), "max_tokens=-1 → BadRequestError (400)")
try:
    OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).models.list()
    check(False, "a wrong key must fail")
except openai.AuthenticationError as e:
    check(e.status_code == 401, "wrong API key → AuthenticationError (401)")

print(f"openai {openai.__version__}: {checks} checks passed")
