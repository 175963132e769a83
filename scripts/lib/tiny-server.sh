# Sourced by scripts/openai-client-test and scripts/browser-test: train a tiny checkpoint on a few
# lines of our own text (seconds) and start `jielong serve` on it, on a free loopback port.
# Sets: work (a temp folder, removed on exit), url, server (the pid), db (the feedback file).

bin=target/release/jielong
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill -9 "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

tiny_run() {
  mkdir -p "$work/corpus"
  for i in $(seq 1 150); do
    echo "Step $i: the model reads the words so far and guesses the next one. Training makes the guess better."
  done > "$work/corpus/en.txt"
  for i in $(seq 1 150); do
    echo "第${i}步：模型读入前面的词，猜下一个词。训练让猜测更准确。🙂"
  done > "$work/corpus/zh.txt"
  cat > "$work/tiny.toml" <<'TOML'
[data]
dir = "shards"

[model]
n_layer = 2
n_head = 2
n_embd = 32
max_seq_len = 64

[train]
batch_size = 4
max_steps = 20
warmup_steps = 2
eval_interval = 10
eval_windows = 8
checkpoint_interval = 10
TOML
  local root=$PWD
  (
    cd "$work"
    "$root/$bin" tokenizer train --kind bpe --vocab-size 400 --out tok corpus >/dev/null
    "$root/$bin" data prepare --tokenizer tok/tokenizer.json --out shards corpus >/dev/null
    "$root/$bin" train --config tiny.toml --out run >/dev/null 2>&1
  )
  db="$work/fb.sqlite"
}

# start_server [extra serve flags...]: start it and wait for its address.
start_server() {
  : > "$work/serve.log"
  "$bin" serve --checkpoint "$work/run" --port 0 --feedback-db "$db" "$@" 2>"$work/serve.log" &
  server=$!
  url=""
  for _ in $(seq 1 200); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.log" | head -1 || true)
    [ -n "$url" ] && return 0
    sleep 0.05
  done
  echo "the server did not start:"; cat "$work/serve.log"; exit 1
}
